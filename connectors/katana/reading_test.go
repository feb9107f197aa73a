package katana

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/katana/sim"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
)

// readPass reads one entity from page 1 to its end straight from the
// connector, passing each page's Next on as the engine does.
func readPass(t *testing.T, c connectors.Connector, e model.Kind, since time.Time) []*connectors.Page {
	t.Helper()
	var out []*connectors.Page
	cursor := ""
	for page := 1; ; page++ {
		p, err := c.ListPage(context.Background(), connectors.PageRequest{Entity: e, Since: since, Page: page, Cursor: cursor})
		if err != nil {
			t.Fatalf("%s page %d: %v", e, page, err)
		}
		out = append(out, p)
		if !p.More {
			return out
		}
		if page > 1000 {
			t.Fatalf("%s: more than 1000 pages", e)
		}
		cursor = p.Next
	}
}

// TestPagesCountTheirDocuments checks, for every entity, that the pages of a
// pass name the documents they held (Page.Docs, in the units of the vendor's
// total) and that the first page's total is the vendor's count of them: the
// engine's distinct-id check rests on both. The products stream counts its
// products and its materials; one product document yields a record per
// variant, one price-list row a record per customer of its list.
func TestPagesCountTheirDocuments(t *testing.T) {
	h := newRig(t, smallDataset(), nil)
	var products, live int
	h.sim.Dataset().View(func(d *simkit.Dataset) {
		products = len(d.Products) + len(d.Suppliers) // deleted ones included
		for _, p := range d.Products {
			if !p.Deleted {
				live++
			}
		}
	})
	var want map[model.Kind]int
	h.sim.Dataset().View(func(d *simkit.Dataset) {
		want = map[model.Kind]int{
			model.KindTaxRate: len(d.TaxRates), model.KindWarehouse: len(d.Warehouses), model.KindCustomer: len(d.Customers),
			model.KindProduct: products, model.KindStockLevel: (live + len(d.Suppliers)) * len(d.Warehouses),
			model.KindSalesOrder: len(d.Orders),
		}
	})
	want[model.KindPriceRule] = h.sim.Expected()[model.KindPriceRule] // one customer per list in the simulator
	for _, e := range h.conn.Entities() {
		pages := readPass(t, h.conn, e.Name, time.Time{})
		seen := map[string]bool{}
		docs := 0
		for i, p := range pages {
			if p.Docs == nil {
				t.Fatalf("%s page %d names no documents", e.Name, i+1)
			}
			for _, id := range p.Docs {
				if id == "" {
					t.Fatalf("%s page %d: a document without an id", e.Name, i+1)
				}
				seen[id] = true
			}
			docs += len(p.Docs)
		}
		if pages[0].Total != want[e.Name] {
			t.Errorf("%s: total %d, want the vendor's %d documents", e.Name, pages[0].Total, want[e.Name])
		}
		if len(seen) != want[e.Name] || docs != want[e.Name] {
			t.Errorf("%s: %d distinct documents of %d named, want %d", e.Name, len(seen), docs, want[e.Name])
		}
	}
}

