package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/erpsync/erpsync-operator/connectors"
)

// streamServer answers every request with handle's answer for that
// request's number (from 1).
func streamServer(t *testing.T, handle func(n int, w http.ResponseWriter)) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handle(int(calls.Add(1)), w)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

// chunked writes body without a Content-Length, in pieces.
func chunked(w http.ResponseWriter, code int, body string) {
	w.WriteHeader(code)
	for b := []byte(body); len(b) > 0; {
		k := min(len(b), 1000)
		_, _ = w.Write(b[:k])
		w.(http.Flusher).Flush()
		b = b[k:]
	}
}

// prefixDecoder reads the first 9 bytes of a body and stops.
func prefixDecoder(_ *Response, body io.Reader) error {
	_, err := io.ReadFull(body, make([]byte, 9))
	return err
}

func TestGetStream(t *testing.T) {
	const secret = "s3cr3t-key"
	big := `{"v":"` + strings.Repeat("x", 5000) + `"}`
	tests := []struct {
		name     string
		opts     Options
		handle   func(n int, w http.ResponseWriter)
		decode   func(resp *Response, body io.Reader) error
		kind     connectors.ErrorKind // "" for success
		msg      string               // in the error
		calls    int64
		decodes  int
		streamed bool
	}{
		{name: "2xx is streamed", handle: func(_ int, w http.ResponseWriter) { chunked(w, 200, big) },
			calls: 1, decodes: 1, streamed: true},
		{name: "over the cap while decoding", opts: Options{MaxBodyBytes: 4000}, handle: func(_ int, w http.ResponseWriter) { chunked(w, 200, big) },
			kind: connectors.KindInvalidResponse, msg: "larger than 4000 bytes", calls: 1, decodes: 1},
		{name: "over the cap after the decoded value", opts: Options{MaxBodyBytes: 4000},
			handle: func(_ int, w http.ResponseWriter) { chunked(w, 200, `{"v":"a"}`+strings.Repeat(" ", 5000)) },
			kind:   connectors.KindInvalidResponse, msg: "larger than 4000 bytes", calls: 1, decodes: 1},
		{name: "truncated JSON is not retried", handle: func(_ int, w http.ResponseWriter) { chunked(w, 200, `{"v":"abc`) },
			kind: connectors.KindInvalidResponse, msg: "GET /p: the response does not parse", calls: 1, decodes: 1},
		{name: "data after the value", handle: func(_ int, w http.ResponseWriter) { chunked(w, 200, `{"v":"a"} {"v":"b"}`) },
			kind: connectors.KindInvalidResponse, msg: "does not parse", calls: 1, decodes: 1},
		{name: "a decoder's own connectors.Error is kept", handle: func(_ int, w http.ResponseWriter) { chunked(w, 200, big) },
			decode: func(*Response, io.Reader) error {
				return connectors.Errorf(connectors.KindInvalidResponse, "GET /p has no list")
			},
			kind: connectors.KindInvalidResponse, msg: "GET /p has no list", calls: 1, decodes: 0},
		{name: "what a decoder leaves unread must be space", handle: func(_ int, w http.ResponseWriter) { chunked(w, 200, `{"v":"a"}  x`) },
			decode: prefixDecoder, kind: connectors.KindInvalidResponse, msg: "GET /p: the response does not parse", calls: 1},
		{name: "what a decoder leaves unread counts against the cap", opts: Options{MaxBodyBytes: 4000},
			handle: func(_ int, w http.ResponseWriter) { chunked(w, 200, `{"v":"a"}`+strings.Repeat(" ", 5000)) },
			decode: prefixDecoder, kind: connectors.KindInvalidResponse, msg: "larger than 4000 bytes", calls: 1},
		{name: "a body cut short is retried afresh", opts: Options{MaxRetries: 2}, handle: func(n int, w http.ResponseWriter) {
			if n == 1 {
				// Declares more than it sends: the client sees the
				// connection end early.
				w.Header().Set("Content-Length", strconv.Itoa(len(big)))
				w.WriteHeader(200)
				_, _ = w.Write([]byte(big[:len(big)/2]))
				return
			}
			chunked(w, 200, big)
		}, calls: 2, decodes: 2, streamed: true},
		{name: "an accepted 404 is decoded from the buffered body", opts: Options{AcceptStatus: []int{404}},
			handle: func(_ int, w http.ResponseWriter) { chunked(w, 404, big) }, calls: 1, decodes: 1},
		{name: "with Classify the body is buffered first", opts: Options{Classify: func(*Response) error { return nil }},
			handle: func(_ int, w http.ResponseWriter) { chunked(w, 200, big) }, calls: 1, decodes: 1},
		{name: "5xx bodies never reach the decoder", opts: Options{MaxRetries: -1},
			handle: func(_ int, w http.ResponseWriter) { chunked(w, 500, big) }, kind: connectors.KindERPUnavailable, calls: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, calls := streamServer(t, tc.handle)
			tc.opts.Registry, tc.opts.Clock = NewRegistry(nil), NewFakeClock(t0)
			c, err := New(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			decodes := 0
			var got struct{ V string }
			var sawBody bool
			decode := func(resp *Response, body io.Reader) error {
				decodes++
				got.V = ""
				sawBody = resp.Body != nil
				return DecodeJSONStream(body, &got)
			}
			if tc.decode != nil {
				decode = tc.decode
			}
			resp, err := c.GetStream(context.Background(), "op", srv.URL+"/p?key="+secret, nil, decode)
			if u := BodyBytesInFlight(); u != 0 {
				t.Errorf("%d bytes of body budget still taken", u)
			}
			if calls.Load() != tc.calls || decodes != tc.decodes {
				t.Errorf("%d requests and %d decodes, want %d and %d", calls.Load(), decodes, tc.calls, tc.decodes)
			}
			if tc.kind != "" {
				if connectors.KindOf(err) != tc.kind || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("err %v, want %s with %q", err, tc.kind, tc.msg)
				}
				if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "xxxx") {
					t.Fatalf("the error shows the query or the body: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.V != strings.Repeat("x", 5000) {
				t.Errorf("decoded %d bytes, want the whole value", len(got.V))
			}
			if resp.streamed != tc.streamed || sawBody == tc.streamed || (resp.Body == nil) != tc.streamed {
				t.Errorf("streamed %v (body seen by the decoder %v, in the response %v), want streamed %v", resp.streamed, sawBody, resp.Body != nil, tc.streamed)
			}
			if resp.Attempts != int(tc.calls) || resp.Method != http.MethodGet || resp.Path != "/p" {
				t.Errorf("response %+v", resp)
			}
		})
	}
}

