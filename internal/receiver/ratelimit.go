package receiver

import (
	"container/list"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ipLimiter is a token bucket per source address, checked before a body
// is read, so that a flood of forged deliveries from one address costs a
// map lookup each. The buckets are bounded: past size, the least recently
// seen address loses its bucket (a returning one starts full again, which
// gives at most one extra burst).
type ipLimiter struct {
	limit rate.Limit
	burst int
	size  int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[netip.Addr]*list.Element
	lru     *list.List
}

type bucket struct {
	addr netip.Addr
	lim  *rate.Limiter
}

func newIPLimiter(perSecond float64, burst, size int, now func() time.Time) *ipLimiter {
	return &ipLimiter{limit: rate.Limit(perSecond), burst: max(1, burst), size: max(1, size), now: now,
		buckets: map[netip.Addr]*list.Element{}, lru: list.New()}
}

// allow takes a token for addr; when there is none it returns the wait
// before the next one.
func (l *ipLimiter) allow(addr netip.Addr) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var lim *rate.Limiter
	if el, ok := l.buckets[addr]; ok {
		l.lru.MoveToFront(el)
		lim = el.Value.(*bucket).lim
	} else {
		lim = rate.NewLimiter(l.limit, l.burst)
		l.buckets[addr] = l.lru.PushFront(&bucket{addr: addr, lim: lim})
		for l.lru.Len() > l.size {
			last := l.lru.Back()
			l.lru.Remove(last)
			delete(l.buckets, last.Value.(*bucket).addr)
		}
	}
	if lim.AllowN(now, 1) {
		return true, 0
	}
	r := lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return false, wait
}

// retryAfter renders a wait as Retry-After seconds (at least 1).
func retryAfter(d time.Duration) string {
	return strconv.FormatInt(max(1, int64(math.Ceil(d.Seconds()))), 10)
}

// clientAddr returns the delivery's source address: the peer's, or, when
// the peer is a trusted proxy (the Ingress or Gateway in front of the
// receiver), the right-most address of X-Forwarded-For that is not a
// trusted proxy. Addresses the client wrote further left are never used,
// so a client cannot pick its own bucket. IPv6 addresses are taken by /64,
// the least a host is commonly given.
func clientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := parseAddr(r.RemoteAddr)
	if !peer.IsValid() || !isTrusted(peer, trusted) {
		return bucketAddr(peer)
	}
	hops := r.Header.Values("X-Forwarded-For")
	var parts []string
	for _, h := range hops {
		parts = append(parts, strings.Split(h, ",")...)
	}
	for i := len(parts) - 1; i >= 0; i-- {
		a := parseAddr(strings.TrimSpace(parts[i]))
		if !a.IsValid() {
			break
		}
		if !isTrusted(a, trusted) {
			return bucketAddr(a)
		}
	}
	return bucketAddr(peer)
}

func parseAddr(s string) netip.Addr {
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func bucketAddr(a netip.Addr) netip.Addr {
	if a.Is6() {
		if p, err := a.WithZone("").Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return a
}

// ParseTrustedProxies parses a comma-separated list of addresses and CIDRs.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range strings.Split(s, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		if strings.Contains(v, "/") {
			p, err := netip.ParsePrefix(v)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: %w", v, err)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: %w", v, err)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}
