package cin7omni_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/cin7omni"
	"github.com/erpsync/erpsync-operator/connectors/cin7omni/sim"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
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
	queries []*url.URL
	auth    []string
}

type envOpts struct {
	data   simkit.Options
	sim    sim.Options
	conn   cin7omni.Options
	secret map[string]string
	rows   int
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
		e.queries = append(e.queries, r.URL)
		e.auth = append(e.auth, r.Header.Get("Authorization"))
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
	case o.rows > 0:
		o.conn.Rows = o.rows
	case o.rows == 0:
		o.conn.Rows = 50
	}
	c, err := cin7omni.NewWithOptions(context.Background(), connectors.Config{Type: cin7omni.Type, CompanyID: company,
		BaseURL: e.srv.URL + "/api/", Credentials: secret}, o.conn)
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
	return model.Key{Company: company, Vendor: cin7omni.Type, Kind: k, VendorID: id}
}

// The simulator's integer ids (see sim/render.go).
func optionID(seq int) string { return strconv.Itoa(500000 + seq) }

func TestFullImportEqualsDataset(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.sim.Dataset().Update(func(d *simkit.Dataset) {
		d.Customers[3].Deleted = true
		d.Orders[5].Deleted = true
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
			r, ok := e.sink.Get(key(model.KindProduct, optionID(p.Seq)))
			if !ok {
				t.Errorf("product %s missing", p.SKU)
				continue
			}
			got := r.Data.(*model.Product)
			if got.SKU != p.SKU || got.Name != p.Name || string(got.SellPrice) != trimZeros(p.SellPrice) || r.Deleted != p.Deleted || !r.ModifiedAt.Equal(p.Modified) ||
				got.ParentVendorID != strconv.Itoa(1000+p.Seq) || got.Prices[1].Amount != model.Decimal(trimZeros(p.Tier2Price)) {
				t.Errorf("product %s: %+v deleted %v modified %v; dataset %+v", p.SKU, got, r.Deleted, r.ModifiedAt, p)
			}
			if len(p.SpecialPrices) > 0 {
				r, ok := e.sink.Get(key(model.KindPriceRule, optionID(p.Seq)+"/special"))
				if !ok || string(r.Data.(*model.PriceRule).Price) != trimZeros(p.SpecialPrices[0].Price) || r.Data.(*model.PriceRule).ValidTo == nil {
					t.Errorf("special price of %s: %+v", p.SKU, r.Data)
				}
			}
			for _, st := range p.Stock {
				var bid int
				for _, w := range d.Warehouses {
					if w.Code == st.WarehouseCode {
						bid = 900 + w.Seq
					}
				}
				r, ok := e.sink.Get(key(model.KindStockLevel, optionID(p.Seq)+"/"+strconv.Itoa(bid)))
				if !ok {
					t.Errorf("stock of %s in %s missing", p.SKU, st.WarehouseCode)
					continue
				}
				if sl := r.Data.(*model.StockLevel); sl.OnHand != st.OnHand || sl.Allocated != st.Allocated || sl.Available != st.OnHand-st.Allocated || !r.ModifiedAt.Equal(st.Modified) {
					t.Errorf("stock of %s in %s: %+v, dataset %+v", p.SKU, st.WarehouseCode, sl, st)
				}
			}
		}
		for _, c := range d.Customers {
			r, ok := e.sink.Get(key(model.KindCustomer, strconv.Itoa(20000+c.Seq)))
			if !ok {
				t.Errorf("customer %s missing", c.Code)
				continue
			}
			cu := r.Data.(*model.Customer)
			if cu.Code != c.Code || cu.Name != c.Name || cu.Currency != c.Currency || r.Deleted != c.Deleted || cu.Email != c.Email {
				t.Errorf("customer %s: %+v deleted %v", c.Code, cu, r.Deleted)
			}
		}
		for _, o := range d.Orders {
			r, ok := e.sink.Get(key(model.KindSalesOrder, strconv.Itoa(700000+o.Seq)))
			if !ok {
				t.Errorf("order %s missing", o.Number)
				continue
			}
			_, _, total := o.Totals()
			if so := r.Data.(*model.SalesOrder); so.Number != o.Number || string(so.Total) != trimZeros(total) || len(so.Lines) != len(o.Lines) || r.Deleted != o.Deleted {
				t.Errorf("order %s: %+v deleted %v", o.Number, so, r.Deleted)
			}
		}
	})
	for _, ei := range e.conn.Entities() {
		if ei.Incremental == (ei.Name == model.KindSalesPerson) {
			t.Errorf("%s: Incremental=%v", ei.Name, ei.Incremental)
		}
	}
}