// TestCreationsDoNotShiftAPass adds a product after every page of the
// products stream. Katana lists newest first, so each one enters at the head
// of the list, before the cursor: uncapped, every later product moves a
// place down and the list's total grows past what the pass can read, so the
// engine would read the pass again and again. The connector pins the pass
// to the documents created before its first page (created_at_max): the
// totals hold, the pass is read once, nothing is read twice, and the next
// incremental sync brings the products created meanwhile.
func TestCreationsDoNotShiftAPass(t *testing.T) {
	ds := smallDataset()
	ds.Products = 3*PageSize + 10
	h := newRig(t, ds, nil)
	added := 0
	// A page takes a moment; the product is created in it.
	h.conn = &everyPage{Connector: h.conn, entity: model.KindProduct, do: func() {
		h.clock.Advance(300 * time.Millisecond)
		h.sim.Dataset().AddProduct()
		added++
	}}
	res, err := h.run(context.Background())
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if len(res.Incomplete) > 0 {
		t.Errorf("entities left incomplete: %v", res.Incomplete)
	}
	byPath := h.sim.Stats().ByPath()
	if n := byPath[sim.BasePath+"/products"]; n != 4 {
		t.Errorf("/products read %d times, want 4 (the pass's four pages, once)", n)
	}
	var oldest simkit.Product
	h.sim.Dataset().View(func(d *simkit.Dataset) { oldest = *d.Products[0] })
	if _, ok := h.get(model.KindProduct, strconv.Itoa(sim.VariantID(oldest.Seq))); !ok {
		t.Fatalf("the oldest product was not read")
	}
	h.clock.Advance(time.Minute)
	h.conn = h.conn.(*everyPage).Connector
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("incremental: %v", err)
	}
	if got, want := h.counts()[model.KindProduct], h.sim.Expected()[model.KindProduct]; got != want || added < 4 {
		t.Errorf("%d products after the incremental sync, want %d (%d created during the import)", got, want, added)
	}
}

// everyPage runs do after every page of entity.
type everyPage struct {
	connectors.Connector
	entity model.Kind
	do     func()
}

func (e *everyPage) ListPage(ctx context.Context, req connectors.PageRequest) (*connectors.Page, error) {
	p, err := e.Connector.ListPage(ctx, req)
	if err == nil && req.Entity == e.entity {
		e.do()
	}
	return p, err
}

// TestProductsCursorResumes resumes the products stream in a new connector
// (a restarted manager) from each page's Next: every resumed page is the
// page the first connector would have read, at one request each, and a
// cursor the connector did not write reads the pass from its start.
func TestProductsCursorResumes(t *testing.T) {
	ds := smallDataset()
	ds.Products = 2*PageSize + 10
	h := newRig(t, ds, nil)
	readPass(t, h.conn, model.KindTaxRate, time.Time{}) // a run reads them first: the connector has seen the vendor's clock
	pages := readPass(t, h.conn, model.KindProduct, time.Time{})
	if len(pages) != 3 {
		t.Fatalf("%d pages, want 3 (two pages of products and materials, then a third of products)", len(pages))
	}
	if pages[0].Calls != 2 {
		t.Errorf("the first page cost %d calls, want 2 (the first page of each list)", pages[0].Calls)
	}
	for i := 1; i < len(pages); i++ {
		fresh := h.connector(t, h.sim.Credentials())
		p, err := fresh.ListPage(context.Background(), connectors.PageRequest{Entity: model.KindProduct, Page: i + 1, Cursor: pages[i-1].Next})
		if err != nil {
			t.Fatalf("resumed page %d: %v", i+1, err)
		}
		if p.Calls != 1 || fmt.Sprint(p.Docs) != fmt.Sprint(pages[i].Docs) || p.More != pages[i].More || p.Total != pages[i].Total {
			t.Errorf("resumed page %d: %d calls, docs %v more %v total %d; want 1 call, docs %v more %v total %d",
				i+1, p.Calls, p.Docs, p.More, p.Total, pages[i].Docs, pages[i].More, pages[i].Total)
		}
	}
	p, err := h.conn.ListPage(context.Background(), connectors.PageRequest{Entity: model.KindProduct, Page: 3, Cursor: "not a cursor"})
	if err != nil {
		t.Fatalf("a foreign cursor: %v", err)
	}
	if fmt.Sprint(p.Docs) != fmt.Sprint(pages[0].Docs) {
		t.Errorf("a foreign cursor did not read the pass from its start")
	}
}

