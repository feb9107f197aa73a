package httpapi

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/erpsync/erpsync-operator/connectors"
)

func TestDoAnswers(t *testing.T) {
	httpDate := func(t time.Time) string { return t.UTC().Format(http.TimeFormat) }
	tests := []struct {
		name    string
		replies []reply
		opts    Options
		// want
		kind      connectors.ErrorKind // "" = success
		calls     int
		slept     time.Duration // exact total sleep on the fake clock; -1 = don't check
		retryAt   time.Duration // RetryAt - t0 where set
		serverNow time.Time
	}{
		{name: "200 with Date", replies: []reply{{code: 200, header: map[string]string{"Date": httpDate(t0.Add(-time.Hour))}}},
			calls: 1, slept: 0, serverNow: t0.Add(-time.Hour)},
		{name: "304 is an answer", replies: []reply{{code: 304}}, calls: 1, slept: 0},
		{name: "401 not retried", replies: []reply{{code: 401}}, kind: connectors.KindAuthenticationFailed, calls: 1, slept: 0},
		{name: "403 not retried", replies: []reply{{code: 403}}, kind: connectors.KindAuthenticationFailed, calls: 1, slept: 0},
		{name: "404 rejected", replies: []reply{{code: 404}}, kind: connectors.KindInvalidResponse, calls: 1, slept: 0},
		{name: "404 accepted", replies: []reply{{code: 404}}, opts: Options{AcceptStatus: []int{404}}, calls: 1, slept: 0},
		{name: "500 then 200 retried with backoff", replies: []reply{{code: 500}, {code: 502}, {code: 200}},
			calls: 3, slept: 250*time.Millisecond + 500*time.Millisecond},
		{name: "5xx exhausted", replies: []reply{{code: 500}}, opts: Options{MaxRetries: 2},
			kind: connectors.KindERPUnavailable, calls: 3, slept: 250*time.Millisecond + 500*time.Millisecond},
		{name: "no retries", replies: []reply{{code: 503}}, opts: Options{MaxRetries: -1},
			kind: connectors.KindERPUnavailable, calls: 1, slept: 0},
		{name: "429 Retry-After seconds, with a limiter", replies: []reply{{code: 429, header: map[string]string{"Retry-After": "7"}}, {code: 200}},
			opts: Options{Limits: []Limit{minuteLimit("k", 100)}}, calls: 2, slept: 7 * time.Second},
		{name: "429 Retry-After seconds, no limiter", replies: []reply{{code: 429, header: map[string]string{"Retry-After": "7"}}, {code: 200}},
			calls: 2, slept: 7 * time.Second},
		{name: "429 Retry-After HTTP date measured from the Date header",
			replies: []reply{{code: 429, header: map[string]string{"Date": httpDate(t0.Add(-4 * time.Minute)), "Retry-After": httpDate(t0.Add(-4*time.Minute + 30*time.Second))}}, {code: 200}},
			calls:   2, slept: 30 * time.Second},
		{name: "429 without Retry-After backs off", replies: []reply{{code: 429}, {code: 200}}, calls: 2, slept: 250 * time.Millisecond},
		{name: "429 without Retry-After, ThrottleWait", replies: []reply{{code: 429}, {code: 200}},
			opts: Options{ThrottleWait: time.Minute}, calls: 2, slept: time.Minute},
		{name: "503 as throttle (Cin7 Core)", replies: []reply{{code: 503}, {code: 200}},
			opts: Options{ThrottleCodes: []int{429, 503}, ThrottleWait: time.Minute}, calls: 2, slept: time.Minute},
		{name: "503 honours a longer Retry-After", replies: []reply{{code: 503, header: map[string]string{"Retry-After": "20"}}, {code: 200}},
			calls: 2, slept: 20 * time.Second},
		{name: "429 Retry-After beyond MaxRetryWait fails at once", replies: []reply{{code: 429, header: map[string]string{"Retry-After": "600"}}},
			kind: connectors.KindRateLimited, calls: 1, slept: 0, retryAt: 600 * time.Second},
		{name: "429 exhausted", replies: []reply{{code: 429, header: map[string]string{"Retry-After": "1"}}}, opts: Options{MaxRetries: 3},
			kind: connectors.KindRateLimited, calls: 4, slept: 3 * time.Second, retryAt: 3*time.Second + time.Second},
		{name: "Xero minute problem retried", replies: []reply{{code: 429, header: map[string]string{"Retry-After": "12", "X-Rate-Limit-Problem": "minute"}}, {code: 200}},
			opts:  Options{ProblemHeader: "X-Rate-Limit-Problem", Limits: []Limit{{Key: "app", Windows: []Window{{Name: "appminute", Limit: 10000, Per: time.Minute}}}, minuteLimit("tenant", 60)}},
			calls: 2, slept: 12 * time.Second},
		{name: "Xero day problem is a quota", replies: []reply{{code: 429, header: map[string]string{"Retry-After": "3600", "X-Rate-Limit-Problem": "day"}}},
			opts: Options{ProblemHeader: "X-Rate-Limit-Problem", Limits: []Limit{minuteLimit("tenant", 60)}},
			kind: connectors.KindQuotaExhausted, calls: 1, slept: 0, retryAt: time.Hour},
		{name: "Xero day problem without Retry-After lasts the UTC day", replies: []reply{{code: 429, header: map[string]string{"X-Rate-Limit-Problem": "day"}}},
			opts: Options{ProblemHeader: "X-Rate-Limit-Problem", Limits: []Limit{minuteLimit("tenant", 60)}},
			kind: connectors.KindQuotaExhausted, calls: 1, slept: 0, retryAt: 12 * time.Hour},
		{name: "other 4xx", replies: []reply{{code: 422}}, kind: connectors.KindInvalidResponse, calls: 1, slept: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newScript(t, tc.replies...)
			clock := NewFakeClock(t0)
			opts := tc.opts
			opts.Clock = clock
			opts.Registry = NewRegistry(nil)
			opts.Jitter = func() float64 { return 0 } // lower bound: half the step
			c, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.Get(context.Background(), "op", srv.srv.URL+"/x", nil)
			if got := connectors.KindOf(err); got != tc.kind {
				t.Fatalf("kind = %q, want %q (err %v)", got, tc.kind, err)
			}
			if tc.kind == "" && resp == nil {
				t.Fatal("no response")
			}
			if srv.count() != tc.calls || int(c.Calls()) != tc.calls {
				t.Errorf("server saw %d calls, client counted %d, want %d", srv.count(), c.Calls(), tc.calls)
			}
			if tc.slept >= 0 && clock.Slept() != tc.slept {
				t.Errorf("slept %v (%v), want %v", clock.Slept(), clock.Sleeps(), tc.slept)
			}
			if tc.retryAt != 0 {
				if got := connectors.RetryAtOf(err); !got.Equal(t0.Add(tc.retryAt)) {
					t.Errorf("RetryAt = %v, want %v", got, t0.Add(tc.retryAt))
				}
			}
			if resp != nil && !tc.serverNow.IsZero() && !resp.ServerTime.Equal(tc.serverNow) {
				t.Errorf("ServerTime = %v, want %v", resp.ServerTime, tc.serverNow)
			}
			if resp != nil && resp.Attempts != tc.calls {
				t.Errorf("Attempts = %d, want %d", resp.Attempts, tc.calls)
			}
			if err != nil && !strings.Contains(err.Error(), "GET /x") {
				t.Errorf("error %q does not name the request", err)
			}
		})
	}
}

