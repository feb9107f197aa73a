package unleashed_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/connectors/unleashed"
	"github.com/erpsync/erpsync-operator/connectors/unleashed/sim"
)

// listAll pages an id listing to its end.
func listAll(t *testing.T, c connectors.Connector, e model.Kind) (map[string]time.Time, []*connectors.IDPage) {
	t.Helper()
	l := c.(connectors.IDLister)
	ids := map[string]time.Time{}
	var pages []*connectors.IDPage
	cursor := ""
	for p := 1; ; p++ {
		if p > 100 {
			t.Fatalf("%s: the listing does not end", e)
		}
		page, err := l.ListIDs(context.Background(), connectors.PageRequest{Entity: e, Page: p, Cursor: cursor})
		if err != nil {
			t.Fatalf("%s ids page %d: %v", e, p, err)
		}
		pages = append(pages, page)
		for _, d := range page.Docs {
			ids[d.ID] = d.ModifiedAt
		}
		if !page.More {
			return ids, pages
		}
		cursor = page.Next
	}
}

// TestIDListingRequests: each listing asks for the largest page the
// connector uses and leaves out what brings deleted documents or children;
// it lists exactly the live documents with their modified times, reports
// NumberOfItems as its total and ends on the last page.
func TestIDListingRequests(t *testing.T) {
	for _, tc := range []struct {
		kind  model.Kind
		query string
		live  func(d *simkit.Dataset) map[string]time.Time
	}{
		{model.KindProduct, "/Products/%d?pageSize=50", func(d *simkit.Dataset) map[string]time.Time {
			m := map[string]time.Time{}
			for _, p := range d.Products {
				if !p.Deleted {
					m[p.ID] = p.Modified
				}
			}
			return m
		}},
		{model.KindCustomer, "/Customers/%d?pageSize=50", func(d *simkit.Dataset) map[string]time.Time {
			m := map[string]time.Time{}
			for _, c := range d.Customers {
				if !c.Deleted {
					m[c.ID] = c.Modified
				}
			}
			return m
		}},
		{model.KindSalesOrder, "/SalesOrders/%d?orderStatus=Parked,Placed,Backordered,Completed&pageSize=50", func(d *simkit.Dataset) map[string]time.Time {
			m := map[string]time.Time{}
			for _, o := range d.Orders {
				if !o.Deleted {
					m[o.ID] = o.Modified
				}
			}
			return m
		}},
		{model.KindInvoice, "/Invoices/%d?invoiceStatus=Parked,Completed&pageSize=50", func(d *simkit.Dataset) map[string]time.Time {
			m := map[string]time.Time{}
			for _, o := range d.Invoices {
				if !o.Deleted {
					m[o.ID] = o.Modified
				}
			}
			return m
		}},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			e := newEnv(t, envOpts{data: simkit.Options{Seed: 7, Products: 120, Customers: 120, Orders: 120}})
			// One of each obsolete or deleted, so the listing has some to
			// leave out.
			e.sim.Dataset().Update(func(d *simkit.Dataset) {
				d.Products[3].Deleted, d.Customers[3].Deleted, d.Orders[3].Deleted = true, true, true
				d.Invoices[3].Deleted = true
			})
			var want map[string]time.Time
			e.sim.Dataset().View(func(d *simkit.Dataset) { want = tc.live(d) })
			ids, pages := listAll(t, e.conn, tc.kind)
			if len(ids) != len(want) {
				t.Errorf("listed %d ids, want the %d live ones", len(ids), len(want))
			}
			for id, mod := range want {
				if got, ok := ids[id]; !ok || !got.Equal(mod) {
					t.Errorf("%s listed %v (%v), want modified %v", id, got, ok, mod)
				}
			}
			queries := e.rec.Queries()
			if wantPages := (len(want) + 49) / 50; len(pages) != wantPages || len(queries) != wantPages {
				t.Fatalf("%d pages in %d calls, want %d", len(pages), len(queries), wantPages)
			}
			for i, q := range queries {
				if w := fmt.Sprintf(tc.query, i+1); q != w {
					t.Errorf("request %q, want %q", q, w)
				}
				if pages[i].Total != len(want) || pages[i].Calls != 1 {
					t.Errorf("page %d: total %d calls %d, want %d and 1", i+1, pages[i].Total, pages[i].Calls, len(want))
				}
			}
			info, ok := e.conn.(connectors.IDLister).IDListing(tc.kind)
			if !ok || info.PageSize != 50 || !strings.Contains(info.Endpoint, "pageSize=50") {
				t.Errorf("IDListing %+v %v", info, ok)
			}
		})
	}
}

