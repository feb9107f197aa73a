package cin7core_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/cin7core"
	"github.com/erpsync/erpsync-operator/connectors/cin7core/sim"
	"github.com/erpsync/erpsync-operator/connectors/connectortest"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/internal/engine"
	"github.com/erpsync/erpsync-operator/sinks/memory"
)

// hookReceiver is the receiving side as the manager's receiver does it:
// a bounded body, Verify, Parse, 401 for an inauthentic delivery, the
// events kept for a targeted sync.
type hookReceiver struct {
	keys map[string][]byte

	mu         sync.Mutex
	status     int // 0: answer as the receiver would
	deliveries [][]byte
	headers    []http.Header
	events     []connectors.WebhookEvent
	rejected   int
}

const maxHookBody = 1 << 20

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxHookBody+1))
	if err != nil || len(body) > maxHookBody {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.status != 0 {
		w.WriteHeader(h.status)
		return
	}
	if err := cin7core.Webhooks.Verify(r.Header, body, h.keys, time.Now()); err != nil {
		h.rejected++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	evs, err := cin7core.Webhooks.Parse(r.Header, body)
	if err != nil {
		h.rejected++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	h.deliveries = append(h.deliveries, body)
	h.headers = append(h.headers, r.Header.Clone())
	h.events = append(h.events, evs...)
	w.WriteHeader(http.StatusOK)
}

func (h *hookReceiver) setStatus(s int) {
	h.mu.Lock()
	h.status = s
	h.mu.Unlock()
}

// take returns and forgets the events and the number of deliveries so far.
func (h *hookReceiver) take() ([]connectors.WebhookEvent, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	evs, n := h.events, len(h.deliveries)
	h.events, h.deliveries, h.headers = nil, nil, nil
	return evs, n
}

// covered reports whether the events so far name every id of ids in
// stream k.
func (h *hookReceiver) covered(k model.Kind, ids map[string]bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[string]bool{}
	for _, e := range h.events {
		if e.Entity == k {
			seen[e.ID] = true
		}
	}
	for id := range ids {
		if !seen[id] {
			return false
		}
	}
	return true
}

// countType counts the deliveries of one event type.
func (h *hookReceiver) countType(typ string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, hd := range h.headers {
		if hd.Get(cin7core.EventTypeHeader) == typ {
			n++
		}
	}
	return n
}

func (h *hookReceiver) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.deliveries)
}

// countingReader counts the ReadDocs calls a targeted sync makes.
type countingReader struct {
	connectors.Connector
	mu    sync.Mutex
	reads map[model.Kind]int
}

func (c *countingReader) MaxDocsPerRead(k model.Kind) int {
	return c.Connector.(connectors.DocReader).MaxDocsPerRead(k)
}

func (c *countingReader) ReadDocs(ctx context.Context, k model.Kind, ids []string) (*connectors.Page, error) {
	c.mu.Lock()
	c.reads[k]++
	c.mu.Unlock()
	return c.Connector.(connectors.DocReader).ReadDocs(ctx, k, ids)
}

type hookWorld struct {
	t     *testing.T
	clock *httpapi.FakeClock
	sim   *sim.Server
	conn  connectors.Connector
	sink  *memory.Sink
	rcv   *hookReceiver
	url   string
}

func newHookWorld(t *testing.T) *hookWorld {
	t.Helper()
	clock := httpapi.NewFakeClock(time.Date(2026, 1, 2, 9, 0, 0, 0, time.UTC))
	s := sim.New(sim.Options{Dataset: simkit.Options{Seed: 77, Products: 120, Customers: 40, Orders: 60}, Now: clock.Now, WebhookSleep: clock.Sleep})
	t.Cleanup(s.Close)
	api := connectortest.Serve(t, s)
	conn, err := cin7core.NewWithOptions(context.Background(), connectors.Config{Type: cin7core.Type, CompanyID: connectortest.Company,
		BaseURL: api.URL + "/ExternalApi/v2/", Credentials: connectortest.SecretData(s.Credentials(), nil)},
		cin7core.Options{Clock: clock, Registry: httpapi.NewRegistry(nil)})
	if err != nil {
		t.Fatal(err)
	}
	rcv := &hookReceiver{keys: map[string][]byte{connectors.WebhookKeyCredential: []byte("per-erpsync-random-credential")}}
	hooks := connectortest.Serve(t, rcv)
	w := &hookWorld{t: t, clock: clock, sim: s, conn: conn, sink: memory.New(), rcv: rcv, url: hooks.URL + "/webhooks/cin7core/0b6f-uid"}
	if _, err := engine.Execute(context.Background(), engine.Run{Connector: conn, Sink: w.sink, Now: clock.Now}); err != nil {
		t.Fatalf("the full import: %v", err)
	}
	w.requireExact("after the full import")
	reg, err := conn.(connectors.WebhookRegistrar).EnsureWebhooks(context.Background(),
		connectors.WebhookTarget{URL: w.url, Keys: rcv.keys, Entities: allStreams})
	if err != nil || reg.Created != 18 {
		t.Fatalf("EnsureWebhooks = %+v, %v", reg, err)
	}
	return w
}

