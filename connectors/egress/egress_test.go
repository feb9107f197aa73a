package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/erpsync/erpsync-operator/connectors"
)

func TestForbidden(t *testing.T) {
	cases := []struct {
		ip   string
		want bool
	}{
		{"10.1.2.3", true},
		{"172.16.0.1", true},
		{"172.31.255.255", true},
		{"192.168.0.1", true},
		{"127.0.0.1", true},
		{"127.255.0.9", true},
		{"169.254.169.254", true}, // cloud metadata
		{"100.64.0.1", true},      // CGNAT
		{"100.127.255.254", true},
		{"0.0.0.0", true},
		{"0.1.2.3", true},
		{"224.0.0.1", true},
		{"255.255.255.255", true},
		{"198.18.0.1", true},
		{"::1", true},
		{"::", true},
		{"fe80::1", true},
		{"fe80::1%eth0", true},
		{"fc00::1", true},
		{"fd12:3456::1", true},
		{"ff02::1", true},
		{"::ffff:10.0.0.1", true},
		{"::ffff:127.0.0.1", true},
		{"::ffff:169.254.169.254", true},
		{"::10.0.0.1", true},          // IPv4-compatible
		{"64:ff9b::a00:1", true},      // NAT64 of 10.0.0.1
		{"2002:a9fe:a9fe::1", true},   // 6to4 of 169.254.169.254
		{"2001:0:4136:e378::1", true}, // Teredo
		{"2001:db8::1", true},
		{"8.8.8.8", false},
		{"1.1.1.1", false},
		{"100.63.255.255", false},
		{"172.32.0.1", false},
		{"2606:4700:4700::1111", false},
		{"::ffff:8.8.8.8", false},
		{"64:ff9b::808:808", false}, // NAT64 of 8.8.8.8
		{"2002:808:808::1", false},  // 6to4 of 8.8.8.8
	}
	for _, tc := range cases {
		t.Run(tc.ip, func(t *testing.T) {
			if got := Forbidden(netip.MustParseAddr(tc.ip)); got != tc.want {
				t.Fatalf("Forbidden(%s) = %v, want %v", tc.ip, got, tc.want)
			}
		})
	}
	if !Forbidden(netip.Addr{}) {
		t.Fatal("the zero address must be forbidden")
	}
}

func TestNewRejectsMalformedHosts(t *testing.T) {
	for _, h := range []string{"http://x", "a/b", "x:", "user@host"} {
		if _, err := New([]string{h}, false); err == nil {
			t.Errorf("New(%q) accepted a malformed host", h)
		}
	}
	if _, err := New([]string{"localhost", "127.0.0.1:43123", "[::1]:8080", "::1", "Sim.Example.", " "}, false); err != nil {
		t.Fatalf("New: %v", err)
	}
}

func TestAllowsHost(t *testing.T) {
	p, err := New([]string{"127.0.0.1:43123", "localhost", "erpsim.demo.svc"}, false)
	if err != nil {
		t.Fatal(err)
	}
	defaults := []string{"api.xero.com", "identity.xero.com"}
	cases := []struct {
		url  string
		want bool
	}{
		{"https://api.xero.com/api.xro/2.0", true},
		{"https://identity.xero.com/connect/token", true},
		{"http://api.xero.com/api.xro/2.0", false}, // no plain http to vendors either
		{"https://evil.example.com/x", true},       // https to a public name: dial-time checks apply
		{"http://evil.example.com/x", false},
		{"http://127.0.0.1:43123/api", true},
		{"http://127.0.0.1:43124/api", false},  // another port
		{"https://127.0.0.1:43124/api", false}, // loopback literal
		{"http://localhost:9999/", true},
		{"http://LOCALHOST./", true},
		{"http://erpsim.demo.svc/api", true},
		{"https://169.254.169.254/latest/meta-data", false},
		{"https://[::1]/", false},
		{"https://[::ffff:10.0.0.1]/", false},
		{"https://10.0.0.1/", false},
		{"https://8.8.8.8/", true},
		{"ftp://api.xero.com/", false},
		{"api.xero.com", false},
		{"https:///nohost", false},
		{"::", false},
	}
	for _, tc := range cases {
		t.Run(tc.url, func(t *testing.T) {
			err := p.AllowsHost(defaults, tc.url)
			if (err == nil) != tc.want {
				t.Fatalf("AllowsHost(%q) = %v, want allowed=%v", tc.url, err, tc.want)
			}
			if err != nil {
				if connectors.KindOf(err) != connectors.KindInvalidConfig {
					t.Errorf("kind %q, want InvalidConfig", connectors.KindOf(err))
				}
				if !strings.Contains(err.Error(), "egress policy") {
					t.Errorf("message %q does not name the egress policy", err)
				}
			}
		})
	}
	priv, _ := New(nil, true)
	if err := priv.AllowsHost(defaults, "https://127.0.0.1:1/"); err != nil {
		t.Errorf("allowPrivate: %v", err)
	}
	if err := priv.AllowsHost(defaults, "http://127.0.0.1:1/"); err == nil {
		t.Error("allowPrivate must not allow plain http to an unlisted host")
	}
}

