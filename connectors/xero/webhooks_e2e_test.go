package xero

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/connectortest"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/internal/engine"
	"github.com/erpsync/erpsync-operator/sinks/memory"
)

// captured is one delivery as the receiver got it.
type captured struct {
	header http.Header
	body   []byte
}

// hookCapture is a receiver that keeps every delivery raw and answers 200
// with no body; events counts the events its deliveries name.
type hookCapture struct {
	mu         sync.Mutex
	deliveries []captured
	events     int
}

func (c *hookCapture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	evs, err := Webhooks.Parse(r.Header, body)
	c.mu.Lock()
	c.deliveries = append(c.deliveries, captured{header: r.Header.Clone(), body: body})
	if err == nil {
		c.events += len(evs)
	}
	c.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (c *hookCapture) since(n int) []captured {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.deliveries[n:])
}

func (c *hookCapture) count() (deliveries, events int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.deliveries), c.events
}

func (c *hookCapture) waitEvents(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, e := c.count(); e >= n {
			return
		}
		if time.Now().After(deadline) {
			_, e := c.count()
			t.Fatalf("timed out waiting for %d events; %d arrived", n, e)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWebhooksEndToEnd plays what the receiver and the controller will do
// with Xero's webhooks, against the simulator: after a full import,
// records change in Xero; the simulator's signed deliveries are verified
// with the keys an operator stores and parsed by the codec, and one
// targeted sync of the events they name (engine.Targeted) makes the CRM
// equal to Xero again — at most two calls per event, a storm costing one
// read per 50 distinct documents, duplicates and reordering costing
// nothing more, a forged delivery refused, and a contact removed outright
// (which Xero announces as an UPDATE, never as a deletion) left to
// reconciliation.
func TestWebhooksEndToEnd(t *testing.T) {
	ctx := context.Background()
	clock := httpapi.NewFakeClock(testStart)
	env := xeroHarness{}.Start(t, simkit.Options{Seed: 42, Products: 120, Customers: 80, Orders: 240}, clock)
	reg := httpapi.NewRegistry(nil)
	conn := env.Connect(t, reg)
	sink := memory.New()
	run := engine.Run{Company: connectortest.Company, Vendor: Type, Connector: conn, Sink: sink, Now: clock.Now, Log: testr.New(t)}
	if _, err := engine.Execute(ctx, run); err != nil {
		t.Fatalf("the import: %v", err)
	}
	connectortest.RequireEqual(t, Type, sink, env, "after the import")

	recv := &hookCapture{}
	srv := connectortest.Serve(t, recv)
	keys, deliverer := env.Webhooks.Subscribe(t, reg, srv.URL+"/webhooks/xero")
	if deliverer == nil || string(keys[connectors.WebhookKeyXero]) == "" || string(keys["clientId"]) == "" {
		t.Fatalf("Subscribe returned keys %v and deliverer %v", keys != nil, deliverer)
	}

	// process verifies and parses the deliveries from the n-th on (in the
	// given order, each as often as it appears) and runs one targeted sync
	// of their events; it returns the result and the events.
	process := func(t *testing.T, ds []captured) (engine.TargetedResult, []connectors.WebhookEvent) {
		t.Helper()
		var targets []engine.Target
		var events []connectors.WebhookEvent
		for _, d := range ds {
			evs, err := env.Webhooks.Codec.Parse(d.header, d.body)
			if err != nil {
				t.Fatalf("a delivery does not parse: %v", err)
			}
			if err := env.Webhooks.Codec.Verify(d.header, d.body, keys, clock.Now()); err != nil {
				t.Fatalf("a delivery does not verify: %v", err)
			}
			for _, e := range evs {
				if e.Tenant != env.Webhooks.Tenant || e.Deleted {
					t.Fatalf("event %+v: want tenant %s and no deletion", e, env.Webhooks.Tenant)
				}
				targets = append(targets, engine.Target{Entity: e.Entity, ID: e.ID, Deleted: e.Deleted})
			}
			events = append(events, evs...)
		}
		before := apiCalls(env)
		res, err := engine.Targeted(ctx, run, targets)
		if err != nil {
			t.Fatalf("the targeted sync: %v", err)
		}
		if got := apiCalls(env) - before; got != res.Calls {
			t.Fatalf("the targeted sync counted %d calls, the simulator saw %d", res.Calls, got)
		}
		return res, events
	}

	var step1 []captured
	t.Run("edits, creations and markers", func(t *testing.T) {
		var cust, supp, inv, cn []simkit.RecordRef
		for kind, refs := range map[string]*[]simkit.RecordRef{simkit.AdminCustomers: &cust, simkit.AdminSuppliers: &supp,
			simkit.AdminInvoices: &inv, simkit.AdminCreditNotes: &cn} {
			r, err := env.Data.Refs(kind)
			if err != nil || len(r) < 2 {
				t.Fatalf("%s: %d records, %v", kind, len(r), err)
			}
			*refs = r
		}
		must := func(_ any, err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(env.Data.Touch(simkit.AdminCustomers, cust[0].ID))
		must(env.Data.Touch(simkit.AdminSuppliers, supp[0].ID))
		must(env.Data.Mark(simkit.AdminCustomers, cust[1].ID, true, true))  // archived
		must(env.Data.Mark(simkit.AdminSuppliers, supp[1].ID, true, true))  // archived
		must(env.Data.Mark(simkit.AdminInvoices, inv[0].ID, true, true))    // voided
		must(env.Data.Touch(simkit.AdminInvoices, inv[1].ID))               //
		must(env.Data.Mark(simkit.AdminCreditNotes, cn[0].ID, true, false)) // voided, UpdatedDateUTC kept
		must(env.Data.Touch(simkit.AdminCreditNotes, cn[1].ID))             //
		const newID = "5e0f3c1a-7b2d-4c8e-9f10-a1b2c3d4e5f6"
		env.Data.Update(func(d *simkit.Dataset) {
			now := d.Stamp()
			d.Customers = append(d.Customers, &simkit.Customer{Meta: simkit.Meta{ID: newID, Seq: 100000, Created: now, Modified: now},
				Code: "NEW-1", Name: "New Customer Ltd", Email: "new@example.com", Phone: "+64 9 555 0001", Currency: "NZD"})
			d.Notify(simkit.AdminCustomers, newID, simkit.ChangeCreated)
		})
		if d := connectortest.Compare(sink, Type, env.Expected()); d.OK() {
			t.Fatalf("the changes left the CRM equal to Xero: the step proves nothing")
		}
		recv.waitEvents(t, 9)
		step1 = recv.since(0)
		res, events := process(t, step1)
		if len(events) != 9 {
			t.Fatalf("%d events, want 9", len(events))
		}
		if res.Calls > int64(2*len(events)) {
			t.Fatalf("%d calls for %d events", res.Calls, len(events))
		}
		connectortest.RequireEqual(t, Type, sink, env, "after the targeted sync")
		if r, ok := sink.Get(model.Key{Company: connectortest.Company, Vendor: Type, Kind: model.KindCustomer, VendorID: newID}); !ok || r.Deleted {
			t.Fatalf("the new customer: %+v, %v", r, ok)
		}
		t.Logf("%d events in %d deliveries: %d calls, %d records written", len(events), len(step1), res.Calls, res.Upserted)
	})

	t.Run("duplicates and reordering cost nothing more", func(t *testing.T) {
		twice := append(slices.Clone(step1), step1...)
		slices.Reverse(twice)
		res, events := process(t, twice)
		distinct := map[model.Key]bool{}
		for _, e := range events {
			distinct[model.Key{Kind: e.Entity, VendorID: e.ID}] = true
		}
		// Contacts and invoices: one IDs read each; credit notes: one GET each.
		want := int64(2)
		for k := range distinct {
			if k.Kind == model.KindCreditNote {
				want++
			}
		}
		if res.Calls > want {
			t.Fatalf("%d calls for %d events (%d distinct), want at most %d", res.Calls, len(events), len(distinct), want)
		}
		connectortest.RequireEqual(t, Type, sink, env, "after duplicates")
	})

	t.Run("a forged delivery is refused", func(t *testing.T) {
		d := step1[0]
		forged := append(slices.Clone(d.body[:len(d.body)-1]), ' ', '}')
		if err := env.Webhooks.Codec.Verify(d.header, forged, keys, clock.Now()); !errors.Is(err, connectors.ErrWebhookSignature) {
			t.Fatalf("Verify of a changed body = %v", err)
		}
		wrong := map[string][]byte{connectors.WebhookKeyXero: []byte("not the key")}
		if err := env.Webhooks.Codec.Verify(d.header, d.body, wrong, clock.Now()); !errors.Is(err, connectors.ErrWebhookSignature) {
			t.Fatalf("Verify with another key = %v", err)
		}
	})

	t.Run("a storm", func(t *testing.T) {
		n0, e0 := recv.count()
		custIDs := env.Data.TouchCustomers(200)
		invs, _ := env.Data.Refs(simkit.AdminInvoices)
		for _, r := range invs[:60] {
			if _, err := env.Data.Touch(simkit.AdminInvoices, r.ID); err != nil {
				t.Fatal(err)
			}
		}
		if d := connectortest.Compare(sink, Type, env.Expected()); d.Stale < 60 {
			t.Fatalf("the storm left %d records stale, want at least the 60 invoices", d.Stale)
		}
		recv.waitEvents(t, e0+260)
		n1, _ := recv.count()
		if n1-n0 > 10 {
			t.Fatalf("260 changes came in %d deliveries; Xero batches them", n1-n0)
		}
		res, events := process(t, recv.since(n0))
		distinctCust := len(uniq(custIDs))
		limit := int64(ceilDiv(distinctCust, maxIDsPerRead) + ceilDiv(60, maxIDsPerRead) + 2)
		if len(events) != 260 || res.Calls > limit {
			t.Fatalf("%d events (%d distinct contacts, 60 invoices): %d calls, want at most %d", len(events), distinctCust, res.Calls, limit)
		}
		connectortest.RequireEqual(t, Type, sink, env, "after the storm")
		t.Logf("260 changes: %d deliveries, %d calls", n1-n0, res.Calls)
	})

	t.Run("a contact removed outright is no deletion", func(t *testing.T) {
		_, e0 := recv.count()
		n0, _ := recv.count()
		refs, _ := env.Data.Refs(simkit.AdminCustomers)
		gone := refs[5].ID
		if _, err := env.Data.Remove(simkit.AdminCustomers, gone); err != nil {
			t.Fatal(err)
		}
		recv.waitEvents(t, e0+1)
		res, events := process(t, recv.since(n0))
		if len(events) != 1 || events[0].ID != gone || events[0].Type != "CONTACT.UPDATE" || res.Deleted != 0 {
			t.Fatalf("events %+v, %d deleted", events, res.Deleted)
		}
		if r, ok := sink.Get(model.Key{Company: connectortest.Company, Vendor: Type, Kind: model.KindCustomer, VendorID: gone}); !ok || r.Deleted {
			t.Fatalf("a webhook deleted %s (%+v, %v): only reconciliation may", gone, r, ok)
		}
	})
}

// apiCalls counts the Accounting API and identity requests the simulator
// of env saw.
func apiCalls(env *connectortest.Env) int64 {
	var n int64
	for _, c := range env.Base.Stats().ByPath() {
		n += c
	}
	return n
}

func uniq(ids []string) []string {
	s := slices.Clone(ids)
	slices.Sort(s)
	return slices.Compact(s)
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
