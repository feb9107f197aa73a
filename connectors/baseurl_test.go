package connectors

import (
	"errors"
	"testing"
)

type denyAll struct{}

func (denyAll) AllowsHost([]string, string) error {
	return errors.New("not allowed by the egress policy")
}

func TestBaseURL(t *testing.T) {
	for _, tc := range []struct {
		name, base string
		slash      bool
		policy     EgressPolicy
		want       string
		kind       ErrorKind
	}{
		{name: "default", want: "https://api.example.com/v1/", slash: true},
		{name: "default without slash", want: "https://api.example.com/v1"},
		{name: "an override, trailing slashes folded", base: " https://eu.example.com/api// ", slash: true, want: "https://eu.example.com/api/"},
		{name: "not a URL", base: "::nope", kind: KindInvalidConfig},
		{name: "not http", base: "ftp://example.com/", kind: KindInvalidConfig},
		{name: "relative", base: "/api", kind: KindInvalidConfig},
		{name: "refused by the policy", base: "https://10.0.0.1/", policy: denyAll{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := BaseURL(Config{BaseURL: tc.base, Egress: tc.policy}, "vendor", "https://api.example.com/v1/", []string{"api.example.com"}, tc.slash)
			switch {
			case tc.policy != nil:
				if err == nil {
					t.Fatalf("BaseURL = %q, want the policy's refusal", got)
				}
			case tc.kind != "":
				if KindOf(err) != tc.kind {
					t.Fatalf("BaseURL = %q, %v; want %s", got, err, tc.kind)
				}
			case err != nil || got != tc.want:
				t.Fatalf("BaseURL = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
