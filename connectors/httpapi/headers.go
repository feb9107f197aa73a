package httpapi

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ServerTime returns the vendor's clock at the response, parsed from its HTTP
// Date header, or the zero time when the header is absent or malformed.
// Connectors put it in connectors.Page.ServerTime.
func ServerTime(h http.Header) time.Time {
	v := h.Get("Date")
	if v == "" {
		return time.Time{}
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// RetryAfter parses a Retry-After header in either form, delay-seconds
// ("120", fractions tolerated) or HTTP-date. A date is measured from the
// response's Date header where there is one within MaxClockSkew of now (so
// a small skew between us and the vendor does not matter, and a server
// whose clock is far off cannot stretch the wait), otherwise from now. ok
// is false when the header is absent or unparseable; a date in the past
// gives 0, true. The result is not bounded: the Client clamps it.
func RetryAfter(h http.Header, now time.Time) (d time.Duration, ok bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs < 0 || secs > 1e9 {
			return 0, false
		}
		return time.Duration(secs * float64(time.Second)), true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d = t.Sub(trustedTime(ServerTime(h), now))
	if d < 0 {
		d = 0
	}
	return d, true
}
