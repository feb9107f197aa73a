package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/egress"
)

// Defaults of Options.
const (
	DefaultMaxRetries     = 4
	DefaultBackoffBase    = 500 * time.Millisecond
	DefaultBackoffMax     = 30 * time.Second
	DefaultMaxRetryWait   = 2 * time.Minute
	DefaultAttemptTimeout = 60 * time.Second
	// DefaultMaxBodyBytes is 32 MiB: a vendor page of 1,000 records is a
	// few MiB, and the manager's memory limit is measured for one 32 MiB
	// page per concurrent sync (hack/bench.d/memory.sh).
	DefaultMaxBodyBytes = 32 << 20
)

// Options configure a Client. The zero value of every field has a sensible
// default; a connector usually sets Connector, Limits, HTTPClient (from
// connectors.Config), Log and, for Xero, ProblemHeader.
type Options struct {
	// Connector names the vendor in metrics and logs ("xero", "katana").
	Connector string
	// Secret is the secret part of the credential the requests carry (an
	// API key, a client secret, an application key). It is never stored
	// or logged: New appends a SHA-256 digest of it (16 hex digits) and
	// BaseURL's host to every Limit.Key, so that tenants who share a
	// credential's public id (a Cin7 Omni username, a Xero client id)
	// without its secret, or who call another host, never share a limiter,
	// a quota counter or a quota ConfigMap.
	Secret string
	// BaseURL is the API root the requests go to; its host (and port) is
	// part of every limiter key (see Secret).
	BaseURL string
	// DefaultHost is true when BaseURL's host is one of the vendor's own
	// published hosts (see IsDefaultHost). When false, nothing the server
	// says outlives the process: its quota blocks are kept in memory only,
	// never saved to (nor read from) the QuotaStore. The calls we made
	// (windows and quota counts) are saved either way.
	DefaultHost bool
	// Limits are the metered scopes every request of this client passes
	// through, from the widest to the most specific (for Xero: the app's
	// minute limit, then the tenant's limits). A throttling answer that does
	// not name its limit pauses the most specific (last) one.
	Limits []Limit
	// HTTPClient sends the requests; nil means a new http.Client. Do not set
	// its Timeout: AttemptTimeout bounds each attempt.
	HTTPClient *http.Client
	// Registry holds the shared limiters; nil means SharedRegistry.
	Registry *Registry
	// Clock measures limits, quotas, Retry-After and backoff; nil means the
	// wall clock, or ScaledClock(TimeScale) when TimeScale > 1.
	Clock Clock
	// TimeScale > 1 compresses time: with 60, a 60/min limit admits 60 calls
	// a second and Retry-After: 60 waits a second. Ignored when Clock is set.
	TimeScale float64
	// MaxRetries bounds the retries of one request (so it is sent at most
	// MaxRetries+1 times); 0 means DefaultMaxRetries, negative means none.
	MaxRetries int
	// BackoffBase and BackoffMax shape the jittered exponential backoff after
	// 5xx answers, timeouts and connection errors: attempt n waits a random
	// time between half and all of min(BackoffBase*2^(n-1), BackoffMax).
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// MaxRetryWait is the longest Retry-After the client waits within one
	// call; a longer one fails the call at once with RetryAt set (the
	// controller schedules the retry). 0 means DefaultMaxRetryWait.
	MaxRetryWait time.Duration
	// ThrottleCodes are the statuses that mean "slow down"; nil means 429.
	// Cin7 Core, whose older servers throttle with 503, adds 503.
	ThrottleCodes []int
	// ThrottleWait is how long to wait after a throttling answer without
	// Retry-After; 0 means the backoff schedule.
	ThrottleWait time.Duration
	// ProblemHeader names the header in which the vendor says which limit a
	// throttling answer is about (Xero: "X-Rate-Limit-Problem"). A value that
	// names a Quota (or is "day"/"month") fails the call with
	// KindQuotaExhausted and blocks the quota until Retry-After; a value that
	// names a Window pauses the limiter holding it.
	ProblemHeader string
	// AttemptTimeout bounds one attempt, in real time, body included; a
	// timed-out attempt is retried. 0 means DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// MaxBodyBytes bounds a response body; a longer one is an invalid
	// response. 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// AcceptStatus lists statuses >= 400 that Do returns as a Response
	// instead of an error (for example 404 for "no such page").
	AcceptStatus []int
	// Classify, when set, sees every response first. A non-nil error ends
	// the call with it (a *connectors.Error of KindQuotaExhausted also blocks
	// the most specific limit's quotas until its RetryAt); nil falls through
	// to the default handling. It must not keep resp.
	Classify func(resp *Response) error
	// Observer receives metrics; nil means DefaultObserver.
	Observer Observer
	// Log receives retries and waits at V(1). It never gets credentials,
	// query strings or bodies.
	Log logr.Logger
	// Jitter returns a number in [0,1); nil means math/rand/v2.
	Jitter func() float64
}

