package unleashed_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/connectortest"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/connectors/unleashed"
	"github.com/erpsync/erpsync-operator/connectors/unleashed/sim"
	"github.com/erpsync/erpsync-operator/internal/engine"
)

// instant is a vendor sleep that does not wait: retries run at once.
func instant(ctx context.Context, _ time.Duration) error { return ctx.Err() }

// receiver is a webhook endpoint that checks each delivery with the codec,
// as the manager's receiver does, and keeps the events it accepted.
type receiver struct {
	srv  *httptest.Server
	keys atomic.Pointer[map[string][]byte]
	// fail makes it answer 500 (a receiver that is down).
	fail atomic.Bool

	mu       sync.Mutex
	events   []connectors.WebhookEvent
	bodies   []delivered
	rejected int
}

type delivered struct {
	h    http.Header
	body []byte
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if r.fail.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		keys := r.keys.Load()
		if keys == nil || unleashed.Webhooks.Verify(req.Header, body, *keys, time.Now()) != nil {
			r.mu.Lock()
			r.rejected++
			r.mu.Unlock()
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		evs, err := unleashed.Webhooks.Parse(req.Header, body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.events = append(r.events, evs...)
		r.bodies = append(r.bodies, delivered{req.Header.Clone(), body})
		r.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) url() string { return r.srv.URL + "/webhooks/unleashed/6f1c2a9e-erpsync-uid" }

// wait returns the accepted events once there are at least n.
func (r *receiver) wait(t *testing.T, n int) []connectors.WebhookEvent {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r.mu.Lock()
		got := append([]connectors.WebhookEvent(nil), r.events...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d webhook events arrived, want %d", len(got), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *receiver) reset() {
	r.mu.Lock()
	r.events, r.bodies, r.rejected = nil, nil, 0
	r.mu.Unlock()
}

// subscribe registers the receiver through the connector and hands it the
// keys: the credentials Secret with the webhook Secret merged over it.
func subscribe(t *testing.T, e *env, r *receiver, entities ...model.Kind) *connectors.WebhookRegistration {
	t.Helper()
	keys := map[string][]byte{connectors.WebhookKeyCredential: []byte("operator-random-credential")}
	for k, v := range e.sim.Credentials() {
		keys[k] = []byte(v)
	}
	if old := r.keys.Load(); old != nil {
		for k, v := range *old {
			keys[k] = v
		}
	}
	if len(entities) == 0 {
		entities = []model.Kind{model.KindProduct, model.KindCustomer, model.KindContact}
	}
	reg, err := e.conn.(connectors.WebhookRegistrar).EnsureWebhooks(context.Background(), connectors.WebhookTarget{URL: r.url(), Keys: keys, Entities: entities})
	if err != nil {
		t.Fatalf("EnsureWebhooks: %v", err)
	}
	for k, v := range reg.Keys {
		keys[k] = v
	}
	r.keys.Store(&keys)
	return reg
}

// countingReader counts ReadDocs calls.
type countingReader struct {
	*unleashed.Connector
	reads atomic.Int64
}

func (c *countingReader) ReadDocs(ctx context.Context, entity model.Kind, ids []string) (*connectors.Page, error) {
	c.reads.Add(1)
	return c.Connector.ReadDocs(ctx, entity, ids)
}

func targetsOf(evs []connectors.WebhookEvent) []engine.Target {
	out := make([]engine.Target, 0, len(evs))
	for _, ev := range evs {
		out = append(out, engine.Target{Entity: ev.Entity, ID: ev.ID, Deleted: ev.Deleted})
	}
	return out
}

func (e *env) targeted(t *testing.T, conn connectors.Connector, targets []engine.Target) engine.TargetedResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := engine.Targeted(ctx, engine.Run{Company: company, Vendor: unleashed.Type, Connector: conn, Sink: e.sink}, targets)
	if err != nil {
		t.Fatalf("targeted sync: %v", err)
	}
	return res
}

// checkCurrent checks that the sink holds the vendor's current version of
// each id of kind (the scenario suite's checks).
func checkCurrent(t *testing.T, e *env, ids map[string]bool) {
	t.Helper()
	for _, w := range expected(e.sim) {
		if !ids[w.VendorID] {
			continue
		}
		r, ok := e.sink.Get(model.Key{Company: company, Vendor: unleashed.Type, Kind: w.Kind, VendorID: w.VendorID})
		if !ok {
			t.Errorf("%s %s is not in the CRM", w.Kind, w.VendorID)
			continue
		}
		if r.Deleted != w.Deleted {
			t.Errorf("%s %s deleted=%v, want %v", w.Kind, w.VendorID, r.Deleted, w.Deleted)
		}
		if w.Check != nil {
			if err := w.Check(&r); err != nil {
				t.Errorf("%s %s is stale: %v", w.Kind, w.VendorID, err)
			}
		}
	}
}

func newWebhookEnv(t *testing.T, data simkit.Options) *env {
	t.Helper()
	e := newEnv(t, envOpts{data: data, sim: sim.Options{WebhookSleep: instant}})
	t.Cleanup(e.sim.CloseWebhooks)
	return e
}

// TestWebhooksEndToEnd changes records in the simulator, receives its
// signed deliveries, checks and parses them with the codec and runs the
// targeted sync they start: the CRM then equals Unleashed for every record
// named, an edit costs one call, a removal becomes a tombstone.
func TestWebhooksEndToEnd(t *testing.T) {
	e := newWebhookEnv(t, simkit.Options{Seed: 7, Products: 60, Customers: 20, Orders: 10})
	if _, err := e.run(t, nil, model.KindProduct, model.KindCustomer); err != nil {
		t.Fatalf("full import: %v", err)
	}
	r := newReceiver(t)
	subscribe(t, e, r)

	d := e.sim.Dataset()
	ids := d.ProductIDs()
	edited, obsolete := ids[3], ids[4]
	d.TouchProduct(edited)
	added := d.AddProduct()
	d.DeleteProduct(obsolete)
	removed := d.RemoveProducts(10, 1)[0]
	touched := d.TouchCustomers(1)[0]
	custOfContact, droppedContact := d.DropContact(5)
	d.TouchOrders(3) // sales orders: no event

	r.wait(t, 6)
	time.Sleep(50 * time.Millisecond) // nothing more may come
	evs := r.wait(t, 6)
	if len(evs) != 6 {
		t.Fatalf("%d events, want 6: %+v", len(evs), evs)
	}
	byID := map[string]connectors.WebhookEvent{}
	for _, ev := range evs {
		byID[ev.ID] = ev
	}
	for id, want := range map[string]string{edited: "product.updated", added.ID: "product.created", obsolete: "product.updated",
		removed: "product.deleted", touched: "customer.updated", custOfContact: "customer.updated"} {
		if byID[id].Type != want {
			t.Errorf("event for %s: %q, want %q", id, byID[id].Type, want)
		}
	}
	if !byID[removed].Deleted || byID[edited].Deleted {
		t.Errorf("Deleted flags: removed %v, edited %v", byID[removed].Deleted, byID[edited].Deleted)
	}

	distinct := map[string]bool{}
	for _, ev := range evs {
		distinct[ev.ID] = true
	}
	res := e.targeted(t, e.conn, targetsOf(evs))
	if res.Targets != len(distinct) || res.Deleted != 1 {
		t.Fatalf("targeted sync: %+v, want %d targets and 1 tombstone", res, len(distinct))
	}
	if res.Calls > 2*int64(len(evs)) {
		t.Fatalf("%d calls for %d events, want at most 2 an event", res.Calls, len(evs))
	}
	checkCurrent(t, e, map[string]bool{edited: true, added.ID: true, obsolete: true, touched: true, custOfContact: true})
	rec, ok := e.sink.Get(model.Key{Company: company, Vendor: unleashed.Type, Kind: model.KindProduct, VendorID: removed})
	if !ok || !rec.Deleted || rec.DeletedVia != model.DeletedByWebhook {
		t.Fatalf("removed product in the CRM: %+v (found %v), want deleted by webhook", rec, ok)
	}
	if rec, ok := e.sink.Get(model.Key{Company: company, Vendor: unleashed.Type, Kind: model.KindProduct, VendorID: obsolete}); !ok || !rec.Deleted {
		t.Fatalf("obsolete product: %+v, want its vendor marker", rec)
	}
	if rec, ok := e.sink.Get(model.Key{Company: company, Vendor: unleashed.Type, Kind: model.KindContact, VendorID: droppedContact}); !ok || !rec.Deleted {
		t.Fatalf("contact dropped from its customer: %+v (found %v), want deleted", rec, ok)
	}

	// A replayed delivery is accepted inside the window and costs at most
	// one more read of the same document.
	r.mu.Lock()
	again := r.bodies[0]
	r.mu.Unlock()
	req, _ := http.NewRequest(http.MethodPost, r.url(), strings.NewReader(string(again.body)))
	req.Header = again.h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	all := r.wait(t, 7)
	res = e.targeted(t, e.conn, targetsOf(all[6:]))
	if res.Calls != 1 {
		t.Fatalf("a replayed event cost %d calls, want 1", res.Calls)
	}
}

// TestWebhookStorm: 200 edits give 200 signed deliveries, and the targeted
// sync they start reads 200 documents in ceil(200/MaxDocsPerRead) reads,
// one call an event.
func TestWebhookStorm(t *testing.T) {
	e := newWebhookEnv(t, simkit.Options{Seed: 9, Products: 250, Customers: 5, Orders: 5})
	if _, err := e.run(t, nil, model.KindProduct); err != nil {
		t.Fatalf("full import: %v", err)
	}
	r := newReceiver(t)
	subscribe(t, e, r, model.KindProduct)
	start := time.Now()
	d := e.sim.Dataset()
	edited := d.ProductIDs()[:200]
	for _, id := range edited {
		d.TouchProduct(id)
	}
	evs := r.wait(t, 200)
	t.Logf("200 deliveries in %v", time.Since(start))
	ids := map[string]bool{}
	for _, id := range edited {
		ids[id] = true
	}
	start = time.Now()
	cr := &countingReader{Connector: e.conn.(*unleashed.Connector)}
	res := e.targeted(t, cr, targetsOf(evs))
	t.Logf("targeted sync of %d documents in %v", len(ids), time.Since(start))
	if len(ids) != 200 {
		t.Fatalf("%d products edited", len(ids))
	}
	per := cr.MaxDocsPerRead(model.KindProduct)
	if want := int64((len(ids) + per - 1) / per); cr.reads.Load() != want {
		t.Fatalf("%d reads for %d documents, want %d", cr.reads.Load(), len(ids), want)
	}
	if res.Calls != int64(len(ids)) || res.Targets != len(ids) {
		t.Fatalf("targeted sync %+v, want %d targets in as many calls", res, len(ids))
	}
	checkCurrent(t, e, ids)
	if r.rejected != 0 {
		t.Fatalf("%d authentic deliveries refused", r.rejected)
	}
}

// TestWebhookRegistration runs EnsureWebhooks and RemoveWebhooks against the
// simulator's subscription API.
func TestWebhookRegistration(t *testing.T) {
	e := newWebhookEnv(t, simkit.Options{Seed: 3, Products: 10, Customers: 5, Orders: 5})
	rg := e.conn.(connectors.WebhookRegistrar)
	ctx := context.Background()
	r := newReceiver(t)
	mine := func() []sim.WebhookSubscription {
		var out []sim.WebhookSubscription
		for _, s := range e.sim.WebhookSubscriptions() {
			if s.URL == r.url() {
				out = append(out, s)
			}
		}
		return out
	}
	quota := e.sim.QuotaUsed()
	calls := func() int { n := e.sim.QuotaUsed() - quota; quota = e.sim.QuotaUsed(); return n }

	reg := subscribe(t, e, r)
	if reg.Created != 1 || reg.Subscriptions != 1 || reg.Calls != 2 || len(reg.Keys[connectors.WebhookKeyToken]) == 0 {
		t.Fatalf("first registration %+v, want one created in 2 calls with its key", reg)
	}
	if n := calls(); n != reg.Calls {
		t.Fatalf("the simulator counted %d calls, the registrar %d", n, reg.Calls)
	}
	subs := mine()
	if len(subs) != 1 || string(reg.Keys[connectors.WebhookKeyToken]) != subs[0].SignatureKey || string(reg.Keys[unleashed.KeyWebhookSubscription]) != subs[0].ID {
		t.Fatalf("subscriptions %+v, keys %q", subs, reg.Keys)
	}
	sort.Strings(subs[0].EventTypes)
	if got := strings.Join(subs[0].EventTypes, " "); got != "customer.created customer.deleted customer.updated product.created product.deleted product.updated" {
		t.Fatalf("events %q", got)
	}

	t.Run("idempotent", func(t *testing.T) {
		reg := subscribe(t, e, r)
		if reg.Calls != 1 || reg.Created+reg.Reenabled != 0 || reg.Keys != nil || reg.Subscriptions != 1 || len(mine()) != 1 {
			t.Fatalf("second registration %+v, want one list call and nothing made", reg)
		}
		calls()
	})

	t.Run("lost key", func(t *testing.T) {
		old := mine()[0]
		keys := *r.keys.Load()
		delete(keys, connectors.WebhookKeyToken)
		r.keys.Store(&keys)
		reg := subscribe(t, e, r)
		now := mine()
		if reg.Created != 1 || reg.Calls != 3 || len(now) != 1 || now[0].ID == old.ID || now[0].SignatureKey == old.SignatureKey {
			t.Fatalf("registration %+v, subscriptions %+v: want the old one replaced", reg, now)
		}
		calls()
	})

	t.Run("duplicate removed", func(t *testing.T) {
		// A second subscription to the same URL whose key we do not hold
		// (made by hand, or by a manager that lost its Secret): the
		// registrar deletes it and keeps its own.
		rawCreate(t, e, r.url())
		if len(mine()) != 2 {
			t.Fatalf("%d subscriptions, want the duplicate made", len(mine()))
		}
		calls()
		reg := subscribe(t, e, r)
		if reg.Created != 0 || reg.Calls != 2 || calls() != 2 || len(mine()) != 1 {
			t.Fatalf("registration %+v with %d subscriptions, want the duplicate deleted and ours kept", reg, len(mine()))
		}
	})

	t.Run("entities changed", func(t *testing.T) {
		reg := subscribe(t, e, r, model.KindProduct)
		now := mine()
		if reg.Created != 1 || len(now) != 1 || strings.Join(now[0].EventTypes, " ") != "product.created product.deleted product.updated" {
			t.Fatalf("registration %+v, subscriptions %+v", reg, now)
		}
		reg = subscribe(t, e, r)
		if reg.Created != 1 || len(mine()) != 1 || len(mine()[0].EventTypes) != 6 {
			t.Fatalf("registration back to both %+v", reg)
		}
		calls()
	})

	t.Run("disabled by the vendor after failed deliveries", func(t *testing.T) {
		old := mine()[0]
		r.fail.Store(true)
		e.sim.Dataset().TouchProducts(1)
		d := e.sim.WebhookDeliverer(old.ID)
		deadline := time.Now().Add(10 * time.Second)
		for !d.Disabled() {
			if time.Now().After(deadline) {
				t.Fatalf("not disabled after %d attempts", d.Stats().Attempts.Load())
			}
			time.Sleep(2 * time.Millisecond)
		}
		if got, want := d.Stats().Attempts.Load(), int64(len(sim.DefaultDelivery.Retries)+1); got != want {
			t.Fatalf("%d attempts before disabling, want %d", got, want)
		}
		if !mine()[0].Disabled {
			t.Fatal("the subscription list does not show it disabled")
		}
		r.fail.Store(false)
		reg := subscribe(t, e, r)
		now := mine()
		if reg.Reenabled != 1 || reg.Created != 0 || len(now) != 1 || now[0].Disabled || now[0].ID == old.ID || len(reg.Keys) == 0 {
			t.Fatalf("registration %+v, subscriptions %+v: want the disabled one replaced", reg, now)
		}
		// Deliveries flow again, signed with the new key.
		r.reset()
		e.sim.Dataset().TouchProducts(1)
		r.wait(t, 1)
		calls()
	})

	t.Run("vendor switched off by hand", func(t *testing.T) {
		old := mine()[0]
		if !e.sim.DisableWebhook(old.ID) {
			t.Fatal("no subscription to disable")
		}
		reg := subscribe(t, e, r)
		if reg.Reenabled != 1 || len(mine()) != 1 || mine()[0].Disabled {
			t.Fatalf("registration %+v", reg)
		}
		calls()
	})

	t.Run("five per account", func(t *testing.T) {
		others := []string{}
		for i := 0; len(e.sim.WebhookSubscriptions()) < sim.MaxWebhookSubscriptions; i++ {
			u := r.srv.URL + "/other/" + string(rune('a'+i))
			if _, err := rg.EnsureWebhooks(ctx, connectors.WebhookTarget{URL: u, Entities: []model.Kind{model.KindCustomer}}); err != nil {
				t.Fatal(err)
			}
			others = append(others, u)
		}
		calls()
		reg, err := rg.EnsureWebhooks(ctx, connectors.WebhookTarget{URL: r.srv.URL + "/sixth", Entities: []model.Kind{model.KindProduct}})
		var ce *connectors.Error
		if !errors.As(err, &ce) || ce.Kind != connectors.KindInvalidConfig || !strings.Contains(err.Error(), "5") {
			t.Fatalf("sixth subscription: %v, want InvalidConfig naming the cap", err)
		}
		if reg.Calls != 1 || calls() != 1 || len(e.sim.WebhookSubscriptions()) != sim.MaxWebhookSubscriptions {
			t.Fatalf("sixth subscription cost %d calls and left %d subscriptions", reg.Calls, len(e.sim.WebhookSubscriptions()))
		}
		// Ours is still kept at the cap (it is one of the five).
		if reg := subscribe(t, e, r); reg.Calls != 1 || reg.Subscriptions != 1 {
			t.Fatalf("ours at the cap: %+v", reg)
		}
		for _, u := range others {
			if _, err := rg.RemoveWebhooks(ctx, u); err != nil {
				t.Fatal(err)
			}
		}
		calls()
	})

	t.Run("remove", func(t *testing.T) {
		keep := r.srv.URL + "/someone-else"
		if _, err := rg.EnsureWebhooks(ctx, connectors.WebhookTarget{URL: keep, Entities: []model.Kind{model.KindProduct}}); err != nil {
			t.Fatal(err)
		}
		calls()
		n, err := rg.RemoveWebhooks(ctx, r.url())
		if err != nil || n != 2 || calls() != 2 {
			t.Fatalf("RemoveWebhooks: %d calls, %v", n, err)
		}
		if len(mine()) != 0 || len(e.sim.WebhookSubscriptions()) != 1 || e.sim.WebhookSubscriptions()[0].URL != keep {
			t.Fatalf("left %+v", e.sim.WebhookSubscriptions())
		}
		// No entity with events: nothing to subscribe, nothing left.
		reg, err := rg.EnsureWebhooks(ctx, connectors.WebhookTarget{URL: keep, Entities: []model.Kind{model.KindSalesOrder}})
		if err != nil || reg.Subscriptions != 0 || len(e.sim.WebhookSubscriptions()) != 0 {
			t.Fatalf("registration without event entities: %+v, %v, left %d", reg, err, len(e.sim.WebhookSubscriptions()))
		}
	})
}

// rawCreate makes a subscription straight through the simulator's API.
func rawCreate(t *testing.T, e *env, target string) {
	t.Helper()
	body := `{"description":"someone","notificationUrl":"` + target + `","eventTypes":["product.updated"]}`
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/webhooks/subscriptions", strings.NewReader(body))
	creds := e.sim.Credentials()
	req.Header.Set("api-auth-id", creds["apiId"])
	req.Header.Set("api-auth-signature", sim.Sign("", creds["apiKey"]))
	req.Header.Set("client-type", "test/test")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d", resp.StatusCode)
	}
}

// TestHarnessWebhooks checks the suite's webhook environment: Subscribe
// registers through the connector, deliveries verify on the suite's clock
// with the keys it returns, and each announced kind reaches its stream.
func TestHarnessWebhooks(t *testing.T) {
	clock := httpapi.NewFakeClock(connectortest.Start)
	env := harness{}.Start(t, simkit.Options{Seed: 5, Products: 20, Customers: 5, Orders: 3}, clock)
	w := env.Webhooks
	if w == nil || w.Codec.Routing() != connectors.RouteByPath || w.Tenant != "" {
		t.Fatalf("webhook env %+v", w)
	}
	var mu sync.Mutex
	var evs []connectors.WebhookEvent
	var keys map[string][]byte
	rcv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if err := w.Codec.Verify(r.Header, body, keys, clock.Now()); err != nil {
			rw.WriteHeader(http.StatusUnauthorized)
			return
		}
		got, err := w.Codec.Parse(r.Header, body)
		if err != nil {
			rw.WriteHeader(http.StatusBadRequest)
			return
		}
		evs = append(evs, got...)
	}))
	t.Cleanup(rcv.Close)
	mu.Lock()
	var d *simkit.Deliverer
	keys, d = w.Subscribe(t, httpapi.NewRegistry(nil), rcv.URL+"/hook")
	mu.Unlock()
	p := env.Data.ProductIDs()[0]
	env.Data.TouchProduct(p)
	c := env.Data.TouchCustomers(1)[0]
	deadline := time.Now().Add(10 * time.Second)
	for d.Stats().Delivered.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("delivered %d, failed %d", d.Stats().Delivered.Load(), d.Stats().Failed.Load())
		}
		time.Sleep(2 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(evs) != 2 || evs[0].Entity != w.Kinds[simkit.AdminProducts] || evs[0].ID != p || evs[1].Entity != w.Kinds[simkit.AdminCustomers] || evs[1].ID != c {
		t.Fatalf("events %+v", evs)
	}
}
