package simkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ---- the change feed ----

// feedNow is the clock every change-feed test stamps with.
var feedNow = time.Date(2026, 2, 1, 12, 0, 0, 0, time.UTC)

// feedDataset is a small dataset with a fixed clock.
func feedDataset() *Dataset {
	d := NewDataset(Options{Seed: 3, Products: 12, Customers: 6, Orders: 8})
	d.SetClock(func() time.Time { return feedNow })
	return d
}

// record collects the changes a subscriber is told of.
type record struct {
	mu  sync.Mutex
	got []Change
}

func (r *record) add(c Change) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, c)
}

func (r *record) changes() []Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// ref names a record of the dataset by kind and index, read before the
// change.
func ref(t *testing.T, d *Dataset, kind string, i int) RecordRef {
	t.Helper()
	refs, err := d.Refs(kind)
	if err != nil || i >= len(refs) {
		t.Fatalf("refs of %s: %d records, %v", kind, len(refs), err)
	}
	return refs[i]
}

// seqOf finds the sequence number of a record by id (0: none).
func seqOf(d *Dataset, kind, id string) int {
	refs, _ := d.Refs(kind)
	for _, r := range refs {
		if r.ID == id {
			return r.Seq
		}
	}
	return 0
}

// want is one expected change; noSeq where the method does not carry the
// record's sequence number (the bulk removals of removal.go and
// RemoveProducts emit their ids only).
type want struct {
	kind, id string
	seq      int
	op       ChangeOp
	noSeq    bool
}

func (w want) String() string { return fmt.Sprintf("%s %s/%s (seq %d)", w.op, w.kind, w.id, w.seq) }