// Client sends a connector's HTTP requests through its vendor's limits,
// quotas and retry policy. It is safe for concurrent use; build one per
// connector instance (limits are shared through the Registry anyway).
type Client struct {
	opts     Options
	hc       *http.Client
	clock    Clock
	observer Observer
	log      logr.Logger
	jitter   func() float64
	throttle []int
	retries  int
	// limiters in Options order (most specific last) and in key order (for
	// locking).
	ordered []*limiter
	sorted  []*limiter
	calls   atomic.Int64
}

// New returns a Client for opts. It fails with KindInvalidConfig when a
// Limit is malformed.
func New(opts Options) (*Client, error) {
	c := &Client{opts: opts, hc: opts.HTTPClient, clock: opts.Clock, observer: opts.Observer, log: opts.Log, jitter: opts.Jitter}
	if c.hc == nil {
		// Not the manager's egress client (tests, tools): still never
		// follow a redirect to another host or scheme, which would carry
		// vendor auth headers there.
		c.hc = &http.Client{CheckRedirect: egress.CheckRedirect}
	}
	if c.clock == nil {
		c.clock = ScaledClock(opts.TimeScale)
	}
	if c.observer == nil {
		c.observer = DefaultObserver
	}
	if c.jitter == nil {
		c.jitter = rand.Float64
	}
	c.throttle = opts.ThrottleCodes
	if c.throttle == nil {
		c.throttle = []int{http.StatusTooManyRequests}
	}
	switch {
	case opts.MaxRetries == 0:
		c.retries = DefaultMaxRetries
	case opts.MaxRetries < 0:
		c.retries = 0
	default:
		c.retries = opts.MaxRetries
	}
	if c.opts.BackoffBase <= 0 {
		c.opts.BackoffBase = DefaultBackoffBase
	}
	if c.opts.BackoffMax <= 0 {
		c.opts.BackoffMax = DefaultBackoffMax
	}
	if c.opts.MaxRetryWait <= 0 {
		c.opts.MaxRetryWait = DefaultMaxRetryWait
	}
	if c.opts.AttemptTimeout <= 0 {
		c.opts.AttemptTimeout = DefaultAttemptTimeout
	}
	if c.opts.MaxBodyBytes <= 0 {
		c.opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	reg := opts.Registry
	if reg == nil {
		reg = SharedRegistry
	}
	seen := map[string]bool{}
	scope := scopeSuffix(opts.Secret, opts.BaseURL)
	for _, l := range opts.Limits {
		if err := l.validate(); err != nil {
			return nil, connectors.Wrap(connectors.KindInvalidConfig, err, "invalid rate limits")
		}
		l.Key += scope
		if seen[l.Key] {
			continue
		}
		seen[l.Key] = true
		c.ordered = append(c.ordered, reg.limiter(l, opts.DefaultHost, opts.Connector, c.observer))
	}
	c.sorted = slices.Clone(c.ordered)
	slices.SortFunc(c.sorted, func(a, b *limiter) int { return strings.Compare(a.key, b.key) })
	return c, nil
}

// Calls returns the number of HTTP requests the client has sent, retries
// included. A connector fills connectors.Page.Calls with the difference
// across a page.
func (c *Client) Calls() int64 { return c.calls.Load() }

// LimitKeys returns the keys of the client's limiters in Options order, as
// New scoped them (see Options.Secret): for tests and diagnostics.
func (c *Client) LimitKeys() []string {
	out := make([]string, len(c.ordered))
	for i, l := range c.ordered {
		out[i] = l.key
	}
	return out
}

// Clock returns the client's clock.
func (c *Client) Clock() Clock { return c.clock }

// Response is a complete HTTP answer, its body read.
type Response struct {
	StatusCode int
	Header     http.Header
	Body       []byte
	// ServerTime is the vendor's clock at the answer (its Date header), or
	// zero.
	ServerTime time.Time
	// ReceivedAt is the client's clock when the answer arrived.
	ReceivedAt time.Time
	// Attempts is how many times the request was sent to get this answer.
	Attempts int
	// Method and Path name the request, without query string.
	Method, Path string
	// streamed is true when the body went to a BodyDecoder as it arrived
	// (Body is then nil).
	streamed bool
}

// VendorNow is the time to measure the vendor's quota periods from: its Date
// header when that is within MaxClockSkew of our clock, else our clock (a
// server far off, by mistake or on purpose, cannot move a quota reset).
func (r *Response) VendorNow() time.Time {
	now := r.ReceivedAt
	if now.IsZero() {
		// A Response not built by a Client.
		now = time.Now()
	}
	return trustedTime(r.ServerTime, now)
}

// trustedTime returns server when it is set and within MaxClockSkew of now,
// else now.
func trustedTime(server, now time.Time) time.Time {
	if server.IsZero() {
		return now
	}
	if d := server.Sub(now); d > MaxClockSkew || d < -MaxClockSkew {
		return now
	}
	return server
}

// DecodeJSON decodes the body into v; a body that does not parse is a
// KindInvalidResponse error naming the request (never its content).
func (r *Response) DecodeJSON(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return connectors.Wrap(connectors.KindInvalidResponse, err, fmt.Sprintf("%s %s: the response does not parse", r.Method, r.Path))
	}
	return nil
}