func TestBackoffIsBoundedAndJittered(t *testing.T) {
	for _, jitter := range []float64{0, 0.5, 0.999} {
		c, err := New(Options{Registry: NewRegistry(nil), BackoffBase: time.Second, BackoffMax: 10 * time.Second, Jitter: func() float64 { return jitter }})
		if err != nil {
			t.Fatal(err)
		}
		for n := 1; n <= 12; n++ {
			step := min(time.Second<<(n-1), 10*time.Second)
			d := c.backoff(n)
			if d < step/2 || d > step {
				t.Errorf("jitter %v: backoff(%d) = %v, want within [%v, %v]", jitter, n, d, step/2, step)
			}
		}
	}
	// End to end: a server that always fails costs MaxRetries+1 calls and
	// waits no more than the sum of the capped steps.
	srv := newScript(t, reply{code: 500})
	clock := NewFakeClock(t0)
	c, _ := New(Options{Registry: NewRegistry(nil), Clock: clock, MaxRetries: 6, BackoffBase: time.Second, BackoffMax: 4 * time.Second, Jitter: func() float64 { return 0.999 }})
	_, err := c.Get(context.Background(), "op", srv.srv.URL, nil)
	if connectors.KindOf(err) != connectors.KindERPUnavailable || srv.count() != 7 {
		t.Fatalf("err %v after %d calls, want ERPUnavailable after 7", err, srv.count())
	}
	if max := (1 + 2 + 4 + 4 + 4 + 4) * time.Second; clock.Slept() > max {
		t.Errorf("slept %v, more than %v", clock.Slept(), max)
	}
}

func TestTransportErrorsRetriedAndSecretsNeverShown(t *testing.T) {
	const secret = "s3cr3t-key"
	dead := newScript(t)
	deadURL := dead.srv.URL
	dead.srv.Close()
	live := newScript(t, reply{code: 401})
	fail := newScript(t, reply{code: 500})
	tests := []struct {
		name string
		url  string
		kind connectors.ErrorKind
	}{
		{"connection refused", deadURL + "/Products?apiKey=" + secret, connectors.KindERPUnavailable},
		{"user info in URL", strings.Replace(deadURL, "http://", "http://user:"+secret+"@", 1) + "/Products", connectors.KindERPUnavailable},
		{"401", live.srv.URL + "/Products?signature=" + secret, connectors.KindAuthenticationFailed},
		{"5xx", fail.srv.URL + "/Products?signature=" + secret, connectors.KindERPUnavailable},
		{"bad URL", "http://%zz/" + secret, connectors.KindInvalidConfig},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := NewFakeClock(t0)
			c, _ := New(Options{Registry: NewRegistry(nil), Clock: clock, MaxRetries: 2})
			_, err := c.Get(context.Background(), "op", tc.url, http.Header{"Authorization": {"Bearer " + secret}})
			if connectors.KindOf(err) != tc.kind {
				t.Fatalf("kind %q, want %q: %v", connectors.KindOf(err), tc.kind, err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error shows the secret: %v", err)
			}
			if tc.kind == connectors.KindERPUnavailable && c.Calls() != 3 {
				t.Errorf("calls = %d, want 3 (retried)", c.Calls())
			}
		})
	}
}

func TestAttemptTimeoutRetried(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	n := 0
	srv := newScript(t)
	srv.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n++
		if n == 1 {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		w.WriteHeader(200)
	})
	c, _ := New(Options{Registry: NewRegistry(nil), Clock: NewFakeClock(t0), AttemptTimeout: 50 * time.Millisecond})
	resp, err := c.Get(context.Background(), "op", srv.srv.URL, nil)
	if err != nil || resp.Attempts != 2 {
		t.Fatalf("err %v, resp %+v; want success on the second attempt", err, resp)
	}
}

func TestClassifyHook(t *testing.T) {
	srv := newScript(t, reply{code: 403, body: `{"message":"API limit reached"}`})
	clock := NewFakeClock(t0)
	reg := NewRegistry(nil)
	month := Limit{Key: "unleashed", Quotas: []Quota{{Name: "month", Limit: 0, Period: Monthly}}}
	classify := func(r *Response) error {
		if r.StatusCode == 403 && strings.Contains(string(r.Body), "limit") {
			return &connectors.Error{Kind: connectors.KindQuotaExhausted, Msg: "monthly API limit reached", RetryAt: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)}
		}
		return nil
	}
	c, _ := New(Options{Registry: reg, Clock: clock, Limits: []Limit{month}, Classify: classify})
	_, err := c.Get(context.Background(), "op", srv.srv.URL, nil)
	if connectors.KindOf(err) != connectors.KindQuotaExhausted {
		t.Fatalf("err %v, want QuotaExhausted", err)
	}
	// The block is shared: another client with the key sends nothing.
	c2, _ := New(Options{Registry: reg, Clock: clock, Limits: []Limit{month}, Classify: classify})
	_, err = c2.Get(context.Background(), "op", srv.srv.URL, nil)
	if connectors.KindOf(err) != connectors.KindQuotaExhausted || srv.count() != 1 {
		t.Fatalf("err %v after %d calls; want QuotaExhausted without a call", err, srv.count())
	}
	if got := connectors.RetryAtOf(err); !got.Equal(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("RetryAt %v", got)
	}
}