// fakeNet plays DNS and records the addresses dialled, connecting every
// dial to one local server.
type fakeNet struct {
	mu     sync.Mutex
	dns    map[string][]string
	dialed []string
	target string // host:port every dial connects to; "" fails
}

func (f *fakeNet) install(p *Policy) {
	p.lookup = func(_ context.Context, host string) ([]netip.Addr, error) {
		var out []netip.Addr
		for _, s := range f.dns[host] {
			out = append(out, netip.MustParseAddr(s))
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("no such host %s", host)
		}
		return out, nil
	}
	p.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		f.mu.Lock()
		f.dialed = append(f.dialed, addr)
		f.mu.Unlock()
		if f.target == "" {
			return nil, fmt.Errorf("dial tcp %s: connect: connection refused", addr)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, f.target)
	}
}

func (f *fakeNet) dials() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.dialed...)
}

func get(t *testing.T, c *http.Client, u string) (string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), nil
}

func TestDialPolicy(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	cases := []struct {
		name    string
		extra   []string
		private bool
		dns     map[string][]string
		url     string
		// want: "ok", "refused" (ErrRefused) or "unreachable".
		want     string
		wantDial bool
	}{
		{name: "listed name resolving to a private address", extra: []string{"internal.example:" + port},
			dns: map[string][]string{"internal.example": {"10.0.0.5"}}, url: "http://internal.example:" + port, want: "ok", wantDial: true},
		{name: "https name resolving to RFC 1918", dns: map[string][]string{"evil.example": {"10.0.0.5"}},
			url: "https://evil.example:" + port, want: "refused"},
		{name: "https name resolving to metadata", dns: map[string][]string{"evil.example": {"169.254.169.254"}},
			url: "https://evil.example/", want: "refused"},
		{name: "https name resolving to IPv4-mapped loopback", dns: map[string][]string{"evil.example": {"::ffff:127.0.0.1"}},
			url: "https://evil.example/", want: "refused"},
		{name: "https name resolving to IPv6 ULA", dns: map[string][]string{"evil.example": {"fd00::1"}},
			url: "https://evil.example/", want: "refused"},
		{name: "public and private addresses mixed", dns: map[string][]string{"evil.example": {"8.8.8.8", "10.0.0.5"}},
			url: "https://evil.example/", want: "refused"},
		{name: "loopback literal over https", url: "https://127.0.0.1:" + port, want: "refused"},
		{name: "plain http to an unlisted public name", dns: map[string][]string{"api.example": {"8.8.8.8"}},
			url: "http://api.example/", want: "refused"},
		{name: "listed host may be private", extra: []string{"localhost"}, dns: map[string][]string{"localhost": {"127.0.0.1"}},
			url: "http://localhost:" + port, want: "ok", wantDial: true},
		{name: "listed host:port", extra: []string{"127.0.0.1:" + port}, url: "http://127.0.0.1:" + port, want: "ok", wantDial: true},
		{name: "listed host, other port", extra: []string{"127.0.0.1:1"}, url: "http://127.0.0.1:" + port, want: "refused"},
		{name: "allowPrivate for every host", private: true, dns: map[string][]string{"sim.test": {"127.0.0.1"}},
			url: "https://sim.test:" + port, want: "unreachable", wantDial: true}, // dialled; TLS to a plain server fails
		{name: "public address is dialled", dns: map[string][]string{"api.example": {"8.8.8.8"}},
			url: "https://api.example/", want: "unreachable", wantDial: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(tc.extra, tc.private)
			if err != nil {
				t.Fatal(err)
			}
			fn := &fakeNet{dns: tc.dns, target: srv.Listener.Addr().String()}
			if tc.name == "public address is dialled" {
				fn.target = ""
			}
			fn.install(p)
			body, err := get(t, p.Client([]string{"api.vendor.example"}), tc.url)
			switch tc.want {
			case "ok":
				if err != nil || body != "ok" {
					t.Fatalf("got %q, %v; want ok", body, err)
				}
			case "refused":
				if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "refused by the egress policy") {
					t.Fatalf("err = %v, want a refusal", err)
				}
				if len(fn.dials()) != 0 {
					t.Fatalf("a refused request dialled %v", fn.dials())
				}
			case "unreachable":
				var ue *UnreachableError
				if !errors.As(err, &ue) || errors.Is(err, ErrRefused) {
					t.Fatalf("err = %v, want an UnreachableError", err)
				}
			}
			if err != nil {
				// No oracle: neither resolved addresses nor the cause's text.
				for _, leak := range []string{"10.0.0.5", "169.254", "connection refused", "handshake", "x509", "127.0.0.1:" + port + "->"} {
					if strings.Contains(strings.ToLower(err.Error()), leak) && !strings.Contains(tc.url, leak) {
						t.Errorf("error %q leaks %q", err, leak)
					}
				}
			}
			if tc.wantDial && len(fn.dials()) == 0 {
				t.Error("the request was not dialled")
			}
		})
	}
}

