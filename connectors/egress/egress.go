// Package egress decides where the manager may send a connector's requests.
//
// Tenants choose a connector's base URL (and, for Xero, its token URL), so
// without a policy a tenant could make the manager call anything it can
// reach: the cluster's API server, a cloud metadata endpoint, a database
// next door. A Policy closes that:
//
//   - every address a request dials is checked after name resolution, on
//     the address actually dialled (so a DNS name that resolves to a private
//     address, or changes between the check and the dial, gains nothing):
//     private (RFC 1918, RFC 4193), loopback, link-local, unspecified,
//     multicast, CGNAT, documentation and reserved ranges, and the IPv6 forms
//     that embed such an IPv4 address, are refused;
//   - plain http goes only to a host the manager lists explicitly (its
//     -egress-allow-host flag: simulators in demos and tests); every other
//     host needs https with verified certificates;
//   - a redirect must stay on the same scheme, host and port (at most 5);
//   - proxies from the environment are not used.
//
// The hosts of a vendor's published API and token endpoints (each
// connector's DefaultHosts) are the ones a connector uses when the tenant
// sets no base URL. A host listed in extraHosts may also resolve to private
// addresses (a simulator on the manager's own pod or a cluster Service).
//
// Refusals are *connectors.Error values of KindInvalidConfig whose chain
// holds ErrRefused; their message names the host and says "refused by the
// egress policy", never the address it resolved to or why. Other transport
// failures of a policy client say only that the host gave no answer, so a
// tenant cannot use condition messages to map what the manager can reach.
package egress

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
)

// Timeouts of a policy client's transport.
const (
	DialTimeout           = 10 * time.Second
	TLSHandshakeTimeout   = 10 * time.Second
	ResponseHeaderTimeout = 60 * time.Second
	// MaxRedirects is the number of same-host redirects a request follows.
	MaxRedirects = 5
)

// ErrRefused is in the chain of every refusal by the policy.
var ErrRefused = errors.New("refused by the egress policy")

// maxHostInMessage bounds the host a message echoes (a tenant's text).
const maxHostInMessage = 100

// Policy is the manager's egress policy. It is safe for concurrent use and
// immutable once built.
type Policy struct {
	extra        []hostRule
	allowPrivate bool
	// lookup resolves a host name; nil means net.DefaultResolver. Tests
	// replace it to play DNS names that resolve to private addresses.
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	// dial connects to an address already checked; nil means a
	// net.Dialer with DialTimeout.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)

	once   sync.Once
	client *http.Client
}

// hostRule is one allowed host; port "" matches any port.
type hostRule struct {
	host, port string
}

// New builds a policy. extraHosts are host names, IP literals or host:port
// pairs ("localhost", "127.0.0.1:43123", "[::1]:8080", "erpsim.demo.svc")
// that may be reached over plain http and may resolve to private addresses;
// allowPrivate lets every host resolve to private, loopback and link-local
// addresses (tests only). A malformed entry is an error.
func New(extraHosts []string, allowPrivate bool) (*Policy, error) {
	p := &Policy{allowPrivate: allowPrivate}
	for _, h := range extraHosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		r, err := parseRule(h)
		if err != nil {
			return nil, fmt.Errorf("egress host %q: %w", h, err)
		}
		p.extra = append(p.extra, r)
	}
	return p, nil
}

func parseRule(s string) (hostRule, error) {
	if strings.Contains(s, "/") || strings.Contains(s, "@") {
		return hostRule{}, errors.New("want a host name or host:port, not a URL")
	}
	host, port := s, ""
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
		if _, err := netip.ParseAddr(p); err == nil || p == "" {
			return hostRule{}, errors.New("bad port")
		}
	} else if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		host = s[1 : len(s)-1]
	}
	host = normHost(host)
	if host == "" {
		return hostRule{}, errors.New("empty host")
	}
	if strings.Contains(host, ":") {
		if _, err := netip.ParseAddr(host); err != nil {
			return hostRule{}, errors.New("want [ipv6]:port for an IPv6 address with a port")
		}
	}
	return hostRule{host: host, port: port}, nil
}

func normHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
}

// isExtra reports whether host (with its effective port) is listed in
// extraHosts.
func (p *Policy) isExtra(host, port string) bool {
	return matches(p.extra, host, port)
}

