package katana

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
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

// recorder keeps the URL of every request a simulator answers, and may
// rewrite the X-Pagination header of answers (a lying or moving vendor).
type recorder struct {
	mu   sync.Mutex
	urls []*url.URL
	// pagination, when set, rewrites a response's X-Pagination header.
	pagination func(r *http.Request, h map[string]string)
}

func (rec *recorder) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.urls = append(rec.urls, r.URL)
		fn := rec.pagination
		rec.mu.Unlock()
		if fn == nil {
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(&paginationWriter{ResponseWriter: w, r: r, fn: fn}, r)
	})
}

func (rec *recorder) take() []*url.URL {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	out := rec.urls
	rec.urls = nil
	return out
}

type paginationWriter struct {
	http.ResponseWriter
	r  *http.Request
	fn func(*http.Request, map[string]string)
}

func (p *paginationWriter) WriteHeader(status int) {
	var h map[string]string
	if v := p.Header().Get("X-Pagination"); v != "" && json.Unmarshal([]byte(v), &h) == nil {
		p.fn(p.r, h)
		b, _ := json.Marshal(h)
		p.Header().Set("X-Pagination", string(b))
	}
	p.ResponseWriter.WriteHeader(status)
}

// listIDs pages an entity's id listing to its end.
func listIDs(t *testing.T, c connectors.Connector, e model.Kind) ([]*connectors.IDPage, map[string]time.Time) {
	t.Helper()
	l := c.(connectors.IDLister)
	var pages []*connectors.IDPage
	ids := map[string]time.Time{}
	cursor := ""
	for page := 1; page <= 100; page++ {
		p, err := l.ListIDs(context.Background(), connectors.PageRequest{Entity: e, Page: page, Cursor: cursor})
		if err != nil {
			t.Fatalf("%s id listing page %d: %v", e, page, err)
		}
		pages = append(pages, p)
		for _, d := range p.Docs {
			ids[d.ID] = d.ModifiedAt
		}
		if !p.More {
			return pages, ids
		}
		cursor = p.Next
	}
	t.Fatalf("%s: the id listing does not end", e)
	return nil, nil
}

// reconcileDataset spans several pages of products and customers.
func reconcileDataset() simkit.Options {
	return simkit.Options{Seed: 7, Products: 600, Customers: 300, Orders: 40}
}

// TestListIDsRequests lists every incremental entity after an import and
// checks the requests (Katana's largest page, include_deleted where the
// full read sends it, the pass's creation cap on every page of a list that
// runs past one page, no updated_at filter, pages in order to the end) and
// the result: every document the import stored, deleted ones included, with
// the version the import stored, in one call per page.
func TestListIDsRequests(t *testing.T) {
	rec := &recorder{}
	h := newRig(t, reconcileDataset(), rec.wrap)
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("import: %v", err)
	}
	for _, tc := range []struct {
		entity  model.Kind
		paths   []string
		deleted bool
	}{
		{model.KindTaxRate, []string{"/tax_rates"}, false},
		{model.KindWarehouse, []string{"/locations"}, true},
		{model.KindCustomer, []string{"/customers"}, true},
		{model.KindProduct, []string{"/products", "/materials"}, true},
		{model.KindSalesOrder, []string{"/sales_orders"}, true},
	} {
		t.Run(string(tc.entity), func(t *testing.T) {
			rec.take()
			pages, ids := listIDs(t, h.conn, tc.entity)
			urls := rec.take()
			calls := 0
			for _, p := range pages {
				calls += p.Calls
			}
			if calls != len(urls) {
				t.Errorf("the listing reported %d calls, the simulator answered %d", calls, len(urls))
			}
			perPath := map[string][]int{}
			for _, u := range urls {
				path := strings.TrimPrefix(u.Path, sim.BasePath)
				if !slices.Contains(tc.paths, path) {
					t.Fatalf("request to %s", u)
				}
				q := u.Query()
				page, _ := strconv.Atoi(q.Get("page"))
				perPath[path] = append(perPath[path], page)
				if q.Get("limit") != "250" || q.Has("updated_at_min") || q.Has("ids") {
					t.Errorf("request %s: want limit=250, no updated_at_min, no ids", u.RawQuery)
				}
				if got := q.Get("include_deleted") == "true"; got != tc.deleted {
					t.Errorf("request %s: include_deleted %v, want %v", u.RawQuery, got, tc.deleted)
				}
				if tc.entity == model.KindProduct && q.Get("include_archived") != "true" {
					t.Errorf("request %s: products are listed with include_archived", u.RawQuery)
				}
				if page > 1 && !q.Has("created_at_max") {
					t.Errorf("request %s: a later page without the pass's creation cap", u.RawQuery)
				}
			}
			for path, got := range perPath {
				for i, p := range got {
					if p != i+1 {
						t.Errorf("%s pages %v, want 1, 2, ... in order", path, got)
						break
					}
				}
			}
			last := pages[len(pages)-1]
			if last.More || last.Next != "" {
				t.Errorf("the last page says more follow: %+v", last)
			}
			stored := map[string]time.Time{}
			for _, r := range h.sink.Records() {
				if r.Kind == tc.entity {
					stored[r.VendorID] = r.ModifiedAt
				}
			}
			if len(ids) != len(stored) {
				t.Errorf("listed %d ids, the import stored %d", len(ids), len(stored))
			}
			for id, mod := range stored {
				if got, ok := ids[id]; !ok || !got.Equal(mod) {
					t.Errorf("%s: listed %v (%v), stored %v", id, got, ok, mod)
				}
			}
			total := pages[0].Total
			if tc.entity == model.KindProduct {
				if total != -1 {
					t.Errorf("products: total %d; Katana counts documents, the listing variants: want -1", total)
				}
			} else if total != len(ids) {
				t.Errorf("total %d, distinct ids %d", total, len(ids))
			}
		})
	}
}

// TestListIDsPassesOnALyingTotal checks that a listing reports the vendor's
// total as Katana gives it, so that reconciliation, which compares it with
// the ids it read, sees a vendor that lists fewer documents than it counts;
// and that the products listing, which reports no total, fails when a
// list's total moves between its pages.
func TestListIDsPassesOnALyingTotal(t *testing.T) {
	rec := &recorder{}
	h := newRig(t, reconcileDataset(), rec.wrap)
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("import: %v", err)
	}
	rec.mu.Lock()
	rec.pagination = func(r *http.Request, p map[string]string) {
		n, _ := strconv.Atoi(p["total_records"])
		switch {
		case strings.HasSuffix(r.URL.Path, "/customers"):
			p["total_records"] = strconv.Itoa(n + 5)
		case strings.HasSuffix(r.URL.Path, "/products") && r.URL.Query().Get("page") == "2":
			p["total_records"] = strconv.Itoa(n - 1)
		}
	}
	rec.mu.Unlock()
	pages, ids := listIDs(t, h.conn, model.KindCustomer)
	for i, p := range pages {
		if p.Total != len(ids)+5 {
			t.Errorf("customers page %d: total %d, want the vendor's %d (the ids listed are %d)", i+1, p.Total, len(ids)+5, len(ids))
		}
	}
	l := h.conn.(connectors.IDLister)
	p, err := l.ListIDs(context.Background(), connectors.PageRequest{Entity: model.KindProduct, Page: 1})
	if err != nil || !p.More {
		t.Fatalf("products page 1: %v (more %v)", err, p != nil && p.More)
	}
	_, err = l.ListIDs(context.Background(), connectors.PageRequest{Entity: model.KindProduct, Page: 2, Cursor: p.Next})
	if err == nil || connectors.KindOf(err) != connectors.KindERPUnavailable || !strings.Contains(err.Error(), "/products") {
		t.Errorf("a products list whose total moved between pages: error %v, want ERPUnavailable naming /products", err)
	}
}

// TestReadDocs reads chosen documents by id, with Katana's ids filter in
// one call per entity (products: their parents), and checks they map as
// the import mapped them, children included, and that an id Katana does
// not have is left out.
func TestReadDocs(t *testing.T) {
	rec := &recorder{}
	h := newRig(t, reconcileDataset(), rec.wrap)
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("import: %v", err)
	}
	var product, material, deleted, customer, order, productDoc, materialDoc, product20 string
	h.sim.Dataset().View(func(d *simkit.Dataset) {
		productDoc = "product/" + strconv.Itoa(d.Products[10].Seq)
		materialDoc = "material/" + strconv.Itoa(sim.MaterialID(d.Suppliers[0].Seq))
		product20 = strconv.Itoa(sim.VariantID(d.Products[20].Seq))
		product = strconv.Itoa(sim.VariantID(d.Products[10].Seq))
		deleted = strconv.Itoa(sim.VariantID(d.Products[0].Seq)) // i%50 == 0: obsolete in the dataset
		material = strconv.Itoa(sim.MaterialVariantID(d.Suppliers[0].Seq))
		customer = strconv.Itoa(d.Customers[5].Seq)
		order = strconv.Itoa(d.Orders[3].Seq)
	})
	for _, tc := range []struct {
		name   string
		entity model.Kind
		ids    []string
		list   bool     // list the entity first (the parents are then known)
		paths  []string // the requests, in order
		want   []model.Key
	}{
		{"customers", model.KindCustomer, []string{customer, "999999"}, false, []string{"/customers"},
			[]model.Key{{Kind: model.KindCustomer, VendorID: customer}, {Kind: model.KindContact, VendorID: customer}}},
		{"orders", model.KindSalesOrder, []string{order}, false, []string{"/sales_orders"}, []model.Key{{Kind: model.KindSalesOrder, VendorID: order}}},
		{"products, parents unknown", model.KindProduct, []string{product, material, deleted, "999999"}, false, []string{"/variants", "/products", "/materials"},
			[]model.Key{{Kind: model.KindProduct, VendorID: product}, {Kind: model.KindProduct, VendorID: material}, {Kind: model.KindProduct, VendorID: deleted}}},
		{"products, parents listed", model.KindProduct, []string{product, deleted}, true, []string{"/products"},
			[]model.Key{{Kind: model.KindProduct, VendorID: product}, {Kind: model.KindProduct, VendorID: deleted}}},
		// Product and material webhooks name the document, not a variant.
		{"a product and a material by their own ids", model.KindProduct, []string{productDoc, materialDoc, "product/999999"}, false, []string{"/products", "/materials"},
			[]model.Key{{Kind: model.KindProduct, VendorID: product}, {Kind: model.KindProduct, VendorID: material}}},
		{"a product by its id and another by a variant", model.KindProduct, []string{productDoc, product20}, false, []string{"/variants", "/products"},
			[]model.Key{{Kind: model.KindProduct, VendorID: product}, {Kind: model.KindProduct, VendorID: product20}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := h.connector(t, h.sim.Credentials())
			if tc.list {
				listIDs(t, c, tc.entity)
			}
			rec.take()
			p, err := c.(connectors.DocReader).ReadDocs(context.Background(), tc.entity, tc.ids)
			if err != nil {
				t.Fatalf("ReadDocs: %v", err)
			}
			urls := rec.take()
			var paths []string
			for _, u := range urls {
				paths = append(paths, strings.TrimPrefix(u.Path, sim.BasePath))
				q := u.Query()
				if len(q["ids"]) == 0 || q.Get("limit") != "250" || q.Has("created_at_max") || q.Has("updated_at_min") {
					t.Errorf("request %s: want ids, limit=250 and no time filters", u.RawQuery)
				}
				if tc.entity != model.KindTaxRate && q.Get("include_deleted") != "true" {
					t.Errorf("request %s: without include_deleted a deleted document would be missed", u.RawQuery)
				}
			}
			if !slices.Equal(paths, tc.paths) || p.Calls != len(urls) {
				t.Errorf("requests %v (%d calls reported), want %v", paths, p.Calls, tc.paths)
			}
			got := map[model.Key]model.Record{}
			for _, r := range p.Records {
				got[model.Key{Kind: r.Kind, VendorID: r.VendorID}] = r
			}
			if len(got) != len(tc.want) {
				t.Errorf("%d records, want %d", len(got), len(tc.want))
			}
			for _, k := range tc.want {
				r, ok := got[k]
				stored, had := h.get(k.Kind, k.VendorID)
				if !ok || !had {
					t.Errorf("%v: read %v, stored %v", k, ok, had)
					continue
				}
				ha, _ := r.ContentHash()
				hb, _ := stored.ContentHash()
				if ha != hb || !r.ModifiedAt.Equal(stored.ModifiedAt) || r.Parent != stored.Parent || r.ParentKind != stored.ParentKind {
					t.Errorf("%v maps differently by id than in the import", k)
				}
				// The sink keeps no Children; the customer read by id
				// names its contact as a full read does.
				if k.Kind == model.KindCustomer && fmtChildren(r) != `[{"kind":"contacts","ids":["`+k.VendorID+`"]}]` {
					t.Errorf("%v names its children %s", k, fmtChildren(r))
				}
			}
		})
	}
	if _, err := h.conn.(connectors.DocReader).ReadDocs(context.Background(), model.KindCustomer, []string{"abc"}); connectors.KindOf(err) != connectors.KindInvalidConfig {
		t.Errorf("a non-Katana id: error %v, want InvalidConfig", err)
	}
	for _, id := range []string{"product/abc", "material/-1", "product/", "variant/3"} {
		if _, err := h.conn.(connectors.DocReader).ReadDocs(context.Background(), model.KindProduct, []string{id}); connectors.KindOf(err) != connectors.KindInvalidConfig {
			t.Errorf("products id %q: error %v, want InvalidConfig", id, err)
		}
	}
}

func fmtChildren(r model.Record) string { b, _ := json.Marshal(r.Children); return string(b) }

// TestDeletionCascades deletes a product and a customer in Katana the way
// the dataset does (updated_at moves with deleted_at) and checks that an
// incremental run marks them deleted, and with them the product's stock
// rows and price rules and the customer's contact, none left live.
func TestDeletionCascades(t *testing.T) {
	h := newRig(t, smallDataset(), nil)
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("import: %v", err)
	}
	h.clock.Advance(10 * time.Minute)
	var p simkit.Product
	var c simkit.Customer
	h.sim.Dataset().View(func(d *simkit.Dataset) { p, c = *d.Products[3], *d.Customers[4] })
	vid := strconv.Itoa(sim.VariantID(p.Seq))
	children := liveChildren(h, vid)
	if children[model.KindStockLevel] == 0 || children[model.KindPriceRule] == 0 {
		t.Fatalf("the product has no live stock rows or price rules to test with: %v", children)
	}
	if !h.sim.Dataset().DeleteProduct(p.ID) {
		t.Fatal("could not delete the product")
	}
	h.sim.Dataset().Update(func(d *simkit.Dataset) {
		d.Customers[4].Deleted = true
		d.Customers[4].Modified = d.Stamp()
	})
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("incremental run: %v", err)
	}
	if r, _ := h.get(model.KindProduct, vid); !r.Deleted {
		t.Errorf("the deleted product is live")
	}
	if n := liveChildren(h, vid); len(n) > 0 {
		t.Errorf("the deleted product's children are live: %v", n)
	}
	cid := strconv.Itoa(c.Seq)
	for _, k := range []model.Kind{model.KindCustomer, model.KindContact} {
		if r, ok := h.get(k, cid); !ok || !r.Deleted {
			t.Errorf("%s %s is not deleted: %+v", k, cid, r)
		}
	}
}

// liveChildren counts the live records whose parent is the product vid.
func liveChildren(h *rig, vid string) map[model.Kind]int {
	out := map[model.Kind]int{}
	for _, r := range h.sink.Records() {
		if r.Parent == vid && r.ParentKind == model.KindProduct && !r.Deleted {
			out[r.Kind]++
		}
	}
	return out
}

// TestQuietDeletionIsFoundByReconciliation deletes a product and a
// customer the way Katana is reported to: deleted_at set, updated_at
// unchanged. An incremental read (updated_at_min) cannot see them: that is
// Katana's filter, and the test states it. The id listing shows them with
// a new version (their deleted_at), so reconciliation reads them again by
// id, and they arrive deleted, stock rows, price rules and contact with
// them.
func TestQuietDeletionIsFoundByReconciliation(t *testing.T) {
	h := newRig(t, smallDataset(), nil)
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("import: %v", err)
	}
	h.clock.Advance(10 * time.Minute)
	var p simkit.Product
	var c simkit.Customer
	h.sim.Dataset().View(func(d *simkit.Dataset) { p, c = *d.Products[3], *d.Customers[4] })
	vid, cid := strconv.Itoa(sim.VariantID(p.Seq)), strconv.Itoa(c.Seq)
	before, _ := h.get(model.KindProduct, vid)
	if !h.sim.DeleteQuietly(p.ID) || !h.sim.DeleteQuietly(c.ID) {
		t.Fatal("could not delete quietly")
	}
	deletedAt := h.clock.Now().UTC().Truncate(time.Millisecond)
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("incremental run: %v", err)
	}
	if r, _ := h.get(model.KindProduct, vid); r.Deleted {
		t.Fatalf("an incremental read found a deletion that did not move updated_at; the simulator no longer models the report")
	}
	for _, tc := range []struct {
		entity model.Kind
		id     string
	}{{model.KindProduct, vid}, {model.KindCustomer, cid}} {
		_, ids := listIDs(t, h.conn, tc.entity)
		stored, _ := h.get(tc.entity, tc.id)
		version, ok := ids[tc.id]
		if !ok || !version.Equal(deletedAt) || version.Equal(stored.ModifiedAt) {
			t.Fatalf("%s %s: listed %v (%v) with version %v, stored %v: reconciliation would not see it changed", tc.entity, tc.id, ok, tc.id, version, stored.ModifiedAt)
		}
		p, err := h.conn.(connectors.DocReader).ReadDocs(context.Background(), tc.entity, []string{tc.id})
		if err != nil {
			t.Fatalf("ReadDocs: %v", err)
		}
		if _, err := h.sink.Write(context.Background(), p.Records); err != nil {
			t.Fatal(err)
		}
	}
	r, _ := h.get(model.KindProduct, vid)
	if !r.Deleted || r.DeletedVia != model.DeletedByVendor || !r.ModifiedAt.Equal(deletedAt) || !r.ModifiedAt.After(before.ModifiedAt) {
		t.Errorf("product after the repair: deleted %v via %q at version %v (was %v)", r.Deleted, r.DeletedVia, r.ModifiedAt, before.ModifiedAt)
	}
	if n := liveChildren(h, vid); len(n) > 0 {
		t.Errorf("the product's children are live: %v", n)
	}
	for _, k := range []model.Kind{model.KindCustomer, model.KindContact} {
		if r, ok := h.get(k, cid); !ok || !r.Deleted {
			t.Errorf("%s %s is not deleted after the repair", k, cid)
		}
	}
}
