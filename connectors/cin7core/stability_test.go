package cin7core_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/cin7core"
	"github.com/erpsync/erpsync-operator/connectors/connectortest"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/internal/engine"
	"github.com/erpsync/erpsync-operator/sinks/memory"
)

// fakeWorld is the harness's simulator and connector on a fake clock, for
// the Cin7 Core specific tests beside the shared suite.
type fakeWorld struct {
	env   *connectortest.Env
	clock *httpapi.FakeClock
	conn  connectors.Connector
	sink  *memory.Sink
	state []engine.EntityState
}

func newFakeWorld(t *testing.T, ds simkit.Options) *fakeWorld {
	t.Helper()
	clock := httpapi.NewFakeClock(connectortest.Start)
	env := harness{}.Start(t, ds, clock)
	return &fakeWorld{env: env, clock: clock, conn: env.Connect(t, httpapi.NewRegistry(nil)), sink: memory.New()}
}

func (w *fakeWorld) run(t *testing.T, full bool) engine.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := engine.Execute(ctx, engine.Run{Connector: w.conn, Sink: w.sink, State: w.state, Now: w.clock.Now, Full: full})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	w.state = res.State
	return res
}

func (w *fakeWorld) get(k model.Kind, id string) (model.Record, bool) {
	return w.sink.Get(model.Key{Company: connectortest.Company, Vendor: cin7core.Type, Kind: k, VendorID: id})
}

// TestPagesCountDocuments: a page names the vendor documents it held (the
// units the envelope's Total counts), not its records: a customer with two
// contacts and a price counts once.
func TestPagesCountDocuments(t *testing.T) {
	w := newFakeWorld(t, simkit.Options{Seed: 4, Products: 30, Customers: 12, Orders: 10, Warehouses: 2})
	want := map[model.Kind]func(d *simkit.Dataset) []string{
		model.KindCustomer: func(d *simkit.Dataset) (ids []string) {
			for _, c := range d.Customers {
				ids = append(ids, c.ID)
			}
			return ids
		},
		model.KindProduct: func(d *simkit.Dataset) (ids []string) {
			for _, p := range d.Products {
				ids = append(ids, p.ID)
			}
			return ids
		},
		model.KindStockLevel: func(d *simkit.Dataset) (ids []string) {
			names := map[string]string{}
			for _, wh := range d.Warehouses {
				names[wh.Code] = wh.Name
			}
			for _, p := range d.Products {
				for _, st := range p.Stock {
					ids = append(ids, p.ID+"/"+names[st.WarehouseCode])
				}
			}
			return ids
		},
	}
	for kind, ids := range want {
		t.Run(string(kind), func(t *testing.T) {
			p, err := w.conn.ListPage(context.Background(), connectors.PageRequest{Entity: kind, Page: 1})
			if err != nil {
				t.Fatal(err)
			}
			var wantIDs []string
			w.env.Data.View(func(d *simkit.Dataset) { wantIDs = ids(d) })
			if p.Total != len(wantIDs) || strings.Join(p.Docs, ",") != strings.Join(wantIDs, ",") {
				t.Errorf("Total %d, Docs %v; want %d, %v", p.Total, p.Docs, len(wantIDs), wantIDs)
			}
			if kind == model.KindCustomer && len(p.Records) <= len(p.Docs) {
				t.Errorf("%d records for %d customers: contacts and prices missing", len(p.Records), len(p.Docs))
			}
		})
	}
}