func TestDialsOnlyCheckedAddresses(t *testing.T) {
	p, _ := New(nil, false)
	fn := &fakeNet{dns: map[string][]string{"api.example": {"8.8.8.8", "2606:4700:4700::1111"}}}
	fn.install(p)
	_, err := get(t, p.Client(nil), "https://api.example/")
	if err == nil {
		t.Fatal("want an error: every dial fails")
	}
	got := fn.dials()
	want := []string{"8.8.8.8:443", "[2606:4700:4700::1111]:443"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("dialled %v, want %v (the resolved addresses, never the name again)", got, want)
	}
}

func TestCheckRedirect(t *testing.T) {
	mk := func(s string) *http.Request {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return &http.Request{URL: u}
	}
	cases := []struct {
		name, from, to string
		hops           int
		want           bool
	}{
		{"same host and scheme", "https://api.example/a", "https://api.example/b", 1, true},
		{"same host, explicit default port", "https://api.example/a", "https://API.example:443/b", 1, true},
		{"cross host", "https://api.example/a", "https://evil.example/b", 1, false},
		{"subdomain is another host", "https://api.example/a", "https://x.api.example/b", 1, false},
		{"downgrade", "https://api.example/a", "http://api.example/b", 1, false},
		{"upgrade changes the scheme too", "http://sim.local/a", "https://sim.local/b", 1, false},
		{"other port", "http://sim.local:8080/a", "http://sim.local:8081/a", 1, false},
		{"to metadata", "https://api.example/a", "http://169.254.169.254/", 1, false},
		{"fifth redirect", "https://api.example/a", "https://api.example/b", 5, true},
		{"sixth redirect", "https://api.example/a", "https://api.example/b", 6, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			via := make([]*http.Request, tc.hops)
			for i := range via {
				via[i] = mk(tc.from)
			}
			err := CheckRedirect(mk(tc.to), via)
			if (err == nil) != tc.want {
				t.Fatalf("CheckRedirect = %v, want allowed=%v", err, tc.want)
			}
			if err != nil && !errors.Is(err, ErrRefused) {
				t.Fatalf("err %v is not an ErrRefused", err)
			}
		})
	}
}

func TestRedirectsThroughClient(t *testing.T) {
	var hits sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Store(r.Host+r.URL.Path, true)
		switch r.URL.Path {
		case "/same":
			http.Redirect(w, r, "/final", http.StatusFound)
		case "/cross":
			// Same server, other host name: a cross-host redirect.
			http.Redirect(w, r, "http://other.test:"+r.URL.Port()+"/final", http.StatusFound)
		case "/final":
			_, _ = io.WriteString(w, "final")
		}
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := New([]string{"sim.test", "other.test"}, false)
	fn := &fakeNet{dns: map[string][]string{"sim.test": {"127.0.0.1"}, "other.test": {"127.0.0.1"}}, target: srv.Listener.Addr().String()}
	fn.install(p)
	c := p.Client(nil)
	if body, err := get(t, c, "http://sim.test:"+port+"/same"); err != nil || body != "final" {
		t.Fatalf("same-host redirect: %q, %v", body, err)
	}
	_, err := get(t, c, "http://sim.test:"+port+"/cross")
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("cross-host redirect: err = %v, want a refusal", err)
	}
	if _, ok := hits.Load("other.test:" + port + "/final"); ok {
		t.Fatal("the cross-host redirect was followed")
	}
}

func TestNoProxyFromEnvironment(t *testing.T) {
	t.Setenv("HTTPS_PROXY", "http://127.0.0.1:1")
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	p, _ := New(nil, false)
	tr := p.Client(nil).Transport.(*transport).base
	if tr.Proxy != nil {
		t.Fatal("the transport uses a proxy from the environment")
	}
	if tr.TLSClientConfig == nil || tr.TLSClientConfig.InsecureSkipVerify {
		t.Fatal("TLS verification must be on")
	}
	if tr.TLSHandshakeTimeout != TLSHandshakeTimeout || tr.ResponseHeaderTimeout != ResponseHeaderTimeout {
		t.Fatal("timeouts not set")
	}
}
