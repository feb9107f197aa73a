package xero

import (
	"context"
	"errors"
	"testing"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/egress"
)

// TestTokenURLUnderTheEgressPolicy: the client secret and the refresh token
// never go to a host derived from the tenant's base URL once the manager
// has an egress policy.
func TestTokenURLUnderTheEgressPolicy(t *testing.T) {
	policy, err := egress.New([]string{"127.0.0.1:9"}, false)
	if err != nil {
		t.Fatal(err)
	}
	full := map[string]string{"clientId": "cid", "clientSecret": "secret", "refreshToken": "rt"}
	with := func(k, v string) map[string]string {
		m := map[string]string{k: v}
		for a, b := range full {
			m[a] = b
		}
		return m
	}
	cases := []struct {
		name      string
		creds     map[string]string
		base      string
		wantToken string
		refused   bool
	}{
		{name: "default", creds: full, wantToken: DefaultTokenURL},
		{name: "base URL of a listed simulator", creds: full, base: "http://127.0.0.1:9/api.xro/2.0", wantToken: DefaultTokenURL},
		{name: "tenant's own https server", creds: full, base: "https://evil.example.com/api.xro/2.0", wantToken: DefaultTokenURL},
		{name: "token URL of a listed simulator", creds: with("tokenURL", "http://127.0.0.1:9/connect/token"), base: "http://127.0.0.1:9/api.xro/2.0",
			wantToken: "http://127.0.0.1:9/connect/token"},
		{name: "token URL over plain http to an unlisted host", creds: with("tokenURL", "http://evil.example.com/token"), refused: true},
		{name: "token URL on a private address", creds: with("tokenURL", "https://169.254.169.254/token"), refused: true},
		{name: "base URL on a private address", creds: full, base: "https://10.1.2.3/api.xro/2.0", refused: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			store := NewMemoryCredentialStore("ns/xero", tc.creds)
			cfg := connectors.Config{Type: Type, BaseURL: tc.base, Credentials: store.Data(), CredentialStore: store, Egress: policy}
			c, err := NewWithOptions(context.Background(), cfg, Options{tokens: newTokenCache()})
			if tc.refused {
				if connectors.KindOf(err) != connectors.KindInvalidConfig || !errors.Is(err, egress.ErrRefused) {
					t.Fatalf("err %v, want an egress refusal", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.(*connector).tokenURL; got != tc.wantToken {
				t.Fatalf("token URL %q, want %q", got, tc.wantToken)
			}
		})
	}
}
