package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/sinks"
	"github.com/erpsync/erpsync-operator/sinks/internal/rows"
)

// Receiver is a reference receiving end of the webhook contract: it checks
// the signature and the timestamp it covers, refuses stale deliveries,
// answers a repeated idempotency key (a retry, or a replay within the
// window) without writing again, decodes and validates the records,
// set-aside documents or tombstones, and applies each request to a Sink
// (which keeps the never-backwards, content, set-aside, tombstone,
// children and companies-apart rules: its Write clears the set-aside entry
// of every key it stores and applies the records' child sets, its Delete
// marks the tombstones' records and their children). The tests and the
// demo use it as the CRM.
//
// Set the exported fields before serving the first request.
type Receiver struct {
	key  []byte
	sink sinks.Sink
	// MaxBody bounds a request body (default 64 MiB).
	MaxBody int64
	// Remember is how many idempotency keys are remembered beyond the
	// replay window (default 10,000); the oldest are forgotten first, but
	// never one claimed within the window.
	Remember int
	// Tolerance is how old a timestamp may be (default 5 minutes), and
	// FutureSkew how far ahead of the receiver's clock (default 1 minute).
	Tolerance, FutureSkew time.Duration
	// MaxKeys bounds the idempotency keys remembered within the window
	// (default 100,000). When it is reached, new deliveries are refused
	// with 503 (which the sink retries) rather than forgetting a key whose
	// request could still be replayed.
	MaxKeys int
	// Now is the receiver's clock (default time.Now).
	Now func() time.Time

	mu    sync.Mutex
	done  map[string]*outcome
	order []*outcome // by claim, oldest first
}

type outcome struct {
	key     string
	claimed time.Time
	ready   chan struct{} // closed once the first request with the key ends
	body    [32]byte      // SHA-256 of the body, to spot a key reused for another batch
	res     sinks.WriteResult
	// setAside is the number of set-aside documents a set-aside request
	// stored (-1 for another request).
	setAside int
	// tombstones and deleted are the counts of a delete request
	// (tombstones is -1 for another request).
	tombstones, deleted int
	ok                  bool
}

// The receiver's defaults.
const (
	DefaultTolerance  = 5 * time.Minute
	DefaultFutureSkew = time.Minute
	DefaultMaxKeys    = 100_000
)

// NewReceiver returns a receiver checking signatures with key and writing to
// sink.
func NewReceiver(key []byte, sink sinks.Sink) *Receiver {
	return &Receiver{key: key, sink: sink, done: map[string]*outcome{}}
}

func (h *Receiver) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *Receiver) window() (past, future time.Duration) {
	past, future = h.Tolerance, h.FutureSkew
	if past <= 0 {
		past = DefaultTolerance
	}
	if future <= 0 {
		future = DefaultFutureSkew
	}
	return past, future
}