func TestChangeFeed(t *testing.T) {
	for _, tc := range []struct {
		name string
		// change changes d and returns the changes it must emit, in order
		// (ids read before the change).
		change func(t *testing.T, d *Dataset) []want
	}{
		{"TouchProduct", func(t *testing.T, d *Dataset) []want {
			p := ref(t, d, AdminProducts, 4)
			if !d.TouchProduct(p.ID) {
				t.Fatal("no product")
			}
			return []want{{kind: AdminProducts, id: p.ID, seq: p.Seq, op: ChangeUpdated}}
		}},
		{"TouchProducts", func(t *testing.T, d *Dataset) []want {
			var out []want
			for _, id := range d.TouchProducts(3) {
				out = append(out, want{kind: AdminProducts, id: id, seq: seqOf(d, AdminProducts, id), op: ChangeUpdated})
			}
			return out
		}},
		{"TouchCustomers", func(t *testing.T, d *Dataset) []want {
			var out []want
			for _, id := range d.TouchCustomers(2) {
				out = append(out, want{kind: AdminCustomers, id: id, seq: seqOf(d, AdminCustomers, id), op: ChangeUpdated})
			}
			return out
		}},
		{"TouchOrders", func(t *testing.T, d *Dataset) []want {
			var out []want
			for _, id := range d.TouchOrders(2) {
				out = append(out, want{kind: AdminOrders, id: id, seq: seqOf(d, AdminOrders, id), op: ChangeUpdated})
			}
			return out
		}},
		{"DeleteProduct", func(t *testing.T, d *Dataset) []want {
			p := ref(t, d, AdminProducts, 2)
			d.DeleteProduct(p.ID)
			return []want{{kind: AdminProducts, id: p.ID, seq: p.Seq, op: ChangeDeleted}}
		}},
		{"AddProduct", func(t *testing.T, d *Dataset) []want {
			p := d.AddProduct()
			return []want{{kind: AdminProducts, id: p.ID, seq: p.Seq, op: ChangeCreated}}
		}},
		{"TieModified", func(t *testing.T, d *Dataset) []want {
			var out []want
			for _, id := range d.TieModified(2, feedNow.Add(-time.Hour)) {
				out = append(out, want{kind: AdminProducts, id: id, seq: seqOf(d, AdminProducts, id), op: ChangeUpdated})
			}
			return out
		}},
		{"EditOldest", func(t *testing.T, d *Dataset) []want {
			var out []want
			for _, id := range d.EditOldest(2) {
				out = append(out, want{kind: AdminProducts, id: id, seq: seqOf(d, AdminProducts, id), op: ChangeUpdated})
			}
			return out
		}},
		{"DropContact", func(t *testing.T, d *Dataset) []want {
			c, contact := d.DropContact(0)
			if contact == "" {
				t.Fatal("no contact dropped")
			}
			return []want{{kind: AdminCustomers, id: c, seq: seqOf(d, AdminCustomers, c), op: ChangeUpdated}}
		}},
		{"DropSpecialPrice", func(t *testing.T, d *Dataset) []want {
			p, _ := d.DropSpecialPrice(1)
			return []want{{kind: AdminProducts, id: p, seq: seqOf(d, AdminProducts, p), op: ChangeUpdated}}
		}},
		{"DropStock", func(t *testing.T, d *Dataset) []want {
			p, _ := d.DropStock(1)
			return []want{{kind: AdminProducts, id: p, seq: seqOf(d, AdminProducts, p), op: ChangeUpdated}}
		}},
		{"RemoveContact", func(t *testing.T, d *Dataset) []want {
			var cust, contact string
			var seq int
			d.View(func(d *Dataset) { c := d.Customers[1]; cust, contact, seq = c.ID, c.Contacts[0].ID, c.Seq })
			if err := d.RemoveContact(cust, contact); err != nil {
				t.Fatal(err)
			}
			return []want{{kind: AdminCustomers, id: cust, seq: seq, op: ChangeUpdated}}
		}},
		{"RemoveSpecialPrice", func(t *testing.T, d *Dataset) []want {
			var prod, cust string
			var seq int
			d.View(func(d *Dataset) { p := d.Products[3]; prod, cust, seq = p.ID, p.SpecialPrices[0].CustomerID, p.Seq })
			if err := d.RemoveSpecialPrice(prod, cust); err != nil {
				t.Fatal(err)
			}
			return []want{{kind: AdminProducts, id: prod, seq: seq, op: ChangeUpdated}}
		}},
		{"RemoveStock", func(t *testing.T, d *Dataset) []want {
			p := ref(t, d, AdminProducts, 5)
			if err := d.RemoveStock(p.ID, "WH2"); err != nil {
				t.Fatal(err)
			}
			return []want{{kind: AdminProducts, id: p.ID, seq: p.Seq, op: ChangeUpdated}}
		}},
		{"MarkDeleted", func(t *testing.T, d *Dataset) []want {
			c := ref(t, d, AdminCustomers, 2)
			if _, err := d.Mark(AdminCustomers, c.ID, true, true); err != nil {
				t.Fatal(err)
			}
			return []want{{kind: AdminCustomers, id: c.ID, seq: c.Seq, op: ChangeDeleted}}
		}},
		{"MarkQuietly", func(t *testing.T, d *Dataset) []want {
			// A marker set without a new modified time is still a change
			// the vendor's webhook reports.
			o := ref(t, d, AdminInvoices, 1)
			if _, err := d.Mark(AdminInvoices, o.ID, true, false); err != nil {
				t.Fatal(err)
			}
			return []want{{kind: AdminInvoices, id: o.ID, seq: o.Seq, op: ChangeDeleted}}
		}},
		{"MarkUndeleted", func(t *testing.T, d *Dataset) []want {
			s := ref(t, d, AdminSuppliers, 0)
			if _, err := d.Mark(AdminSuppliers, s.ID, false, true); err != nil {
				t.Fatal(err)
			}
			return []want{{kind: AdminSuppliers, id: s.ID, seq: s.Seq, op: ChangeUpdated}}
		}},
		{"TouchKinds", func(t *testing.T, d *Dataset) []want {
			var out []want
			for _, k := range AdminKinds {
				r := ref(t, d, k, 0)
				if _, err := d.Touch(k, r.ID); err != nil {
					t.Fatal(err)
				}
				out = append(out, want{kind: k, id: r.ID, seq: r.Seq, op: ChangeUpdated})
			}
			return out
		}},
		{"RemoveInvoice", func(t *testing.T, d *Dataset) []want {
			var inv, order RecordRef
			d.View(func(d *Dataset) {
				in := d.Invoices[0]
				inv = RecordRef{ID: in.ID, Seq: in.Seq}
				for _, o := range d.Orders {
					if o.Number == in.OrderNumber {
						order = RecordRef{ID: o.ID, Seq: o.Seq}
					}
				}
			})
			if _, err := d.Remove(AdminInvoices, inv.ID); err != nil {
				t.Fatal(err)
			}
			return []want{{kind: AdminOrders, id: order.ID, seq: order.Seq, op: ChangeUpdated}, {kind: AdminInvoices, id: inv.ID, seq: inv.Seq, op: ChangeRemoved}}
		}},
		{"RemoveCustomer", func(t *testing.T, d *Dataset) []want {
			c := ref(t, d, AdminCustomers, 1)
			var out []want
			d.View(func(d *Dataset) {
				for _, p := range d.Products {
					if slices.ContainsFunc(p.SpecialPrices, func(sp SpecialPrice) bool { return sp.CustomerID == c.ID }) {
						out = append(out, want{kind: AdminProducts, id: p.ID, seq: p.Seq, op: ChangeUpdated})
					}
				}
			})
			if len(out) == 0 {
				t.Fatal("the customer has no special price: the cascade is not exercised")
			}
			if _, err := d.Remove(AdminCustomers, c.ID); err != nil {
				t.Fatal(err)
			}
			return append(out, want{kind: AdminCustomers, id: c.ID, seq: c.Seq, op: ChangeRemoved})
		}},
		{"RemoveWarehouse", func(t *testing.T, d *Dataset) []want {
			w := ref(t, d, AdminWarehouses, 0)
			var out []want
			d.View(func(d *Dataset) {
				for _, p := range d.Products {
					out = append(out, want{kind: AdminProducts, id: p.ID, seq: p.Seq, op: ChangeUpdated})
				}
			})
			if _, err := d.Remove(AdminWarehouses, w.ID); err != nil {
				t.Fatal(err)
			}
			return append(out, want{kind: AdminWarehouses, id: w.ID, seq: w.Seq, op: ChangeRemoved})
		}},
		{"RemoveProducts", func(t *testing.T, d *Dataset) []want {
			var out []want
			for _, id := range d.RemoveProducts(2, 2) {
				out = append(out, want{kind: AdminProducts, id: id, op: ChangeRemoved, noSeq: true})
			}
			return out
		}},
		{"BulkRemovals", func(t *testing.T, d *Dataset) []want {
			var out []want
			for _, r := range []struct {
				kind string
				fn   func(at, n int) []string
			}{{AdminCustomers, d.RemoveCustomers}, {AdminOrders, d.RemoveOrders}, {AdminTaxRates, d.RemoveTaxRates}, {AdminCurrencies, d.RemoveCurrencies}} {
				ids := r.fn(0, 1)
				if len(ids) != 1 {
					t.Fatalf("%s: removed %v", r.kind, ids)
				}
				out = append(out, want{kind: r.kind, id: ids[0], op: ChangeRemoved, noSeq: true})
			}
			return out
		}},
		{"RemoveInvoices", func(t *testing.T, d *Dataset) []want {
			var order RecordRef
			d.View(func(d *Dataset) {
				for _, o := range d.Orders {
					if o.Number == d.Invoices[0].OrderNumber {
						order = RecordRef{ID: o.ID, Seq: o.Seq}
					}
				}
			})
			ids := d.RemoveInvoices(0, 1)
			return []want{{kind: AdminOrders, id: order.ID, seq: order.Seq, op: ChangeUpdated}, {kind: AdminInvoices, id: ids[0], op: ChangeRemoved, noSeq: true}}
		}},
		{"NotifyInsideUpdate", func(t *testing.T, d *Dataset) []want {
			var out []want
			d.Update(func(d *Dataset) {
				c := *d.Customers[0]
				c.Meta = Meta{ID: "new-customer", Seq: 99, Created: d.Stamp(), Modified: d.Stamp()}
				d.Customers = append(d.Customers, &c)
				d.Notify(AdminCustomers, c.ID, ChangeCreated)
				out = append(out, want{kind: AdminCustomers, id: c.ID, seq: 99, op: ChangeCreated})
				// A record that is not there (removed by hand) has no
				// sequence number to report.
				d.Notify(AdminOrders, "gone-order", ChangeRemoved)
				out = append(out, want{kind: AdminOrders, id: "gone-order", op: ChangeRemoved})
			})
			return out
		}},
		{"NoChangeNoEvent", func(t *testing.T, d *Dataset) []want {
			// Failed changes and a plain Update (without Notify) emit
			// nothing; nor do reads.
			if _, err := d.Touch("widgets", "x"); !errors.Is(err, ErrUnknownKind) {
				t.Errorf("Touch of an unknown kind: %v", err)
			}
			if _, err := d.Mark(AdminProducts, "nope", true, true); !errors.Is(err, ErrNotFound) {
				t.Errorf("Mark of an unknown id: %v", err)
			}
			if _, err := d.Remove(AdminOrders, "nope"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Remove of an unknown id: %v", err)
			}
			if d.TouchProduct("nope") || d.DeleteProduct("nope") {
				t.Errorf("an unknown product was changed")
			}
			if err := d.RemoveStock(ref(t, d, AdminProducts, 0).ID, "WH9"); !errors.Is(err, ErrNotFound) {
				t.Errorf("RemoveStock of an unknown warehouse: %v", err)
			}
			d.Update(func(d *Dataset) { d.Products[0].Name = "quiet" })
			d.View(func(*Dataset) {})
			_, _ = d.Refs(AdminProducts)
			_, _ = d.Record(AdminProducts, ref(t, d, AdminProducts, 0).ID)
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := feedDataset()
			var r record
			cancel := d.Subscribe(r.add)
			defer cancel()
			wants := tc.change(t, d)
			got := r.changes()
			if len(got) != len(wants) {
				t.Fatalf("%d changes %v, want %d %v", len(got), got, len(wants), wants)
			}
			for i, w := range wants {
				g := got[i]
				if g.Kind != w.kind || g.ID != w.id || g.Op != w.op || (!w.noSeq && g.Seq != w.seq) {
					t.Errorf("change %d = %s %s/%s (seq %d), want %s", i, g.Op, g.Kind, g.ID, g.Seq, w)
				}
				if !g.At.Equal(feedNow) {
					t.Errorf("change %d stamped %v, want the dataset's clock %v", i, g.At, feedNow)
				}
			}
		})
	}
}

