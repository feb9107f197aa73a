package katana

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/connectortest"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/katana/sim"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/internal/engine"
	"github.com/erpsync/erpsync-operator/sinks/memory"
)

// inbox is a receiver that keeps every delivery and answers 200.
type inbox struct {
	mu  sync.Mutex
	got []delivery
	srv *httptest.Server
}

type delivery struct {
	header http.Header
	body   []byte
}

func newInbox(t *testing.T) *inbox {
	in := &inbox{}
	in.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		in.mu.Lock()
		in.got = append(in.got, delivery{r.Header.Clone(), b})
		in.mu.Unlock()
	}))
	t.Cleanup(in.srv.Close)
	return in
}

// take waits for n new deliveries and returns them.
func (in *inbox) take(t *testing.T, n int) []delivery {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		in.mu.Lock()
		if len(in.got) >= n {
			out := in.got[:n:n]
			in.got = slices.Clone(in.got[n:])
			in.mu.Unlock()
			return out
		}
		have := len(in.got)
		in.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries, want %d", have, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// webhookWorld is the harness's simulator with a CRM imported in full and
// the ErpSync's webhook registered to an inbox.
type webhookWorld struct {
	env   *connectortest.Env
	reg   *httpapi.Registry
	sink  *memory.Sink
	clock *httpapi.FakeClock
	in    *inbox
	keys  map[string][]byte
	d     *simkit.Deliverer
}

func newWebhookWorld(t *testing.T) *webhookWorld {
	t.Helper()
	w := &webhookWorld{clock: httpapi.NewFakeClock(testStart), reg: httpapi.NewRegistry(nil), sink: memory.New()}
	w.env = harness{}.Start(t, simkit.Options{Seed: 11, Products: 400, Customers: 20, Orders: 40}, w.clock)
	if _, err := engine.Execute(context.Background(), engine.Run{Company: connectortest.Company, Vendor: Type, Connector: w.env.Connect(t, w.reg),
		Sink: w.sink, Now: w.clock.Now, Log: testr.New(t)}); err != nil {
		t.Fatalf("import: %v", err)
	}
	w.in = newInbox(t)
	w.keys, w.d = w.env.Webhooks.Subscribe(t, w.reg, w.in.srv.URL)
	return w
}

// receive verifies and parses deliveries as the receiver does.
func (w *webhookWorld) receive(t *testing.T, ds []delivery) []engine.Target {
	t.Helper()
	var out []engine.Target
	for _, d := range ds {
		if err := w.env.Webhooks.Codec.Verify(d.header, d.body, w.keys, w.clock.Now()); err != nil {
			t.Fatalf("a simulator delivery does not verify: %v", err)
		}
		evs, err := w.env.Webhooks.Codec.Parse(d.header, d.body)
		if err != nil {
			t.Fatalf("parse %s: %v", d.body, err)
		}
		for _, e := range evs {
			out = append(out, engine.Target{Entity: e.Entity, ID: e.ID, Deleted: e.Deleted})
		}
	}
	return out
}

// sync runs a targeted sync on a fresh connector (a new sync's).
func (w *webhookWorld) sync(t *testing.T, targets []engine.Target) engine.TargetedResult {
	t.Helper()
	res, err := engine.Targeted(context.Background(), engine.Run{Company: connectortest.Company, Vendor: Type, Connector: w.env.Connect(t, w.reg),
		Sink: w.sink, Now: w.clock.Now, Log: testr.New(t)}, targets)
	if err != nil {
		t.Fatalf("targeted sync: %v", err)
	}
	return res
}

// check compares the sink with the vendor for the records of the given
// products (variant ids) and orders.
func (w *webhookWorld) check(t *testing.T, variants, orders []string) {
	t.Helper()
	want := map[model.Key]connectortest.Want{}
	for _, x := range w.env.Expected() {
		want[model.Key{Company: connectortest.Company, Vendor: Type, Kind: x.Kind, VendorID: x.VendorID}] = x
	}
	for kind, ids := range map[model.Kind][]string{model.KindProduct: variants, model.KindSalesOrder: orders} {
		for _, id := range ids {
			k := model.Key{Company: connectortest.Company, Vendor: Type, Kind: kind, VendorID: id}
			r, ok := w.sink.Get(k)
			x, exists := want[k]
			switch {
			case !ok:
				t.Errorf("%s %s is not in the CRM", kind, id)
			case !exists:
				if !r.Deleted {
					t.Errorf("%s %s is gone from Katana but live in the CRM", kind, id)
				}
			case r.Deleted != x.Deleted:
				t.Errorf("%s %s: deleted %v in the CRM, %v in Katana", kind, id, r.Deleted, x.Deleted)
			case x.Check != nil:
				if err := x.Check(&r); err != nil {
					t.Errorf("%s %s: %v", kind, id, err)
				}
			}
		}
	}
}

func vid(p simkit.Product) string { return strconv.Itoa(sim.VariantID(p.Seq)) }

// TestWebhooksEndToEnd changes records in the simulator, receives the
// deliveries it sends, verifies and parses them with the codec and runs the
// engine's targeted sync: the CRM then equals Katana for those records,
// within two calls per event; a tampered delivery is refused; a duplicate
// costs no extra read; a storm costs one read per 250 documents.
func TestWebhooksEndToEnd(t *testing.T) {
	w := newWebhookWorld(t)
	d := w.env.Data
	var ps []simkit.Product
	var os []simkit.Document
	var sup simkit.Supplier
	d.View(func(d *simkit.Dataset) {
		for _, p := range d.Products[:5] {
			ps = append(ps, *p)
		}
		for _, o := range d.Orders[:4] {
			os = append(os, *o)
		}
		sup = *d.Suppliers[0]
	})
	s := func(id int) string { return strconv.Itoa(id) }

	// Edit, create, delete (marked, removed, quietly) products, a
	// material and orders.
	d.TouchProduct(ps[0].ID)
	added := d.AddProduct()
	d.DeleteProduct(ps[1].ID)
	d.RemoveProducts(2, 1) // ps[2], hard
	if _, err := d.Mark(simkit.AdminProducts, ps[3].ID, true, false); err != nil {
		t.Fatal(err)
	}
	_, _ = d.Touch(simkit.AdminSuppliers, sup.ID)
	_, _ = d.Touch(simkit.AdminOrders, os[0].ID)
	_, _ = d.Mark(simkit.AdminOrders, os[1].ID, true, true)
	_, _ = d.Remove(simkit.AdminOrders, os[2].ID)
	// 1 + 2 + 2 + 2 + 2 + 1 + 1 + 1 + 1
	got := w.in.take(t, 13)
	slices.Reverse(got) // order does not matter: every read is of now
	targets := w.receive(t, got)
	res := w.sync(t, targets)
	if res.Calls > 2*int64(len(targets)) || res.Calls != 4 {
		t.Errorf("%d calls for %d events, want 4 (variants, products, materials, orders)", res.Calls, len(targets))
	}
	if res.Deleted < 2 {
		t.Errorf("%d tombstones, want the removed product's variant and the removed order", res.Deleted)
	}
	w.check(t, []string{vid(ps[0]), vid(added), vid(ps[1]), vid(ps[2]), vid(ps[3]), strconv.Itoa(sim.MaterialVariantID(sup.Seq))},
		[]string{s(os[0].Seq), s(os[1].Seq), s(os[2].Seq)})
	if tb, ok := w.sink.Tombstone(model.Key{Company: connectortest.Company, Vendor: Type, Kind: model.KindProduct, VendorID: vid(ps[2])}); !ok || tb.Via != model.DeletedByWebhook {
		t.Errorf("the removed product's variant: tombstone %+v, %v; want one by webhook", tb, ok)
	}

	// A tampered delivery, one signed with another token, and one with no
	// token held are refused; nothing is read.
	_, _ = d.Touch(simkit.AdminOrders, os[3].ID)
	one := w.in.take(t, 1)[0]
	tampered := slices.Clone(one.body)
	tampered[len(tampered)-2] ^= 1
	for name, keys := range map[string]map[string][]byte{"tampered": w.keys, "other token": {connectors.WebhookKeyToken: []byte("0000000000000000")}} {
		body := one.body
		if name == "tampered" {
			body = tampered
		}
		if err := Webhooks.Verify(one.header, body, keys, w.clock.Now()); !errors.Is(err, connectors.ErrWebhookSignature) {
			t.Errorf("%s: %v, want ErrWebhookSignature", name, err)
		}
	}
	if err := Webhooks.Verify(one.header, one.body, map[string][]byte{"apiKey": []byte("k")}, w.clock.Now()); err == nil || errors.Is(err, connectors.ErrWebhookSignature) {
		t.Errorf("no token held: %v, want a missing-key error", err)
	}
	// The same delivery three times (Katana repeats, a replay): one read.
	res = w.sync(t, w.receive(t, []delivery{one, one, one}))
	if res.Calls != 1 || res.Targets != 1 {
		t.Errorf("duplicates: %d calls for %d targets, want 1 and 1", res.Calls, res.Targets)
	}
	w.check(t, nil, []string{s(os[3].Seq)})

	// Storms: 300 edits of 300 products cost two reads (250 a read); 200
	// edits of 10 products one.
	var ids []string
	d.View(func(d *simkit.Dataset) {
		for _, p := range d.Products[10:310] {
			ids = append(ids, p.ID)
		}
	})
	for _, id := range ids {
		d.TouchProduct(id)
	}
	targets = w.receive(t, w.in.take(t, len(ids)))
	res = w.sync(t, targets)
	if res.Calls != 2 || res.Targets != 300 {
		t.Errorf("storm of 300: %d calls, %d targets; want 2 and 300", res.Calls, res.Targets)
	}
	var variants []string
	d.View(func(d *simkit.Dataset) {
		for _, p := range d.Products[10:310] {
			variants = append(variants, vid(*p))
		}
	})
	w.check(t, variants, nil)
	for i := range 200 {
		d.TouchProduct(ids[i%10])
	}
	res = w.sync(t, w.receive(t, w.in.take(t, 200)))
	if res.Calls != 1 || res.Targets != 10 {
		t.Errorf("storm of 200 on 10: %d calls, %d targets; want 1 and 10", res.Calls, res.Targets)
	}
	w.check(t, variants[:10], nil)
	if st := w.d.Stats(); st.Failed.Load() != 0 || st.Dropped.Load() != 0 {
		t.Errorf("deliverer: %d failed, %d dropped", st.Failed.Load(), st.Dropped.Load())
	}
}