func (w *hookWorld) requireExact(what string) {
	w.t.Helper()
	if d := connectortest.Compare(w.sink, cin7core.Type, expected(w.sim.Dataset(), nil)); !d.Exact() {
		w.t.Fatalf("%s: the CRM differs from Cin7 Core: %s", what, d)
	}
}

// settle waits until n deliveries arrived and the simulator has nothing
// more queued for the receiver.
func (w *hookWorld) settle(what string, n int) {
	w.t.Helper()
	w.waitUntil(what, func() bool { return w.rcv.count() >= n })
	if got := w.rcv.count(); got != n {
		w.t.Fatalf("%s: %d deliveries, want %d", what, got, n)
	}
}

// waitUntil waits until cond holds and the simulator's deliveries to the
// receiver have stopped.
func (w *hookWorld) waitUntil(what string, cond func() bool) {
	w.t.Helper()
	d := w.sim.WebhookDeliverer(w.url)
	deadline := time.Now().Add(20 * time.Second)
	for !cond() || d.Pending() > 0 {
		if time.Now().After(deadline) {
			w.t.Fatalf("%s: timed out after %d deliveries", what, w.rcv.count())
		}
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(30 * time.Millisecond)
}

// targeted runs the targeted sync of events and returns its result and
// its ReadDocs calls per stream.
func (w *hookWorld) targeted(evs []connectors.WebhookEvent) (engine.TargetedResult, map[model.Kind]int) {
	w.t.Helper()
	targets := make([]engine.Target, 0, len(evs))
	for _, e := range evs {
		targets = append(targets, engine.Target{Entity: e.Entity, ID: e.ID, Deleted: e.Deleted})
	}
	cr := &countingReader{Connector: w.conn, reads: map[model.Kind]int{}}
	res, err := engine.Targeted(context.Background(), engine.Run{Company: connectortest.Company, Vendor: cin7core.Type, Connector: cr, Sink: w.sink, Now: w.clock.Now}, targets)
	if err != nil {
		w.t.Fatalf("targeted sync: %v", err)
	}
	return res, cr.reads
}

// TestWebhooksEndToEnd: changes in Cin7 Core reach the CRM through the
// simulator's deliveries, the codec and a targeted sync: edits, a new
// product, a sale voided, invoice and credit note stages, stock; a
// duplicate and reordered delivery, a storm of 200 edits, a delete the
// vendor no longer serves, an unauthenticated delivery, and a webhook the
// vendor disabled and the registrar switched back on.
func TestWebhooksEndToEnd(t *testing.T) {
	w := newHookWorld(t)
	d := w.sim.Dataset()
	var product, customer, supplier, voided, invoice, credit string
	d.View(func(d *simkit.Dataset) {
		product, customer, supplier = d.Products[3].ID, d.Customers[2].ID, d.Suppliers[1].ID
		orderOf := map[string]string{}
		for _, o := range d.Orders {
			orderOf[o.Number] = o.ID
		}
		invOrder := map[string]string{}
		for _, inv := range d.Invoices {
			invOrder[inv.Number] = inv.OrderNumber
		}
		credit = d.CreditNotes[0].ID
		creditSale := orderOf[invOrder[d.CreditNotes[0].OrderNumber]]
		for _, inv := range d.Invoices {
			if inv.Status == "AUTHORISED" && orderOf[inv.OrderNumber] != creditSale {
				invoice = inv.ID
				break
			}
		}
		for _, o := range d.Orders {
			if !o.Deleted && o.ID != creditSale && o.ID != orderOf[d.Invoices[0].OrderNumber] {
				voided = o.ID
			}
		}
	})

	// 1. One change of each kind: 9 deliveries (a product edit and a new
	// product each announce their stock too).
	d.TouchProduct(product)
	_, _ = d.Touch(simkit.AdminCustomers, customer)
	d.AddProduct()
	_, _ = d.Mark(simkit.AdminOrders, voided, true, true)
	_, _ = d.Touch(simkit.AdminInvoices, invoice)
	_, _ = d.Touch(simkit.AdminCreditNotes, credit)
	_, _ = d.Touch(simkit.AdminSuppliers, supplier)
	w.settle("one change of each kind", 9)
	evs, n := w.rcv.take()
	res, _ := w.targeted(evs)
	w.requireExact("after the targeted sync")
	if res.Calls > int64(2*len(evs)) {
		t.Errorf("%d calls for %d events, more than 2 an event", res.Calls, len(evs))
	}
	if res.Deleted != 0 {
		t.Errorf("%d tombstones: the voided sale is still served", res.Deleted)
	}
	r, ok := w.sink.Get(model.Key{Company: connectortest.Company, Vendor: cin7core.Type, Kind: model.KindSalesOrder, VendorID: voided})
	if !ok || !r.Deleted {
		t.Errorf("the voided sale: %+v, want it marked deleted", r)
	}
	t.Logf("%d deliveries, %d events, %d calls", n, len(evs), res.Calls)

	// 2. The same events again, duplicated and reversed: each document
	// is read once, so a replay costs one extra read of each at most.
	again := append(slices.Clone(evs), evs...)
	slices.Reverse(again)
	res2, _ := w.targeted(again)
	if res2.Calls != res.Calls || res2.Targets != res.Targets {
		t.Errorf("duplicated and reordered: %d calls for %d targets, want %d for %d", res2.Calls, res2.Targets, res.Calls, res.Targets)
	}
	w.requireExact("after a replay")

	// 3. A storm of 200 product edits: 200 product events and a stock
	// event for each change of a product's stock Cin7 Core sees (two
	// edits it sees at once announce one level); at most ceil(n/20) reads
	// per stream.
	touched := map[string]bool{}
	for _, id := range d.TouchProducts(200) {
		touched[id] = true
	}
	w.waitUntil("the storm", func() bool {
		return w.rcv.countType(cin7core.EventProductUpdated) == 200 && w.rcv.covered(model.KindStockLevel, touched)
	})
	if n := w.rcv.countType(cin7core.EventStockAvailableChanged); n < len(touched) || n > 200 {
		t.Errorf("the storm: %d stock deliveries for %d products and 200 edits", n, len(touched))
	}
	evs, n = w.rcv.take()
	t.Logf("the storm: %d deliveries, %d events, %d products", n, len(evs), len(touched))
	res, reads := w.targeted(evs)
	w.requireExact("after the storm")
	per := w.conn.(connectors.DocReader).MaxDocsPerRead(model.KindProduct)
	want := (len(touched) + per - 1) / per
	if reads[model.KindProduct] != want || reads[model.KindStockLevel] != want || len(reads) != 2 {
		t.Errorf("the storm of %d products: reads %v, want %d per stream", len(touched), reads, want)
	}
	if res.Calls != int64(2*len(touched)) {
		t.Errorf("the storm cost %d calls, want %d", res.Calls, 2*len(touched))
	}

	// 4. A sale voided, then gone from Cin7 Core before the read: its
	// Sale/Voided delivery makes a tombstone.
	var gone string
	d.View(func(d *simkit.Dataset) {
		// A sale without a credit note (whose row would stay listed).
		credited := map[string]bool{}
		invOrder := map[string]string{}
		for _, inv := range d.Invoices {
			invOrder[inv.Number] = inv.OrderNumber
		}
		for _, cn := range d.CreditNotes {
			credited[invOrder[cn.OrderNumber]] = true
		}
		for _, o := range d.Orders {
			if !credited[o.Number] && !o.Deleted {
				gone = o.ID
			}
		}
	})
	_, _ = d.Mark(simkit.AdminOrders, gone, true, true)
	w.settle("a void", 1)
	evs, _ = w.rcv.take()
	_, _ = d.Remove(simkit.AdminOrders, gone)
	res, _ = w.targeted(evs)
	if res.Deleted < 1 {
		t.Errorf("%d tombstones, want the removed sale's (and its children's)", res.Deleted)
	}
	if ts, ok := w.sink.Tombstone(model.Key{Company: connectortest.Company, Vendor: cin7core.Type, Kind: model.KindSalesOrder, VendorID: gone}); !ok || ts.Via != model.DeletedByWebhook {
		t.Errorf("tombstone %+v %v, want one by webhook", ts, ok)
	}
	w.requireExact("after a delete")

	// 5. A delivery without the credential is refused and changes nothing.
	before := w.sink.Writes()
	for _, auth := range []string{"", "Bearer wrong", "Basic cGVyLWVycHN5bmM6"} {
		req, _ := http.NewRequest(http.MethodPost, w.url, bytes.NewReader([]byte(`{"SaleID":"`+voided+`","EventType":"Sale/Voided"}`)))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("Authorization %q: %d, want 401", auth, resp.StatusCode)
		}
	}
	if evs, _ := w.rcv.take(); len(evs) != 0 || w.sink.Writes() != before {
		t.Errorf("a refused delivery left %d events, %d writes", len(evs), w.sink.Writes()-before)
	}

	// 6. The receiver down: Cin7 Core tries 6 times and deactivates the
	// URL's webhooks; the registrar switches them back on, and the next
	// change arrives.
	w.rcv.setStatus(http.StatusServiceUnavailable)
	_, _ = d.Touch(simkit.AdminCustomers, customer)
	lane := w.sim.WebhookDeliverer(w.url)
	deadline := time.Now().Add(10 * time.Second)
	for !lane.Disabled() {
		if time.Now().After(deadline) {
			t.Fatal("the webhooks were never deactivated")
		}
		time.Sleep(2 * time.Millisecond)
	}
	w.rcv.setStatus(0)
	reg, err := w.conn.(connectors.WebhookRegistrar).EnsureWebhooks(context.Background(),
		connectors.WebhookTarget{URL: w.url, Keys: w.rcv.keys, Entities: allStreams})
	if err != nil || reg.Reenabled != 18 || reg.Subscriptions != 18 || reg.Created != 0 {
		t.Fatalf("EnsureWebhooks after the deactivation = %+v, %v", reg, err)
	}
	_, _ = d.Touch(simkit.AdminCustomers, customer)
	w.settle("after re-enabling", 1)
	evs, _ = w.rcv.take()
	w.targeted(evs)
	w.requireExact("after re-enabling")
}