// TestSubscribeCancel: every subscriber is told of every change until it
// cancels; a cancelled one is told of nothing more, twice cancelling is
// harmless, and a subscriber that queues (never calls the dataset) can read
// the changed record afterwards.
func TestSubscribeCancel(t *testing.T) {
	d := feedDataset()
	var a, b record
	cancelA := d.Subscribe(a.add)
	cancelB := d.Subscribe(b.add)
	id := ref(t, d, AdminProducts, 0).ID
	d.TouchProduct(id)
	cancelA()
	cancelA()
	d.TouchProduct(id)
	if n := len(a.changes()); n != 1 {
		t.Errorf("a cancelled subscriber was told of %d changes, want 1", n)
	}
	if n := len(b.changes()); n != 2 {
		t.Errorf("a subscriber was told of %d changes, want 2", n)
	}
	cancelB()
	d.TouchProduct(id)
	if n := len(b.changes()); n != 2 {
		t.Errorf("after cancelling: %d changes", n)
	}
	// Reading after the change sees the changed record.
	for _, c := range a.changes() {
		p, err := d.Record(c.Kind, c.ID)
		if err != nil || !strings.Contains(p.(*Product).Name, "rev") {
			t.Errorf("reading the changed record: %v %v", p, err)
		}
	}
}