// TestLatePriceListIsSetAsideThenMaps serves a price-list row whose list
// was created after the lists were read. The row is set aside (with its raw
// document and a reason), every other record lands, and once the list is
// listed the next sync maps the row and clears the set-aside entry. The
// connector reads the lists once more within the pass before it gives up on
// the row, and afresh on every pass.
func TestLatePriceListIsSetAsideThenMaps(t *testing.T) {
	h := newRig(t, smallDataset(), nil)
	row := h.sim.AddLatePriceList()
	id := strconv.Itoa(row)
	res, err := h.run(context.Background())
	if err != nil {
		t.Fatalf("import with a row of an unknown list: %v", err)
	}
	if res.SetAside != 1 {
		t.Errorf("%d set aside, want 1", res.SetAside)
	}
	got, want := h.counts(), h.sim.Expected()
	for _, k := range model.Kinds {
		if got[k] != want[k] {
			t.Errorf("%s: %d records, want %d", k, got[k], want[k])
		}
	}
	items := h.sink.SetAsideItems()
	if len(items) != 1 || items[0].Kind != model.KindPriceRule || items[0].VendorID != id || items[0].Company != "acme" || items[0].Vendor != Type ||
		items[0].ModifiedAt.IsZero() || len(items[0].Raw) == 0 || items[0].Reason == "" {
		t.Fatalf("set aside %+v, want price rule %s with its raw document", items, id)
	}
	// Two loads of the lists: at the pass's start and once on the miss.
	if n := h.sim.Stats().ByPath()[sim.BasePath+"/price_lists"]; n != 2 {
		t.Errorf("/price_lists read %d times in the pass, want 2", n)
	}

	h.clock.Advance(10 * time.Minute)
	h.sim.PublishLatePriceLists()
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("the next sync: %v", err)
	}
	r, ok := h.get(model.KindPriceRule, id)
	if !ok || r.Deleted || string(r.Data.(*model.PriceRule).Price) != "11.25" {
		t.Fatalf("the row of the late list did not map: %+v", r)
	}
	if items := h.sink.SetAsideItems(); len(items) != 0 {
		t.Fatalf("still set aside after it mapped: %+v", items)
	}
}

// TestLateListReadWithinThePass creates a price list and its row after the
// connector read the lists and before it reads the rows, as a Katana user
// might while a pass runs: the connector reads the lists again when a row
// names one it does not know, and maps the row at once.
func TestLateListReadWithinThePass(t *testing.T) {
	var s *sim.Server
	var once sync.Once
	h := newRig(t, smallDataset(), func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/price_list_rows") {
				once.Do(func() {
					s.AddLatePriceList()
					s.PublishLatePriceLists()
				})
			}
			next.ServeHTTP(w, r)
		})
	})
	s = h.sim
	res, err := h.run(context.Background())
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if res.SetAside != 0 || len(h.sink.SetAsideItems()) != 0 {
		t.Errorf("%d set aside; the connector should read the lists again and map the row", res.SetAside)
	}
	late := h.sim.LatePriceRows()
	if len(late) != 1 {
		t.Fatalf("%d late rows", len(late))
	}
	if _, ok := h.get(model.KindPriceRule, strconv.Itoa(late[0].RowID)); !ok {
		t.Fatalf("the row of the list created during the pass is missing")
	}
}

// TestIdleCycleRewritesNothing runs an incremental cycle with nothing
// changed at the vendor: the stock levels (stamped with the response's date,
// Katana's inventory has no modified time) and the price rules are read
// again in full, and none of them, nor anything else, is written again.
func TestIdleCycleRewritesNothing(t *testing.T) {
	h := newRig(t, smallDataset(), nil)
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("import: %v", err)
	}
	before := map[model.Key]time.Time{}
	for _, r := range h.sink.Records() {
		before[r.Key()] = r.ModifiedAt
	}
	h.clock.Advance(15 * time.Minute)
	res, err := h.run(context.Background())
	if err != nil {
		t.Fatalf("idle cycle: %v", err)
	}
	if res.Records[model.KindStockLevel] == 0 || res.Records[model.KindPriceRule] == 0 {
		t.Fatalf("the idle cycle did not read the stock levels and price rules again: %v", res.Records)
	}
	if res.Upserted != 0 {
		t.Errorf("an idle cycle upserted %d records, want 0", res.Upserted)
	}
	var changed []string
	for _, r := range h.sink.Records() {
		if !r.ModifiedAt.Equal(before[r.Key()]) {
			changed = append(changed, string(r.Kind)+"/"+r.VendorID)
		}
	}
	sort.Strings(changed)
	if len(changed) > 0 {
		t.Errorf("%d records rewritten by an idle cycle, e.g. %v", len(changed), changed[:min(5, len(changed))])
	}
}

// TestCapFollowsAJumpOfTheVendorsClock pins a pass after the vendor's clock
// jumped ten minutes ahead since the connector last saw it: the cap
// estimated from the old offset would leave out the products created in
// those ten minutes, beyond the window overlap that would read them later.
// The connector checks the estimate against the first page's Date and
// reads that page again with a cap from it.
func TestCapFollowsAJumpOfTheVendorsClock(t *testing.T) {
	ds := smallDataset()
	ds.Products = PageSize + 10
	h := newRig(t, ds, nil)
	readPass(t, h.conn, model.KindTaxRate, time.Time{}) // the connector learns the vendor's clock
	h.sim.SetSkew(10 * time.Minute)
	added := h.sim.Dataset().AddProduct() // stamped on the vendor's clock
	pages := readPass(t, h.conn, model.KindProduct, time.Time{})
	if pages[0].Calls != 3 {
		t.Errorf("the first page cost %d calls, want 3 (products read again with the checked cap, then materials)", pages[0].Calls)
	}
	found := false
	for _, p := range pages {
		for _, r := range p.Records {
			found = found || r.VendorID == strconv.Itoa(sim.VariantID(added.Seq))
		}
	}
	if !found {
		t.Fatal("a product created before the pass, on the jumped vendor clock, was left out of it")
	}
}

// TestInventoryCreationsDoNotRepeatThePass adds a product (a row in every
// location) after every inventory page: the rows land before the cursor in
// the locations already passed, so the pass cannot read them; it must not
// be read again for them (the next pass reads them), and nothing it could
// read is lost.
func TestInventoryCreationsDoNotRepeatThePass(t *testing.T) {
	h := newRig(t, smallDataset(), nil)
	pages := 0
	h.conn = &everyPage{Connector: h.conn, entity: model.KindStockLevel, do: func() { pages++; h.sim.Dataset().AddProduct() }}
	res, err := h.run(context.Background())
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if n := h.sim.Stats().ByPath()[sim.BasePath+"/inventory"]; n != int64(pages) || len(res.Incomplete) > 0 {
		t.Errorf("/inventory read %d times for %d pages (incomplete %v); the pass was read again for rows it could not reach", n, pages, res.Incomplete)
	}
	h.conn = h.conn.(*everyPage).Connector
	h.clock.Advance(time.Minute)
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("next sync: %v", err)
	}
	if got, want := h.counts()[model.KindStockLevel], h.sim.Expected()[model.KindStockLevel]; got != want {
		t.Errorf("%d stock levels after the next sync, want %d", got, want)
	}
}

// TestFloorTotal pins the total a list without a creation filter reports:
// the first page's, unless the list shrank.
func TestFloorTotal(t *testing.T) {
	for _, tc := range []struct {
		name        string
		page, total int
		cursor      string
		want        int
		wantNext    string
		more        bool
	}{
		{"first page", 1, 900, "", 900, "total=900", true},
		{"grew since", 2, 903, "total=900", 900, "total=900", true},
		{"shrank since", 3, 898, "total=900", 898, "total=900", true},
		{"last page", 4, 905, "total=900", 900, "", false},
		{"foreign cursor", 2, 903, "x", 903, "total=903", true},
		{"unknown total", 2, -1, "total=900", 900, "total=900", true},
	} {
		p := floorTotal(&connectors.Page{Total: tc.total, More: tc.more}, connectors.PageRequest{Page: tc.page, Cursor: tc.cursor})
		if p.Total != tc.want || p.Next != tc.wantNext {
			t.Errorf("%s: total %d next %q, want %d %q", tc.name, p.Total, p.Next, tc.want, tc.wantNext)
		}
	}
}
