// Package webhook is the sink that hands batches to a CRM's ingestion API:
// each batch is one HTTP POST of JSON, signed, with an idempotency key.
//
// # The contract with the receiver
//
// Request: POST <url>, Content-Type: application/json, body
//
//	{"version": 1, "records": [ {"company": …, "vendor": …, "kind": …,
//	  "vendorId": …, "modifiedAt": "RFC 3339, UTC", "deleted": …,
//	  "raw": {vendor document}, "data": {canonical payload}}, … ]}
//
// Headers:
//   - X-Erpsync-Timestamp: the time of the attempt, in Unix seconds.
//   - Idempotency-Key: <hex SHA-256 of a random delivery id and the body>
//     (receivers may accept any 1 to 200 ASCII letters, digits, '-' and '_';
//     never a '.', so that the signed string below splits one way).
//     Every attempt of one Write (or SetAside) sends the same key, so a
//     retried request (after a timeout or a 5xx) is recognised; receivers
//     should answer a key they have already processed without processing it
//     again, and remember keys at least as long as they accept a
//     timestamp. Another Write of the same batch gets another key: under the
//     content rule below a body equal to an earlier one can be a real change
//     (content A, then B, then A again at one modified time), which a
//     receiver replaying by content would drop. A batch sent again after a
//     restart of the sync is stored as a new request and changes nothing,
//     by the content rule.
//   - X-Erpsync-Signature: sha256=<hex HMAC-SHA256 under the shared key of
//     timestamp + "." + idempotency key + "." + body>, the first two being
//     the headers' exact values. Receivers must verify it (in constant
//     time) before trusting anything in the request, and refuse a
//     timestamp more than a few minutes old or ahead of their clock, so that
//     a captured request cannot be replayed later; within that window the
//     idempotency rule answers a replay without processing it. The key is
//     signed because two deliveries of one body may be stamped in the same
//     second: were it not, a replay under a new key could not be told from
//     a new delivery. Each attempt is signed afresh, so a retry after a
//     long backoff is not stale.
//   - X-Erpsync-Attempt: the attempt number, for the receiver's logs.
//
// The receiver owns the sink rules: a record is identified by (company,
// vendor, kind, vendorId), companies never overwrite each other, and a record
// must never replace a stored one whose modifiedAt is newer or equal. It
// stores a batch all or nothing.
//
// The receiver owns the content rule too: a record whose modifiedAt equals
// or passes the stored one is stored when its content (kind, deleted, data,
// raw) differs, and skipped, not rewritten, when it says the same.
//
// Response: any 2xx means the batch is stored. The body may be
// {"upserted": n, "skipped": m}; without it every record counts as upserted.
//
// # Set-aside documents
//
// Documents the connector could not map are sent as their own request, to
// the same URL, signed and keyed the same way, with the header
// X-Erpsync-Operation: set-aside (records requests say "records") and the
// body
//
//	{"version": 1, "setAside": [ {"company": …, "vendor": …, "kind": …,
//	  "vendorId": …, "modifiedAt": "RFC 3339, UTC; 0001-01-01T00:00:00Z
//	  when unknown", "reason": "a sentence", "raw": {vendor document}}, … ]}
//
// The receiver stores each one by its key (company, vendor, kind,
// vendorId), replacing an earlier one of the same key, all or nothing, and
// answers 2xx with {"setAside": n}, n the number of documents in the
// request; an answer without that count fails the call, so that a receiver
// that does not know the operation cannot drop documents silently. A set-aside
// entry is the receiver's to clear: a later records request that stores a
// record of the same key removes it, so a records request carries nothing
// extra for it.
//
// # Parents, children and deletions
//
// A record read inside another document carries "parent" (the parent's
// vendorId) and "parentKind"; a record whose document lists every child
// of some kinds carries "children": [{"kind": …, "ids": [… every child
// of that kind it holds now]}] (an empty ids list: it holds none). A
// deleted record may carry "deletedVia" (how the deletion was learned:
// "vendor" when absent; see model.DeletionSource). The receiver owns the
// rules of sinks.Sink for them, in the records request's transaction:
// deleted records stay as tombstones (the deleted flag, when and how the
// deletion was learned) and a later live version that is not older restores
// them; for every record of the request that is not older than the stored
// version (stored, or skipped as saying the same), its stored live children
// of each kind listed that the list does not name are marked deleted
// (deletedVia "parent"); a deleted record marks its live children deleted
// ("parent-deleted"), and theirs in turn.
//
// Deletions the operator infers (a record absent from a complete read or
// from the vendor's id listing) are sent as their own request, to the same
// URL, signed and keyed the same way, with X-Erpsync-Operation: delete and
// the body
//
//	{"version": 1, "delete": [ {"company": …, "vendor": …, "kind": …,
//	  "vendorId": …, "at": "RFC 3339, UTC", "via": "absent" | "reconcile" |
//	  …, "withChildren": true}, … ]}
//
// one entry per tombstone (a key at most once). The receiver marks each
// named live record deleted, keeping its content, with that time and
// source, and, as withChildren says, its live children (and theirs) with it
// at the same time via "parent-deleted"; an absent or already deleted record
// is left alone. All or nothing. It answers 2xx with {"tombstones": n,
// "deleted": m}: n the number of entries in the request (an answer without
// it fails the call, so that a receiver that does not know the operation
// cannot drop deletions silently), m the records it marked, children
// included; a replayed request answers the first one's counts.
//
// The sink cannot read back what the receiver holds: Live returns
// sinks.ErrNoListing (the operator then runs no reconciliation or absence
// detection against this sink, and says so), and Purge sends nothing (the
// receiver keeps or purges its tombstones as it likes).
//
// 5xx, 408, 429 and timeouts are retried with jittered exponential backoff
// (honouring Retry-After up to the maximum backoff), up to MaxAttempts; any
// other status fails the write with the response's message (shortened, and
// never the key). Redirects are not followed.
//
// The URL must be https: batches carry customers' data. Plain http is
// refused unless Options.AllowHTTP is set (the manager's
// --sink-webhook-allow-http, for a receiver on loopback or a sidecar).
//
// Receiver in this package is a reference implementation of the receiving
// side, used by the tests and the demo.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/sinks"
	"github.com/erpsync/erpsync-operator/sinks/internal/rows"
)

