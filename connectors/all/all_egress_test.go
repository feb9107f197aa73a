package all

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/egress"
	"github.com/erpsync/erpsync-operator/connectors/xero"
)

// credentials are the smallest Secret each vendor's Factory accepts.
var credentials = map[string]map[string]string{
	"unleashed": {"apiId": "id", "apiKey": "key"},
	"cin7omni":  {"username": "user", "apiKey": "key"},
	"cin7core":  {"accountId": "acc", "applicationKey": "key"},
	"xero":      {"clientId": "cid", "clientSecret": "secret", "refreshToken": "rt"},
	"katana":    {"apiKey": "key"},
}

func config(typ, base string, policy connectors.EgressPolicy) connectors.Config {
	data := map[string][]byte{}
	for k, v := range credentials[typ] {
		data[k] = []byte(v)
	}
	cfg := connectors.Config{Type: typ, CompanyID: "acme", BaseURL: base, Credentials: data, Egress: policy}
	if typ == xero.Type {
		cfg.CredentialStore = xero.NewMemoryCredentialStore("ns/creds", credentials[typ])
	}
	return cfg
}

func TestEveryVendorDeclaresItsHosts(t *testing.T) {
	reg := connectors.NewRegistry()
	Register(reg)
	want := map[string][]string{
		"unleashed": {"api.unleashedsoftware.com"},
		"cin7omni":  {"api.cin7.com"},
		"cin7core":  {"inventory.dearsystems.com"},
		"xero":      {"api.xero.com", "identity.xero.com"},
		"katana":    {"api.katanamrp.com"},
	}
	if got := reg.Types(); len(got) != len(want) {
		t.Fatalf("registered %v, want the %d vendors", got, len(want))
	}
	for typ, hosts := range want {
		if got := reg.DefaultHosts(typ); !slices.Equal(got, hosts) {
			t.Errorf("%s: DefaultHosts %v, want %v", typ, got, hosts)
		}
	}
	if reg.DefaultHosts("nope") != nil {
		t.Error("an unregistered type has hosts")
	}
	// The registry hands out copies.
	reg.DefaultHosts("xero")[0] = "evil.example"
	if reg.DefaultHosts("xero")[0] != "api.xero.com" {
		t.Error("DefaultHosts returned the registry's own slice")
	}
}

func TestEveryVendorChecksItsBaseURL(t *testing.T) {
	reg := connectors.NewRegistry()
	Register(reg)
	policy, err := egress.New([]string{"127.0.0.1:43123", "erpsim.demo.svc"}, false)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		base string
		ok   bool
	}{
		{"", true}, // the vendor's default
		{"https://regional.example.com/api", true},
		{"http://127.0.0.1:43123/api", true},
		{"http://erpsim.demo.svc/api", true},
		{"http://evil.example.com/api", false},
		{"https://169.254.169.254/latest", false},
		{"https://10.0.0.1/api", false},
		{"https://[::1]:8443/api", false},
		{"http://127.0.0.1:6443/api", false},
	}
	for _, typ := range reg.Types() {
		for _, tc := range cases {
			t.Run(typ+" "+tc.base, func(t *testing.T) {
				_, err := reg.New(context.Background(), config(typ, tc.base, policy))
				if tc.ok {
					if err != nil {
						t.Fatalf("New: %v", err)
					}
					return
				}
				if connectors.KindOf(err) != connectors.KindInvalidConfig || !errors.Is(err, egress.ErrRefused) {
					t.Fatalf("New = %v (kind %q), want an InvalidConfig egress refusal", err, connectors.KindOf(err))
				}
				if !strings.Contains(err.Error(), "egress policy") {
					t.Errorf("message %q does not name the egress policy", err)
				}
			})
		}
		// Without a policy (tests, tools) nothing is checked.
		if _, err := reg.New(context.Background(), config(typ, "http://127.0.0.1:6443/api", nil)); err != nil {
			t.Errorf("%s without a policy: %v", typ, err)
		}
	}
}

// TestLimitsKeyedBySecretAndHost: tenants who share a vendor's public id
// (a Cin7 Omni username, a Xero client id, an Unleashed API id) but not its
// secret, or who call another host or port, never share a limiter nor its
// quota ConfigMap; the keys never hold the secret.
func TestLimitsKeyedBySecretAndHost(t *testing.T) {
	secretKey := map[string]string{"unleashed": "apiKey", "cin7omni": "apiKey", "cin7core": "applicationKey", "xero": "clientSecret", "katana": "apiKey"}
	reg := connectors.NewRegistry()
	Register(reg)
	for _, typ := range reg.Types() {
		t.Run(typ, func(t *testing.T) {
			host := reg.DefaultHosts(typ)[0]
			keys := func(secret, base string) []string {
				t.Helper()
				cfg := config(typ, base, nil)
				cfg.Credentials[secretKey[typ]] = []byte(secret)
				cfg.TenantID = "org-1" // Xero: the organisation, so its API client exists
				c, err := reg.New(context.Background(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				lk, ok := c.(interface{ LimitKeys() []string })
				if !ok {
					t.Fatalf("%T does not say which limits it counts against", c)
				}
				return lk.LimitKeys()
			}
			a := keys("secret-A-0123456789", "")
			if len(a) == 0 {
				t.Fatal("no limiter")
			}
			for name, other := range map[string][]string{
				"other secret": keys("secret-B-0123456789", ""),
				"other host":   keys("secret-A-0123456789", "https://evil.example.com/api/"),
				"other port":   keys("secret-A-0123456789", "https://"+host+":8443/api/"),
			} {
				if len(other) != len(a) {
					t.Fatalf("%s: keys %v against %v", name, other, a)
				}
				for i := range a {
					if a[i] == other[i] {
						t.Errorf("%s: limit %d shares the key %q", name, i, a[i])
					}
				}
			}
			for _, k := range a {
				if strings.Contains(k, "secret-A") {
					t.Errorf("the key %q holds the secret", k)
				}
			}
			if again := keys("secret-A-0123456789", ""); strings.Join(again, ",") != strings.Join(a, ",") {
				t.Errorf("one credential got other keys: %v vs %v", again, a)
			}
		})
	}
}