// validKey reports whether an idempotency key is 1 to 200 ASCII letters,
// digits, '-' or '_': with no '.', the signed string timestamp.key.body
// splits one way only.
func validKey(k string) bool {
	if k == "" || len(k) > 200 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// ParseTimestamp parses a timestamp header: unix seconds, digits only.
func ParseTimestamp(v string) (int64, bool) {
	if v == "" || len(v) > 12 {
		return 0, false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

// wireRecord is a record as sent, with the payload still undecoded.
type wireRecord struct {
	Company    string               `json:"company"`
	Vendor     string               `json:"vendor"`
	Kind       model.Kind           `json:"kind"`
	VendorID   string               `json:"vendorId"`
	ModifiedAt time.Time            `json:"modifiedAt"`
	Deleted    bool                 `json:"deleted"`
	Parent     string               `json:"parent"`
	ParentKind model.Kind           `json:"parentKind"`
	Children   []model.ChildSet     `json:"children"`
	DeletedVia model.DeletionSource `json:"deletedVia"`
	Raw        json.RawMessage      `json:"raw"`
	Data       json.RawMessage      `json:"data"`
}

// request is a request body of any operation, undecoded.
type request struct {
	Version  int             `json:"version"`
	Records  []wireRecord    `json:"records"`
	SetAside json.RawMessage `json:"setAside"`
	Delete   json.RawMessage `json:"delete"`
}

func given(m json.RawMessage) bool { return len(m) > 0 && string(m) != "null" }

// isSetAside reports whether a parsed body is a set-aside request.
func (p *request) isSetAside() bool { return given(p.SetAside) }

// isDelete reports whether a parsed body is a delete request.
func (p *request) isDelete() bool { return given(p.Delete) }

// Decode parses a records request body into records.
func Decode(body []byte) ([]model.Record, error) {
	var p request
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("malformed batch: %w", err)
	}
	if p.Version != PayloadVersion {
		return nil, fmt.Errorf("unsupported batch version %d", p.Version)
	}
	if p.isSetAside() {
		return nil, errors.New("a set-aside request, not records")
	}
	if p.isDelete() {
		return nil, errors.New("a delete request, not records")
	}
	out := make([]model.Record, len(p.Records))
	for i, w := range p.Records {
		r := model.Record{Company: w.Company, Vendor: w.Vendor, Kind: w.Kind, VendorID: w.VendorID,
			ModifiedAt: w.ModifiedAt, Deleted: w.Deleted, Raw: w.Raw,
			Parent: w.Parent, ParentKind: w.ParentKind, Children: w.Children, DeletedVia: w.DeletedVia}
		if err := rows.ValidateKey(&r); err != nil {
			return nil, err
		}
		if len(w.Data) == 0 || string(w.Data) == "null" {
			return nil, fmt.Errorf("%s: no data", rows.Describe(&r))
		}
		d, err := rows.Decode(w.Kind, w.Data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", rows.Describe(&r), err)
		}
		r.Data = d
		t, _ := rows.Lookup(r.Kind)
		if _, err := t.Row(&r, t.Columns); err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

// DecodeSetAside parses a set-aside request body into documents, checked
// as a sink would check them.
func DecodeSetAside(body []byte) ([]model.SetAside, error) {
	var p SetAsidePayload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("malformed set-aside request: %w", err)
	}
	if p.Version != PayloadVersion {
		return nil, fmt.Errorf("unsupported set-aside version %d", p.Version)
	}
	if p.SetAside == nil {
		return nil, errors.New("no setAside documents")
	}
	if _, err := rows.PlanSetAside(p.SetAside); err != nil {
		return nil, err
	}
	return p.SetAside, nil
}

func (h *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		reply(w, http.StatusMethodNotAllowed, map[string]string{"error": "POST only"})
		return
	}
	limit := h.MaxBody
	if limit <= 0 {
		limit = 64 << 20
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			reply(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "batch too large"})
			return
		}
		reply(w, http.StatusBadRequest, map[string]string{"error": "cannot read the body"})
		return
	}
	ts, ok := ParseTimestamp(r.Header.Get(HeaderTimestamp))
	if !ok {
		reply(w, http.StatusUnauthorized, map[string]string{"error": "missing or malformed " + HeaderTimestamp})
		return
	}
	key := r.Header.Get(HeaderIdempotency)
	if !validKey(key) {
		reply(w, http.StatusBadRequest, map[string]string{"error": "missing, oversized or malformed " + HeaderIdempotency + " (1 to 200 letters, digits, '-' or '_')"})
		return
	}
	if !hmac.Equal([]byte(r.Header.Get(HeaderSignature)), []byte(Sign(h.key, ts, key, body))) {
		reply(w, http.StatusUnauthorized, map[string]string{"error": "bad signature"})
		return
	}
	now := h.now()
	past, future := h.window()
	stamped := time.Unix(ts, 0)
	switch {
	case now.Sub(stamped) > past:
		reply(w, http.StatusUnauthorized, map[string]string{"error": fmt.Sprintf("stale delivery: the timestamp is more than %v old", past)})
		return
	case stamped.Sub(now) > future:
		reply(w, http.StatusUnauthorized, map[string]string{"error": fmt.Sprintf("the timestamp is more than %v ahead of the receiver's clock", future)})
		return
	}
	sum := sha256Sum(body)
	o, first, full := h.claim(key, sum, now)
	if full {
		w.Header().Set("Retry-After", "1")
		reply(w, http.StatusServiceUnavailable, map[string]string{"error": "too many deliveries in the replay window; retry"})
		return
	}
	if !first {
		select {
		case <-o.ready:
		case <-r.Context().Done():
			return
		}
		switch {
		case o.body != sum:
			reply(w, http.StatusUnprocessableEntity, map[string]string{"error": "idempotency key reused for another batch"})
		case o.ok && o.setAside >= 0:
			// Stored already: the count is the same.
			w.Header().Set(HeaderReplayed, "true")
			reply(w, http.StatusOK, Response{SetAside: o.setAside})
		case o.ok && o.tombstones >= 0:
			// Marked already: the first request's counts.
			w.Header().Set(HeaderReplayed, "true")
			reply(w, http.StatusOK, Response{Tombstones: o.tombstones, Deleted: o.deleted})
		case o.ok:
			// Nothing is written again: every record counts as skipped.
			w.Header().Set(HeaderReplayed, "true")
			reply(w, http.StatusOK, Response{Skipped: o.res.Upserted + o.res.Skipped})
		default:
			// The first request failed; it was forgotten, so the client's
			// next retry gets a fresh try.
			reply(w, http.StatusServiceUnavailable, map[string]string{"error": "a request with this key failed; retry"})
		}
		return
	}
	out, status, err := h.process(r, body)
	h.finish(key, o, out, err == nil)
	if err != nil {
		reply(w, status, map[string]string{"error": err.Error()})
		return
	}
	switch {
	case out.setAside >= 0:
		reply(w, http.StatusOK, Response{SetAside: out.setAside})
	case out.tombstones >= 0:
		reply(w, http.StatusOK, Response{Tombstones: out.tombstones, Deleted: out.deleted})
	default:
		reply(w, http.StatusOK, Response{Upserted: out.res.Upserted, Skipped: out.res.Skipped})
	}
}