// Get sends a GET request for rawURL with the given headers. op names the
// operation in metrics ("list_products"); keep it low-cardinality.
func (c *Client) Get(ctx context.Context, op, rawURL string, header http.Header) (*Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		// The URL may carry secrets in its query: do not echo it.
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "invalid request URL for %s", op)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	return c.Do(ctx, op, req)
}

// GetJSON is Get followed by DecodeJSON, the body of a 2xx answer decoded
// as it arrives (see GetStream).
func (c *Client) GetJSON(ctx context.Context, op, rawURL string, header http.Header, v any) (*Response, error) {
	return c.GetStream(ctx, op, rawURL, header, func(_ *Response, body io.Reader) error { return DecodeJSONStream(body, v) })
}

// BodyDecoder decodes a response body while it is read. resp has every
// field but Body (and Attempts); body yields the bytes under the client's
// MaxBodyBytes and the process's body budget.
type BodyDecoder func(resp *Response, body io.Reader) error

// GetStream is Get, but the body of a 2xx answer is never held whole: decode
// reads it from the connection, within the attempt (its timeout and
// concurrency slot), so that a page costs its decoded form and not the body
// besides. The budget (SetBodyBudget) is taken for the bytes read so far
// and given back when decode returns. The Response returned has no Body.
//
// decode is called again, on a new body, when an attempt's body fails to
// arrive (a lost connection or a timeout, retried as Do retries): it must
// start afresh on every call. A decode error that is not a
// *connectors.Error is a KindInvalidResponse error naming the request only;
// a *connectors.Error is returned as it is. Whatever decode leaves unread
// must be white space. A body over MaxBodyBytes is KindInvalidResponse,
// whatever decode did with its start.
//
// An answer Do returns without streaming (a status other than 2xx that
// AcceptStatus lets through, or any answer when Options.Classify is set,
// since Classify sees the body) is read whole as Do reads it and then given
// to decode, whose resp then has Body.
func (c *Client) GetStream(ctx context.Context, op, rawURL string, header http.Header, decode BodyDecoder) (*Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "invalid request URL for %s", op)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := c.do(ctx, op, req, decode)
	if err != nil || decode == nil || resp.streamed {
		return resp, err
	}
	if err := decodeErr(decode(resp, bytes.NewReader(resp.Body)), resp.Method+" "+resp.Path); err != nil {
		return nil, err
	}
	return resp, nil
}

