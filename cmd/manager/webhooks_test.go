package main

import "testing"

func TestWebhookPublicURL(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{in: "", want: ""},
		{in: "https://hooks.example.com/", want: "https://hooks.example.com"},
		{in: " https://example.com/erp ", want: "https://example.com/erp"},
		{in: "http://localhost:8090", want: "http://localhost:8090"},
		{in: "hooks.example.com", bad: true},
		{in: "ftp://hooks.example.com", bad: true},
		{in: "https://hooks.example.com/?a=1", bad: true},
		{in: "https://user:pw@hooks.example.com", bad: true},
		{in: "https://hooks.example.com/#x", bad: true},
	}
	for _, tc := range tests {
		got, err := webhookPublicURL(tc.in)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("%q: got %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.bad)
		}
	}
}