func matches(rules []hostRule, host, port string) bool {
	host = normHost(host)
	for _, r := range rules {
		if r.host == host && (r.port == "" || r.port == port) {
			return true
		}
	}
	return false
}

// effectivePort is the URL's port, or the scheme's default.
func effectivePort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "http" {
		return "80"
	}
	return "443"
}

// AllowsHost checks rawURL without dialling: it must be an absolute http(s)
// URL; plain http only to a host of extraHosts; an IP literal must not be a
// refused address unless the host is allowed to be private. defaultHosts
// are the vendor's published hosts (they need https like any other). It
// returns a connectors.KindInvalidConfig error naming the host.
func (p *Policy) AllowsHost(defaultHosts []string, rawURL string) error {
	u, err := url.Parse(strings.TrimSpace(rawURL))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return connectors.Errorf(connectors.KindInvalidConfig, "the URL is not an absolute http(s) URL, so it is not allowed by the egress policy")
	}
	return p.checkURL(u)
}

// checkURL is AllowsHost on a parsed URL.
func (p *Policy) checkURL(u *url.URL) error {
	host, port := u.Hostname(), effectivePort(u)
	if u.Scheme != "https" && u.Scheme != "http" {
		return refusal(host, "only http(s) URLs are allowed")
	}
	if host == "" {
		return refusal(host, "the URL has no host")
	}
	extra := p.isExtra(host, port)
	if u.Scheme == "http" && !extra {
		return refusal(host, "plain http is allowed only to hosts the manager lists; use https")
	}
	if ip, err := netip.ParseAddr(host); err == nil && !extra && !p.allowPrivate && Forbidden(ip) {
		return refusal(host, "")
	}
	return nil
}

// refusal builds the error of a refused host. why, when set, says what the
// tenant can change (use https); it never names addresses.
func refusal(host, why string) error {
	msg := fmt.Sprintf("the host %q is not allowed by the egress policy", truncate(host))
	if why != "" {
		msg += " (" + why + ")"
	}
	return &connectors.Error{Kind: connectors.KindInvalidConfig, Msg: msg, Err: ErrRefused}
}

func truncate(s string) string {
	if len(s) <= maxHostInMessage {
		return s
	}
	// Host names are ASCII once parsed by net/url (or percent-escaped);
	// cut on a rune boundary anyway.
	cut := maxHostInMessage
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// Client returns an http.Client that sends requests under the policy for a
// connector whose vendor publishes defaultHosts. Its transport resolves
// every host itself, refuses forbidden addresses at dial time and dials only
// the addresses it checked (no second resolution); it verifies TLS, uses no
// proxy and has DialTimeout, TLSHandshakeTimeout and ResponseHeaderTimeout.
// The client has no overall Timeout: the caller bounds each attempt with its
// context. The vendor's defaultHosts need https like every host that
// extraHosts does not list; they are passed so that every connector names
// its vendor's hosts in one place (see connectors.Registry.DefaultHosts).
//
// Every call returns the same client, so that all connectors share one
// connection pool.
func (p *Policy) Client(defaultHosts []string) *http.Client {
	p.once.Do(func() { p.client = p.newClient() })
	return p.client
}

func (p *Policy) newClient() *http.Client {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           p.dialContext,
		ForceAttemptHTTP2:     true,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   TLSHandshakeTimeout,
		ResponseHeaderTimeout: ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   10,
	}
	return &http.Client{
		Transport:     &transport{p: p, base: tr},
		CheckRedirect: CheckRedirect,
	}
}

// CheckRedirect is an http.Client CheckRedirect that follows at most
// MaxRedirects redirects, each to the same scheme, host and port as the
// original request. Anything else is refused (and the request fails with an
// ErrRefused error): a vendor never needs a cross-host redirect, and
// following one would carry vendor auth headers to the new host.
func CheckRedirect(req *http.Request, via []*http.Request) error {
	if len(via) == 0 {
		return nil
	}
	first := via[0].URL
	host := req.URL.Hostname()
	if len(via) > MaxRedirects {
		return refusal(host, "too many redirects")
	}
	switch {
	case req.URL.Scheme != first.Scheme:
		return refusal(host, "a redirect may not change the scheme")
	case !strings.EqualFold(normHost(host), normHost(first.Hostname())) || effectivePort(req.URL) != effectivePort(first):
		return refusal(host, "a redirect may not leave the original host")
	}
	return nil
}