// DecodeJSONStream decodes one JSON value from r into v, and fails when
// anything but white space follows it (as json.Unmarshal does).
func DecodeJSONStream(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON value")
	}
	return nil
}

// decodeErr is the error of a decoder that failed on a complete body.
func decodeErr(err error, target string) error {
	if err == nil {
		return nil
	}
	var ce *connectors.Error
	if errors.As(err, &ce) {
		return err
	}
	return connectors.Wrap(connectors.KindInvalidResponse, err, target+": the response does not parse")
}

// Do sends req through the client's limits and retry policy and returns the
// first acceptable answer (status < 400 or listed in AcceptStatus). Errors
// are *connectors.Error values (context errors excepted, wrapped as they
// are) that name the request by method and path only:
//
//   - 401, 403: KindAuthenticationFailed, not retried.
//   - a quota used up, by our count or the vendor's word: KindQuotaExhausted
//     with RetryAt at the reset, not sent / not retried.
//   - throttling (429, ThrottleCodes): waits Retry-After (pausing the shared
//     limiter) and retries; KindRateLimited with RetryAt once MaxRetries or
//     MaxRetryWait is exceeded.
//   - 5xx, 408, timeouts, connection errors: jittered exponential backoff
//     (at least Retry-After where given); KindERPUnavailable after
//     MaxRetries.
//   - other 4xx: KindInvalidResponse.
//
// Every wait of at least connectors.MinHookedWait (limits, Retry-After,
// back-off, a concurrency slot) first calls the context's WaitHook (see
// connectors.WithWaitHook), on the calling goroutine.
//
// The request's body, if any, is buffered so it can be resent.
func (c *Client) Do(ctx context.Context, op string, req *http.Request) (*Response, error) {
	return c.do(ctx, op, req, nil)
}