// TestIDListingNotForFullEntities: entities read in full every sync have
// no listing.
func TestIDListingNotForFullEntities(t *testing.T) {
	e := newEnv(t, envOpts{})
	l := e.conn.(connectors.IDLister)
	for _, k := range []model.Kind{model.KindTaxRate, model.KindCurrency, model.KindSalesPerson, model.KindSupplier, model.KindContact} {
		if _, ok := l.IDListing(k); ok {
			t.Errorf("%s has an id listing", k)
		}
		if _, err := l.ListIDs(context.Background(), connectors.PageRequest{Entity: k, Page: 1}); connectors.KindOf(err) != connectors.KindInvalidConfig {
			t.Errorf("%s: ListIDs error %v", k, err)
		}
	}
}

// TestStockIDListing: stock rows are listed warehouse by warehouse (there
// is nothing smaller): one call for the warehouses and each warehouse's
// pages, the position carried in Next, every row's id and modified time as
// a read gives them.
func TestStockIDListing(t *testing.T) {
	e := newEnv(t, envOpts{})
	want := map[string]time.Time{}
	e.sim.Dataset().View(func(d *simkit.Dataset) {
		wh := map[string]string{}
		for _, w := range d.Warehouses {
			wh[w.Code] = w.ID
		}
		for _, p := range d.Products {
			for _, st := range p.Stock {
				want[p.ID+"/"+wh[st.WarehouseCode]] = st.Modified
			}
		}
	})
	ids, pages := listAll(t, e.conn, model.KindStockLevel)
	if len(ids) != len(want) || len(want) != 360 {
		t.Fatalf("listed %d stock rows, want %d (360)", len(ids), len(want))
	}
	for id, mod := range want {
		if !ids[id].Equal(mod) {
			t.Errorf("%s listed %v, want %v", id, ids[id], mod)
		}
	}
	calls := 0
	for _, p := range pages {
		calls += p.Calls
		if p.Total != 360 {
			t.Errorf("total %d, want 360", p.Total)
		}
	}
	// 1 (warehouses) + 3 warehouses × ceil(120/50) pages.
	if calls != 1+3*3 || int(e.sim.Stats().Requests.Load()) != calls {
		t.Errorf("the stock listing cost %d calls (simulator %d), want 10", calls, e.sim.Stats().Requests.Load())
	}
}