// Header names.
const (
	HeaderSignature   = "X-Erpsync-Signature"
	HeaderTimestamp   = "X-Erpsync-Timestamp"
	HeaderIdempotency = "Idempotency-Key"
	HeaderAttempt     = "X-Erpsync-Attempt"
	HeaderReplayed    = "Idempotent-Replayed"
	HeaderOperation   = "X-Erpsync-Operation"
)

// The operations, in HeaderOperation (and OperationDelete).
const (
	OperationRecords  = "records"
	OperationSetAside = "set-aside"
)

// PayloadVersion is the version field of the request body.
const PayloadVersion = 1

// Payload is the request body.
type Payload struct {
	Version int            `json:"version"`
	Records []model.Record `json:"records"`
}

// SetAsidePayload is the request body of the set-aside operation.
type SetAsidePayload struct {
	Version  int              `json:"version"`
	SetAside []model.SetAside `json:"setAside"`
}

// Response is the body of a 2xx answer: the counts of a records request
// (optional), or of a set-aside request (required).
type Response struct {
	Upserted int `json:"upserted"`
	Skipped  int `json:"skipped"`
	// SetAside is the number of set-aside documents stored.
	SetAside int `json:"setAside,omitempty"`
	// Tombstones is the number of tombstones a delete request carried,
	// and Deleted the number of records the receiver marked deleted,
	// children included (required for a delete request).
	Tombstones int `json:"tombstones,omitempty"`
	Deleted    int `json:"deleted,omitempty"`
}