// do is Do; a 2xx answer's body goes to decode as it arrives when decode is
// set and Options.Classify is not (see GetStream).
func (c *Client) do(ctx context.Context, op string, req *http.Request, decode BodyDecoder) (*Response, error) {
	method, path := req.Method, safePath(req.URL)
	target := method + " " + path
	var body []byte
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: reading request body: %w", target, err)
		}
		body = b
	}
	var wait time.Duration
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			// A repeat after a fault: a pass that needed one applies no
			// inferred deletion.
			connectors.CountFault(ctx)
		}
		if wait > 0 {
			// A Retry-After or a back-off: let the caller save its work
			// first; the time that takes is part of the wait.
			start := c.clock.Now()
			connectors.BeforeWait(ctx, wait)
			wait -= c.clock.Now().Sub(start)
		}
		if wait > 0 {
			if err := c.clock.Sleep(ctx, wait); err != nil {
				return nil, fmt.Errorf("%s: %w", target, err)
			}
		}
		wait = 0
		resp, err := c.attempt(ctx, op, req, body, target, decode)
		if err != nil {
			var ce *connectors.Error
			if errors.As(err, &ce) {
				return nil, err
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%s: %w", target, ctx.Err())
			}
			if attempt > c.retries {
				return nil, connectors.Wrap(connectors.KindERPUnavailable, err, fmt.Sprintf("%s: no answer after %d attempts", target, attempt))
			}
			wait = c.backoff(attempt)
			c.log.V(1).Info("retrying after a failed attempt", "connector", c.opts.Connector, "request", target, "attempt", attempt, "wait", wait, "error", err.Error())
			continue
		}
		resp.Attempts = attempt
		resp.Method, resp.Path = method, path
		if c.opts.Classify != nil {
			if err := c.opts.Classify(resp); err != nil {
				var ce *connectors.Error
				if errors.As(err, &ce) && ce.Kind == connectors.KindQuotaExhausted && !ce.RetryAt.IsZero() {
					// The vendor's word, bounded: never past the quota's
					// period end nor a day (a month) ahead.
					ce.RetryAt = c.blockQuota(ctx, c.mostSpecific(), "", ce.RetryAt)
				}
				return nil, fmt.Errorf("%s: %w", target, err)
			}
		}
		code := resp.StatusCode
		se := &StatusError{Method: method, Path: path, StatusCode: code, Attempts: attempt}
		switch {
		case code < 400 || slices.Contains(c.opts.AcceptStatus, code):
			return resp, nil
		case code == http.StatusUnauthorized || code == http.StatusForbidden:
			return nil, connectors.Wrap(connectors.KindAuthenticationFailed, se, "the vendor refused the credentials")
		case slices.Contains(c.throttle, code):
			now := c.clock.Now()
			ra, hasRA := RetryAfter(resp.Header, now)
			problem := ""
			if c.opts.ProblemHeader != "" {
				problem = strings.TrimSpace(resp.Header.Get(c.opts.ProblemHeader))
			}
			if l, name, ok := c.quotaProblem(problem); ok {
				until := now.Add(ra)
				if !hasRA {
					p := periodOfName(name)
					until = periodEnd(periodStart(now, p), p)
				}
				until = c.blockQuota(ctx, l, name, until)
				return nil, &connectors.Error{Kind: connectors.KindQuotaExhausted, Msg: fmt.Sprintf("the vendor's %s call quota is used up", boundedName(name)), RetryAt: until, Err: se}
			}
			d := ra
			if !hasRA {
				d = c.opts.ThrottleWait
				if d <= 0 {
					d = c.backoff(attempt)
				}
			}
			l := c.windowLimiter(problem)
			// A Retry-After is the vendor's word about a rate window: at
			// most MaxWindowPause (a longer window's span, at most a day).
			d = min(d, l.maxPause())
			if l != nil {
				// Every client of this credential holds off, not just us;
				// the next admit waits for it.
				l.pause(now.Add(d))
			}
			if attempt > c.retries || d > c.opts.MaxRetryWait {
				return nil, &connectors.Error{Kind: connectors.KindRateLimited, Msg: "the vendor kept throttling", RetryAt: now.Add(d), Err: se}
			}
			c.log.V(1).Info("throttled by the vendor", "connector", c.opts.Connector, "request", target, "status", code, "problem", boundedName(problem), "wait", d)
			if l == nil {
				c.observer.ObserveRateLimitWait(c.opts.Connector, d)
				wait = d
			}
		case code >= 500 || code == http.StatusRequestTimeout:
			now := c.clock.Now()
			d := c.backoff(attempt)
			ra, hasRA := RetryAfter(resp.Header, now)
			ra = min(ra, MaxWindowPause)
			if hasRA && ra > d {
				d = ra
			}
			if attempt > c.retries || d > c.opts.MaxRetryWait {
				e := &connectors.Error{Kind: connectors.KindERPUnavailable, Msg: "the vendor kept failing", Err: se}
				if hasRA {
					e.RetryAt = now.Add(ra)
				}
				return nil, e
			}
			c.log.V(1).Info("retrying after a server error", "connector", c.opts.Connector, "request", target, "status", code, "attempt", attempt, "wait", d)
			wait = d
		default:
			return nil, connectors.Wrap(connectors.KindInvalidResponse, se, "the vendor rejected the request")
		}
	}
}

