package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestContactsPage: the page is JSON, at most its size and within the
// margin of it, with pageDocs distinct documents.
func TestContactsPage(t *testing.T) {
	for _, size := range []int64{12 << 20, 32 << 20} {
		page, err := contactsPage(size)
		if err != nil {
			t.Fatal(err)
		}
		if n := int64(len(page)); n > size || n < size-8<<10 {
			t.Errorf("size %d: page of %d bytes", size, n)
		}
		var env struct {
			Contacts []struct{ ContactID string }
		}
		if err := json.Unmarshal(page, &env); err != nil {
			t.Fatal(err)
		}
		ids := map[string]bool{}
		for _, c := range env.Contacts {
			ids[c.ContactID] = true
		}
		if len(env.Contacts) != pageDocs || len(ids) != pageDocs {
			t.Errorf("size %d: %d documents, %d distinct", size, len(env.Contacts), len(ids))
		}
	}
	if _, err := contactsPage(1 << 20); err == nil {
		t.Error("a page too small for its documents was built")
	}
}

// TestSyncAll runs the benchmark's syncs at a small size: every run reads
// the page through the real Xero connector and engine and upserts its
// customers, suppliers and contact persons.
func TestSyncAll(t *testing.T) {
	page, err := contactsPage(12 << 20)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(handler(page))
	defer srv.Close()
	total, _, err := syncAll(context.Background(), srv.URL, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	// A run: 1,000 customers, the 500 who are suppliers too, 6 persons each.
	if want := int64(2 * 2 * (pageDocs + pageDocs/2 + 6*pageDocs)); total != want {
		t.Errorf("upserted %d records, want %d", total, want)
	}
}

func TestParseDeployment(t *testing.T) {
	dep, err := readDeployment("../../config/manager/manager.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if dep.syncs <= 0 || dep.limit <= 0 || dep.goMemLimit <= 0 || dep.goMemLimit >= dep.limit {
		t.Errorf("the manager's Deployment gives %+v", dep)
	}
	manifest := func(args, mem, gomem string) string {
		return `apiVersion: v1
kind: Namespace
metadata: {name: system}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: m}
spec:
  template:
    spec:
      containers:
      - name: sidecar
      - name: manager
        args: [` + args + `]
        env: [{name: GOMEMLIMIT, value: "` + gomem + `"}]
        resources: {limits: {memory: ` + mem + `}}
`
	}
	for _, tc := range []struct {
		name, doc string
		want      deployment
		err       string
	}{
		{"flag", manifest(`--leader-elect, --concurrent-syncs=8`, "1Gi", "920MiB"), deployment{syncs: 8, limit: 1 << 30, goMemLimit: 920 << 20}, ""},
		{"default syncs", manifest(`--leader-elect`, "576Mi", "518MiB"), deployment{syncs: 4, limit: 576 << 20, goMemLimit: 518 << 20}, ""},
		{"bad flag", manifest(`--concurrent-syncs=x`, "1Gi", "1MiB"), deployment{}, "not a positive number"},
		{"no limit", manifest(`--leader-elect`, "null", "1MiB"), deployment{}, "no memory limit"},
		{"bad GOMEMLIMIT", manifest(`--leader-elect`, "1Gi", "1GiB"), deployment{}, "GOMEMLIMIT"},
		{"no Deployment", "kind: Namespace\n", deployment{}, "no Deployment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseDeployment([]byte(tc.doc))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}