// result is what a request did: records written (setAside and tombstones
// -1), set-aside documents stored, or tombstones applied.
type result struct {
	res                 sinks.WriteResult
	setAside            int
	tombstones, deleted int
}

// process stores a request of any operation.
func (h *Receiver) process(r *http.Request, body []byte) (out result, status int, err error) {
	out = result{setAside: -1, tombstones: -1}
	var p request
	if err := json.Unmarshal(body, &p); err != nil {
		return out, http.StatusUnprocessableEntity, fmt.Errorf("malformed batch: %w", err)
	}
	switch {
	case p.isSetAside() && p.isDelete():
		return out, http.StatusUnprocessableEntity, errors.New("a request of two operations")
	case p.isSetAside():
		items, err := DecodeSetAside(body)
		if err != nil {
			return out, http.StatusUnprocessableEntity, err
		}
		if err := h.sink.SetAside(r.Context(), items); err != nil {
			return out, http.StatusInternalServerError, errors.New("the set-aside documents could not be stored")
		}
		out.setAside = len(items)
		return out, 0, nil
	case p.isDelete():
		ts, err := DecodeDelete(body)
		if err != nil {
			return out, http.StatusUnprocessableEntity, err
		}
		n, err := h.sink.Delete(r.Context(), ts)
		if err != nil {
			return out, http.StatusInternalServerError, errors.New("the tombstones could not be stored")
		}
		out.tombstones, out.deleted = len(ts), n
		return out, 0, nil
	}
	recs, err := Decode(body)
	if err != nil {
		return out, http.StatusUnprocessableEntity, err
	}
	out.res, err = h.sink.Write(r.Context(), recs)
	if err != nil {
		return out, http.StatusInternalServerError, errors.New("the batch could not be stored")
	}
	return out, 0, nil
}

// claim returns the outcome slot of a key and whether this request is the
// first with it; full says that no new key can be remembered now.
func (h *Receiver) claim(key string, sum [32]byte, now time.Time) (o *outcome, first, full bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done == nil {
		h.done = map[string]*outcome{}
	}
	if o, ok := h.done[key]; ok {
		return o, false, false
	}
	remember := h.Remember
	if remember <= 0 {
		remember = 10_000
	}
	maxKeys := h.MaxKeys
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	// A key is kept while a request of its delivery can still arrive with
	// an accepted timestamp, so that a replay within the window is
	// answered, not processed again.
	past, future := h.window()
	for len(h.order) > 0 && (len(h.order) >= maxKeys || len(h.order) > remember) && now.Sub(h.order[0].claimed) > past+future {
		if old := h.order[0]; h.done[old.key] == old {
			delete(h.done, old.key)
		}
		h.order = h.order[1:]
	}
	if len(h.order) >= maxKeys {
		return nil, false, true
	}
	o = &outcome{key: key, claimed: now, ready: make(chan struct{}), body: sum}
	h.done[key] = o
	h.order = append(h.order, o)
	return o, true, false
}

func (h *Receiver) finish(key string, o *outcome, out result, ok bool) {
	h.mu.Lock()
	o.res, o.setAside, o.tombstones, o.deleted, o.ok = out.res, out.setAside, out.tombstones, out.deleted, ok
	if !ok && h.done[key] == o {
		delete(h.done, key)
	}
	h.mu.Unlock()
	close(o.ready)
}

func reply(w http.ResponseWriter, status int, v any) {
	var b bytes.Buffer
	_ = json.NewEncoder(&b).Encode(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }
