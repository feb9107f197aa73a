package cin7core_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/cin7core"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
)

// listIDs pages an entity's id listing to its end, with the total of every
// page and the calls reported.
func listIDs(t *testing.T, c connectors.Connector, e model.Kind) (docs []connectors.DocVersion, totals []int, calls int) {
	t.Helper()
	l := c.(connectors.IDLister)
	for page := 1; page < 100; page++ {
		p, err := l.ListIDs(context.Background(), connectors.PageRequest{Entity: e, Page: page})
		if err != nil {
			t.Fatalf("%s ids page %d: %v", e, page, err)
		}
		if p.Next != "" {
			t.Errorf("%s ids page %d: Next %q from a page-numbered listing", e, page, p.Next)
		}
		docs = append(docs, p.Docs...)
		totals = append(totals, p.Total)
		calls += p.Calls
		if !p.More {
			return docs, totals, calls
		}
	}
	t.Fatalf("%s: the listing does not end", e)
	return nil, nil, 0
}

// TestIDListingRequests: every incremental entity is listed from its own
// list at the connector's page size, without Include* options or filters
// (deprecated records left out), one call a page until Total is reached;
// the ids and versions are those of the live documents.
func TestIDListingRequests(t *testing.T) {
	e := newEnv(t, envOpts{data: simkit.Options{Seed: 21, Products: 120, Customers: 60, Orders: 70}})
	// Two products and a customer deprecated (with a new modified time).
	e.sim.Dataset().Update(func(d *simkit.Dataset) {
		for _, m := range []*simkit.Meta{&d.Products[3].Meta, &d.Products[4].Meta, &d.Customers[2].Meta, &d.Suppliers[0].Meta} {
			m.Deleted, m.Modified = true, d.Stamp()
		}
		d.Orders[5].Deleted, d.Orders[5].Modified = true, d.Stamp()
	})
	want := map[model.Kind]map[string]time.Time{}
	e.sim.Dataset().View(func(d *simkit.Dataset) {
		add := func(k model.Kind, m simkit.Meta) {
			if want[k] == nil {
				want[k] = map[string]time.Time{}
			}
			want[k][m.ID] = m.Modified
		}
		for _, p := range d.Products {
			if !p.Deleted {
				add(model.KindProduct, p.Meta)
			}
		}
		for _, c := range d.Customers {
			if !c.Deleted {
				add(model.KindCustomer, c.Meta)
			}
		}
		for _, s := range d.Suppliers {
			if !s.Deleted {
				add(model.KindSupplier, s.Meta)
			}
		}
	})
	for _, tc := range []struct {
		entity model.Kind
		path   string
		// voided sales stay listed: the sale lists cannot leave them out.
		count func() int
	}{
		{model.KindProduct, "product", func() int { return len(want[model.KindProduct]) }},
		{model.KindCustomer, "customer", func() int { return len(want[model.KindCustomer]) }},
		{model.KindSupplier, "supplier", func() int { return len(want[model.KindSupplier]) }},
		{model.KindSalesOrder, "saleList", func() int { return 70 }},
		{model.KindCreditNote, "saleCreditNoteList", func() int { return e.sim.Expected()[model.KindCreditNote] }},
	} {
		t.Run(string(tc.entity), func(t *testing.T) {
			info, ok := e.conn.(connectors.IDLister).IDListing(tc.entity)
			if !ok || info.PageSize != 50 || info.Endpoint != "GET /"+tc.path+"?Page=&Limit=50" {
				t.Fatalf("IDListing = %+v, %v", info, ok)
			}
			before := len(e.rec.Queries())
			docs, totals, calls := listIDs(t, e.conn, tc.entity)
			queries := e.rec.Queries()[before:]
			n := tc.count()
			pages := (n + 49) / 50
			if calls != pages || len(queries) != pages {
				t.Errorf("%d documents: %d calls reported, %d requests; want %d", n, calls, len(queries), pages)
			}
			for i, q := range queries {
				if q != fmt.Sprintf("/ExternalApi/v2/%s?Limit=50&Page=%d", tc.path, i+1) {
					t.Errorf("request %d = %q", i, q)
				}
			}
			for i, total := range totals {
				if total != n {
					t.Errorf("page %d: total %d, want %d", i+1, total, n)
				}
			}
			seen := map[string]bool{}
			for _, d := range docs {
				seen[d.ID] = true
				if w, ok := want[tc.entity]; ok {
					mod, ok := w[d.ID]
					if !ok {
						t.Errorf("listed %s, which is deprecated or unknown", d.ID)
					} else if !mod.Equal(d.ModifiedAt) {
						t.Errorf("%s listed at %v, modified %v", d.ID, d.ModifiedAt, mod)
					}
				}
			}
			if len(seen) != n {
				t.Errorf("%d distinct ids, want %d", len(seen), n)
			}
		})
	}
	if _, ok := e.conn.(connectors.IDLister).IDListing(model.KindStockLevel); ok {
		t.Errorf("stock levels (read in full every run) have an id listing")
	}
	if _, err := e.conn.(connectors.IDLister).ListIDs(context.Background(), connectors.PageRequest{Entity: model.KindTaxRate, Page: 1}); err == nil {
		t.Errorf("listing the ids of a full entity succeeded")
	}
}

// TestIDListingDefaultPage: production lists 1,000 ids a call.
func TestIDListingDefaultPage(t *testing.T) {
	e := newEnv(t, envOpts{pageSize: -1})
	info, ok := e.conn.(connectors.IDLister).IDListing(model.KindProduct)
	if !ok || info.PageSize != cin7core.MaxPageSize || !strings.Contains(info.Endpoint, "Limit=1000") {
		t.Errorf("IDListing(products) = %+v", info)
	}
}

// fakeList serves GET /product pages of n products from ids with the Total
// the test chooses (-1: none): a vendor whose count lies.
func fakeList(t *testing.T, n, total int) (*httptest.Server, *int) {
	t.Helper()
	calls := new(int)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*calls++
		q := r.URL.Query()
		page, _ := strconv.Atoi(q.Get("Page"))
		limit, _ := strconv.Atoi(q.Get("Limit"))
		if q.Get("IncludeDeprecated") != "" || page < 1 || limit < 1 {
			http.Error(w, "unexpected request "+r.URL.RawQuery, http.StatusBadRequest)
			return
		}
		items := []map[string]string{}
		for i := (page - 1) * limit; i < min(page*limit, n); i++ {
			items = append(items, map[string]string{"ID": fmt.Sprintf("p%03d", i), "SKU": "S", "Status": "Active",
				"LastModifiedOn": fmt.Sprintf("2026-01-02T03:04:%02d.12Z", i%60)})
		}
		body := map[string]any{"Page": page, "Products": items}
		if total >= 0 {
			body["Total"] = total
		}
		_ = json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(srv.Close)
	return srv, calls
}

// TestIDListingEndsAndReportsTheVendorsTotal: the listing stops where
// ListPage stops (Total reached, an empty page, or a short page without a
// Total) and reports the vendor's Total as given, so that a total that
// lies shows as a mismatch with the distinct ids listed.
func TestIDListingEndsAndReportsTheVendorsTotal(t *testing.T) {
	for _, tc := range []struct {
		name              string
		n, total          int
		wantIDs, wantCall int
	}{
		{"honest total, exact pages", 4, 4, 4, 2},
		{"honest total, short last page", 5, 5, 5, 3},
		{"total larger than the list: ends on the empty page", 5, 7, 5, 4},
		{"total smaller than the list: stops at the total", 5, 3, 4, 2},
		{"no total: ends on a short page", 5, -1, 5, 3},
		{"no total, exact pages: ends on the empty page", 4, -1, 4, 3},
		{"empty list", 0, 0, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, served := fakeList(t, tc.n, tc.total)
			c, err := cin7core.NewWithOptions(context.Background(), connectors.Config{Type: cin7core.Type, CompanyID: company,
				BaseURL: srv.URL + "/", Credentials: map[string][]byte{"accountId": []byte("a"), "applicationKey": []byte("k")}},
				cin7core.Options{PageSize: 2, TimeScale: testScale, Registry: httpapi.NewRegistry(nil)})
			if err != nil {
				t.Fatal(err)
			}
			docs, totals, calls := listIDs(t, c, model.KindProduct)
			if len(docs) != tc.wantIDs || calls != tc.wantCall || *served != tc.wantCall {
				t.Errorf("%d ids in %d calls (%d served), want %d in %d", len(docs), calls, *served, tc.wantIDs, tc.wantCall)
			}
			for _, total := range totals {
				if total != tc.total {
					t.Errorf("reported total %d, the vendor said %d", total, tc.total)
				}
			}
			for _, d := range docs {
				if d.ModifiedAt.Nanosecond() != 120e6 {
					t.Errorf("%s: modified %v lost its fraction", d.ID, d.ModifiedAt)
				}
			}
		})
	}
}

