package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/sinks"
	"github.com/erpsync/erpsync-operator/sinks/memory"
	"github.com/erpsync/erpsync-operator/sinks/sinktest"
)

// TestDeleteRequest checks the delete operation on the wire: its own
// request, signed and keyed like the others, named in the operation
// header, one entry per key with its time, source and children, and
// confirmed by the receiver's count of tombstones.
func TestDeleteRequest(t *testing.T) {
	var answer atomic.Value
	answer.Store(`{"tombstones":2,"deleted":5}`)
	rc := &recorder{answer: func(int, *http.Request, []byte) (int, http.Header, string, time.Duration) {
		return 200, nil, answer.Load().(string), 0
	}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s := newSink(t, Options{URL: srv.URL})
	ctx := context.Background()
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("NZDT", 13*3600))
	key := func(kind model.Kind, id string) model.Key {
		return model.Key{Company: "acme", Vendor: "xero", Kind: kind, VendorID: id}
	}
	ts := []model.Tombstone{
		{Key: key(model.KindInvoice, "i2"), At: at, Via: model.DeletedByReconciliation},
		{Key: key(model.KindCustomer, "c1"), At: at, Via: model.DeletedAbsentFromFullRead},
		{Key: key(model.KindInvoice, "i2"), At: at.Add(time.Hour), Via: model.DeletedAbsentFromFullRead}, // the first of a key wins
	}
	n, err := s.Delete(ctx, ts)
	if err != nil || n != 5 {
		t.Fatalf("Delete = %d, %v; want the receiver's 5", n, err)
	}
	reqs := rc.got()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if got := r.header.Get(HeaderOperation); got != OperationDelete {
		t.Errorf("operation %q, want %q", got, OperationDelete)
	}
	if got := r.header.Get(HeaderSignature); got != signed(t, r) {
		t.Errorf("bad signature")
	}
	if got := r.header.Get(HeaderIdempotency); len(got) != 64 {
		t.Errorf("idempotency key %q", got)
	}
	var p struct {
		Version int               `json:"version"`
		Records json.RawMessage   `json:"records"`
		Delete  []json.RawMessage `json:"delete"`
	}
	if err := json.Unmarshal(r.body, &p); err != nil || p.Version != PayloadVersion || p.Records != nil || len(p.Delete) != 2 {
		t.Fatalf("delete body %s (%v)", r.body, err)
	}
	want := []string{
		`{"company":"acme","vendor":"xero","kind":"customers","vendorId":"c1","at":"2026-02-28T23:00:00.123456Z","via":"absent","withChildren":true}`,
		`{"company":"acme","vendor":"xero","kind":"invoices","vendorId":"i2","at":"2026-02-28T23:00:00.123456Z","via":"reconcile","withChildren":true}`,
	}
	for i, w := range want {
		if string(p.Delete[i]) != w {
			t.Errorf("entry %d: %s, want %s", i, p.Delete[i], w)
		}
	}
	// A receiver that does not confirm the tombstones (one that does not
	// know the operation) fails the call.
	for _, body := range []string{`{"upserted":0,"skipped":0}`, ``, `{"tombstones":1,"deleted":1}`, `{"deleted":2}`} {
		answer.Store(body)
		if _, err := s.Delete(ctx, ts); err == nil || !strings.Contains(err.Error(), "did not confirm") {
			t.Errorf("answer %q: Delete = %v, want an error saying the receiver did not confirm", body, err)
		}
	}
	// Nothing to send, or nothing valid: no request.
	before := len(rc.got())
	if n, err := s.Delete(ctx, nil); n != 0 || err != nil {
		t.Errorf("Delete(nil) = %d, %v", n, err)
	}
	if _, err := s.Delete(ctx, []model.Tombstone{{Key: key(model.KindInvoice, "x"), At: at}}); err == nil {
		t.Errorf("Delete of a tombstone without a source succeeded")
	}
	if got := len(rc.got()); got != before {
		t.Errorf("%d requests sent for nothing", got-before)
	}
	if err := s.Live(ctx, sinks.Scope{Company: "acme", Vendor: "xero", Kind: model.KindInvoice}, func(model.LiveRecord) error { return nil }); !errors.Is(err, sinks.ErrNoListing) {
		t.Errorf("Live = %v, want sinks.ErrNoListing", err)
	}
	if n, err := s.Purge(ctx, "acme", "xero", time.Now()); n != 0 || err != nil {
		t.Errorf("Purge = %d, %v; want 0, nil", n, err)
	}
}

