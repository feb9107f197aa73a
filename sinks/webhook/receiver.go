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
	"sync"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/sinks"
	"github.com/erpsync/erpsync-operator/sinks/internal/rows"
)

// Receiver is a reference receiving end of the webhook contract: it checks
// the signature, answers a repeated idempotency key without writing again,
// decodes and validates the records or set-aside documents, and writes each
// request to a Sink (which keeps the never-backwards, content, set-aside and
// companies-apart rules: its Write clears the set-aside entry of every key
// it stores). The tests and the demo use it as the CRM.
type Receiver struct {
	key  []byte
	sink sinks.Sink
	// MaxBody bounds a request body (default 64 MiB).
	MaxBody int64
	// Remember is how many idempotency keys are remembered (default
	// 10,000); the oldest are forgotten first.
	Remember int

	mu    sync.Mutex
	done  map[string]*outcome
	order []string
}

type outcome struct {
	ready chan struct{} // closed once the first request with the key ends
	body  [32]byte      // SHA-256 of the body, to spot a key reused for another batch
	res   sinks.WriteResult
	// setAside is the number of set-aside documents a set-aside request
	// stored (-1 for a records request).
	setAside int
	ok       bool
}

// NewReceiver returns a receiver checking signatures with key and writing to
// sink.
func NewReceiver(key []byte, sink sinks.Sink) *Receiver {
	return &Receiver{key: key, sink: sink, done: map[string]*outcome{}}
}

// wireRecord is a record as sent, with the payload still undecoded.
type wireRecord struct {
	Company    string          `json:"company"`
	Vendor     string          `json:"vendor"`
	Kind       model.Kind      `json:"kind"`
	VendorID   string          `json:"vendorId"`
	ModifiedAt time.Time       `json:"modifiedAt"`
	Deleted    bool            `json:"deleted"`
	Raw        json.RawMessage `json:"raw"`
	Data       json.RawMessage `json:"data"`
}

// request is a request body of either operation, undecoded.
type request struct {
	Version  int             `json:"version"`
	Records  []wireRecord    `json:"records"`
	SetAside json.RawMessage `json:"setAside"`
}

// isSetAside reports whether a parsed body is a set-aside request.
func (p *request) isSetAside() bool {
	return len(p.SetAside) > 0 && string(p.SetAside) != "null"
}

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
	out := make([]model.Record, len(p.Records))
	for i, w := range p.Records {
		r := model.Record{Company: w.Company, Vendor: w.Vendor, Kind: w.Kind, VendorID: w.VendorID,
			ModifiedAt: w.ModifiedAt, Deleted: w.Deleted, Raw: w.Raw}
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
	if !hmac.Equal([]byte(r.Header.Get(HeaderSignature)), []byte(Sign(h.key, body))) {
		reply(w, http.StatusUnauthorized, map[string]string{"error": "bad signature"})
		return
	}
	key := r.Header.Get(HeaderIdempotency)
	if key == "" || len(key) > 200 {
		reply(w, http.StatusBadRequest, map[string]string{"error": "missing or oversized " + HeaderIdempotency})
		return
	}
	sum := sha256Sum(body)
	o, first := h.claim(key, sum)
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
	res, n, status, err := h.process(r, body)
	h.finish(key, o, res, n, err == nil)
	if err != nil {
		reply(w, status, map[string]string{"error": err.Error()})
		return
	}
	if n >= 0 {
		reply(w, http.StatusOK, Response{SetAside: n})
		return
	}
	reply(w, http.StatusOK, Response{Upserted: res.Upserted, Skipped: res.Skipped})
}

// process stores a request: records (n is -1) or set-aside documents (n
// of them).
func (h *Receiver) process(r *http.Request, body []byte) (res sinks.WriteResult, n, status int, err error) {
	var p request
	if err := json.Unmarshal(body, &p); err != nil {
		return sinks.WriteResult{}, -1, http.StatusUnprocessableEntity, fmt.Errorf("malformed batch: %w", err)
	}
	if p.isSetAside() {
		items, err := DecodeSetAside(body)
		if err != nil {
			return sinks.WriteResult{}, -1, http.StatusUnprocessableEntity, err
		}
		if err := h.sink.SetAside(r.Context(), items); err != nil {
			return sinks.WriteResult{}, -1, http.StatusInternalServerError, errors.New("the set-aside documents could not be stored")
		}
		return sinks.WriteResult{}, len(items), 0, nil
	}
	recs, err := Decode(body)
	if err != nil {
		return sinks.WriteResult{}, -1, http.StatusUnprocessableEntity, err
	}
	res, err = h.sink.Write(r.Context(), recs)
	if err != nil {
		return sinks.WriteResult{}, -1, http.StatusInternalServerError, errors.New("the batch could not be stored")
	}
	return res, -1, 0, nil
}

// claim returns the outcome slot of a key and whether this request is the
// first with it.
func (h *Receiver) claim(key string, sum [32]byte) (*outcome, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done == nil {
		h.done = map[string]*outcome{}
	}
	if o, ok := h.done[key]; ok {
		return o, false
	}
	o := &outcome{ready: make(chan struct{}), body: sum}
	h.done[key] = o
	h.order = append(h.order, key)
	remember := h.Remember
	if remember <= 0 {
		remember = 10_000
	}
	for len(h.order) > remember {
		delete(h.done, h.order[0])
		h.order = h.order[1:]
	}
	return o, true
}

func (h *Receiver) finish(key string, o *outcome, res sinks.WriteResult, setAside int, ok bool) {
	h.mu.Lock()
	o.res, o.setAside, o.ok = res, setAside, ok
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
