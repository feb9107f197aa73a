package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/sinks"
	"github.com/erpsync/erpsync-operator/sinks/memory"
	"github.com/erpsync/erpsync-operator/sinks/sinktest"
)

var testKey = []byte("k3y-for-tests-0123456789")

// fast returns options for tests: short waits, and plain http allowed for
// httptest servers on loopback.
func fast(o Options) Options {
	o.AllowHTTP = true
	if o.Key == nil {
		o.Key = testKey
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = time.Millisecond
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 5 * time.Millisecond
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Second
	}
	return o
}

func newSink(t *testing.T, o Options) *Sink {
	t.Helper()
	s, err := New(fast(o))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestConformance runs the suite against the webhook sink posting over
// https (http is not allowed) to the reference receiver, which stores into
// the in-memory sink.
func TestConformance(t *testing.T) {
	sinktest.Run(t, sinktest.Harness{
		Open: func(t *testing.T) sinktest.Target {
			mem := memory.New()
			srv := httptest.NewTLSServer(NewReceiver(testKey, mem))
			t.Cleanup(srv.Close)
			o := fast(Options{URL: srv.URL + "/ingest", Client: srv.Client()})
			o.AllowHTTP = false
			s, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return sinktest.Target{Sink: s, Get: func(_ context.Context, k model.Key) (model.Record, bool, error) {
				r, ok := mem.Get(k)
				return r, ok, nil
			}, GetSetAside: sinktest.MemorySetAside(mem), Tombstone: sinktest.MemoryTombstone(mem)}
		},
		NoListing: true,
		Remote:    true,
	})
}

// recorder is a test server answering from a script, recording requests.
type recorder struct {
	mu       sync.Mutex
	requests []recorded
	answer   func(n int, r *http.Request, body []byte) (status int, header http.Header, text string, delay time.Duration)
}

type recorded struct {
	header http.Header
	body   []byte
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.requests = append(rc.requests, recorded{r.Header.Clone(), body})
	n := len(rc.requests)
	rc.mu.Unlock()
	status, h, text, delay := rc.answer(n, r, body)
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	for k, v := range h {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, text)
}

func (rc *recorder) got() []recorded {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]recorded(nil), rc.requests...)
}

func TestRequestIsSignedAndKeyedPerDelivery(t *testing.T) {
	rc := &recorder{answer: func(int, *http.Request, []byte) (int, http.Header, string, time.Duration) {
		return 200, nil, `{"upserted":1,"skipped":1}`, 0
	}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s := newSink(t, Options{URL: srv.URL})
	ctx := context.Background()
	a := []model.Record{sinktest.Record(model.KindProduct, "acme", "v", "p1", 1), sinktest.Record(model.KindCustomer, "acme", "v", "c1", 1)}
	b := []model.Record{sinktest.Record(model.KindProduct, "acme", "v", "p1", 2), sinktest.Record(model.KindCustomer, "acme", "v", "c1", 1)}
	for _, batch := range [][]model.Record{a, a, b} {
		res, err := s.Write(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		if res != (sinks.WriteResult{Upserted: 1, Skipped: 1}) {
			t.Fatalf("result %+v, want the receiver's counts", res)
		}
	}
	reqs := rc.got()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	for i, r := range reqs {
		if got, want := r.header.Get(HeaderSignature), signed(t, r); got != want {
			t.Errorf("request %d: signature %q, want %q", i, got, want)
		}
		if r.header.Get("Content-Type") != "application/json" {
			t.Errorf("request %d: content type %q", i, r.header.Get("Content-Type"))
		}
		var p struct {
			Version int `json:"version"`
			Records []struct {
				ModifiedAt string `json:"modifiedAt"`
				Company    string `json:"company"`
			} `json:"records"`
		}
		if err := json.Unmarshal(r.body, &p); err != nil || p.Version != 1 || len(p.Records) != 2 {
			t.Fatalf("request %d: body %s (%v)", i, r.body, err)
		}
		if want := a[0].ModifiedAt.UTC().Format(time.RFC3339Nano); i < 2 && p.Records[0].ModifiedAt != want {
			t.Errorf("request %d: modifiedAt %q, want %q", i, p.Records[0].ModifiedAt, want)
		}
	}
	k0, k1, k2 := reqs[0].header.Get(HeaderIdempotency), reqs[1].header.Get(HeaderIdempotency), reqs[2].header.Get(HeaderIdempotency)
	// Each Write is its own delivery (its retries share the key, see
	// TestRetries): the same batch written again is the same body and
	// signature under another key, since under the content rule it can be a
	// real change back.
	if k0 == "" || k0 == k1 || k2 == k0 || k2 == k1 {
		t.Errorf("keys %q, %q, %q, want three distinct keys", k0, k1, k2)
	}
	if string(reqs[0].body) != string(reqs[1].body) {
		t.Errorf("the same batch was encoded differently")
	}
	if strings.Contains(string(reqs[0].body), string(testKey)) {
		t.Errorf("the body carries the key")
	}
}

// signed returns the signature a recorded request should carry: over its
// timestamp header, which must be recent, and its body.
func signed(t *testing.T, r recorded) string {
	t.Helper()
	ts, ok := ParseTimestamp(r.header.Get(HeaderTimestamp))
	if !ok {
		t.Fatalf("timestamp header %q", r.header.Get(HeaderTimestamp))
	}
	if d := time.Since(time.Unix(ts, 0)); d < -time.Second || d > time.Minute {
		t.Fatalf("timestamp %d is %v from now", ts, d)
	}
	return Sign(testKey, ts, r.header.Get(HeaderIdempotency), r.body)
}

func TestRetries(t *testing.T) {
	batch := sinktest.AllKinds("acme", "v", "x", 1)
	ok := func(int, *http.Request, []byte) (int, http.Header, string, time.Duration) { return 200, nil, "", 0 }
	for _, tc := range []struct {
		name string
		// script answers attempt n (from 1); after it, ok.
		script      map[int]func() (int, http.Header, string, time.Duration)
		o           Options
		wantErr     string // substring; "" for success
		wantAttempt int
	}{
		{
			name: "5xx then success",
			script: map[int]func() (int, http.Header, string, time.Duration){
				1: func() (int, http.Header, string, time.Duration) { return 503, nil, "busy", 0 },
				2: func() (int, http.Header, string, time.Duration) { return 500, nil, "oops", 0 },
			},
			wantAttempt: 3,
		},
		{
			name: "timeout then success",
			script: map[int]func() (int, http.Header, string, time.Duration){
				1: func() (int, http.Header, string, time.Duration) { return 200, nil, "", 2 * time.Second },
			},
			o:           Options{Timeout: 100 * time.Millisecond},
			wantAttempt: 2,
		},
		{
			name: "429 with a long Retry-After waits at most MaxBackoff",
			script: map[int]func() (int, http.Header, string, time.Duration){
				1: func() (int, http.Header, string, time.Duration) {
					return 429, http.Header{"Retry-After": {"3600"}}, "", 0
				},
			},
			wantAttempt: 2,
		},
		{
			name: "4xx fails at once with the message",
			script: map[int]func() (int, http.Header, string, time.Duration){
				1: func() (int, http.Header, string, time.Duration) {
					return 422, nil, `{"error":"record acme/x: unknown price tier"}`, 0
				},
			},
			wantErr:     "422 Unprocessable Entity: record acme/x: unknown price tier",
			wantAttempt: 1,
		},
		{
			name: "401 fails at once",
			script: map[int]func() (int, http.Header, string, time.Duration){
				1: func() (int, http.Header, string, time.Duration) { return 401, nil, "bad signature", 0 },
			},
			wantErr:     "401 Unauthorized: bad signature",
			wantAttempt: 1,
		},
		{
			name: "redirect is not followed",
			script: map[int]func() (int, http.Header, string, time.Duration){
				1: func() (int, http.Header, string, time.Duration) {
					return 302, http.Header{"Location": {"http://elsewhere.invalid/"}}, "", 0
				},
			},
			wantErr:     "302",
			wantAttempt: 1,
		},
		{
			name: "gives up after MaxAttempts",
			script: map[int]func() (int, http.Header, string, time.Duration){
				1: func() (int, http.Header, string, time.Duration) { return 502, nil, "", 0 },
				2: func() (int, http.Header, string, time.Duration) { return 502, nil, "", 0 },
				3: func() (int, http.Header, string, time.Duration) { return 502, nil, "", 0 },
			},
			o:           Options{MaxAttempts: 3},
			wantErr:     "gave up after 3 attempts",
			wantAttempt: 3,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := &recorder{answer: func(n int, r *http.Request, b []byte) (int, http.Header, string, time.Duration) {
				if f, ok := tc.script[n]; ok {
					return f()
				}
				return ok(n, r, b)
			}}
			srv := httptest.NewServer(rc)
			defer srv.Close()
			o := tc.o
			o.URL = srv.URL
			s := newSink(t, o)
			start := time.Now()
			res, err := s.Write(context.Background(), batch)
			if time.Since(start) > 5*time.Second {
				t.Errorf("Write took %v", time.Since(start))
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Write: %v", err)
			case tc.wantErr == "" && res != (sinks.WriteResult{Upserted: len(batch)}):
				t.Fatalf("Write = %+v", res)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Write error %v, want one containing %q", err, tc.wantErr)
			}
			reqs := rc.got()
			if len(reqs) != tc.wantAttempt {
				t.Fatalf("%d attempts, want %d", len(reqs), tc.wantAttempt)
			}
			for i, r := range reqs {
				if r.header.Get(HeaderIdempotency) != reqs[0].header.Get(HeaderIdempotency) {
					t.Errorf("attempt %d changed the idempotency key", i+1)
				}
				if string(r.body) != string(reqs[0].body) {
					t.Errorf("attempt %d changed the body", i+1)
				}
			}
		})
	}
}

func TestErrorsAreShortAndHoldNoSecrets(t *testing.T) {
	long := strings.Repeat("x", 10_000)
	rc := &recorder{answer: func(int, *http.Request, []byte) (int, http.Header, string, time.Duration) {
		return 400, nil, "you sent key " + string(testKey) + "\x00\x1b[31m " + long, 0
	}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s := newSink(t, Options{URL: strings.Replace(srv.URL, "http://", "http://user:pa55word@", 1) + "/in?token=t0ken-secret"})
	_, err := s.Write(context.Background(), sinktest.AllKinds("acme", "v", "x", 1))
	if err == nil {
		t.Fatal("Write succeeded")
	}
	msg := err.Error()
	for _, secret := range []string{string(testKey), "pa55word", "t0ken-secret", "\x00", "\x1b"} {
		if strings.Contains(msg, secret) {
			t.Errorf("error %q contains %q", msg, secret)
		}
	}
	if len(msg) > 500 {
		t.Errorf("error is %d bytes long", len(msg))
	}
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 400 {
		t.Errorf("error %v is not a StatusError 400", err)
	}
	// A connection failure does not leak the URL's secrets either.
	dead := newSink(t, Options{URL: "http://user:pa55word@127.0.0.1:1/in?token=t0ken-secret", MaxAttempts: 2})
	_, err = dead.Write(context.Background(), sinktest.AllKinds("acme", "v", "x", 1))
	if err == nil {
		t.Fatal("Write to a closed port succeeded")
	}
	for _, secret := range []string{"pa55word", "t0ken-secret"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q contains %q", err, secret)
		}
	}
}

func TestCancelDuringBackoffReturnsPromptly(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(503)
	}))
	defer srv.Close()
	s := newSink(t, Options{URL: srv.URL, MinBackoff: time.Hour, MaxBackoff: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Write(ctx, sinktest.AllKinds("acme", "v", "x", 1))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Write = %v, want the context's error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Write returned after %v", d)
	}
	if n.Load() != 1 {
		t.Fatalf("%d attempts, want 1", n.Load())
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"no URL", Options{Key: testKey}},
		{"relative URL", Options{URL: "/ingest", Key: testKey}},
		{"not http", Options{URL: "ftp://crm/ingest", Key: testKey}},
		{"no key", Options{URL: "https://crm/ingest"}},
		{"plain http without AllowHTTP", Options{URL: "http://crm/ingest", Key: testKey}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.o); err == nil {
				t.Fatalf("New accepted %+v", tc.o)
			}
		})
	}
}

