package contracttest

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMiddleware drives a tiny document with conforming and broken traffic
// and checks what is reported, excused and counted.
func TestMiddleware(t *testing.T) {
	for _, tc := range []struct {
		name     string
		query    string
		auth     string
		body     string
		meta     string
		allow    []Allow
		wantFail []string // substrings, one per expected failure
	}{
		{name: "conforming", query: "page=1&since=2026-01-01T00:00:00Z", auth: "Bearer x", body: `{"data":[{"id":1,"name":"a"}]}`, meta: `{"total":"1"}`},
		{name: "bad query", query: "page=one", auth: "Bearer x", body: `{"data":[]}`, meta: `{"total":"0"}`, wantFail: []string{`request: parameter "page"`}},
		{name: "bad date", query: "since=yesterday", auth: "Bearer x", body: `{"data":[]}`, meta: `{"total":"0"}`, wantFail: []string{`request: parameter "since"`}},
		{name: "no credential", auth: "", body: `{"data":[]}`, meta: `{"total":"0"}`, wantFail: []string{"request: security requirements failed"}},
		{name: "bad response", auth: "Bearer x", body: `{"data":[{"name":"a"}]}`, meta: `{"total":"1"}`, wantFail: []string{`property "id" is missing`}},
		{name: "bad JSON header", auth: "Bearer x", body: `{"data":[]}`, meta: `{"count":1}`, wantFail: []string{"JSON header X-Meta"}},
		{name: "allowed", auth: "Bearer x", body: `{"data":[{"name":"a"}]}`, meta: `{"total":"1"}`,
			allow: []Allow{{Operation: "listThings", Side: Response, Contains: `property "id" is missing`, Reason: "test"}}},
		{name: "allowance for another operation", auth: "Bearer x", body: `{"data":[{"name":"a"}]}`, meta: `{"total":"1"}`,
			allow:    []Allow{{Operation: "other", Side: Response, Contains: `property "id" is missing`, Reason: "test"}},
			wantFail: []string{`property "id" is missing`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var spec *Spec
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				spec.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "application/json")
					w.Header().Set("X-Meta", tc.meta)
					_, _ = w.Write([]byte(tc.body))
				})).ServeHTTP(w, r)
			}))
			defer srv.Close()
			var err error
			spec, err = New("testdata/mini.yaml", Options{ServerURL: srv.URL + "/v1", Allow: tc.allow, JSONHeaders: []string{"X-Meta"}})
			if err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/things?"+tc.query, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			fails := spec.Failures()
			if len(fails) != len(tc.wantFail) {
				t.Fatalf("failures %q, want %d matching %q", fails, len(tc.wantFail), tc.wantFail)
			}
			for i, w := range tc.wantFail {
				if !strings.Contains(fails[i], w) {
					t.Errorf("failure %q does not mention %q", fails[i], w)
				}
			}
			if spec.Validated()["listThings"] != 1 {
				t.Errorf("validated %v", spec.Validated())
			}
		})
	}
}

func TestUnknownPathFails(t *testing.T) {
	spec, err := New("testdata/mini.yaml", Options{ServerURL: "http://127.0.0.1/v1", Ignore: []Ignore{{PathPrefix: "/oauth", Reason: "another document"}}})
	if err != nil {
		t.Fatal(err)
	}
	h := spec.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for _, p := range []string{"/v1/nothing", "/oauth/token"} {
		req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1"+p, nil)
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	if f := spec.Failures(); len(f) != 1 || !strings.Contains(f[0], "/v1/nothing") {
		t.Fatalf("failures %q: want one for the undocumented path and none for the ignored prefix", f)
	}
}

func TestSpecPath(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("openapi: 3.0.0"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("the directory the environment names", func(t *testing.T) {
		t.Setenv(SpecsDirEnv, dir)
		if p, err := SpecPath("a.yaml"); err != nil || p != filepath.Join(dir, "a.yaml") {
			t.Fatalf("SpecPath = %q, %v", p, err)
		}
		if _, err := SpecPath("b.yaml"); err == nil || !strings.Contains(err.Error(), "hack/fetch-specs.sh") {
			t.Fatalf("a file missing from it: %v, want an error that says what to do", err)
		}
	})
	// make test runs hack/fetch-specs.sh first, which fills bin/specs
	// unless the documents are beside the repository or the environment
	// names a directory (then neither default place need hold them).
	named := os.Getenv(SpecsDirEnv) != ""
	t.Run("beside the repository or in the cache", func(t *testing.T) {
		t.Setenv(SpecsDirEnv, "")
		p, err := SpecPath("xero_accounting.yaml")
		if err != nil && named {
			if !strings.Contains(err.Error(), "hack/fetch-specs.sh") || !strings.Contains(err.Error(), SpecsDirEnv) {
				t.Fatalf("no document in the default places: %v, want an error that says what to do", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(p, "/shared/specs/xero_accounting.yaml") && !strings.HasSuffix(p, "/bin/specs/xero_accounting.yaml") {
			t.Fatalf("SpecPath = %s", p)
		}
		if _, err := SpecPath("no-such-spec.yaml"); err == nil || !strings.Contains(err.Error(), "hack/fetch-specs.sh") {
			t.Fatalf("a missing document: %v, want an error that says what to do", err)
		}
	})
}
