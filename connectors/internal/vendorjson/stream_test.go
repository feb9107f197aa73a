package vendorjson

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestStreamList(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name   string
		body   string
		each   error
		docs   []string
		env    []string // keys of env
		found  bool
		errMsg string // "" for success
	}{
		{name: "envelope and list", body: `{"Id":"x","pagination":{"page":1},"Items":[{"a":1}, {"b":[2,3]} ,{}],"Status":"OK"}`,
			docs: []string{`{"a":1}`, `{"b":[2,3]}`, `{}`}, env: []string{"Id", "Status", "pagination"}, found: true},
		{name: "null list", body: `{"Items":null}`, env: []string{}, found: true},
		{name: "empty list", body: " {\"Items\":[]}\n", env: []string{}, found: true},
		{name: "no list", body: `{"Other":[1]}`, env: []string{"Other"}},
		{name: "not an object", body: `[{"a":1}]`, errMsg: "not a JSON object"},
		{name: "empty body", body: ``, errMsg: "not a JSON object"},
		{name: "list not an array", body: `{"Items":{"a":1}}`, errMsg: "Items is not a list"},
		{name: "list twice", body: `{"Items":[],"Items":[]}`, errMsg: "twice"},
		{name: "truncated in a document", body: `{"Items":[{"a":1},{"b":`, docs: []string{`{"a":1}`}, errMsg: "unexpected EOF"},
		{name: "truncated after the list", body: `{"Items":[{"a":1}]`, docs: []string{`{"a":1}`}, errMsg: "does not end"},
		{name: "data after the object", body: `{"Items":[]} {}`, errMsg: "data after"},
		{name: "garbage after the object", body: `{"Items":[]} x`, errMsg: "invalid character"},
		{name: "each's error", body: `{"Items":[{"a":1},{"b":2}]}`, each: boom, docs: []string{`{"a":1}`}, errMsg: "boom"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var docs []string
			env, found, err := StreamList(strings.NewReader(tc.body), "Items", func(raw json.RawMessage) error {
				docs = append(docs, string(raw))
				return tc.each
			})
			if !slices.Equal(docs, tc.docs) {
				t.Errorf("documents %q, want %q", docs, tc.docs)
			}
			if tc.errMsg != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errMsg) {
					t.Fatalf("err %v, want one with %q", err, tc.errMsg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			keys := make([]string, 0, len(env))
			for k := range env {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if !slices.Equal(keys, tc.env) || found != tc.found {
				t.Errorf("env keys %q found %v, want %q %v", keys, found, tc.env, tc.found)
			}
		})
	}
}

// TestStreamListDocumentsOwnTheirBytes: a document handed to each is a copy
// of its own, so keeping it (as records keep their raw documents) keeps
// no buffer of the body alive, and later reads never change it.
func TestStreamListDocumentsOwnTheirBytes(t *testing.T) {
	var kept []json.RawMessage
	body := `{"Items":[` + strings.Repeat(`{"k":"`+strings.Repeat("v", 100)+`"},`, 50) + `{}]}`
	if _, _, err := StreamList(strings.NewReader(body), "Items", func(raw json.RawMessage) error {
		kept = append(kept, raw)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i, raw := range kept[:50] {
		if string(raw) != `{"k":"`+strings.Repeat("v", 100)+`"}` || cap(raw) > 2*len(raw)+64 {
			t.Fatalf("document %d: %q (cap %d)", i, raw, cap(raw))
		}
	}
}