// TestIDListingPassesTheVendorsWord: a vendor whose lists lose their tail
// (simkit's list share) is listed as it lies, total included, so that the
// engine's mass-deletion guard sees it; and a total the items do not add up
// to is reported as Unleashed gives it, so the engine applies no deletion.
func TestIDListingPassesTheVendorsWord(t *testing.T) {
	e := newEnv(t, envOpts{})
	live := 0
	e.sim.Dataset().View(func(d *simkit.Dataset) {
		for _, p := range d.Products {
			if !p.Deleted {
				live++
			}
		}
	})
	e.sim.SetListShare(50)
	ids, pages := listAll(t, e.conn, model.KindProduct)
	if half := live / 2; len(ids) != half || pages[0].Total != half {
		t.Errorf("a half list: %d ids, total %d; want %d and %d", len(ids), pages[0].Total, half, half)
	}

	body := `{"Pagination": {"NumberOfItems": 5, "PageSize": 1000, "PageNumber": 1, "NumberOfPages": 1}, "Items": [
	  {"Guid": "p-1", "ProductCode": "A", "LastModifiedOn": "/Date(1767225600000)/"},
	  {"Guid": "p-2", "ProductCode": "B", "LastModifiedOn": "/Date(1767225601000)/"}]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(body)) }))
	defer srv.Close()
	c, err := unleashed.New(context.Background(), connectors.Config{Type: unleashed.Type, CompanyID: company, BaseURL: srv.URL,
		Credentials: map[string][]byte{unleashed.KeyAPIID: []byte("id"), unleashed.KeyAPIKey: []byte("key")}})
	if err != nil {
		t.Fatal(err)
	}
	page, err := c.(connectors.IDLister).ListIDs(context.Background(), connectors.PageRequest{Entity: model.KindProduct, Page: 1})
	if err != nil {
		t.Fatal(err)
	}
	if page.Total != 5 || len(page.Docs) != 2 || page.More || page.Docs[1] != (connectors.DocVersion{ID: "p-2", ModifiedAt: time.UnixMilli(1767225601000).UTC()}) {
		t.Errorf("page %+v", page)
	}
}

// TestReadDocs: documents read by Guid map as a read maps them (an
// obsolete product as deleted, a customer with its contacts and its claim
// about them, stock rows from one product's AllWarehouses, price rows from
// the price list), unknown ids are left out, and a batch over the limit is
// refused.
func TestReadDocs(t *testing.T) {
	e := newEnv(t, envOpts{})
	if _, err := e.run(t, nil); err != nil {
		t.Fatal(err)
	}
	var prod, cust, order, gone string
	var stockIDs, priceIDs []string
	e.sim.Dataset().Update(func(d *simkit.Dataset) {
		d.Products[5].Deleted = true // obsolete, not stamped: the read shows it all the same
		prod, cust, order = d.Products[5].ID, d.Customers[2].ID, d.Orders[4].ID
		gone = strings.Replace(d.Products[0].ID, d.Products[0].ID[:8], "deadbeef", 1)
		wh := map[string]string{}
		for _, w := range d.Warehouses {
			wh[w.Code] = w.ID
		}
		stockIDs = []string{d.Products[7].ID + "/" + wh[d.Products[7].Stock[1].WarehouseCode], d.Products[9].ID + "/" + wh[d.Products[9].Stock[0].WarehouseCode]}
		for _, p := range d.Products {
			for j, sp := range p.SpecialPrices {
				if len(priceIDs) < 2 {
					priceIDs = append(priceIDs, sim.PriceID(p.ID, sp.CustomerID, j))
				}
			}
		}
	})
	r := e.conn.(connectors.DocReader)
	stored := func(k model.Kind, id string) model.Record {
		rec, _ := e.sink.Get(key(k, id))
		return rec
	}
	for _, tc := range []struct {
		kind    model.Kind
		ids     []string
		want    []string
		queries []string
	}{
		{model.KindProduct, []string{prod, gone}, []string{prod}, []string{"/Products/" + prod + "?", "/Products/" + gone + "?"}},
		{model.KindCustomer, []string{cust}, []string{cust}, []string{"/Customers/" + cust + "?includeAllContacts=true"}},
		{model.KindSalesOrder, []string{order}, []string{order}, []string{"/SalesOrders/" + order + "?"}},
		{model.KindStockLevel, stockIDs, stockIDs, []string{"/StockOnHand/" + strings.Split(stockIDs[0], "/")[0] + "/AllWarehouses?",
			"/StockOnHand/" + strings.Split(stockIDs[1], "/")[0] + "/AllWarehouses?"}},
		{model.KindPriceRule, priceIDs, priceIDs, nil},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			before := len(e.rec.Queries())
			page, err := r.ReadDocs(context.Background(), tc.kind, tc.ids)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, rec := range page.Records {
				if rec.Kind != tc.kind {
					continue
				}
				got = append(got, rec.VendorID)
				want := stored(tc.kind, rec.VendorID)
				ha, _ := rec.ContentHash()
				hb, _ := want.ContentHash()
				switch {
				case rec.VendorID == prod:
					if !rec.Deleted || !rec.ModifiedAt.Equal(want.ModifiedAt) {
						t.Errorf("obsolete product read as %+v", rec)
					}
				case ha != hb || !rec.ModifiedAt.Equal(want.ModifiedAt):
					t.Errorf("%s maps differently from the import", rec.VendorID)
				}
				if tc.kind == model.KindCustomer && (len(rec.Children) != 1 || rec.Children[0].Kind != model.KindContact) {
					t.Errorf("customer read without its contacts claim: %+v", rec.Children)
				}
			}
			slices.Sort(got)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("read %v, want %v", got, want)
			}
			queries := e.rec.Queries()[before:]
			if tc.queries != nil && fmt.Sprint(queries) != fmt.Sprint(tc.queries) {
				t.Errorf("requests %v, want %v", queries, tc.queries)
			}
			if page.Calls != len(queries) {
				t.Errorf("page says %d calls, %d were made", page.Calls, len(queries))
			}
		})
	}
	// A customer's contacts come with it, naming it as their parent.
	page, _ := r.ReadDocs(context.Background(), model.KindCustomer, []string{cust})
	for _, rec := range page.Records[1:] {
		if rec.Kind != model.KindContact || rec.Parent != cust || rec.ParentKind != model.KindCustomer {
			t.Errorf("contact %+v", rec)
		}
	}
	many := make([]string, r.MaxDocsPerRead(model.KindProduct)+1)
	if _, err := r.ReadDocs(context.Background(), model.KindProduct, many); connectors.KindOf(err) != connectors.KindInvalidConfig {
		t.Errorf("a batch over the limit: %v", err)
	}
	if n := r.MaxDocsPerRead(model.KindTaxRate); n != 0 {
		t.Errorf("tax rates are read in full, MaxDocsPerRead %d", n)
	}
}

// TestVendorMarkersReachTheCRM: an incremental run carries Unleashed's
// markers (Obsolete on products and customers, the Deleted status of
// orders) as deleted records, a customer's contacts with it, and a contact
// removed from a customer as a tombstone from its parent. Unleashed does
// not document whether marking a record obsolete stamps LastModifiedOn:
// the simulator stamps it (the dataset's edits do, as any edit in the app
// is assumed to). Where it does not, modifiedSince cannot see the change;
// the id listing, which leaves obsolete records out, then no longer lists
// the record, and reconciliation marks it deleted.
func TestVendorMarkersReachTheCRM(t *testing.T) {
	e := newEnv(t, envOpts{})
	first, err := e.run(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	var prod, cust, order, quiet string
	var contacts []string
	e.sim.Dataset().Update(func(d *simkit.Dataset) {
		pick := func(live func(i int) bool, n int) int {
			for i := 0; i < n; i++ {
				if live(i) {
					return i
				}
			}
			t.Fatal("no live record to mark")
			return -1
		}
		p := pick(func(i int) bool { return !d.Products[i].Deleted }, len(d.Products))
		d.Products[p].Deleted, d.Products[p].Modified = true, d.Stamp()
		prod = d.Products[p].ID
		// From the end: DropContact below takes the first customer with
		// a contact.
		n := len(d.Customers) - 1
		c := n - pick(func(i int) bool { return !d.Customers[n-i].Deleted && len(d.Customers[n-i].Contacts) > 0 }, len(d.Customers))
		d.Customers[c].Deleted, d.Customers[c].Modified = true, d.Stamp()
		cust = d.Customers[c].ID
		for _, ct := range d.Customers[c].Contacts {
			contacts = append(contacts, ct.ID)
		}
		o := pick(func(i int) bool { return !d.Orders[i].Deleted }, len(d.Orders))
		d.Orders[o].Deleted, d.Orders[o].Modified = true, d.Stamp()
		order = d.Orders[o].ID
		// Obsolete without a new LastModifiedOn.
		q := pick(func(i int) bool { return !d.Products[i].Deleted }, len(d.Products))
		d.Products[q].Deleted = true
		quiet = d.Products[q].ID
	})
	custWithContact, droppedContact := e.sim.Dataset().DropContact(0)
	if droppedContact == "" {
		t.Fatal("no contact to drop")
	}
	if _, err := e.run(t, first.State); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		kind model.Kind
		id   string
		via  model.DeletionSource
	}{
		{model.KindProduct, prod, model.DeletedByVendor},
		{model.KindCustomer, cust, model.DeletedByVendor},
		{model.KindContact, contacts[0], model.DeletedByVendor},
		{model.KindSalesOrder, order, model.DeletedByVendor},
		{model.KindContact, droppedContact, model.DeletedFromParent},
	} {
		r, ok := e.sink.Get(key(tc.kind, tc.id))
		ts, _ := e.sink.Tombstone(key(tc.kind, tc.id))
		if !ok || !r.Deleted || ts.Via != tc.via {
			t.Errorf("%s %s: stored %v deleted %v via %q, want deleted via %q", tc.kind, tc.id, ok, r.Deleted, ts.Via, tc.via)
		}
	}
	if r, _ := e.sink.Get(key(model.KindCustomer, custWithContact)); r.Deleted {
		t.Errorf("the customer that lost a contact is deleted")
	}
	// The unstamped one: the incremental run cannot see it, the listing no
	// longer holds it.
	if r, _ := e.sink.Get(key(model.KindProduct, quiet)); r.Deleted {
		t.Fatalf("an unstamped obsolete product was seen by modifiedSince")
	}
	ids, _ := listAll(t, e.conn, model.KindProduct)
	if _, listed := ids[quiet]; listed {
		t.Errorf("the id listing still holds the obsolete product %s", quiet)
	}
	if _, listed := ids[prod]; listed {
		t.Errorf("the id listing holds the obsolete product %s", prod)
	}
}
