package unleashed_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/connectors/unleashed"
	"github.com/erpsync/erpsync-operator/connectors/unleashed/sim"
	"github.com/erpsync/erpsync-operator/internal/engine"
	"github.com/erpsync/erpsync-operator/sinks"
	"github.com/erpsync/erpsync-operator/sinks/memory"
)

const (
	testScale = 600
	company   = "ACME-01"
)

type env struct {
	sim     *sim.Server
	srv     *httptest.Server
	conn    connectors.Connector
	sink    *memory.Sink
	mu      sync.Mutex
	queries []string
	headers []http.Header
}

type envOpts struct {
	data     simkit.Options
	sim      sim.Options
	conn     unleashed.Options
	secret   map[string]string
	pageSize int
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	if o.data.Products == 0 {
		o.data = simkit.Options{Seed: 42, Products: 120, Customers: 30, Orders: 40}
	}
	o.sim.Dataset = o.data
	o.sim.TimeScale = testScale
	e := &env{sim: sim.New(o.sim), sink: memory.New()}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.queries = append(e.queries, r.URL.Path+"?"+r.URL.RawQuery)
		e.headers = append(e.headers, r.Header.Clone())
		e.mu.Unlock()
		e.sim.ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)
	creds := e.sim.Credentials()
	for k, v := range o.secret {
		creds[k] = v
	}
	secret := map[string][]byte{}
	for k, v := range creds {
		secret[k] = []byte(v)
	}
	o.conn.TimeScale = testScale
	o.conn.Registry = httpapi.NewRegistry(nil)
	if o.conn.BackoffBase == 0 {
		o.conn.BackoffBase = time.Millisecond
	}
	switch {
	case o.pageSize > 0:
		o.conn.PageSize = o.pageSize
	case o.pageSize == 0:
		o.conn.PageSize = 50
	}
	c, err := unleashed.NewWithOptions(context.Background(), connectors.Config{Type: unleashed.Type, CompanyID: company,
		BaseURL: e.srv.URL, Credentials: secret}, o.conn)
	if err != nil {
		t.Fatal(err)
	}
	e.conn = c
	return e
}

func (e *env) run(t *testing.T, state []engine.EntityState, entities ...model.Kind) (engine.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return engine.Execute(ctx, engine.Run{Connector: e.conn, Sink: e.sink, State: state, Entities: entities, Overlap: time.Second})
}

func countByKind(recs []model.Record) map[model.Kind]int {
	out := map[model.Kind]int{}
	for _, r := range recs {
		out[r.Kind]++
	}
	return out
}

func trimZeros(d string) string {
	if strings.Contains(d, ".") {
		d = strings.TrimRight(strings.TrimRight(d, "0"), ".")
	}
	return d
}

func key(k model.Kind, id string) model.Key {
	return model.Key{Company: company, Vendor: unleashed.Type, Kind: k, VendorID: id}
}

func TestFullImportEqualsDataset(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.sim.Dataset().Update(func(d *simkit.Dataset) {
		d.Customers[3].Deleted = true
		d.Orders[5].Deleted = true
		d.Invoices[1].Deleted = true
		d.Warehouses[2].Deleted = true
	})
	res, err := e.run(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := e.sim.Expected()
	got := countByKind(e.sink.Records())
	for _, k := range model.Kinds {
		if got[k] != want[k] {
			t.Errorf("%s: sink holds %d, simulator expects %d", k, got[k], want[k])
		}
	}
	if res.Upserted != int64(e.sink.Len()) {
		t.Errorf("upserted %d, sink holds %d", res.Upserted, e.sink.Len())
	}
	e.sim.Dataset().View(func(d *simkit.Dataset) {
		for _, p := range d.Products {
			r, ok := e.sink.Get(key(model.KindProduct, p.ID))
			if !ok {
				t.Errorf("product %s missing", p.SKU)
				continue
			}
			got := r.Data.(*model.Product)
			if got.SKU != p.SKU || got.Name != p.Name || string(got.SellPrice) != trimZeros(p.SellPrice) || string(got.CostPrice) != trimZeros(p.CostPrice) ||
				r.Deleted != p.Deleted || got.Obsolete != p.Deleted || !r.ModifiedAt.Equal(p.Modified) || len(got.Prices) != 1 || string(got.Prices[0].Amount) != trimZeros(p.Tier2Price) {
				t.Errorf("product %s: got %+v deleted %v modified %v; dataset %+v", p.SKU, got, r.Deleted, r.ModifiedAt, p)
			}
			for _, st := range p.Stock {
				var wid string
				for _, w := range d.Warehouses {
					if w.Code == st.WarehouseCode {
						wid = w.ID
					}
				}
				r, ok := e.sink.Get(key(model.KindStockLevel, p.ID+"/"+wid))
				if !ok {
					t.Errorf("stock of %s in %s missing", p.SKU, st.WarehouseCode)
					continue
				}
				if sl := r.Data.(*model.StockLevel); sl.OnHand != st.OnHand || sl.Allocated != st.Allocated || sl.Warehouse != st.WarehouseCode || !r.ModifiedAt.Equal(st.Modified) {
					t.Errorf("stock of %s in %s: %+v, dataset %+v", p.SKU, st.WarehouseCode, sl, st)
				}
			}
		}
		for _, c := range d.Customers {
			r, ok := e.sink.Get(key(model.KindCustomer, c.ID))
			if !ok {
				t.Errorf("customer %s missing", c.Code)
				continue
			}
			cu := r.Data.(*model.Customer)
			if cu.Code != c.Code || cu.Name != c.Name || cu.Currency != c.Currency || cu.PriceTier != c.PriceTier || r.Deleted != c.Deleted || cu.TaxNumber != c.TaxNumber {
				t.Errorf("customer %s: %+v deleted %v", c.Code, cu, r.Deleted)
			}
			for _, ct := range c.Contacts {
				if r, ok := e.sink.Get(key(model.KindContact, ct.ID)); !ok || r.Data.(*model.Contact).Email != ct.Email {
					t.Errorf("contact %s of %s: %+v", ct.ID, c.Code, r.Data)
				}
			}
		}
		for _, o := range d.Orders {
			r, ok := e.sink.Get(key(model.KindSalesOrder, o.ID))
			if !ok {
				t.Errorf("order %s missing", o.Number)
				continue
			}
			so := r.Data.(*model.SalesOrder)
			_, _, total := o.Totals()
			if so.Number != o.Number || string(so.Total) != trimZeros(total) || len(so.Lines) != len(o.Lines) || r.Deleted != o.Deleted {
				t.Errorf("order %s: %+v deleted %v, want total %s", o.Number, so, r.Deleted, total)
			}
		}
		for _, inv := range d.Invoices {
			r, ok := e.sink.Get(key(model.KindInvoice, inv.ID))
			if !ok || r.Deleted != inv.Deleted || r.Data.(*model.Invoice).SalesOrderNumber != inv.OrderNumber {
				t.Errorf("invoice %s: %+v", inv.Number, r)
			}
		}
	})
	for _, ei := range e.conn.Entities() {
		full := ei.Name == model.KindTaxRate || ei.Name == model.KindCurrency || ei.Name == model.KindSalesPerson || ei.Name == model.KindSupplier
		if ei.Incremental == full {
			t.Errorf("%s: Incremental=%v", ei.Name, ei.Incremental)
		}
	}
}

// TestRequestsAreVendorExact checks the signature headers, the page in the
// path, the page size and modifiedSince's format.
func TestRequestsAreVendorExact(t *testing.T) {
	e := newEnv(t, envOpts{pageSize: -1})
	since := time.Date(2025, 6, 1, 12, 30, 45, 123e6, time.UTC)
	if _, err := e.conn.ListPage(context.Background(), connectors.PageRequest{Entity: model.KindProduct, Since: since, Page: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.conn.ListPage(context.Background(), connectors.PageRequest{Entity: model.KindTaxRate, Page: 1}); err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if want := regexp.MustCompile(`^/Products/3\?includeObsolete=true&pageSize=1000&modifiedSince=2025-06-01T12:30:45$`); !want.MatchString(e.queries[0]) {
		t.Errorf("request %q, want %v", e.queries[0], want)
	}
	if want := "/Taxes/1?pageSize=1000"; e.queries[1] != want {
		t.Errorf("request %q, want %q", e.queries[1], want)
	}
	h := e.headers[0]
	raw := strings.SplitN(e.queries[0], "?", 2)[1]
	if h.Get("api-auth-id") != sim.DefaultAPIID || h.Get("api-auth-signature") != sim.Sign(raw, sim.DefaultAPIKey) ||
		h.Get("client-type") != unleashed.DefaultClientType || h.Get("Accept") != "application/json" || h.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", h)
	}
}

func TestIncrementalReadsOnlyChanges(t *testing.T) {
	e := newEnv(t, envOpts{})
	first, err := e.run(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	products := e.sim.Dataset().TouchProducts(3)
	customers := e.sim.Dataset().TouchCustomers(2)
	orders := e.sim.Dataset().TouchOrders(2)
	e.sim.Stats().Reset()
	second, err := e.run(t, first.State)
	if err != nil {
		t.Fatal(err)
	}
	uniq := func(ids []string) map[string]bool {
		m := map[string]bool{}
		for _, id := range ids {
			m[id] = true
		}
		return m
	}
	nProducts, nOrders := len(uniq(products)), len(uniq(orders))
	var wantStock, wantPrices, wantCustomerRecs int
	e.sim.Dataset().View(func(d *simkit.Dataset) {
		for _, p := range d.Products {
			if uniq(products)[p.ID] {
				wantStock += len(p.Stock)
				wantPrices += len(p.SpecialPrices)
			}
		}
		for _, c := range d.Customers {
			if uniq(customers)[c.ID] {
				wantCustomerRecs += 1 + len(c.Contacts)
			}
		}
	})
	for k, want := range map[model.Kind]int{model.KindProduct: nProducts, model.KindStockLevel: wantStock, model.KindPriceRule: wantPrices,
		model.KindCustomer: wantCustomerRecs, model.KindSalesOrder: nOrders, model.KindInvoice: 0, model.KindWarehouse: 0} {
		if got := second.Records[k]; got != int64(want) {
			t.Errorf("%s: read %d records, want %d", k, got, want)
		}
	}
	// Shipments of orders completed by the touch appear.
	if got := second.Records[model.KindShipment]; got > int64(nOrders) {
		t.Errorf("read %d shipments for %d changed orders", got, nOrders)
	}
	// Full entities: taxes, currencies, sales persons, suppliers (4); the
	// stock stream lists the warehouses then reads each (1+3); every other
	// incremental entity one page.
	want := int64(4 + 1 + 1 + 1 + (1 + 3) + 1 + 1 + 1 + 1 + 1)
	if got := e.sim.Stats().Requests.Load(); got != want || second.Calls != want {
		t.Errorf("incremental run made %d calls (engine counted %d), want %d", got, second.Calls, want)
	}
}

// TestStockPagesResume: the stock stream's pages run across warehouses; a
// fresh connector asked for a middle page (a resumed pass) returns the
// same records as one that paged from the start.
func TestStockPagesResume(t *testing.T) {
	e := newEnv(t, envOpts{pageSize: 50})
	var seq [][]string
	for p := 1; ; p++ {
		page, err := e.conn.ListPage(context.Background(), connectors.PageRequest{Entity: model.KindStockLevel, Page: p})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range page.Records {
			ids = append(ids, r.VendorID)
		}
		seq = append(seq, ids)
		if !page.More {
			break
		}
	}
	if len(seq) != 3*3 { // 120 rows per warehouse at 50 a page, 3 warehouses
		t.Fatalf("%d stock pages, want 9", len(seq))
	}
	for _, p := range []int{2, 4, 7, 9} {
		fresh := newEnv(t, envOpts{pageSize: 50})
		page, err := fresh.conn.ListPage(context.Background(), connectors.PageRequest{Entity: model.KindStockLevel, Page: p})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range page.Records {
			ids = append(ids, r.VendorID)
		}
		if fmt.Sprint(ids) != fmt.Sprint(seq[p-1]) || page.More != (p < 9) {
			t.Errorf("resumed page %d: %d records (more %v), sequential had %d", p, len(ids), page.More, len(seq[p-1]))
		}
	}
}

func TestAuthenticationFailure(t *testing.T) {
	for _, tc := range []struct {
		name   string
		secret map[string]string
	}{
		{"wrong key (bad signature)", map[string]string{"apiKey": "not-the-key"}},
		{"wrong id", map[string]string{"apiId": "00000000-94f1-4b8a-a6c0-3b8dbfa2c5c1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{secret: tc.secret})
			_, err := e.run(t, nil)
			if connectors.KindOf(err) != connectors.KindAuthenticationFailed {
				t.Fatalf("error %v (kind %q), want AuthenticationFailed", err, connectors.KindOf(err))
			}
			if n := e.sim.Stats().AuthFails.Load(); n != 1 {
				t.Errorf("%d refused calls, want 1", n)
			}
			if strings.Contains(err.Error(), "not-the-key") {
				t.Error("the error names the key")
			}
		})
	}
}

// TestMonthlyQuota: once the plan's calls are used, Unleashed blocks every
// request until the 1st; the run fails with QuotaExhausted and RetryAt at
// the reset. A quota named in the Secret stops the connector before.
func TestMonthlyQuota(t *testing.T) {
	t.Run("vendor blocks", func(t *testing.T) {
		e := newEnv(t, envOpts{sim: sim.Options{MonthlyQuota: 5}})
		_, err := e.run(t, nil)
		if connectors.KindOf(err) != connectors.KindQuotaExhausted {
			t.Fatalf("error %v, want QuotaExhausted", err)
		}
		now := e.sim.Now()
		reset := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, 1, 0)
		if got := connectors.RetryAtOf(err); !got.Equal(reset) {
			t.Errorf("RetryAt %v, want %v", got, reset)
		}
		if e.sim.QuotaUsed() != 5 || e.sim.Stats().Throttled.Load() != 1 {
			t.Errorf("used %d, refused %d", e.sim.QuotaUsed(), e.sim.Stats().Throttled.Load())
		}
	})
	t.Run("connector stops first", func(t *testing.T) {
		e := newEnv(t, envOpts{secret: map[string]string{"monthlyQuota": "3"}})
		_, err := e.run(t, nil)
		if connectors.KindOf(err) != connectors.KindQuotaExhausted {
			t.Fatalf("error %v, want QuotaExhausted", err)
		}
		if n := e.sim.Stats().Requests.Load(); n != 3 {
			t.Errorf("%d requests reached Unleashed, want 3", n)
		}
	})
}

func TestThrottlingStormLosesNothing(t *testing.T) {
	e := newEnv(t, envOpts{pageSize: 100})
	for i, path := range []string{"Taxes", "Customers", "Products", "StockOnHand", "SalesOrders", "SalesShipments"} {
		e.sim.Faults().Inject(simkit.Fault{Kind: simkit.FaultStatus, Status: []int{429, 503}[i%2], RetryAfter: 2, PathContains: path, Count: 2})
	}
	if _, err := e.run(t, nil); err != nil {
		t.Fatal(err)
	}
	if n := e.sim.Stats().Faults.Load(); n != 12 {
		t.Fatalf("%d faults served, want 12", n)
	}
	want := e.sim.Expected()
	got := countByKind(e.sink.Records())
	for _, k := range model.Kinds {
		if got[k] != want[k] {
			t.Errorf("%s: %d imported, %d expected", k, got[k], want[k])
		}
	}
}

func TestMalformedPageFailsCleanly(t *testing.T) {
	t.Run("truncated body", func(t *testing.T) {
		e := newEnv(t, envOpts{})
		e.sim.Faults().Inject(simkit.Fault{Kind: simkit.FaultMalformed, PathContains: "/Products"})
		res, err := e.run(t, nil)
		if connectors.KindOf(err) != connectors.KindInvalidResponse {
			t.Fatalf("error %v, want InvalidResponse", err)
		}
		if !strings.Contains(err.Error(), "products page 1") {
			t.Errorf("error %q does not name the entity and page", err)
		}
		for _, st := range res.State {
			if st.Name == model.KindCustomer && st.Watermark.IsZero() {
				t.Error("customers completed before the failure but have no watermark")
			}
			if st.Name == model.KindProduct && !st.Watermark.IsZero() {
				t.Error("products failed but got a watermark")
			}
		}
	})
	t.Run("bad date on page 2", func(t *testing.T) {
		e := newEnv(t, envOpts{})
		e.sim.CorruptNext("products", "LastModifiedOn", "/Date(tomorrow)/")
		_, err := e.conn.ListPage(context.Background(), connectors.PageRequest{Entity: model.KindProduct, Page: 2})
		if connectors.KindOf(err) != connectors.KindInvalidResponse {
			t.Fatalf("error %v, want InvalidResponse", err)
		}
		for _, want := range []string{"products", "page 2", "LastModifiedOn"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
		}
	})
}

func TestChangesDuringARun(t *testing.T) {
	e := newEnv(t, envOpts{pageSize: 20})
	var touched []string
	hook := &hookSink{Sink: e.sink, after: func(n int) {
		if n == 3 {
			touched = e.sim.Dataset().TouchProducts(4)
			e.sim.Dataset().View(func(d *simkit.Dataset) { touched = append(touched, d.Products[1].ID) })
			e.sim.Dataset().DeleteProduct(touched[len(touched)-1])
		}
	}}
	ctx := context.Background()
	entities := []model.Kind{model.KindProduct}
	first, err := engine.Execute(ctx, engine.Run{Connector: e.conn, Sink: hook, Entities: entities, Overlap: time.Second, BatchSize: 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(touched) == 0 {
		t.Fatal("the hook never ran")
	}
	if _, err := engine.Execute(ctx, engine.Run{Connector: e.conn, Sink: e.sink, State: first.State, Entities: entities, Overlap: time.Second}); err != nil {
		t.Fatal(err)
	}
	e.sim.Dataset().View(func(d *simkit.Dataset) {
		for _, p := range d.Products {
			r, ok := e.sink.Get(key(model.KindProduct, p.ID))
			if !ok || r.Data.(*model.Product).Name != p.Name || r.Deleted != p.Deleted {
				t.Errorf("product %s: sink %+v, dataset name %q deleted %v", p.SKU, r.Data, p.Name, p.Deleted)
			}
		}
	})
}

type hookSink struct {
	*memory.Sink
	n     int
	after func(n int)
}

func (h *hookSink) Write(ctx context.Context, b []model.Record) (sinks.WriteResult, error) {
	res, err := h.Sink.Write(ctx, b)
	h.n++
	h.after(h.n)
	return res, err
}

func TestNewChecksTheSecretWithoutCalling(t *testing.T) {
	noCalls := &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
		t.Error("New made a network call")
		return nil, http.ErrHandlerTimeout
	})}
	ok := map[string][]byte{"apiId": []byte("i"), "apiKey": []byte("k")}
	for _, tc := range []struct {
		name  string
		creds map[string][]byte
		base  string
		kind  connectors.ErrorKind
	}{
		{"ok", ok, "", ""},
		{"no id", map[string][]byte{"apiKey": []byte("k")}, "", connectors.KindSecretKeyMissing},
		{"no key", map[string][]byte{"apiId": []byte("i")}, "", connectors.KindSecretKeyMissing},
		{"bad quota", map[string][]byte{"apiId": []byte("i"), "apiKey": []byte("k"), "monthlyQuota": []byte("lots")}, "", connectors.KindInvalidConfig},
		{"bad base", ok, "::", connectors.KindInvalidConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := unleashed.New(context.Background(), connectors.Config{Type: unleashed.Type, Credentials: tc.creds, BaseURL: tc.base, HTTPClient: noCalls})
			if connectors.KindOf(err) != tc.kind {
				t.Fatalf("error %v, want kind %q", err, tc.kind)
			}
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