// TestIDListingRejectsBrokenPages: a page without an id or a date fails
// with InvalidResponse, as a full read would.
func TestIDListingRejectsBrokenPages(t *testing.T) {
	for _, body := range []string{`{"Total":1,"Products":[{"LastModifiedOn":"2026-01-02T03:04:05Z"}]}`,
		`{"Total":1,"Products":[{"ID":"p1","LastModifiedOn":"yesterday"}]}`, `{"Total":1}`, `[]`} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(body)) }))
		c, err := cin7core.NewWithOptions(context.Background(), connectors.Config{Type: cin7core.Type, CompanyID: company,
			BaseURL: srv.URL + "/", Credentials: map[string][]byte{"accountId": []byte("a"), "applicationKey": []byte("k")}},
			cin7core.Options{TimeScale: testScale, Registry: httpapi.NewRegistry(nil)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.(connectors.IDLister).ListIDs(context.Background(), connectors.PageRequest{Entity: model.KindProduct, Page: 1})
		if connectors.KindOf(err) != connectors.KindInvalidResponse {
			t.Errorf("%s: %v, want InvalidResponse", body, err)
		}
		srv.Close()
	}
}

// TestReadDocsMapsAsAFullRead: documents read by id are the records (and
// children) a full read gives, with the list's parameters and the ID
// filter, one request a document, or for sales the sale's order number
// and a Search: two. Unknown ids are left out.
func TestReadDocsMapsAsAFullRead(t *testing.T) {
	e := newEnv(t, envOpts{data: simkit.Options{Seed: 22, Products: 60, Customers: 20, Orders: 40}})
	e.sim.Dataset().Update(func(d *simkit.Dataset) {
		d.Products[2].Deleted = true // read by id all the same, as deprecated
		d.Orders[1].Deleted = true
	})
	full := map[model.Key]model.Record{}
	for _, ent := range e.conn.Entities() {
		for page := 1; ; page++ {
			p, err := e.conn.ListPage(context.Background(), connectors.PageRequest{Entity: ent.Name, Page: page})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range p.Records {
				full[r.Key()] = r
			}
			if !p.More {
				break
			}
		}
	}
	var ids = map[model.Kind][]string{}
	e.sim.Dataset().View(func(d *simkit.Dataset) {
		ids[model.KindProduct] = []string{d.Products[2].ID, d.Products[7].ID}
		ids[model.KindSupplier] = []string{d.Suppliers[1].ID}
		for _, c := range d.Customers {
			if len(c.Contacts) > 0 && len(ids[model.KindCustomer]) < 2 {
				ids[model.KindCustomer] = append(ids[model.KindCustomer], c.ID)
			}
		}
		ids[model.KindSalesOrder] = []string{d.Orders[0].ID, d.Orders[1].ID}
	})
	for k := range full {
		if k.Kind == model.KindCreditNote && len(ids[model.KindCreditNote]) == 0 {
			ids[model.KindCreditNote] = []string{k.VendorID}
		}
	}
	const unknown = "00000000-0000-4000-8000-000000000000"
	perDoc := map[model.Kind]int{model.KindSalesOrder: 2, model.KindCreditNote: 2}
	for _, tc := range []struct {
		entity model.Kind
		query  *regexp.Regexp
	}{
		{model.KindProduct, regexp.MustCompile(`^/ExternalApi/v2/product\?ID=[-0-9a-f]+&IncludeDeprecated=true&Limit=50&Page=1$`)},
		{model.KindCustomer, regexp.MustCompile(`^/ExternalApi/v2/customer\?ID=[-0-9a-f]+&IncludeDeprecated=true&IncludeProductPrices=true&Limit=50&Page=1$`)},
		{model.KindSupplier, regexp.MustCompile(`^/ExternalApi/v2/supplier\?ID=[-0-9a-f]+&IncludeDeprecated=true&Limit=50&Page=1$`)},
		{model.KindSalesOrder, regexp.MustCompile(`^/ExternalApi/v2/(sale\?ID=[-0-9a-f]+|saleList\?Limit=50&Page=1&Search=SO-\d+)$`)},
		{model.KindCreditNote, regexp.MustCompile(`^/ExternalApi/v2/(sale\?ID=[-0-9a-f]+|saleCreditNoteList\?Limit=50&Page=1&Search=SO-\d+)$`)},
	} {
		t.Run(string(tc.entity), func(t *testing.T) {
			r := e.conn.(connectors.DocReader)
			if n := r.MaxDocsPerRead(tc.entity); n < 1 {
				t.Fatalf("MaxDocsPerRead = %d", n)
			}
			want := ids[tc.entity]
			if len(want) == 0 {
				t.Fatal("no document to read")
			}
			before := len(e.rec.Queries())
			p, err := r.ReadDocs(context.Background(), tc.entity, append(slices.Clone(want), unknown))
			if err != nil {
				t.Fatal(err)
			}
			queries := e.rec.Queries()[before:]
			per := max(perDoc[tc.entity], 1)
			if wantCalls := per*len(want) + 1; p.Calls != wantCalls || len(queries) != wantCalls {
				t.Errorf("%d calls reported, %d requests, want %d: %v", p.Calls, len(queries), wantCalls, queries)
			}
			for _, q := range queries {
				if !tc.query.MatchString(q) {
					t.Errorf("request %q does not match %v", q, tc.query)
				}
			}
			if !slices.Equal(p.Docs, want) {
				t.Errorf("docs %v, want %v", p.Docs, want)
			}
			got := map[model.Key]bool{}
			for _, rec := range p.Records {
				got[rec.Key()] = true
				f, ok := full[rec.Key()]
				if !ok {
					t.Errorf("%s %s: not in a full read", rec.Kind, rec.VendorID)
					continue
				}
				ha, _ := rec.ContentHash()
				hb, _ := f.ContentHash()
				ca, _ := json.Marshal(rec.Children)
				cb, _ := json.Marshal(f.Children)
				if ha != hb || !rec.ModifiedAt.Equal(f.ModifiedAt) || rec.Parent != f.Parent || string(ca) != string(cb) {
					t.Errorf("%s %s: read by id differs from the full read", rec.Kind, rec.VendorID)
				}
			}
			// Every record of the full read that belongs to a document read
			// (itself or a child) came back.
			for k, f := range full {
				if (k.Kind == tc.entity && slices.Contains(want, k.VendorID)) || (f.ParentKind == tc.entity && slices.Contains(want, f.Parent)) {
					if !got[k] {
						t.Errorf("%s %s of a document read is missing", k.Kind, k.VendorID)
					}
				}
			}
		})
	}
}