// attempt waits for the limits, sends the request once and reads the body.
// A *connectors.Error result is final; other errors are retriable transport
// failures (already stripped of the URL).
func (c *Client) attempt(ctx context.Context, op string, req *http.Request, body []byte, target string, decode BodyDecoder) (*Response, error) {
	recordQuotaCredentials(ctx, c.sorted)
	for _, l := range c.sorted {
		l.touch(l.wall())
		if err := l.load(ctx, c.clock.Now()); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if l.hasQuotas() {
				// Fail closed: sending blind could overrun a quota that a
				// vendor answers by blocking the account until it resets.
				return nil, connectors.Wrap(connectors.KindERPUnavailable, err, "reading the call quota failed")
			}
			// No quota to overrun; the calls a previous process made in
			// the current windows are unknown, so the windows start spent
			// (one window's wait, never a burst). Remembered vendor blocks
			// are lost, and the vendor will tell us again.
			c.log.Error(err, "reading the quota store failed; going on without it, the rate windows taken as spent", "connector", c.opts.Connector)
			l.markLoaded(c.clock.Now())
		}
	}
	start := c.clock.Now()
	release, err := acquireSlots(ctx, c.sorted)
	if err != nil {
		return nil, err
	}
	defer release()
	// admit takes the sync's work slot back, if a wait gave it back,
	// before it counts the call: no request is sent, and no response
	// read, without one. (Blocked on a vendor's concurrency slot, a sync
	// gives its work slot back first, so that one waiting for a work slot
	// while holding that concurrency slot never waits on a sync that waits
	// on it.)
	_, counted, admitted, err := admit(ctx, c.clock, c.sorted, c.opts.MaxRetryWait)
	if w := c.clock.Now().Sub(start); w >= time.Millisecond {
		c.observer.ObserveRateLimitWait(c.opts.Connector, w)
	}
	if err != nil {
		var qe *quotaError
		if errors.As(err, &qe) {
			return nil, &connectors.Error{Kind: connectors.KindQuotaExhausted, Msg: target + " not sent: " + qe.Error(), RetryAt: qe.until}
		}
		var we *waitError
		if errors.As(err, &we) {
			return nil, &connectors.Error{Kind: connectors.KindRateLimited, Msg: target + " not sent: " + we.Error(), RetryAt: we.until}
		}
		return nil, err
	}
	for _, l := range counted {
		if repeated, err := l.save(ctx); err != nil && !repeated {
			c.log.Error(err, "saving the call quota and rate windows failed; counting goes on in memory", "connector", c.opts.Connector)
		}
	}
	for _, l := range counted {
		if qe, blocked := l.sharedBlock(c.clock.Now()); blocked {
			return nil, &connectors.Error{Kind: connectors.KindQuotaExhausted, Msg: target + " not sent: " + qe.Error(), RetryAt: qe.until}
		}
	}

	actx, cancel := context.WithTimeout(ctx, c.opts.AttemptTimeout)
	defer cancel()
	r := req.Clone(actx)
	if body != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		r.ContentLength = int64(len(body))
	} else if req.GetBody != nil {
		b, err := req.GetBody()
		if err != nil {
			return nil, connectors.Wrap(connectors.KindInvalidConfig, err, target+": rebuilding the request body failed")
		}
		r.Body = b
	}
	// The windows counted the call when admit admitted it; what comes
	// between (the counters' write to the store, a connection dialled)
	// can take a while under load, and the vendor counts the call when it
	// arrives: calls admitted a second apart could arrive closer together
	// and be refused. The windows therefore count it from when it got its
	// connection, which only ever delays later calls.
	r = r.WithContext(httptrace.WithClientTrace(r.Context(), &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { c.restamp(&admitted) },
	}))
	c.calls.Add(1)
	sent := time.Now()
	hr, err := c.hc.Do(r)
	if err != nil {
		c.observer.ObserveRequest(c.opts.Connector, op, 0, time.Since(sent))
		return nil, stripURL(err)
	}
	if decode != nil && c.opts.Classify == nil && hr.StatusCode >= 200 && hr.StatusCode < 300 {
		resp := &Response{StatusCode: hr.StatusCode, Header: hr.Header, ServerTime: ServerTime(hr.Header), ReceivedAt: c.clock.Now(),
			Method: req.Method, Path: safePath(req.URL), streamed: true}
		err := c.stream(actx, hr.Body, resp, decode, target)
		_ = hr.Body.Close()
		// The request's time includes the decoding, which reads the body.
		c.observer.ObserveRequest(c.opts.Connector, op, hr.StatusCode, time.Since(sent))
		if err != nil {
			return nil, err
		}
		return resp, nil
	}
	b, err := readBody(actx, hr.Body, hr.ContentLength, c.opts.MaxBodyBytes)
	_ = hr.Body.Close()
	c.observer.ObserveRequest(c.opts.Connector, op, hr.StatusCode, time.Since(sent))
	if errors.Is(err, errTooLarge) {
		return nil, connectors.Errorf(connectors.KindInvalidResponse, "%s: the response is larger than %d bytes", target, c.opts.MaxBodyBytes)
	}
	if err != nil {
		// The cause may name addresses and connection states: keep it for
		// errors.Is, not in the message a tenant reads.
		return nil, &bodyError{cause: stripURL(err)}
	}
	return &Response{StatusCode: hr.StatusCode, Header: hr.Header, Body: b, ServerTime: ServerTime(hr.Header), ReceivedAt: c.clock.Now()}, nil
}