// TestIdleCycleRewritesNothing: kinds without a vendor modified time (tax
// rules, locations, stock levels) are stamped with the response's date, but
// their documents hold nothing that changes per response, so an idle
// incremental cycle reads every stock row and writes none, in whatever
// order the rows come (nothing in a document depends on its position).
func TestIdleCycleRewritesNothing(t *testing.T) {
	for _, unstable := range []bool{false, true} {
		t.Run(map[bool]string{false: "stable order", true: "unstable order"}[unstable], func(t *testing.T) {
			w := newFakeWorld(t, simkit.Options{Seed: 5, Products: 900, Customers: 40, Orders: 30})
			w.run(t, false)
			w.env.Base.SetUnstable(unstable)
			w.clock.Advance(15 * time.Minute)
			res := w.run(t, false)
			var rows int64
			w.env.Data.View(func(d *simkit.Dataset) {
				for _, p := range d.Products {
					rows += int64(len(p.Stock))
				}
			})
			if res.Records[model.KindStockLevel] < rows {
				t.Fatalf("the idle cycle read %d stock rows, want all %d", res.Records[model.KindStockLevel], rows)
			}
			if res.Upserted != 0 {
				t.Errorf("an idle cycle upserted %d records, want 0 (%d stock rows re-read)", res.Upserted, rows)
			}
		})
	}
}

// TestFullResyncRepairsChangesTheCustomerTimeHides: Cin7 Core keeps no
// modified time of its own for a customer's contacts and custom prices;
// they carry the customer's LastModifiedOn. A change to one that leaves the
// customer's time alone is invisible to ModifiedSince, so an incremental
// sync misses it; a full resync reads it with the same modified time and
// different content, which the sinks' content hash writes.
func TestFullResyncRepairsChangesTheCustomerTimeHides(t *testing.T) {
	w := newFakeWorld(t, simkit.Options{Seed: 6, Products: 40, Customers: 10, Orders: 10})
	w.run(t, false)
	var customerID, contactID, productID, price, email string
	w.env.Data.Update(func(d *simkit.Dataset) {
		p := d.Products[3]
		p.SpecialPrices[0].Price = "1234.50" // the product's time stays, as the customer's
		productID, customerID, price = p.ID, p.SpecialPrices[0].CustomerID, "1234.5"
		for _, c := range d.Customers {
			if c.ID == customerID {
				c.Contacts[0].Email = "new.buyer@example.com"
				contactID, email = c.Contacts[0].ID, c.Contacts[0].Email
			}
		}
	})
	w.clock.Advance(10 * time.Minute)
	w.run(t, false)
	rule, _ := w.get(model.KindPriceRule, customerID+"/"+productID)
	contact, _ := w.get(model.KindContact, contactID)
	if string(rule.Data.(*model.PriceRule).Price) == price || contact.Data.(*model.Contact).Email == email {
		t.Fatalf("an incremental sync saw a change that bumped no modified time; the simulator no longer models Cin7 Core")
	}
	res := w.run(t, true)
	rule, _ = w.get(model.KindPriceRule, customerID+"/"+productID)
	contact, _ = w.get(model.KindContact, contactID)
	if got := string(rule.Data.(*model.PriceRule).Price); got != price {
		t.Errorf("after a full resync the price rule says %s, the ERP %s", got, price)
	}
	if got := contact.Data.(*model.Contact).Email; got != email {
		t.Errorf("after a full resync the contact says %s, the ERP %s", got, email)
	}
	// The customer's document holds both, so it changed too.
	if res.Upserted != 3 {
		t.Errorf("the full resync upserted %d records, want 3 (the customer, its contact and its price)", res.Upserted)
	}
}

// TestAdvancedSaleCreditNoteIsSetAside: a credit note row of an Advanced
// Sale (a sale type Cin7 Core documents, with several credit notes per
// sale) cannot be keyed by its sale: it is set aside with its raw row and a
// bounded reason, and the rest of the stream lands.
func TestAdvancedSaleCreditNoteIsSetAside(t *testing.T) {
	w := newFakeWorld(t, simkit.Options{Seed: 7, Products: 40, Customers: 20, Orders: 60})
	kind, id := w.env.SetAside()
	res := w.run(t, false)
	items := w.sink.SetAsideItems()
	if len(items) != 1 || items[0].Kind != kind || items[0].VendorID != id || items[0].Vendor != cin7core.Type ||
		items[0].Company != connectortest.Company || len(items[0].Raw) == 0 || items[0].ModifiedAt.IsZero() {
		t.Fatalf("set aside %+v, want one %s %s", items, kind, id)
	}
	if r := items[0].Reason; r == "" || len(r) > model.MaxReasonLen || !strings.Contains(r, "Advanced Sale") {
		t.Errorf("reason %q", r)
	}
	if _, ok := w.get(model.KindCreditNote, id); ok {
		t.Errorf("the set-aside credit note was stored as a record too")
	}
	if res.SetAside != 1 {
		t.Errorf("the run counted %d set aside, want 1", res.SetAside)
	}
	connectortest.RequireEqual(t, cin7core.Type, w.sink, w.env, "with one credit note set aside")
}

// TestUnstableOrderImport measures an import while every list request
// comes back in a fresh order (the reported Cin7 Core behaviour): no pass
// that read fewer distinct documents than the vendor's Total advances its
// watermark, lists that fit one page are complete in one pass, and the CRM
// ends equal to the ERP. The calls it took are logged (go test -v).
func TestUnstableOrderImport(t *testing.T) {
	w := newFakeWorld(t, simkit.Options{Seed: 8, Products: 2500, Customers: 600, Orders: 600})
	w.env.Base.SetUnstable(true)
	var calls int64
	for run := 1; ; run++ {
		before := map[model.Kind]time.Time{}
		for _, s := range w.state {
			before[s.Name] = s.Watermark
		}
		res := w.run(t, false)
		calls += res.Calls
		for _, k := range res.Incomplete {
			if k == model.KindCustomer || k == model.KindSalesOrder || k == model.KindTaxRate || k == model.KindWarehouse {
				t.Errorf("run %d: %s fits one page of %d yet was incomplete", run, k, cin7core.MaxPageSize)
			}
			for _, s := range res.State {
				if s.Name == k && !s.Watermark.Equal(before[k]) {
					t.Errorf("run %d: %s read short (%s) yet moved its watermark from %v to %v", run, k, s.Incomplete, before[k], s.Watermark)
				}
			}
		}
		d := connectortest.Compare(w.sink, cin7core.Type, w.env.Expected())
		t.Logf("run %d: %d calls (%d in all), incomplete %v, CRM: %s", run, res.Calls, calls, res.Incomplete, d)
		if d.OK() {
			break
		}
		if run == 5 {
			t.Fatalf("the CRM still differs from the ERP after %d runs: %s", run, d)
		}
		w.clock.Advance(5 * time.Minute)
	}
}

// TestDeprecatedRecordsArriveDeleted: Cin7 Core's deletion markers
// (Status Deprecated, IsActive false, IsDeprecated, VOIDED sales and credit
// notes) arrive as deleted records, and a deprecated customer's contacts and
// prices with it.
func TestDeprecatedRecordsArriveDeleted(t *testing.T) {
	w := newFakeWorld(t, simkit.Options{Seed: 9, Products: 60, Customers: 30, Orders: 40})
	w.env.Data.Update(func(d *simkit.Dataset) {
		d.Customers[3].Deleted = true
		d.Suppliers[1].Deleted = true
		d.Orders[0].Deleted = true // the first order has an invoice and a credit note
		d.Warehouses[2].Deleted = true
		d.TaxRates[1].Deleted = true
		d.CreditNotes[0].Deleted = true
	})
	w.run(t, false)
	connectortest.RequireEqual(t, cin7core.Type, w.sink, w.env, "after an import with deprecated records")
	deleted := map[model.Kind]int{}
	for _, r := range w.sink.Records() {
		if r.Deleted {
			deleted[r.Kind]++
		}
	}
	for _, k := range []model.Kind{model.KindCustomer, model.KindContact, model.KindPriceRule, model.KindSupplier, model.KindSalesOrder,
		model.KindInvoice, model.KindCreditNote, model.KindWarehouse, model.KindTaxRate, model.KindProduct} {
		if deleted[k] == 0 {
			t.Errorf("no deleted %s arrived", k)
		}
	}
}