func TestDecodeJSON(t *testing.T) {
	srv := newScript(t, reply{code: 200, body: `{"a": 1`})
	c, _ := New(Options{Registry: NewRegistry(nil), Clock: NewFakeClock(t0)})
	var v map[string]any
	_, err := c.GetJSON(context.Background(), "op", srv.srv.URL+"/p?x=1", nil, &v)
	if connectors.KindOf(err) != connectors.KindInvalidResponse || !strings.Contains(err.Error(), "GET /p") {
		t.Fatalf("err %v, want InvalidResponse naming GET /p", err)
	}
}

func TestObserver(t *testing.T) {
	srv := newScript(t, reply{code: 429, header: map[string]string{"Retry-After": "3"}}, reply{code: 200})
	obs := &recObserver{}
	c, _ := New(Options{Registry: NewRegistry(nil), Clock: NewFakeClock(t0), Observer: obs, Limits: []Limit{minuteLimit("k", 10)}})
	if _, err := c.Get(context.Background(), "op", srv.srv.URL, nil); err != nil {
		t.Fatal(err)
	}
	if len(obs.requests) != 2 || obs.requests[0] != 429 || obs.requests[1] != 200 {
		t.Errorf("requests observed %v, want [429 200]", obs.requests)
	}
	if obs.totalWait() != 3*time.Second {
		t.Errorf("rate-limit wait observed %v, want 3s", obs.totalWait())
	}
}

func TestInvalidLimits(t *testing.T) {
	for _, l := range []Limit{
		{},
		{Key: "k", Windows: []Window{{Limit: 0, Per: time.Second}}},
		{Key: "k", Concurrency: -1},
		{Key: "k", Quotas: []Quota{{Name: "x", Period: "week"}}},
	} {
		if _, err := New(Options{Registry: NewRegistry(nil), Limits: []Limit{l}}); connectors.KindOf(err) != connectors.KindInvalidConfig {
			t.Errorf("limit %+v: err %v, want InvalidConfig", l, err)
		}
	}
}

func TestRequestBodyResent(t *testing.T) {
	srv := newScript(t, reply{code: 500}, reply{code: 200})
	var bodies []string
	srv.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 64)
		n, _ := r.Body.Read(b)
		bodies = append(bodies, string(b[:n]))
		if len(bodies) == 1 {
			w.WriteHeader(500)
		}
	})
	c, _ := New(Options{Registry: NewRegistry(nil), Clock: NewFakeClock(t0)})
	req, _ := http.NewRequest(http.MethodPost, srv.srv.URL, strings.NewReader("payload"))
	req.GetBody = nil
	if _, err := c.Do(context.Background(), "op", req); err != nil {
		t.Fatal(err)
	}
	if len(bodies) != 2 || bodies[0] != "payload" || bodies[1] != "payload" {
		t.Errorf("bodies %q", bodies)
	}
}

func TestDefaultObserverFeedsMetrics(t *testing.T) {
	// The registry is the process's: compare before and after, so the test
	// also holds under -count=N.
	before := teapotRequests(t)
	srv := newScript(t, reply{code: 418})
	c, _ := New(Options{Registry: NewRegistry(nil), Clock: NewFakeClock(t0), Connector: "observer-test"})
	_, _ = c.Get(context.Background(), "teapot", srv.srv.URL, nil)
	if got := teapotRequests(t) - before; got != 1 {
		t.Errorf("erpsync_upstream_requests_total{connector=observer-test,operation=teapot,code=418} grew by %v, want 1", got)
	}
}

// teapotRequests reads the upstream request counter of the observer test.
func teapotRequests(t *testing.T) float64 {
	t.Helper()
	mfs, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "erpsync_upstream_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["connector"] == "observer-test" && labels["operation"] == "teapot" && labels["code"] == "418" {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