// Options configures New.
type Options struct {
	// URL is the ingestion endpoint: https, or http with AllowHTTP.
	URL string
	// AllowHTTP accepts a plain http URL (a receiver on loopback or in a
	// sidecar, tests, the demo). Without it New refuses http.
	AllowHTTP bool
	// Key is the HMAC key. It is a secret: it never appears in errors.
	Key []byte
	// Client sends the requests; its redirect policy is replaced so that
	// redirects are never followed. Default: a client with sane transport
	// timeouts.
	Client *http.Client
	// Timeout bounds each attempt (default 30s).
	Timeout time.Duration
	// MaxAttempts bounds the attempts per batch (default 5).
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the wait between attempts (defaults
	// 500ms and 30s); the wait doubles per attempt, with jitter.
	MinBackoff, MaxBackoff time.Duration
	// Now is the clock that stamps each attempt (default time.Now).
	Now func() time.Time
}

// Sink posts batches to a webhook.
type Sink struct {
	o      Options
	client *http.Client
	// where names the endpoint in errors: no credentials, no query.
	where string
}

var _ sinks.Sink = (*Sink)(nil)

// New returns a webhook sink.
func New(o Options) (*Sink, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("webhook: the URL must be an absolute https URL")
	}
	if u.Scheme == "http" && !o.AllowHTTP {
		return nil, errors.New("webhook: the URL must be https (batches carry customers' data); allow plain http explicitly (--sink-webhook-allow-http) only for a receiver on loopback or in a sidecar")
	}
	if len(o.Key) == 0 {
		return nil, errors.New("webhook: no signing key")
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 500 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	o.MaxBackoff = max(o.MaxBackoff, o.MinBackoff)
	if o.Now == nil {
		o.Now = time.Now
	}
	var c http.Client
	if o.Client != nil {
		c = *o.Client
	} else {
		c.Transport = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: o.Timeout,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		}
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	where := u.Scheme + "://" + u.Host + u.EscapedPath()
	return &Sink{o: o, client: &c, where: where}, nil
}

// Close implements sinks.Sink.
func (s *Sink) Close() error {
	s.client.CloseIdleConnections()
	return nil
}

// StatusError is a response the sink does not retry (or gave up retrying).
type StatusError struct {
	Code int
	// Message is the start of the response body, made printable.
	Message string
	where   string
}

func (e *StatusError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("webhook %s answered %d %s", e.where, e.Code, http.StatusText(e.Code))
	}
	return fmt.Sprintf("webhook %s answered %d %s: %s", e.where, e.Code, http.StatusText(e.Code), e.Message)
}

// Encode validates a batch and returns the request body and a fresh
// idempotency key for its delivery. Each attempt signs the body with Sign.
func Encode(batch []model.Record) (body []byte, idempotencyKey string, err error) {
	recs := make([]model.Record, len(batch))
	for i := range batch {
		r := &batch[i]
		if err := rows.ValidateKey(r); err != nil {
			return nil, "", err
		}
		t, _ := rows.Lookup(r.Kind)
		if _, err := t.Row(r, t.Columns); err != nil {
			return nil, "", err
		}
		recs[i] = *r
		recs[i].ModifiedAt = r.ModifiedAt.UTC()
	}
	body, err = json.Marshal(Payload{Version: PayloadVersion, Records: recs})
	if err != nil {
		return nil, "", fmt.Errorf("encode batch: %w", err)
	}
	return body, NewIdempotencyKey(body), nil
}