// restampAfter is the least delay between a call's admission and its
// connection that moves its send time in the windows: shorter delays are
// within every window's guard, and not worth the locks.
const restampAfter = 20 * time.Millisecond

// restamp moves the call recorded at *admitted in c's windows to now, when
// now is restampAfter or more later, and keeps the new time in *admitted
// (a redirect gets a connection again). GotConn runs on the goroutine of
// the request, one connection at a time.
func (c *Client) restamp(admitted *time.Time) {
	now := c.clock.Now()
	if now.Sub(*admitted) < restampAfter {
		return
	}
	for _, l := range c.sorted {
		l.restamp(*admitted, now)
	}
	*admitted = now
}

// stream runs decode over body under the body budget and the body cap, and
// sorts its failure: a body over the cap is a final KindInvalidResponse, a
// body that did not arrive whole a retriable bodyError, content that does
// not parse (or trails the decoded value) a final decodeErr.
func (c *Client) stream(ctx context.Context, body io.Reader, resp *Response, decode BodyDecoder, target string) error {
	sb := bodies.newStreamBody(ctx, body, c.opts.MaxBodyBytes)
	defer sb.close()
	derr := decode(resp, sb)
	if derr == nil && sb.err == nil {
		// The rest must be white space; reading it to the end also lets
		// the connection be reused.
		derr = onlySpace(sb)
	}
	switch {
	case errors.Is(sb.err, errTooLarge):
		return connectors.Errorf(connectors.KindInvalidResponse, "%s: the response is larger than %d bytes", target, c.opts.MaxBodyBytes)
	case sb.err != nil:
		return &bodyError{cause: stripURL(sb.err)}
	}
	return decodeErr(derr, target)
}