func TestBackoffIsBoundedAndJittered(t *testing.T) {
	s, err := New(Options{URL: "https://crm/x", Key: testKey, MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt <= 10; attempt++ {
		seen := map[time.Duration]bool{}
		for range 50 {
			d := s.backoff(attempt)
			base := min(100*time.Millisecond<<(attempt-1), time.Second)
			if d < base/2 || d > base {
				t.Fatalf("attempt %d: backoff %v outside [%v, %v]", attempt, d, base/2, base)
			}
			seen[d] = true
		}
		if len(seen) < 5 {
			t.Errorf("attempt %d: backoff barely varies: %v", attempt, seen)
		}
	}
}

func TestReceiver(t *testing.T) {
	batch := sinktest.AllKinds("acme", "v", "x", 1)
	body, key, err := Encode(batch)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	sig := Sign(testKey, now, key, body)
	other, _, _ := Encode(sinktest.AllKinds("acme", "v", "y", 1))
	otherSig := Sign(testKey, now, key, other)
	malformed := []byte(`{"version":1,"records":[{`)
	type req struct {
		body      []byte
		sig, key  string
		method    string
		wantCode  int
		wantCount int // records stored after the request
	}
	for _, tc := range []struct {
		name string
		reqs []req
	}{
		{"stores a signed batch", []req{{body, sig, key, "POST", 200, len(batch)}}},
		{"bad signature", []req{{body, Sign([]byte("wrong"), now, key, body), key, "POST", 401, 0}}},
		{"body-only signature (the old scheme)", []req{{body, bodyOnly(body), key, "POST", 401, 0}}},
		{"signature of another key", []req{{body, Sign(testKey, now, "k2", body), key, "POST", 401, 0}}},
		{"no signature", []req{{body, "", key, "POST", 401, 0}}},
		{"no idempotency key", []req{{body, Sign(testKey, now, "", body), "", "POST", 400, 0}}},
		{"GET", []req{{nil, "", "", "GET", 405, 0}}},
		{"malformed", []req{{malformed, Sign(testKey, now, "k", malformed), "k", "POST", 422, 0}}},
		{"replay answers without writing", []req{{body, sig, key, "POST", 200, len(batch)}, {body, sig, key, "POST", 200, len(batch)}}},
		{"key reused for another batch", []req{{body, sig, key, "POST", 200, len(batch)}, {other, otherSig, key, "POST", 422, len(batch)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.New()
			h := NewReceiver(testKey, mem)
			for i, rq := range tc.reqs {
				r := httptest.NewRequest(rq.method, "/ingest", strings.NewReader(string(rq.body)))
				r.Header.Set(HeaderTimestamp, fmt.Sprint(now))
				if rq.sig != "" {
					r.Header.Set(HeaderSignature, rq.sig)
				}
				if rq.key != "" {
					r.Header.Set(HeaderIdempotency, rq.key)
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != rq.wantCode {
					t.Fatalf("request %d: %d %s, want %d", i, w.Code, w.Body, rq.wantCode)
				}
				if mem.Len() != rq.wantCount {
					t.Fatalf("request %d: %d records stored, want %d", i, mem.Len(), rq.wantCount)
				}
				if i == 1 && rq.wantCode == 200 {
					if w.Header().Get(HeaderReplayed) != "true" || mem.Writes() != 1 {
						t.Fatalf("replay: header %q, %d writes", w.Header().Get(HeaderReplayed), mem.Writes())
					}
				}
			}
		})
	}
}

// TestSetAsideRequest checks the set-aside operation on the wire: its own
// request, signed, keyed by content, named in the operation header, and
// confirmed by the receiver's count; records requests say so too.
func TestSetAsideRequest(t *testing.T) {
	items := []model.SetAside{
		sinktest.SetAsideItem(model.KindInvoice, "acme", "xero", "i1", 1),
		sinktest.SetAsideItem(model.KindInvoice, "acme", "xero", "i2", 1),
		sinktest.SetAsideItem(model.KindInvoice, "acme", "xero", "i1", 2), // the last of a key wins
	}
	var answer atomic.Value
	answer.Store(`{"setAside":2}`)
	rc := &recorder{answer: func(int, *http.Request, []byte) (int, http.Header, string, time.Duration) {
		return 200, nil, answer.Load().(string), 0
	}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s := newSink(t, Options{URL: srv.URL})
	ctx := context.Background()
	for range 2 {
		if err := s.SetAside(ctx, items); err != nil {
			t.Fatalf("SetAside: %v", err)
		}
	}
	if _, err := s.Write(ctx, []model.Record{sinktest.Record(model.KindInvoice, "acme", "xero", "i1", 3)}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	reqs := rc.got()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	for i, want := range []string{OperationSetAside, OperationSetAside, OperationRecords} {
		if got := reqs[i].header.Get(HeaderOperation); got != want {
			t.Errorf("request %d: operation %q, want %q", i, got, want)
		}
		if got := reqs[i].header.Get(HeaderSignature); got != signed(t, reqs[i]) {
			t.Errorf("request %d: bad signature", i)
		}
		if got := reqs[i].header.Get(HeaderIdempotency); len(got) != 64 {
			t.Errorf("request %d: idempotency key %q", i, got)
		}
	}
	if string(reqs[0].body) != string(reqs[1].body) {
		t.Errorf("the same documents were encoded differently")
	}
	var p struct {
		Version  int              `json:"version"`
		Records  json.RawMessage  `json:"records"`
		SetAside []model.SetAside `json:"setAside"`
	}
	if err := json.Unmarshal(reqs[0].body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Version != PayloadVersion || p.Records != nil || len(p.SetAside) != 2 {
		t.Fatalf("set-aside body %s", reqs[0].body)
	}
	if err := sinktest.EqualSetAside(p.SetAside[0], items[2]); err != nil {
		t.Errorf("first document: %v", err)
	}
	if err := sinktest.EqualSetAside(p.SetAside[1], items[1]); err != nil {
		t.Errorf("second document: %v", err)
	}

	// A receiver that does not confirm the count (one that does not know
	// the operation and answers as for an empty batch) fails the call.
	for _, body := range []string{`{"upserted":0,"skipped":0}`, ``, `{"setAside":1}`} {
		answer.Store(body)
		if err := s.SetAside(ctx, items); err == nil || !strings.Contains(err.Error(), "did not confirm") {
			t.Errorf("answer %q: SetAside = %v, want an error saying the receiver did not confirm", body, err)
		}
	}
}

// TestReceiverSetAside checks the reference receiver's side: it stores
// set-aside documents, answers a replay with the same count without
// storing again, rejects malformed documents, and a later records request
// of the same key clears the entry.
func TestReceiverSetAside(t *testing.T) {
	mem := memory.New()
	h := NewReceiver(testKey, mem)
	post := func(body []byte) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/ingest", strings.NewReader(string(body)))
		ts := time.Now().Unix()
		k := fmt.Sprintf("key-%x", sha256.Sum256(body))
		r.Header.Set(HeaderTimestamp, fmt.Sprint(ts))
		r.Header.Set(HeaderSignature, Sign(testKey, ts, k, body))
		r.Header.Set(HeaderIdempotency, k)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	item := sinktest.SetAsideItem(model.KindPriceRule, "acme", "katana", "pr1", 1)
	body, _, n, err := EncodeSetAside([]model.SetAside{item})
	if err != nil || n != 1 {
		t.Fatalf("EncodeSetAside = %d, %v", n, err)
	}
	for i := range 2 {
		w := post(body)
		if w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"upserted":0,"skipped":0,"setAside":1}` {
			t.Fatalf("request %d: %d %s", i, w.Code, w.Body)
		}
		if replayed := w.Header().Get(HeaderReplayed) == "true"; replayed != (i == 1) {
			t.Errorf("request %d: replayed %v", i, replayed)
		}
	}
	if got := mem.SetAsideItems(); len(got) != 1 || sinktest.EqualSetAside(got[0], item) != nil {
		t.Fatalf("set aside %+v, want %+v", got, item)
	}
	bad := []byte(`{"version":1,"setAside":[{"company":"acme","vendor":"katana","kind":"widgets","vendorId":"x","reason":"r"}]}`)
	if w := post(bad); w.Code != http.StatusUnprocessableEntity {
		t.Errorf("unknown kind: %d %s, want 422", w.Code, w.Body)
	}
	recs, _, err := Encode([]model.Record{sinktest.Record(model.KindPriceRule, "acme", "katana", "pr1", 2)})
	if err != nil {
		t.Fatal(err)
	}
	if w := post(recs); w.Code != 200 {
		t.Fatalf("records: %d %s", w.Code, w.Body)
	}
	if got := mem.SetAsideItems(); len(got) != 0 {
		t.Fatalf("set aside after the record was stored: %+v", got)
	}
}

// bodyOnly is the signature of the earlier scheme, over the body alone,
// which a receiver must no longer accept: it could be replayed forever.
func bodyOnly(body []byte) string {
	m := hmac.New(sha256.New, testKey)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// TestReceiverRefusesStaleAndReplayedDeliveries plays captured requests
// back at the reference receiver: a timestamp outside the window, or a
// timestamp or idempotency key changed under the signature, is refused and
// writes nothing; the same request again within the window is answered
// without writing, even after the key limit would have forgotten it.
func TestReceiverRefusesStaleAndReplayedDeliveries(t *testing.T) {
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now := clock.Unix()
	batch := sinktest.AllKinds("acme", "v", "x", 1)
	body, key, err := Encode(batch)
	if err != nil {
		t.Fatal(err)
	}
	type req struct {
		ts, sig, key string
		advance      time.Duration // the receiver's clock moves first
		wantCode     int
		wantWrites   int // writes of this delivery's body to the store
	}
	at := func(ts int64) (string, string) { return fmt.Sprint(ts), Sign(testKey, ts, key, body) }
	ts0, sig0 := at(now)
	tsOld, sigOld := at(now - 5*60 - 1)
	tsEdge, sigEdge := at(now - 5*60)
	tsAhead, sigAhead := at(now + 61)
	tsSoon, sigSoon := at(now + 60)
	for _, tc := range []struct {
		name string
		reqs []req
	}{
		{"fresh", []req{{ts0, sig0, key, 0, 200, 1}}},
		{"just inside the window", []req{{tsEdge, sigEdge, key, 0, 200, 1}}},
		{"stale", []req{{tsOld, sigOld, key, 0, 401, 0}}},
		{"just inside the future skew", []req{{tsSoon, sigSoon, key, 0, 200, 1}}},
		{"too far ahead", []req{{tsAhead, sigAhead, key, 0, 401, 0}}},
		{"no timestamp", []req{{"", sig0, key, 0, 401, 0}}},
		{"malformed timestamp", []req{{"12e9", sig0, key, 0, 401, 0}}},
		{"negative timestamp", []req{{"-1", sig0, key, 0, 401, 0}}},
		{"timestamp changed under its signature", []req{{fmt.Sprint(now + 1), sig0, key, 0, 401, 0}}},
		{"key changed under its signature", []req{{ts0, sig0, key + "0", 0, 401, 0}}},
		{"key with a full stop", []req{{ts0, Sign(testKey, now, key[:10]+"."+key[10:], body), key[:10] + "." + key[10:], 0, 400, 0}}},
		{"replayed under another key", []req{{ts0, sig0, key, 0, 200, 1}, {ts0, sig0, "another-key", 0, 401, 1}}},
		{"replayed at the end of the window", []req{{ts0, sig0, key, 0, 200, 1}, {ts0, sig0, key, 5 * time.Minute, 200, 1}}},
		{"replayed after the window", []req{{ts0, sig0, key, 0, 200, 1}, {ts0, sig0, key, 5*time.Minute + time.Second, 401, 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := memory.New()
			h := NewReceiver(testKey, mem)
			h.Remember = 1 // the window, not the count, keeps keys
			c := clock
			h.Now = func() time.Time { return c }
			other := 0 // writes of other deliveries
			for i, rq := range tc.reqs {
				c = c.Add(rq.advance)
				r := httptest.NewRequest("POST", "/ingest", strings.NewReader(string(body)))
				if rq.ts != "" {
					r.Header.Set(HeaderTimestamp, rq.ts)
				}
				r.Header.Set(HeaderSignature, rq.sig)
				r.Header.Set(HeaderIdempotency, rq.key)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != rq.wantCode {
					t.Fatalf("request %d: %d %s, want %d", i, w.Code, w.Body, rq.wantCode)
				}
				if got := mem.Writes() - other; got != rq.wantWrites {
					t.Fatalf("request %d: %d writes, want %d", i, got, rq.wantWrites)
				}
				if rq.wantCode == 200 && i > 0 && w.Header().Get(HeaderReplayed) != "true" {
					t.Errorf("request %d: not answered as a replay", i)
				}
				// Other deliveries in between, which would push the key
				// out of a memory bounded by count alone.
				for j := range 2 {
					b2, k2, _ := Encode(sinktest.AllKinds("acme", "v", fmt.Sprint("y", i, j), 1))
					r2 := httptest.NewRequest("POST", "/ingest", strings.NewReader(string(b2)))
					r2.Header.Set(HeaderTimestamp, fmt.Sprint(c.Unix()))
					r2.Header.Set(HeaderSignature, Sign(testKey, c.Unix(), k2, b2))
					r2.Header.Set(HeaderIdempotency, k2)
					w2 := httptest.NewRecorder()
					h.ServeHTTP(w2, r2)
					if w2.Code != 200 {
						t.Fatalf("another delivery: %d %s", w2.Code, w2.Body)
					}
					other++
				}
			}
		})
	}
}

// TestReceiverKeyMemoryIsBounded fills the key memory within the window: a
// new delivery is refused with a retryable 503 rather than forgetting a key
// whose request could still be replayed, and accepted again once the window
// has moved on.
func TestReceiverKeyMemoryIsBounded(t *testing.T) {
	mem := memory.New()
	h := NewReceiver(testKey, mem)
	h.MaxKeys = 2
	c := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	h.Now = func() time.Time { return c }
	post := func(id string) int {
		b, k, err := Encode(sinktest.AllKinds("acme", "v", id, 1))
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("POST", "/ingest", strings.NewReader(string(b)))
		r.Header.Set(HeaderTimestamp, fmt.Sprint(c.Unix()))
		r.Header.Set(HeaderSignature, Sign(testKey, c.Unix(), k, b))
		r.Header.Set(HeaderIdempotency, k)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	for i, want := range []int{200, 200, 503} {
		if got := post(fmt.Sprint("r", i)); got != want {
			t.Fatalf("delivery %d: %d, want %d", i, got, want)
		}
	}
	c = c.Add(DefaultTolerance + DefaultFutureSkew + time.Second)
	if got := post("later"); got != 200 {
		t.Fatalf("after the window: %d, want 200", got)
	}
	if !retryStatus(http.StatusServiceUnavailable) {
		t.Fatal("the sink does not retry the receiver's 503")
	}
}

// TestEachAttemptIsSignedAfresh: retries keep the idempotency key and the
// body but carry their own timestamp and a signature over it, so a retry
// after a long backoff is not stale.
func TestEachAttemptIsSignedAfresh(t *testing.T) {
	rc := &recorder{answer: func(n int, _ *http.Request, _ []byte) (int, http.Header, string, time.Duration) {
		if n < 3 {
			return 503, nil, "", 0
		}
		return 200, nil, "", 0
	}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	var tick atomic.Int64
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := newSink(t, Options{URL: srv.URL, Now: func() time.Time { return base.Add(time.Duration(tick.Add(1)) * time.Minute) }})
	if _, err := s.Write(context.Background(), sinktest.AllKinds("acme", "v", "x", 1)); err != nil {
		t.Fatal(err)
	}
	reqs := rc.got()
	if len(reqs) != 3 {
		t.Fatalf("%d attempts, want 3", len(reqs))
	}
	for i, r := range reqs {
		want := base.Add(time.Duration(i+1) * time.Minute).Unix()
		if got := r.header.Get(HeaderTimestamp); got != fmt.Sprint(want) {
			t.Errorf("attempt %d: timestamp %q, want %d", i+1, got, want)
		}
		if got := r.header.Get(HeaderSignature); got != Sign(testKey, want, r.header.Get(HeaderIdempotency), r.body) {
			t.Errorf("attempt %d: signature %q does not cover its timestamp", i+1, got)
		}
		if r.header.Get(HeaderIdempotency) != reqs[0].header.Get(HeaderIdempotency) {
			t.Errorf("attempt %d changed the idempotency key", i+1)
		}
	}
}

// TestSinkAndReceiverClocksApart: a sink whose clock is far behind the
// receiver's fails at once with the receiver's reason, writing nothing.
func TestSinkAndReceiverClocksApart(t *testing.T) {
	mem := memory.New()
	h := NewReceiver(testKey, mem)
	h.Now = func() time.Time { return time.Now().Add(10 * time.Minute) }
	srv := httptest.NewServer(h)
	defer srv.Close()
	s := newSink(t, Options{URL: srv.URL})
	_, err := s.Write(context.Background(), sinktest.AllKinds("acme", "v", "x", 1))
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 401 || !strings.Contains(err.Error(), "stale delivery") {
		t.Fatalf("Write = %v, want the receiver's 401 stale delivery", err)
	}
	if mem.Len() != 0 {
		t.Fatalf("%d records stored", mem.Len())
	}
}