// ---- the Deliverer ----

// receiver is a scripted webhook receiver: it answers each request with
// the status reply gives for it (1-based request count) and keeps what it
// saw; block, when set, holds each request until it is closed or the
// request ends.
type receiver struct {
	mu    sync.Mutex
	seen  []Delivery
	reply func(n int) int
	block chan struct{}
	// active and maxActive count concurrent requests.
	active, maxActive atomic.Int32
}

func newReceiver(t *testing.T, reply func(n int) int) (*receiver, *httptest.Server) {
	t.Helper()
	r := &receiver{reply: reply}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	a := r.active.Add(1)
	defer r.active.Add(-1)
	for {
		m := r.maxActive.Load()
		if a <= m || r.maxActive.CompareAndSwap(m, a) {
			break
		}
	}
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.seen = append(r.seen, Delivery{URL: req.URL.String(), Header: req.Header.Clone(), Body: body})
	n := len(r.seen)
	block := r.block
	r.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-req.Context().Done():
			return
		}
	}
	status := http.StatusOK
	if r.reply != nil {
		status = r.reply(n)
	}
	w.WriteHeader(status)
}

func (r *receiver) deliveries() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

func (r *receiver) bodies() []string {
	var out []string
	for _, d := range r.deliveries() {
		out = append(out, string(d.Body))
	}
	return out
}