// TestDeprecationWithoutNewTimeLeavesTheListing: were Cin7 Core to
// deprecate a product without a new LastModifiedOn (undocumented either
// way), an incremental run would not see it, but the id listing (which
// leaves deprecated products out) no longer holds it, so reconciliation
// finds it gone.
func TestDeprecationWithoutNewTimeLeavesTheListing(t *testing.T) {
	w := newFakeWorld(t, simkit.Options{Seed: 23, Products: 30, Customers: 5, Orders: 5})
	w.run(t, false)
	var id string
	w.env.Data.Update(func(d *simkit.Dataset) {
		for _, p := range d.Products {
			if !p.Deleted {
				p.Deleted, id = true, p.ID // Modified unchanged
				return
			}
		}
	})
	w.clock.Advance(time.Minute)
	w.run(t, false)
	if r, ok := w.get(model.KindProduct, id); !ok || r.Deleted {
		t.Fatalf("the incremental run saw the unstamped deprecation (stored %v, deleted %v): the test no longer shows the gap", ok, r.Deleted)
	}
	docs, _, _ := listIDs(t, w.conn, model.KindProduct)
	for _, d := range docs {
		if d.ID == id {
			t.Fatalf("the id listing still holds the deprecated product %s", id)
		}
	}
	if len(docs) == 0 {
		t.Fatal("empty listing")
	}
}