// TestRecordsCarryParentsAndChildren checks that a records request carries
// what the receiver needs for the children rules.
func TestRecordsCarryParentsAndChildren(t *testing.T) {
	parent := sinktest.WithChildren(sinktest.Record(model.KindCustomer, "acme", "v", "c1", 1),
		model.ChildSet{Kind: model.KindContact, IDs: []string{"k1"}}, model.ChildSet{Kind: model.KindPriceRule, IDs: []string{}})
	child := sinktest.Child(model.KindContact, "acme", "v", "k1", 1, model.KindCustomer, "c1")
	gone := sinktest.Deleted(sinktest.Record(model.KindProduct, "acme", "v", "p1", 1), model.DeletedAbsentFromFullRead)
	body, _, err := Encode([]model.Record{parent, child, gone})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"children":[{"kind":"contacts","ids":["k1"]},{"kind":"price_rules","ids":[]}]`,
		`"parent":"c1","parentKind":"customers"`,
		`"deleted":true,"deletedVia":"absent"`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("body %s lacks %s", body, want)
		}
	}
	recs, err := Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs[0].Children) != 2 || recs[0].Children[1].Kind != model.KindPriceRule || recs[0].Children[1].IDs == nil ||
		recs[1].Parent != "c1" || recs[1].ParentKind != model.KindCustomer || recs[2].DeletedVia != model.DeletedAbsentFromFullRead {
		t.Errorf("decoded %+v", recs)
	}
}

// TestReceiverDelete checks the reference receiver's side of the delete
// operation: it marks the records and their children, answers a replay
// with the first request's counts without marking again, and refuses
// malformed tombstones and a tombstone whose children would stay.
func TestReceiverDelete(t *testing.T) {
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
	p := sinktest.Record(model.KindProduct, "acme", "katana", "p1", 1)
	stock := sinktest.Child(model.KindStockLevel, "acme", "katana", "p1/main", 1, model.KindProduct, "p1")
	if _, err := mem.Write(context.Background(), []model.Record{p, stock}); err != nil {
		t.Fatal(err)
	}
	at := sinktest.At(30)
	body, _, n, err := EncodeDelete([]model.Tombstone{{Key: p.Key(), At: at, Via: model.DeletedByReconciliation}})
	if err != nil || n != 1 {
		t.Fatalf("EncodeDelete = %d, %v", n, err)
	}
	for i := range 2 {
		w := post(body)
		if w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"upserted":0,"skipped":0,"tombstones":1,"deleted":2}` {
			t.Fatalf("request %d: %d %s", i, w.Code, w.Body)
		}
		if replayed := w.Header().Get(HeaderReplayed) == "true"; replayed != (i == 1) {
			t.Errorf("request %d: replayed %v", i, replayed)
		}
	}
	for _, k := range []model.Key{p.Key(), stock.Key()} {
		if ts, ok := mem.Tombstone(k); !ok || !ts.At.Equal(at) {
			t.Errorf("%v: tombstone %+v, %v; want one at %v", k, ts, ok, at)
		}
	}
	for name, bad := range map[string]string{
		"unknown kind":      `{"version":1,"delete":[{"company":"acme","vendor":"katana","kind":"widgets","vendorId":"x","at":"2026-01-01T00:00:00Z","via":"reconcile","withChildren":true}]}`,
		"no source":         `{"version":1,"delete":[{"company":"acme","vendor":"katana","kind":"products","vendorId":"x","at":"2026-01-01T00:00:00Z","withChildren":true}]}`,
		"children stay":     `{"version":1,"delete":[{"company":"acme","vendor":"katana","kind":"products","vendorId":"x","at":"2026-01-01T00:00:00Z","via":"reconcile"}]}`,
		"two operations":    `{"version":1,"setAside":[],"delete":[]}`,
		"other version":     `{"version":2,"delete":[]}`,
		"records as delete": `{"version":1,"records":[],"delete":[{"company":"acme"}]}`,
	} {
		if w := post([]byte(bad)); w.Code != http.StatusUnprocessableEntity {
			t.Errorf("%s: %d %s, want 422", name, w.Code, w.Body)
		}
	}
}