// fakeSleep records the vendor-time waits of retries and takes no time.
type fakeSleep struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (f *fakeSleep) sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.waits = append(f.waits, d)
	return nil
}

func (f *fakeSleep) slept() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.waits)
}

// until polls cond every millisecond for at most five seconds.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// body builds a delivery of a fixed body to url.
func body(url, s string) func() Delivery {
	return func() Delivery { return Delivery{URL: url, Body: []byte(s)} }
}

// settled reports whether every enqueued delivery has ended, and that the
// counters account for all n of them.
func settled(d *Deliverer, n int64) bool {
	s := d.Stats()
	return d.Pending() == 0 && s.Delivered.Load()+s.Failed.Load()+s.Dropped.Load() == n
}

// TestDelivererOrderAndBuild: deliveries arrive in order, one at a time;
// build runs lazily on the delivery goroutine, once per delivery; headers
// are sent, with a JSON content type unless the vendor sets one.
func TestDelivererOrderAndBuild(t *testing.T) {
	r, srv := newReceiver(t, nil)
	d := NewDeliverer(srv.Client(), DeliveryPolicy{}, (&fakeSleep{}).sleep, nil)
	defer d.Close()
	var built atomic.Int32
	const n = 30
	for i := range n {
		d.Enqueue(func() Delivery {
			built.Add(1)
			h := http.Header{"X-Seq": {fmt.Sprint(i)}}
			if i == 0 {
				h.Set("Content-Type", "text/plain")
			}
			return Delivery{URL: srv.URL + "/hook", Header: h, Body: []byte(fmt.Sprintf(`{"n":%d}`, i))}
		})
	}
	until(t, "the deliveries", func() bool { return settled(d, n) })
	got := r.deliveries()
	if len(got) != n || built.Load() != n {
		t.Fatalf("%d deliveries, %d builds, want %d", len(got), built.Load(), n)
	}
	for i, g := range got {
		if string(g.Body) != fmt.Sprintf(`{"n":%d}`, i) || g.Header.Get("X-Seq") != fmt.Sprint(i) || g.URL != "/hook" {
			t.Errorf("delivery %d: %s %s %v", i, g.URL, g.Body, g.Header)
		}
		want := "application/json"
		if i == 0 {
			want = "text/plain"
		}
		if ct := g.Header.Get("Content-Type"); ct != want {
			t.Errorf("delivery %d: content type %q, want %q", i, ct, want)
		}
	}
	if m := r.maxActive.Load(); m != 1 {
		t.Errorf("%d deliveries in flight at once, want one at a time", m)
	}
	s := d.Stats()
	if s.Delivered.Load() != n || s.Attempts.Load() != n || s.Failed.Load() != 0 || s.Dropped.Load() != 0 {
		t.Errorf("stats: delivered %d attempts %d failed %d dropped %d", s.Delivered.Load(), s.Attempts.Load(), s.Failed.Load(), s.Dropped.Load())
	}
}

// TestDelivererRetries: a refused delivery is repeated after each of the
// policy's waits (vendor time), with the same body, and counted once.
func TestDelivererRetries(t *testing.T) {
	retries := []time.Duration{time.Minute, 5 * time.Minute, time.Hour}
	for _, tc := range []struct {
		name string
		// fails is how many attempts the receiver refuses first.
		fails     int
		delivered bool
		attempts  int
	}{
		{"FirstTry", 0, true, 1},
		{"SecondTry", 1, true, 2},
		{"LastTry", 3, true, 4},
		{"GivesUp", 10, false, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, srv := newReceiver(t, func(n int) int {
				if n <= tc.fails {
					return http.StatusInternalServerError
				}
				return http.StatusOK
			})
			var sl fakeSleep
			var built atomic.Int32
			d := NewDeliverer(srv.Client(), DeliveryPolicy{Retries: retries}, sl.sleep, nil)
			defer d.Close()
			d.Enqueue(func() Delivery {
				built.Add(1)
				return Delivery{URL: srv.URL, Body: []byte(`{"event":1}`)}
			})
			until(t, "the delivery", func() bool { return settled(d, 1) })
			s := d.Stats()
			if got := int(s.Attempts.Load()); got != tc.attempts || len(r.deliveries()) != tc.attempts {
				t.Errorf("%d attempts (%d seen), want %d", got, len(r.deliveries()), tc.attempts)
			}
			if tc.delivered != (s.Delivered.Load() == 1) || tc.delivered == (s.Failed.Load() == 1) {
				t.Errorf("delivered %d failed %d, want delivered=%v", s.Delivered.Load(), s.Failed.Load(), tc.delivered)
			}
			if w := sl.slept(); !slices.Equal(w, retries[:tc.attempts-1]) {
				t.Errorf("waited %v, want %v", w, retries[:tc.attempts-1])
			}
			if built.Load() != 1 {
				t.Errorf("built %d times: a repeat must resend the same delivery", built.Load())
			}
			for _, b := range r.bodies() {
				if b != `{"event":1}` {
					t.Errorf("a repeat sent %q", b)
				}
			}
		})
	}
}