// TestEntitiesSayWhichAreIncremental: the streams with a documented
// modified filter are incremental; the reference lists and stock are read
// in full.
func TestEntitiesSayWhichAreIncremental(t *testing.T) {
	w := newFakeWorld(t, simkit.Options{Seed: 10, Products: 3, Customers: 2, Orders: 2})
	incremental := map[model.Kind]bool{model.KindSupplier: true, model.KindCustomer: true, model.KindProduct: true,
		model.KindSalesOrder: true, model.KindCreditNote: true}
	for _, e := range w.conn.Entities() {
		if e.Incremental != incremental[e.Name] {
			t.Errorf("%s: Incremental=%v", e.Name, e.Incremental)
		}
	}
}

// TestIncrementalRunMarksVendorDeletions: records Cin7 Core deprecates or
// voids after an import reach the CRM deleted on the next incremental run,
// by the vendor's marker, and the children of a deprecated customer or a
// voided sale with them. The simulator stamps the change, as Cin7 Core's
// filters describe it ("modified since", "changed after"): see "Deletions"
// in docs/connectors/cin7core.md for what rests on that.
func TestIncrementalRunMarksVendorDeletions(t *testing.T) {
	w := newFakeWorld(t, simkit.Options{Seed: 13, Products: 40, Customers: 20, Orders: 30})
	w.run(t, false)
	w.clock.Advance(time.Minute)
	type gone struct {
		kind model.Kind
		id   string
	}
	var marked []gone
	var customer, sale string
	w.env.Data.Update(func(d *simkit.Dataset) {
		pick := func(n int, deleted func(i int) bool) int {
			for i := 0; i < n; i++ {
				if !deleted(i) {
					return i
				}
			}
			t.Fatalf("no live record to delete")
			return -1
		}
		c := d.Customers[pick(len(d.Customers), func(i int) bool { return d.Customers[i].Deleted || len(d.Customers[i].Contacts) == 0 })]
		c.Deleted, c.Modified = true, d.Stamp()
		customer = c.ID
		sp := d.Suppliers[pick(len(d.Suppliers), func(i int) bool { return d.Suppliers[i].Deleted })]
		sp.Deleted, sp.Modified = true, d.Stamp()
		o := d.Orders[pick(len(d.Orders), func(i int) bool { return d.Orders[i].Deleted })]
		o.Deleted, o.Modified = true, d.Stamp()
		sale = o.ID
		cn := d.CreditNotes[pick(len(d.CreditNotes), func(i int) bool { return d.CreditNotes[i].Deleted })]
		cn.Deleted, cn.Modified = true, d.Stamp()
		marked = append(marked, gone{model.KindCustomer, c.ID}, gone{model.KindSupplier, sp.ID}, gone{model.KindSalesOrder, o.ID})
	})
	pid := w.env.Data.ProductIDs()[1]
	if !w.env.Data.DeleteProduct(pid) {
		t.Fatal("no product to deprecate")
	}
	marked = append(marked, gone{model.KindProduct, pid})
	for _, g := range marked {
		if r, ok := w.get(g.kind, g.id); !ok || r.Deleted {
			t.Fatalf("%s %s: before the run stored %v deleted %v", g.kind, g.id, ok, r.Deleted)
		}
	}
	w.clock.Advance(time.Minute)
	w.run(t, false)
	connectortest.RequireEqual(t, cin7core.Type, w.sink, w.env, "after an incremental run with deprecated and voided records")
	for _, g := range marked {
		r, ok := w.get(g.kind, g.id)
		if !ok || !r.Deleted || r.DeletedVia != model.DeletedByVendor {
			t.Errorf("%s %s: stored %v deleted %v via %q, want deleted by the vendor's marker", g.kind, g.id, ok, r.Deleted, r.DeletedVia)
		}
	}
	children := 0
	for _, r := range w.sink.Records() {
		if r.Parent != customer && r.Parent != sale {
			continue
		}
		children++
		if !r.Deleted {
			t.Errorf("%s %s of deleted %s is live", r.Kind, r.VendorID, r.ParentKind)
		}
	}
	if children == 0 {
		t.Errorf("the deprecated customer and the voided sale have no stored children to check")
	}
}