// transport checks every request's URL (redirects included) before the
// base transport sends it, and hides why a connection failed.
type transport struct {
	p    *Policy
	base *http.Transport
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.p.checkURL(req.URL); err != nil {
		closeBody(req)
		return nil, err
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		if errors.Is(err, ErrRefused) {
			return nil, err
		}
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, &UnreachableError{Host: truncate(req.URL.Hostname()), cause: err}
	}
	return resp, nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// UnreachableError is a transport failure of a policy client after the
// policy let the request through: the connection failed, timed out or its
// TLS handshake failed. Its message does not say which (nor the address),
// so it is no oracle of what the manager can reach; Unwrap gives the cause
// for logs of the operator and for errors.Is.
type UnreachableError struct {
	Host  string
	cause error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("no answer from %q (connection, TLS or timeout)", e.Host)
}

// Unwrap returns the transport's error.
func (e *UnreachableError) Unwrap() error { return e.cause }

// Timeout reports whether the cause was a timeout.
func (e *UnreachableError) Timeout() bool {
	var ne net.Error
	return errors.As(e.cause, &ne) && ne.Timeout()
}

// dialContext resolves addr's host, refuses it when any of its addresses
// is forbidden (unless the host may be private), and dials the checked
// addresses in turn.
func (p *Policy) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, refusal(addr, "")
	}
	privateOK := p.allowPrivate || p.isExtra(host, port)
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		lookup := p.lookup
		if lookup == nil {
			lookup = func(ctx context.Context, h string) ([]netip.Addr, error) {
				return net.DefaultResolver.LookupNetIP(ctx, "ip", h)
			}
		}
		ips, err = lookup(ctx, host)
		if err != nil {
			return nil, fmt.Errorf("resolving the host: %w", err)
		}
		if len(ips) == 0 {
			return nil, errors.New("resolving the host: no address")
		}
	}
	if !privateOK {
		// Refuse the host when any address is forbidden, not just skip
		// it: a name that mixes public and private addresses is a probe.
		for _, ip := range ips {
			if Forbidden(ip) {
				return nil, refusal(host, "")
			}
		}
	}
	dial := p.dial
	if dial == nil {
		d := &net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second}
		dial = d.DialContext
	}
	var firstErr error
	for _, ip := range ips {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		conn, err := dial(ctx, network, net.JoinHostPort(ip.Unmap().String(), port))
		if err == nil {
			return conn, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

// refusedPrefixes are the ranges beyond netip's predicates that a tenant's
// host may not resolve to.
var refusedPrefixes = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",       // "this network"
		"100.64.0.0/10",   // CGNAT (RFC 6598)
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // TEST-NET-1
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // TEST-NET-2
		"203.0.113.0/24",  // TEST-NET-3
		"240.0.0.0/4",     // reserved, broadcast
		"::/96",           // IPv4-compatible (deprecated)
		"100::/64",        // discard
		"2001:db8::/32",   // documentation
		"fec0::/10",       // site-local (deprecated)
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// embeddingPrefixes carry an IPv4 address in their low 32 bits (NAT64) or
// in bits 16..48 (6to4); the embedded address is checked too.
var (
	nat64       = []netip.Prefix{netip.MustParsePrefix("64:ff9b::/96"), netip.MustParsePrefix("64:ff9b:1::/48")}
	sixToFour   = netip.MustParsePrefix("2002::/16")
	teredoRange = netip.MustParsePrefix("2001::/32")
)

// Forbidden reports whether a tenant's host may not resolve to ip: private,
// loopback, link-local, unspecified, multicast, CGNAT, documentation and
// reserved addresses, in IPv4, IPv6 and the IPv6 forms that embed an IPv4
// address (IPv4-mapped, NAT64, 6to4; Teredo is refused outright).
func Forbidden(ip netip.Addr) bool {
	if !ip.IsValid() {
		return true
	}
	ip = ip.Unmap().WithZone("")
	if ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return true
	}
	for _, p := range refusedPrefixes {
		if p.Contains(ip) {
			return true
		}
	}
	if ip.Is6() {
		b := ip.As16()
		for _, p := range nat64 {
			if p.Contains(ip) {
				return Forbidden(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
			}
		}
		if sixToFour.Contains(ip) {
			return Forbidden(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
		}
		if teredoRange.Contains(ip) {
			return true
		}
	}
	return false
}