// TestDelivererOK: the vendor's idea of success decides, default any 2xx.
func TestDelivererOK(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		ok     func(int) bool
		want   bool
	}{
		{"Default204", http.StatusNoContent, nil, true},
		{"Default302", http.StatusFound, nil, false},
		{"Default401", http.StatusUnauthorized, nil, false},
		{"Only200Refuses202", http.StatusAccepted, func(s int) bool { return s == 200 }, false},
		{"Only200", http.StatusOK, func(s int) bool { return s == 200 }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, srv := newReceiver(t, func(int) int { return tc.status })
			client := srv.Client()
			client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			d := NewDeliverer(client, DeliveryPolicy{OK: tc.ok}, (&fakeSleep{}).sleep, nil)
			defer d.Close()
			d.Enqueue(body(srv.URL, "{}"))
			until(t, "the delivery", func() bool { return settled(d, 1) })
			if got := d.Stats().Delivered.Load() == 1; got != tc.want {
				t.Errorf("status %d delivered=%v, want %v", tc.status, got, tc.want)
			}
		})
	}
}

// TestDelivererTimeout: a receiver slower than the vendor's timeout fails
// the attempt; the repeat succeeds once it answers in time.
func TestDelivererTimeout(t *testing.T) {
	r, srv := newReceiver(t, nil)
	r.block = make(chan struct{})
	var sl fakeSleep
	d := NewDeliverer(srv.Client(), DeliveryPolicy{Timeout: 50 * time.Millisecond, Retries: []time.Duration{time.Second}}, func(ctx context.Context, w time.Duration) error {
		// The receiver answers at once from the repeat on.
		r.mu.Lock()
		if r.block != nil {
			close(r.block)
			r.block = nil
		}
		r.mu.Unlock()
		return sl.sleep(ctx, w)
	}, nil)
	defer d.Close()
	start := time.Now()
	d.Enqueue(body(srv.URL, "{}"))
	until(t, "the delivery", func() bool { return settled(d, 1) })
	if s := d.Stats(); s.Delivered.Load() != 1 || s.Attempts.Load() != 2 {
		t.Errorf("delivered %d in %d attempts, want 1 in 2", s.Delivered.Load(), s.Attempts.Load())
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("a 50 ms timeout took %v", el)
	}
}