// TestStreamBodyChargesTheBudgetAsItReads pins that a streamed body takes
// budget for what was read so far (a step ahead at most), not for a
// declared length, and gives it all back on close.
func TestStreamBodyChargesTheBudgetAsItReads(t *testing.T) {
	b := newBudget(0)
	body := bytes.Repeat([]byte("z"), 3*bodyChunk+100)
	s := b.newStreamBody(context.Background(), bytes.NewReader(body), int64(len(body)))
	buf := make([]byte, 10_000)
	var read int64
	for {
		n, err := s.Read(buf)
		read += int64(n)
		if u := b.inUse(); u < read || u > read+bodyChunk {
			t.Fatalf("after %d bytes the budget holds %d", read, u)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if read != int64(len(body)) {
		t.Fatalf("read %d of %d bytes", read, len(body))
	}
	s.close()
	if u := b.inUse(); u != 0 {
		t.Fatalf("%d bytes taken after close", u)
	}
}

// TestStreamBodyWaitsForTheBudget: a second streamed read waits while the
// budget is spent by an older one, and fails with its context.
func TestStreamBodyWaitsForTheBudget(t *testing.T) {
	b := newBudget(bodyChunk)
	first := b.start()
	if err := first.grow(context.Background(), bodyChunk); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := b.newStreamBody(ctx, strings.NewReader("{}"), 10)
	if _, err := io.ReadAll(s); !errors.Is(err, context.Canceled) || !errors.Is(s.err, context.Canceled) {
		t.Fatalf("err %v (kept %v), want the context's", err, s.err)
	}
	s.close()
	first.done()
	if u := b.inUse(); u != 0 {
		t.Fatalf("%d bytes taken after every read ended", u)
	}
}

func TestDecodeJSONStream(t *testing.T) {
	for _, tc := range []struct {
		body string
		ok   bool
	}{
		{`{"a":1}`, true},
		{" {\"a\":1}\n\t ", true},
		{`{"a":1}x`, false},
		{`{"a":1}{}`, false},
		{`{"a":`, false},
		{``, false},
	} {
		var v map[string]json.RawMessage
		if err := DecodeJSONStream(strings.NewReader(tc.body), &v); (err == nil) != tc.ok {
			t.Errorf("%q: err %v, want ok %v", tc.body, err, tc.ok)
		}
	}
}