// EncodeSetAside validates set-aside documents and returns the request body
// of the set-aside operation and its idempotency key. Each key is sent
// once (the last document of a key wins), in key order, with its reason
// made printable and bounded.
func EncodeSetAside(items []model.SetAside) (body []byte, idempotencyKey string, n int, err error) {
	planned, err := rows.PlanSetAside(items)
	if err != nil {
		return nil, "", 0, err
	}
	out := make([]model.SetAside, len(planned))
	for i, r := range planned {
		out[i] = model.SetAside{Company: r.Company, Vendor: r.Vendor, Kind: model.Kind(r.Kind), VendorID: r.VendorID,
			ModifiedAt: r.ModifiedAt, Reason: r.Reason, Raw: r.Raw}
	}
	body, err = json.Marshal(SetAsidePayload{Version: PayloadVersion, SetAside: out})
	if err != nil {
		return nil, "", 0, fmt.Errorf("encode set-aside documents: %w", err)
	}
	return body, NewIdempotencyKey(body), len(out), nil
}

// Sign returns the signature header value of a delivery: "sha256=" and the
// hex HMAC-SHA256 under key of the timestamp (unix seconds, decimal), ".",
// the idempotency key, ".", and the body.
func Sign(key []byte, timestamp int64, idempotencyKey string, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(strconv.AppendInt(nil, timestamp, 10))
	m.Write([]byte{'.'})
	m.Write([]byte(idempotencyKey))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// NewIdempotencyKey returns a fresh idempotency key for one delivery of a
// body: the SHA-256 of a random delivery id and the body.
func NewIdempotencyKey(body []byte) string {
	var id [16]byte
	crand.Read(id[:]) // never fails (crypto/rand panics rather than return short)
	h := sha256.New()
	h.Write(id[:])
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// Write implements sinks.Sink.
func (s *Sink) Write(ctx context.Context, batch []model.Record) (sinks.WriteResult, error) {
	if len(batch) == 0 {
		return sinks.WriteResult{}, nil
	}
	if err := ctx.Err(); err != nil {
		return sinks.WriteResult{}, fmt.Errorf("webhook: write: %w", err)
	}
	body, key, err := Encode(batch)
	if err != nil {
		return sinks.WriteResult{}, fmt.Errorf("webhook: %w", err)
	}
	msg, err := s.send(ctx, OperationRecords, body, key)
	if err != nil {
		return sinks.WriteResult{}, err
	}
	n := len(batch)
	var r Response
	if json.Unmarshal(msg, &r) == nil && r.Upserted >= 0 && r.Skipped >= 0 && r.Upserted+r.Skipped == n {
		return sinks.WriteResult{Upserted: r.Upserted, Skipped: r.Skipped}, nil
	}
	return sinks.WriteResult{Upserted: n}, nil
}

// SetAside implements sinks.Sink: the documents go in one set-aside
// request, which the receiver must confirm with their count.
func (s *Sink) SetAside(ctx context.Context, items []model.SetAside) error {
	if len(items) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("webhook: set aside: %w", err)
	}
	body, key, n, err := EncodeSetAside(items)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	msg, err := s.send(ctx, OperationSetAside, body, key)
	if err != nil {
		return err
	}
	var r Response
	if err := json.Unmarshal(msg, &r); err != nil || r.SetAside != n {
		return fmt.Errorf("webhook %s: the receiver did not confirm the %d set-aside documents (it must answer {\"setAside\": %d}; does it implement the %s operation?)", s.where, n, n, OperationSetAside)
	}
	return nil
}

// send posts a body, retrying as the package documents, and returns the
// start of the 2xx answer's body.
func (s *Sink) send(ctx context.Context, op string, body []byte, key string) ([]byte, error) {
	var last error
	for attempt := 1; attempt <= s.o.MaxAttempts; attempt++ {
		msg, retryAfter, err := s.post(ctx, op, body, key, attempt)
		if err == nil {
			return msg, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("webhook: %s: %w", op, ctx.Err())
		}
		var se *StatusError
		if errors.As(err, &se) && !retryStatus(se.Code) {
			return nil, err
		}
		last = err
		if attempt == s.o.MaxAttempts {
			break
		}
		wait := s.backoff(attempt)
		if retryAfter > wait {
			wait = min(retryAfter, s.o.MaxBackoff)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("webhook: %s: %w", op, ctx.Err())
		case <-t.C:
		}
	}
	return nil, fmt.Errorf("webhook: gave up after %d attempts: %w", s.o.MaxAttempts, last)
}

// backoff returns the wait after a failed attempt: exponential from
// MinBackoff, capped at MaxBackoff, with "equal jitter" (half fixed, half
// random) so that many writers do not retry in step.
func (s *Sink) backoff(attempt int) time.Duration {
	d := s.o.MinBackoff
	for i := 1; i < attempt && d < s.o.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.o.MaxBackoff)
	half := d / 2
	return half + rand.N(half+1) //nolint:gosec // G404: retry jitter, not a secret
}