// TestDelivererDisables: a vendor that disables a subscription after
// DisableAfter deliveries failed in a row does so (and says so once),
// drops what was queued and what comes while it is off, and delivers again
// once switched back on, with a fresh failure count; a success ends a run
// of failures.
func TestDelivererDisables(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	r, srv := newReceiver(t, func(int) int {
		if failing.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	var changes []bool
	var cmu sync.Mutex
	d := NewDeliverer(srv.Client(), DeliveryPolicy{Retries: []time.Duration{time.Minute}, DisableAfter: 3}, (&fakeSleep{}).sleep, func(off bool) {
		cmu.Lock()
		defer cmu.Unlock()
		changes = append(changes, off)
	})
	defer d.Close()
	enq := int64(0)
	send := func(s string) { enq++; d.Enqueue(body(srv.URL, s)) }

	// Two failures, a success, two failures: no run of three.
	send("f1")
	send("f2")
	until(t, "two failures", func() bool { return settled(d, enq) })
	failing.Store(false)
	send("ok1")
	until(t, "a success", func() bool { return settled(d, enq) })
	failing.Store(true)
	send("f3")
	send("f4")
	until(t, "two more failures", func() bool { return settled(d, enq) })
	if d.Disabled() {
		t.Fatalf("disabled after runs of two failures (DisableAfter 3)")
	}
	// The third in a row disables it and drops the queue behind it.
	r.mu.Lock()
	r.block = make(chan struct{})
	r.mu.Unlock()
	send("f5")
	until(t, "the fifth delivery in flight", func() bool { return len(r.deliveries()) == 9 })
	send("queued1")
	send("queued2")
	r.mu.Lock()
	close(r.block)
	r.block = nil
	r.mu.Unlock()
	until(t, "the subscription disabled", func() bool { return d.Disabled() && settled(d, enq) })
	s := d.Stats()
	if s.Failed.Load() != 5 || s.Delivered.Load() != 1 || s.Dropped.Load() != 2 || s.Attempts.Load() != 11 {
		t.Errorf("failed %d delivered %d dropped %d attempts %d, want 5, 1, 2, 11", s.Failed.Load(), s.Delivered.Load(), s.Dropped.Load(), s.Attempts.Load())
	}
	seen := len(r.deliveries())
	send("while off")
	if !settled(d, enq) || s.Dropped.Load() != 3 || len(r.deliveries()) != seen {
		t.Errorf("a disabled subscription delivered: dropped %d, seen %d (was %d)", s.Dropped.Load(), len(r.deliveries()), seen)
	}
	// Switched back on: the receiver is still down, and two failures are
	// not yet three; then it is up and deliveries flow.
	d.SetDisabled(false)
	send("f6")
	send("f7")
	until(t, "failures after re-enabling", func() bool { return settled(d, enq) })
	if d.Disabled() {
		t.Errorf("re-enabled subscription disabled by two failures: the count did not start afresh")
	}
	failing.Store(false)
	send("ok2")
	until(t, "a delivery after re-enabling", func() bool { return settled(d, enq) })
	if got := r.bodies(); got[len(got)-1] != "ok2" || s.Delivered.Load() != 2 {
		t.Errorf("after re-enabling: last delivery %q, delivered %d", got[len(got)-1], s.Delivered.Load())
	}
	cmu.Lock()
	if !slices.Equal(changes, []bool{true, false}) {
		t.Errorf("onChange told %v, want [true false]", changes)
	}
	cmu.Unlock()
	// Switching off by hand drops what is queued; switching on twice tells
	// once.
	d.SetDisabled(true)
	d.SetDisabled(true)
	d.SetDisabled(false)
	cmu.Lock()
	if !slices.Equal(changes, []bool{true, false, true, false}) {
		t.Errorf("onChange told %v after switching by hand", changes)
	}
	cmu.Unlock()
}

// TestDelivererNeverDisables: without DisableAfter, failures never switch
// the subscription off.
func TestDelivererNeverDisables(t *testing.T) {
	_, srv := newReceiver(t, func(int) int { return http.StatusInternalServerError })
	d := NewDeliverer(srv.Client(), DeliveryPolicy{Retries: []time.Duration{time.Second}}, (&fakeSleep{}).sleep, nil)
	defer d.Close()
	for i := range 20 {
		d.Enqueue(body(srv.URL, fmt.Sprint(i)))
	}
	until(t, "twenty failures", func() bool { return settled(d, 20) })
	if d.Disabled() || d.Stats().Failed.Load() != 20 || d.Stats().Attempts.Load() != 40 {
		t.Errorf("disabled=%v failed %d attempts %d", d.Disabled(), d.Stats().Failed.Load(), d.Stats().Attempts.Load())
	}
}

// TestDelivererPendingAndBound: Pending counts the delivery in flight as
// well as the queue; a full queue drops (and counts) what does not fit.
func TestDelivererPendingAndBound(t *testing.T) {
	r, srv := newReceiver(t, nil)
	r.block = make(chan struct{})
	d := NewDeliverer(srv.Client(), DeliveryPolicy{}, (&fakeSleep{}).sleep, nil)
	defer d.Close()
	d.Enqueue(body(srv.URL, "first"))
	until(t, "the first delivery in flight", func() bool { return len(r.deliveries()) == 1 })
	if p := d.Pending(); p != 1 {
		t.Errorf("Pending with one delivery in flight = %d, want 1", p)
	}
	for i := range MaxQueuedDeliveries + 5 {
		d.Enqueue(body(srv.URL, fmt.Sprint(i)))
	}
	if p, dr := d.Pending(), d.Stats().Dropped.Load(); p != MaxQueuedDeliveries+1 || dr != 5 {
		t.Errorf("Pending %d dropped %d, want %d and 5", p, dr, MaxQueuedDeliveries+1)
	}
	r.mu.Lock()
	close(r.block)
	r.block = nil
	r.mu.Unlock()
	until(t, "the queue drained", func() bool { return settled(d, MaxQueuedDeliveries+6) })
	if got := d.Stats().Delivered.Load(); got != MaxQueuedDeliveries+1 {
		t.Errorf("delivered %d, want %d", got, MaxQueuedDeliveries+1)
	}
}

// TestDelivererClose: Close returns promptly even while a repeat waits on
// real time, drops what is queued (counted), is safe to repeat, and a
// delivery enqueued afterwards is dropped rather than left pending.
func TestDelivererClose(t *testing.T) {
	_, srv := newReceiver(t, func(int) int { return http.StatusInternalServerError })
	d := NewDeliverer(srv.Client(), DeliveryPolicy{Retries: []time.Duration{time.Hour}}, nil, nil)
	for i := range 3 {
		d.Enqueue(body(srv.URL, fmt.Sprint(i)))
	}
	until(t, "the first attempt", func() bool { return d.Stats().Attempts.Load() == 1 })
	start := time.Now()
	d.Close()
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Close took %v while a repeat waited an hour", el)
	}
	d.Close()
	d.Enqueue(body(srv.URL, "late"))
	if !settled(d, 4) || d.Stats().Dropped.Load() != 4 || d.Stats().Failed.Load() != 0 {
		t.Errorf("after Close: pending %d dropped %d failed %d, want 0, 4, 0", d.Pending(), d.Stats().Dropped.Load(), d.Stats().Failed.Load())
	}
}

// TestFeedToDeliverer wires the change feed to a Deliverer the way a
// vendor's simulator does: the subscriber only queues, build reads the
// dataset when the delivery is made (outside the dataset's lock), and a
// change made while deliveries are under way is delivered too.
func TestFeedToDeliverer(t *testing.T) {
	d := feedDataset()
	r, srv := newReceiver(t, nil)
	del := NewDeliverer(srv.Client(), DeliveryPolicy{}, (&fakeSleep{}).sleep, nil)
	defer del.Close()
	cancel := d.Subscribe(func(c Change) {
		del.Enqueue(func() Delivery {
			var name string
			if c.Kind == AdminProducts {
				if rec, err := d.Record(c.Kind, c.ID); err == nil {
					name = rec.(*Product).Name
				}
			}
			// A change made from the delivery goroutine must not
			// deadlock: the feed never holds the lock while delivering.
			if c.Op == ChangeCreated {
				d.TouchCustomers(1)
			}
			return Delivery{URL: srv.URL, Body: []byte(fmt.Sprintf("%s %s/%s %s", c.Op, c.Kind, c.ID, name))}
		})
	})
	defer cancel()
	ids := d.TouchProducts(3)
	p := d.AddProduct()
	ids = append(ids, p.ID)
	until(t, "the deliveries", func() bool { return len(r.deliveries()) == 5 && del.Pending() == 0 })
	got := r.bodies()
	for i, id := range ids {
		if !strings.Contains(got[i], "products/"+id+" Product ") {
			t.Errorf("delivery %d = %q, want product %s with its name", i, got[i], id)
		}
	}
	if !strings.HasPrefix(got[3], "created ") || !strings.HasPrefix(got[4], "updated customers/") {
		t.Errorf("deliveries %q", got)
	}
}

// TestDelivererToldBeforeIdle: once Pending reads 0 after a failure that
// disabled the subscription, onChange has returned: a simulator that
// records the disabling (its subscription API, its own state) has done so
// before a test that waited for the deliveries looks.
func TestDelivererToldBeforeIdle(t *testing.T) {
	_, srv := newReceiver(t, func(int) int { return http.StatusInternalServerError })
	var told atomic.Bool
	d := NewDeliverer(srv.Client(), DeliveryPolicy{DisableAfter: 1}, (&fakeSleep{}).sleep, func(off bool) {
		time.Sleep(30 * time.Millisecond)
		told.Store(off)
	})
	defer d.Close()
	d.Enqueue(body(srv.URL, "{}"))
	until(t, "the failed delivery", func() bool { return settled(d, 1) })
	if !d.Disabled() || !told.Load() {
		t.Errorf("Pending read 0 with disabled=%t and onChange told=%t, want both", d.Disabled(), told.Load())
	}
}