func TestRequestsAreVendorExact(t *testing.T) {
	e := newEnv(t, envOpts{rows: -1})
	since := time.Date(2025, 6, 1, 12, 30, 45, 123e6, time.UTC)
	if _, err := e.conn.ListPage(context.Background(), connectors.PageRequest{Entity: model.KindCustomer, Since: since, Page: 2}); err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	u := e.queries[0]
	q := u.Query()
	if u.Path != "/api/v1/Contacts" || q.Get("where") != "Type='Customer' AND ModifiedDate>='2025-06-01T12:30:45Z'" || q.Get("rows") != "250" ||
		q.Get("page") != "2" || q.Get("order") != "Id ASC" {
		t.Errorf("request %s", u)
	}
	r := http.Request{Header: http.Header{"Authorization": {e.auth[0]}}}
	if user, pass, ok := r.BasicAuth(); !ok || user != sim.DefaultUsername || pass != sim.DefaultAPIKey {
		t.Errorf("basic auth %q", e.auth[0])
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
	var wantProducts, wantStock, wantCustomers, wantOrders int
	e.sim.Dataset().View(func(d *simkit.Dataset) {
		ix := map[string]bool{}
		for _, inv := range d.Invoices {
			ix[inv.OrderNumber] = true
		}
		for _, p := range d.Products {
			if uniq(products)[p.ID] {
				wantProducts++
				wantStock += len(p.Stock)
				if len(p.SpecialPrices) > 0 {
					wantProducts++ // the special price rides along
				}
			}
		}
		for _, c := range d.Customers {
			if uniq(customers)[c.ID] {
				wantCustomers += 1 + len(c.Contacts)
			}
		}
		for _, o := range d.Orders {
			if uniq(orders)[o.ID] {
				wantOrders += 2 // the order, and its dispatch (TouchOrders completes it)
				if ix[o.Number] {
					wantOrders++
				}
			}
		}
	})
	for k, want := range map[model.Kind]int{model.KindProduct: wantProducts, model.KindStockLevel: wantStock, model.KindCustomer: wantCustomers,
		model.KindSalesOrder: wantOrders, model.KindSupplier: 0, model.KindWarehouse: 0, model.KindCreditNote: 0} {
		if got := second.Records[k]; got != int64(want) {
			t.Errorf("%s: read %d records, want %d", k, got, want)
		}
	}
	// One short page per entity.
	if got := e.sim.Stats().Requests.Load(); got != 8 || second.Calls != 8 {
		t.Errorf("incremental run made %d calls (engine counted %d), want 8", got, second.Calls)
	}
}

func TestAuthenticationFailure(t *testing.T) {
	e := newEnv(t, envOpts{secret: map[string]string{"apiKey": "wrong-connection-key"}})
	_, err := e.run(t, nil)
	if connectors.KindOf(err) != connectors.KindAuthenticationFailed {
		t.Fatalf("error %v (kind %q), want AuthenticationFailed", err, connectors.KindOf(err))
	}
	if n := e.sim.Stats().AuthFails.Load(); n != 1 {
		t.Errorf("%d refused calls, want 1", n)
	}
	if strings.Contains(err.Error(), "wrong-connection-key") {
		t.Error("the error names the key")
	}
}

// TestThrottlingStormLosesNothing: the simulator allows less than the
// client assumes, so it answers 429 with Retry-After again and again; the
// run waits them out and imports everything.
func TestThrottlingStormLosesNothing(t *testing.T) {
	e := newEnv(t, envOpts{sim: sim.Options{PerSecond: 1, PerMinute: 6}, rows: 100})
	e.sim.Faults().Inject(simkit.Fault{Kind: simkit.FaultStatus, Status: 429, RetryAfter: 5, PathContains: "Products", Count: 2})
	e.sim.Faults().Inject(simkit.Fault{Kind: simkit.FaultStatus, Status: 503, PathContains: "Stock", Count: 2})
	if _, err := e.run(t, nil); err != nil {
		t.Fatal(err)
	}
	st := e.sim.Stats()
	if st.Throttled.Load() == 0 {
		t.Fatal("the simulator never throttled; the test proves nothing")
	}
	want := e.sim.Expected()
	got := countByKind(e.sink.Records())
	for _, k := range model.Kinds {
		if got[k] != want[k] {
			t.Errorf("%s: %d imported, %d expected", k, got[k], want[k])
		}
	}
	t.Logf("%d requests, %d throttled, %d faults", st.Requests.Load(), st.Throttled.Load(), st.Faults.Load())
}

// TestDailyLimit: once the day's calls are used, Omni's Retry-After runs to
// midnight; the run stops with QuotaExhausted instead of waiting hours.
func TestDailyLimit(t *testing.T) {
	e := newEnv(t, envOpts{sim: sim.Options{PerDay: 4, PerSecond: 1000, PerMinute: 1000}})
	_, err := e.run(t, nil)
	if connectors.KindOf(err) != connectors.KindQuotaExhausted || connectors.RetryAtOf(err).IsZero() {
		t.Fatalf("error %v (RetryAt %v), want QuotaExhausted with RetryAt", err, connectors.RetryAtOf(err))
	}
	if n := e.sim.Stats().Throttled.Load(); n != 1 {
		t.Errorf("%d refused calls, want 1 (no retries into the day limit)", n)
	}
}

func TestMalformedPageFailsCleanly(t *testing.T) {
	t.Run("truncated body", func(t *testing.T) {
		e := newEnv(t, envOpts{})
		e.sim.Faults().Inject(simkit.Fault{Kind: simkit.FaultMalformed, PathContains: "/Products"})
		res, err := e.run(t, nil)
		if connectors.KindOf(err) != connectors.KindInvalidResponse || !strings.Contains(err.Error(), "products page 1") {
			t.Fatalf("error %v, want InvalidResponse naming products page 1", err)
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
	t.Run("bad field on page 2", func(t *testing.T) {
		e := newEnv(t, envOpts{})
		e.sim.CorruptNext("stock", "ModifiedDate", "last Tuesday")
		_, err := e.conn.ListPage(context.Background(), connectors.PageRequest{Entity: model.KindStockLevel, Page: 2})
		if connectors.KindOf(err) != connectors.KindInvalidResponse {
			t.Fatalf("error %v, want InvalidResponse", err)
		}
		for _, want := range []string{"stock_levels", "page 2", "ModifiedDate"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
		}
	})
}

func TestChangesDuringARun(t *testing.T) {
	e := newEnv(t, envOpts{rows: 20})
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
			r, ok := e.sink.Get(key(model.KindProduct, optionID(p.Seq)))
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
	ok := map[string][]byte{"username": []byte("u"), "apiKey": []byte("k")}
	for _, tc := range []struct {
		name  string
		creds map[string][]byte
		base  string
		kind  connectors.ErrorKind
	}{
		{"ok", ok, "", ""},
		{"no user", map[string][]byte{"apiKey": []byte("k")}, "", connectors.KindSecretKeyMissing},
		{"no key", map[string][]byte{"username": []byte("u")}, "", connectors.KindSecretKeyMissing},
		{"bad base", ok, "api.cin7.com", connectors.KindInvalidConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cin7omni.New(context.Background(), connectors.Config{Type: cin7omni.Type, Credentials: tc.creds, BaseURL: tc.base, HTTPClient: noCalls})
			if connectors.KindOf(err) != tc.kind {
				t.Fatalf("error %v, want kind %q", err, tc.kind)
			}
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