func retryStatus(code int) bool {
	return code >= 500 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests
}

// maxMessage bounds the part of an error response quoted in errors.
const maxMessage = 300

func (s *Sink) post(ctx context.Context, op string, body []byte, key string, attempt int) ([]byte, time.Duration, error) {
	actx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, s.o.URL, bytes.NewReader(body))
	if err != nil {
		return nil, 0, fmt.Errorf("webhook %s: build request: %w", s.where, scrubURL(err, s.o.URL, s.where))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "erpsync-operator")
	// Each attempt is stamped and signed afresh, so that a retry after a
	// long backoff is not refused as stale.
	ts := s.o.Now().Unix()
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(s.o.Key, ts, key, body))
	req.Header.Set(HeaderIdempotency, key)
	req.Header.Set(HeaderAttempt, strconv.Itoa(attempt))
	req.Header.Set(HeaderOperation, op)
	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() == nil && actx.Err() != nil {
			return nil, 0, fmt.Errorf("webhook %s: attempt %d timed out after %v", s.where, attempt, s.o.Timeout)
		}
		return nil, 0, fmt.Errorf("webhook %s: attempt %d: %w", s.where, attempt, scrubURL(err, s.o.URL, s.where))
	}
	defer resp.Body.Close()
	// Read a bounded part of the body; drain a little more so the
	// connection can be reused.
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 256<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return msg, 0, nil
	}
	return nil, retryAfter(resp.Header.Get("Retry-After")),
		&StatusError{Code: resp.StatusCode, Message: message(msg, s.o.Key), where: s.where}
}

// retryAfter parses a Retry-After header (seconds or an HTTP date).
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// message turns the start of an error body into a short printable message:
// the "error" or "message" field of a JSON body, or the text, with control
// characters dropped, whitespace collapsed, the key masked, and shortened.
func message(body []byte, key []byte) string {
	text := string(body)
	var j map[string]any
	if json.Unmarshal(body, &j) == nil {
		for _, f := range []string{"error", "message", "detail", "title"} {
			if v, ok := j[f].(string); ok && v != "" {
				text = v
				break
			}
		}
	}
	if len(key) >= 4 {
		text = strings.ReplaceAll(text, string(key), "xxxxx")
	}
	var b strings.Builder
	space := false
	for _, r := range text {
		if r == unicode.ReplacementChar || (!unicode.IsPrint(r) && !unicode.IsSpace(r)) {
			continue
		}
		if unicode.IsSpace(r) {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
		if b.Len() >= maxMessage {
			b.WriteString("…")
			break
		}
	}
	return b.String()
}

// scrubURL replaces the full URL (which may hold credentials or tokens in
// its query) in an error with the safe form.
func scrubURL(err error, full, safe string) error {
	msg := err.Error()
	if !strings.Contains(msg, full) {
		if u, perr := url.Parse(full); perr == nil && u.RawQuery == "" && u.User == nil {
			return err
		}
	}
	msg = strings.ReplaceAll(msg, full, safe)
	if u, perr := url.Parse(full); perr == nil {
		if u.RawQuery != "" {
			msg = strings.ReplaceAll(msg, u.RawQuery, "…")
		}
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	return errors.New(msg)
}