// TestHarnessWebhooks: the suite's webhook environment subscribes through
// the registrar, and a change of each kind in Kinds arrives verified and
// names its record in the mapped stream.
func TestHarnessWebhooks(t *testing.T) {
	clock := httpapi.NewFakeClock(time.Date(2026, 1, 2, 9, 0, 0, 0, time.UTC))
	env := harness{}.Start(t, simkit.Options{Seed: 3, Products: 10, Customers: 5, Orders: 10}, clock)
	wh := env.Webhooks
	if wh == nil || wh.Codec != cin7core.Webhooks || wh.Tenant != "" {
		t.Fatalf("webhook environment %+v", wh)
	}
	rcv := &hookReceiver{}
	srv := connectortest.Serve(t, rcv)
	keys, d := wh.Subscribe(t, httpapi.NewRegistry(nil), srv.URL+"/h")
	if d == nil || len(keys[connectors.WebhookKeyCredential]) < 32 {
		t.Fatalf("Subscribe gave deliverer %v and a credential of %d bytes", d, len(keys[connectors.WebhookKeyCredential]))
	}
	rcv.mu.Lock()
	rcv.keys = keys
	rcv.mu.Unlock()
	for kind, stream := range wh.Kinds {
		refs, err := env.Data.Refs(kind)
		if err != nil || len(refs) == 0 {
			t.Fatalf("%s: %v", kind, err)
		}
		if _, err := env.Data.Touch(kind, refs[0].ID); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			rcv.mu.Lock()
			found := slices.ContainsFunc(rcv.events, func(e connectors.WebhookEvent) bool { return e.Entity == stream && e.ID == refs[0].ID })
			rejected := rcv.rejected
			rcv.mu.Unlock()
			if rejected > 0 {
				t.Fatalf("%d deliveries refused", rejected)
			}
			if found {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no event for %s %s", kind, stream, refs[0].ID)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	if d.Stats().Delivered.Load() == 0 {
		t.Error("the deliverer counted nothing")
	}
}

// TestReadStockByProduct: stock levels are read by product id, one call a
// product, with every row of the product and nothing else; an unknown
// product gives nothing.
func TestReadStockByProduct(t *testing.T) {
	e := newEnv(t, envOpts{})
	var pid string
	var rows int
	e.sim.Dataset().View(func(d *simkit.Dataset) { pid, rows = d.Products[7].ID, len(d.Products[7].Stock) })
	r := e.conn.(connectors.DocReader)
	if n := r.MaxDocsPerRead(model.KindStockLevel); n != 20 {
		t.Errorf("MaxDocsPerRead(stock) = %d", n)
	}
	if _, ok := e.conn.(connectors.IDLister).IDListing(model.KindStockLevel); ok {
		t.Error("stock levels got an id listing")
	}
	p, err := r.ReadDocs(context.Background(), model.KindStockLevel, []string{pid, "00000000-0000-0000-0000-00000000dead"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Calls != 2 || !slices.Equal(p.Docs, []string{pid}) || len(p.Records) != rows || rows == 0 {
		t.Fatalf("ReadDocs = %d calls, docs %v, %d records (want %d)", p.Calls, p.Docs, len(p.Records), rows)
	}
	for _, rec := range p.Records {
		if st, ok := rec.Data.(*model.StockLevel); !ok || st.ProductVendorID != pid || rec.Kind != model.KindStockLevel {
			t.Errorf("record %+v", rec)
		}
	}
	if q := e.rec.Queries(); len(q) != 2 || !strings.Contains(q[0], "ref/productavailability?") || !strings.Contains(q[0], "ID="+pid) {
		t.Errorf("requests %v", q)
	}
}