// onlySpace reads r to its end and fails on anything but JSON white space.
func onlySpace(r io.Reader) error {
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if len(bytes.Trim(buf[:n], " \t\r\n")) > 0 {
			return errors.New("data after the decoded value")
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// backoff returns the wait before retry n (n >= 1): a random time between
// half and all of min(base*2^(n-1), max).
func (c *Client) backoff(n int) time.Duration {
	d := c.opts.BackoffBase
	for i := 1; i < n && d < c.opts.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, c.opts.BackoffMax)
	return d/2 + time.Duration(c.jitter()*float64(d/2))
}

func (c *Client) mostSpecific() *limiter {
	if len(c.ordered) == 0 {
		return nil
	}
	return c.ordered[len(c.ordered)-1]
}

// quotaProblem finds the limiter whose quota a vendor's problem header
// names; "day" and "month" name a quota even where none was declared (the
// most specific limiter then holds the block).
func (c *Client) quotaProblem(problem string) (*limiter, string, bool) {
	if problem == "" {
		return nil, "", false
	}
	for i := len(c.ordered) - 1; i >= 0; i-- {
		if c.ordered[i].hasQuota(problem) {
			return c.ordered[i], problem, true
		}
	}
	switch strings.ToLower(problem) {
	case "day", "daily", "month", "monthly":
		return c.mostSpecific(), strings.ToLower(problem), true
	}
	return nil, "", false
}

// windowLimiter finds the limiter a throttling answer is about: the one with
// a window named by the problem header, else the most specific.
func (c *Client) windowLimiter(problem string) *limiter {
	if problem != "" {
		for i := len(c.ordered) - 1; i >= 0; i-- {
			if c.ordered[i].hasWindow(problem) {
				return c.ordered[i]
			}
		}
	}
	return c.mostSpecific()
}

// blockQuota records the vendor's word that a quota is used up, so no client
// of the credential sends before until, even after a restart (on the
// vendor's default host). until is clamped (see clampBlock); the clamped
// time is returned.
func (c *Client) blockQuota(ctx context.Context, l *limiter, name string, until time.Time) time.Time {
	now := c.clock.Now()
	if l == nil || until.IsZero() {
		return clampBlock(until, now, periodOfName(name))
	}
	until = l.block(name, until, now)
	if _, err := l.save(ctx); err != nil {
		c.log.Error(err, "saving the call quota failed", "connector", c.opts.Connector)
	}
	return until
}

// boundedName cuts a vendor-supplied limit name for messages and logs.
func boundedName(s string) string {
	const maxLen = 40
	if len(s) <= maxLen {
		return s
	}
	cut := maxLen
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}

// scopeSuffix is what New appends to every limiter key: a digest of the
// credential's secret and the API host, so that only real holders of a
// credential, calling the same host, share limits. Empty when neither is
// given (tests, tools).
func scopeSuffix(secret, baseURL string) string {
	if secret == "" && baseURL == "" {
		return ""
	}
	h := sha256.Sum256([]byte("erpsync-limiter-secret\x00" + secret))
	return "/" + hex.EncodeToString(h[:])[:16] + "@" + HostOf(baseURL)
}

// HostOf returns the lower-cased host (with its port, if any) of a URL, or
// "invalid" when it has none.
func HostOf(rawURL string) string {
	u, err := url.Parse(strings.TrimSpace(rawURL))
	if err != nil || u.Host == "" {
		return "invalid"
	}
	return strings.ToLower(u.Host)
}

// IsDefaultHost reports whether baseURL is an https URL on one of the
// vendor's published hosts (for Options.DefaultHost).
func IsDefaultHost(baseURL string, defaultHosts []string) bool {
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil || u.Scheme != "https" {
		return false
	}
	if p := u.Port(); p != "" && p != "443" {
		return false
	}
	h := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	return slices.Contains(defaultHosts, h)
}

// bodyError is a failure to read a response body; its message does not
// say why (a reset, a timeout, a TLS alert), so that it is no oracle of the
// network behind a tenant's base URL.
type bodyError struct{ cause error }

func (e *bodyError) Error() string {
	return "reading the response body failed (connection lost or timed out)"
}

func (e *bodyError) Unwrap() error { return e.cause }

// safePath returns the request path without query, fragment or user info.
func safePath(u *url.URL) string {
	if u == nil {
		return ""
	}
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	return p
}

// stripURL drops the URL (which may carry secrets in its query) from
// net/http's errors and keeps the cause.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// QuotaLeft returns the calls left in the tightest daily or monthly quota
// of the client's limiters in the current period, and that quota's limit;
// ok is false when no limiter has an enforced quota. Reconciliation plans
// its listing within it. It counts what this process has counted (and
// loaded from the quota store), so another manager's spending since the
// last load is not in it.
func (c *Client) QuotaLeft() (left, limit int64, ok bool) {
	now := c.clock.Now()
	for _, l := range c.ordered {
		l.mu.Lock()
		for _, q := range l.quotas {
			if q.Limit <= 0 {
				continue
			}
			u := l.usage[q.Name]
			used := u.Used
			if !u.PeriodStart.Equal(periodStart(now, q.Period)) {
				used = 0
			}
			n := max(0, q.Limit-used)
			if u.BlockedUntil.After(now) {
				n = 0
			}
			if !ok || n < left {
				left, limit, ok = n, q.Limit, true
			}
		}
		l.mu.Unlock()
	}
	return left, limit, ok
}
