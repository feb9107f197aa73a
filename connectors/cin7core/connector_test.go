package cin7core_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/cin7core"
	"github.com/erpsync/erpsync-operator/connectors/cin7core/sim"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/internal/engine"
	"github.com/erpsync/erpsync-operator/sinks"
	"github.com/erpsync/erpsync-operator/sinks/memory"
)

// testScale compresses time 600-fold: a minute of rate window is 100 ms.
const testScale = 600

const company = "ACME-01"

type env struct {
	sim  *sim.Server
	srv  *httptest.Server
	conn connectors.Connector
	sink *memory.Sink
	// queries records every request's raw query, by endpoint.
	mu      sync.Mutex
	queries []string
}

type envOpts struct {
	data     simkit.Options
	sim      sim.Options
	conn     cin7core.Options
	creds    map[string]string
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
		e.mu.Unlock()
		e.sim.ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)
	creds := o.creds
	if creds == nil {
		creds = e.sim.Credentials()
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
	if o.pageSize != 0 {
		o.conn.PageSize = o.pageSize
	} else if o.conn.PageSize == 0 {
		o.conn.PageSize = 50
	}
	c, err := cin7core.NewWithOptions(context.Background(), connectors.Config{Type: cin7core.Type, CompanyID: company,
		BaseURL: e.srv.URL + "/ExternalApi/v2/", Credentials: secret}, o.conn)
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

// TestFullImportEqualsDataset imports everything through the real engine
// and checks the sink against the simulator's dataset record for record.
func TestFullImportEqualsDataset(t *testing.T) {
	e := newEnv(t, envOpts{})
	// Some deleted records, which must arrive flagged.
	var deletedCustomer string
	e.sim.Dataset().Update(func(d *simkit.Dataset) {
		d.Customers[3].Deleted = true
		deletedCustomer = d.Customers[3].ID
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
	if res.Upserted != int64(e.sink.Len()) || res.Skipped != 0 {
		t.Errorf("upserted %d skipped %d, sink holds %d", res.Upserted, res.Skipped, e.sink.Len())
	}
	key := func(k model.Kind, id string) model.Key {
		return model.Key{Company: company, Vendor: cin7core.Type, Kind: k, VendorID: id}
	}
	e.sim.Dataset().View(func(d *simkit.Dataset) {
		for _, p := range d.Products {
			r, ok := e.sink.Get(key(model.KindProduct, p.ID))
			if !ok {
				t.Errorf("product %s missing", p.SKU)
				continue
			}
			got := r.Data.(*model.Product)
			if got.SKU != p.SKU || got.Name != p.Name || string(got.SellPrice) != trimZeros(p.SellPrice) || r.Deleted != p.Deleted ||
				!r.ModifiedAt.Equal(p.Modified) || len(got.Prices) != 2 || string(got.Prices[1].Amount) != trimZeros(p.Tier2Price) {
				t.Errorf("product %s: got %+v (deleted %v, modified %v), dataset %+v", p.SKU, got, r.Deleted, r.ModifiedAt, p)
			}
			for _, st := range p.Stock {
				wname := ""
				for _, w := range d.Warehouses {
					if w.Code == st.WarehouseCode {
						wname = w.Name
					}
				}
				r, ok := e.sink.Get(key(model.KindStockLevel, p.ID+"/"+wname))
				if !ok {
					t.Errorf("stock of %s in %s missing", p.SKU, wname)
					continue
				}
				sl := r.Data.(*model.StockLevel)
				if sl.OnHand != st.OnHand || sl.Allocated != st.Allocated || sl.Available != st.OnHand-st.Allocated || sl.SKU != p.SKU {
					t.Errorf("stock of %s in %s: %+v, dataset %+v", p.SKU, wname, sl, st)
				}
			}
			for _, sp := range p.SpecialPrices {
				r, ok := e.sink.Get(key(model.KindPriceRule, sp.CustomerID+"/"+p.ID))
				if !ok {
					t.Errorf("special price of %s for %s missing", p.SKU, sp.CustomerCode)
					continue
				}
				if pr := r.Data.(*model.PriceRule); string(pr.Price) != trimZeros(sp.Price) || pr.SKU != p.SKU {
					t.Errorf("special price of %s: %+v, dataset %+v", p.SKU, pr, sp)
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
			if cu.Name != c.Name || cu.Currency != c.Currency || cu.PriceTier != c.PriceTier || r.Deleted != c.Deleted || cu.Email != c.Contacts[0].Email {
				t.Errorf("customer %s: %+v deleted %v", c.Code, cu, r.Deleted)
			}
			for _, ct := range c.Contacts {
				r, ok := e.sink.Get(key(model.KindContact, ct.ID))
				if !ok || r.Data.(*model.Contact).LastName != ct.LastName || r.Data.(*model.Contact).CustomerVendorID != c.ID {
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
			if so.Number != o.Number || so.CustomerVendorID != o.CustomerID || r.Deleted != o.Deleted {
				t.Errorf("order %s: %+v deleted %v", o.Number, so, r.Deleted)
			}
		}
		for _, inv := range d.Invoices {
			var saleID string
			for _, o := range d.Orders {
				if o.Number == inv.OrderNumber {
					saleID = o.ID
				}
			}
			r, ok := e.sink.Get(key(model.KindInvoice, saleID+"/"+inv.Number))
			if !ok {
				t.Errorf("invoice %s missing", inv.Number)
				continue
			}
			_, _, total := inv.Totals()
			if in := r.Data.(*model.Invoice); string(in.Total) != trimZeros(total) || in.SalesOrderNumber != inv.OrderNumber {
				t.Errorf("invoice %s: %+v, want total %s", inv.Number, in, total)
			}
		}
	})
	if r, _ := e.sink.Get(key(model.KindCustomer, deletedCustomer)); !r.Deleted {
		t.Error("the deprecated customer did not arrive deleted")
	}
	// Full entities are read in full; incremental ones with their filter.
	for _, ei := range e.conn.Entities() {
		wantInc := ei.Name == model.KindProduct || ei.Name == model.KindCustomer || ei.Name == model.KindSupplier ||
			ei.Name == model.KindSalesOrder || ei.Name == model.KindCreditNote
		if ei.Incremental != wantInc {
			t.Errorf("%s: Incremental=%v", ei.Name, ei.Incremental)
		}
	}
}

// TestRequestsAreVendorExact checks the page size, the filter's name and
// format and the headers (the simulator refuses wrong ones).
func TestRequestsAreVendorExact(t *testing.T) {
	e := newEnv(t, envOpts{pageSize: -1}) // -1: the connector's default
	since := time.Date(2025, 6, 1, 12, 30, 45, 123e6, time.UTC)
	for _, k := range []model.Kind{model.KindProduct, model.KindSalesOrder, model.KindStockLevel} {
		if _, err := e.conn.ListPage(context.Background(), connectors.PageRequest{Entity: k, Since: since, Page: 1}); err != nil {
			t.Fatal(err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	want := []*regexp.Regexp{
		regexp.MustCompile(`^/ExternalApi/v2/product\?.*IncludeDeprecated=true.*&Limit=1000&ModifiedSince=2025-06-01T12%3A30%3A45\.123&Page=1$`),
		regexp.MustCompile(`^/ExternalApi/v2/saleList\?Limit=1000&Page=1&UpdatedSince=2025-06-01T12%3A30%3A45\.123$`),
		regexp.MustCompile(`^/ExternalApi/v2/ref/productavailability\?Limit=1000&Page=1$`),
	}
	for i, re := range want {
		if i >= len(e.queries) || !re.MatchString(e.queries[i]) {
			t.Errorf("request %d = %q, want %v", i, e.queries, re)
		}
	}
}

// TestIncrementalReadsOnlyChanges: after a full import, N changes cost one
// call per incremental entity and bring exactly those records.
func TestIncrementalReadsOnlyChanges(t *testing.T) {
	e := newEnv(t, envOpts{})
	first, err := e.run(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Let the simulator's clock pass the overlap, then change records.
	time.Sleep(5 * time.Millisecond)
	products := e.sim.Dataset().TouchProducts(3)
	customers := e.sim.Dataset().TouchCustomers(2)
	orders := e.sim.Dataset().TouchOrders(2)
	var deleted string
	e.sim.Dataset().View(func(d *simkit.Dataset) { deleted = d.Products[7].ID })
	e.sim.Dataset().DeleteProduct(deleted)
	added := e.sim.Dataset().AddProduct()
	e.sim.Stats().Reset()

	second, err := e.run(t, first.State)
	if err != nil {
		t.Fatal(err)
	}
	if second.Full {
		t.Error("the second run read everything")
	}
	uniq := func(ids []string) map[string]bool {
		m := map[string]bool{}
		for _, id := range ids {
			m[id] = true
		}
		return m
	}
	wantProducts := uniq(append(products, deleted, added.ID))
	if got := second.Records[model.KindProduct]; got != int64(len(wantProducts)) {
		t.Errorf("read %d products, changed %d", got, len(wantProducts))
	}
	var wantCustomerRecs int64
	e.sim.Dataset().View(func(d *simkit.Dataset) {
		for id := range uniq(customers) {
			for _, c := range d.Customers {
				if c.ID == id {
					wantCustomerRecs += 1 + int64(len(c.Contacts))
				}
			}
		}
		n := 0
		for _, p := range d.Products {
			for _, sp := range p.SpecialPrices {
				if uniq(customers)[sp.CustomerID] {
					n++
				}
			}
		}
		wantCustomerRecs += int64(n)
	})
	if got := second.Records[model.KindCustomer]; got != wantCustomerRecs {
		t.Errorf("customer stream read %d records, want %d (touched customers, their contacts and prices)", got, wantCustomerRecs)
	}
	if got := second.Records[model.KindSalesOrder]; got < int64(len(uniq(orders))) || got > 3*int64(len(uniq(orders))) {
		t.Errorf("sale stream read %d records for %d changed sales", got, len(uniq(orders)))
	}
	if got := second.Records[model.KindSupplier]; got != 0 {
		t.Errorf("read %d unchanged suppliers", got)
	}
	// One call per incremental entity; full entities re-read in full.
	var stock int
	e.sim.Dataset().View(func(d *simkit.Dataset) { stock = len(d.Products) * len(d.Warehouses) })
	wantCalls := int64(1+1) /* tax, locations */ + 1 + 1 + 1 /* suppliers, customers, products */ + int64((stock+49)/50) + 1 + 1 /* sales, credit notes */
	if got := e.sim.Stats().Requests.Load(); got != wantCalls || second.Calls != wantCalls {
		t.Errorf("incremental run made %d calls (engine counted %d), want %d", got, second.Calls, wantCalls)
	}
	for _, id := range products {
		r, _ := e.sink.Get(model.Key{Company: company, Vendor: cin7core.Type, Kind: model.KindProduct, VendorID: id})
		var name string
		e.sim.Dataset().View(func(d *simkit.Dataset) {
			for _, p := range d.Products {
				if p.ID == id {
					name = p.Name
				}
			}
		})
		if r.Data.(*model.Product).Name != name {
			t.Errorf("product %s: sink has %q, dataset %q", id, r.Data.(*model.Product).Name, name)
		}
	}
	if r, _ := e.sink.Get(model.Key{Company: company, Vendor: cin7core.Type, Kind: model.KindProduct, VendorID: deleted}); !r.Deleted {
		t.Error("the product deprecated between runs did not arrive deleted")
	}
}

// TestAuthenticationFailure: wrong credentials fail the run with
// AuthenticationFailed after one call, without retries.
func TestAuthenticationFailure(t *testing.T) {
	for _, tc := range []struct {
		name  string
		creds map[string]string
	}{
		{"wrong application key", map[string]string{"accountId": sim.DefaultAccountID, "applicationKey": "0342a546-0000-0000-0000-6a5e17154033"}},
		{"wrong account", map[string]string{"accountId": "00000000-cd93-49c9-a201-26b4b5d0d35b", "applicationKey": sim.DefaultApplicationKey}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{creds: tc.creds})
			_, err := e.run(t, nil)
			if connectors.KindOf(err) != connectors.KindAuthenticationFailed {
				t.Fatalf("error %v (kind %q), want AuthenticationFailed", err, connectors.KindOf(err))
			}
			if n := e.sim.Stats().AuthFails.Load(); n != 1 {
				t.Errorf("%d refused calls, want 1 (no retries)", n)
			}
			if strings.Contains(err.Error(), tc.creds["applicationKey"]) {
				t.Error("the error names the application key")
			}
		})
	}
}

// TestThrottlingStormLosesNothing: the simulator's own limit is set below
// what the client assumes, so it answers 429 and 503 over and over; the run
// slows down but imports everything.
func TestThrottlingStormLosesNothing(t *testing.T) {
	e := newEnv(t, envOpts{sim: sim.Options{CallsPerMinute: 4, ServiceUnavailableEvery: 3}, pageSize: 100})
	// And a storm of injected throttling answers, two in a row per
	// endpoint (each request is retried until it gets through).
	for i, path := range []string{"ref/tax", "ref/location", "supplier", "customer", "/product", "productavailability", "saleList"} {
		status := []int{429, 503}[i%2]
		e.sim.Faults().Inject(simkit.Fault{Kind: simkit.FaultStatus, Status: status, PathContains: path, Count: 2})
	}
	start := time.Now()
	if _, err := e.run(t, nil); err != nil {
		t.Fatal(err)
	}
	st := e.sim.Stats()
	if st.Throttled.Load()+st.Faults.Load() < 14 {
		t.Fatalf("the simulator throttled %d times and injected %d faults; the test proves nothing", st.Throttled.Load(), st.Faults.Load())
	}
	want := e.sim.Expected()
	got := countByKind(e.sink.Records())
	for _, k := range model.Kinds {
		if got[k] != want[k] {
			t.Errorf("%s: %d imported, %d expected", k, got[k], want[k])
		}
	}
	t.Logf("%d requests, %d throttled, %d faults, %v", st.Requests.Load(), st.Throttled.Load(), st.Faults.Load(), time.Since(start))
}

// TestServerErrorsAreRetried: 5xx answers and a dropped connection are
// retried; the run completes.
func TestServerErrorsAreRetried(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.sim.Faults().Inject(simkit.Fault{Kind: simkit.FaultStatus, Status: 500, PathContains: "customer", Count: 2})
	e.sim.Faults().Inject(simkit.Fault{Kind: simkit.FaultDrop, PathContains: "saleList"})
	e.sim.Faults().Inject(simkit.Fault{Kind: simkit.FaultStatus, Status: 502, PathContains: "productavailability"})
	if _, err := e.run(t, nil); err != nil {
		t.Fatal(err)
	}
	if n := e.sim.Stats().Faults.Load(); n != 4 {
		t.Errorf("%d faults served, want 4", n)
	}
	if got, want := e.sink.Len(), sum(e.sim.Expected()); got != want {
		t.Errorf("sink holds %d records, want %d", got, want)
	}
}

func sum(m map[model.Kind]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// TestMalformedPageFailsCleanly: a page that does not parse, or breaks the
// contract, fails the run with InvalidResponse naming entity, page and
// field; entities completed before keep their watermark, the failed one
// none.
func TestMalformedPageFailsCleanly(t *testing.T) {
	t.Run("truncated body", func(t *testing.T) {
		e := newEnv(t, envOpts{})
		e.sim.Faults().Inject(simkit.Fault{Kind: simkit.FaultMalformed, PathContains: "/product"})
		res, err := e.run(t, nil)
		if connectors.KindOf(err) != connectors.KindInvalidResponse {
			t.Fatalf("error %v, want InvalidResponse", err)
		}
		if !strings.Contains(err.Error(), "products") || !strings.Contains(err.Error(), "page 1") {
			t.Errorf("error %q does not name the entity and page", err)
		}
		for _, st := range res.State {
			switch st.Name {
			case model.KindCustomer, model.KindSupplier:
				if st.Watermark.IsZero() {
					t.Errorf("%s completed before the failure but has no watermark", st.Name)
				}
			case model.KindProduct:
				if !st.Watermark.IsZero() {
					t.Errorf("products failed but got a watermark")
				}
			}
		}
	})
	t.Run("bad field on page 2", func(t *testing.T) {
		e := newEnv(t, envOpts{})
		if _, err := e.conn.ListPage(context.Background(), connectors.PageRequest{Entity: model.KindProduct, Page: 1}); err != nil {
			t.Fatal(err)
		}
		e.sim.CorruptNext("product", "LastModifiedOn", "29/12/2025 10:00")
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

// TestChangesDuringARun: records modified and deleted while a run is under
// way are all in the sink after the next incremental run.
func TestChangesDuringARun(t *testing.T) {
	e := newEnv(t, envOpts{pageSize: 20})
	var touched []string
	var deleted string
	hook := &hookSink{Sink: e.sink, after: func(n int) {
		if n == 3 { // while products are being paged
			touched = e.sim.Dataset().TouchProducts(4)
			e.sim.Dataset().View(func(d *simkit.Dataset) { deleted = d.Products[1].ID })
			e.sim.Dataset().DeleteProduct(deleted)
		}
	}}
	ctx := context.Background()
	first, err := engine.Execute(ctx, engine.Run{Connector: e.conn, Sink: hook, Entities: []model.Kind{model.KindProduct}, Overlap: time.Second, BatchSize: 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(touched) == 0 {
		t.Fatal("the hook never ran")
	}
	if _, err := engine.Execute(ctx, engine.Run{Connector: e.conn, Sink: e.sink, State: first.State, Entities: []model.Kind{model.KindProduct}, Overlap: time.Second}); err != nil {
		t.Fatal(err)
	}
	e.sim.Dataset().View(func(d *simkit.Dataset) {
		for _, p := range d.Products {
			r, ok := e.sink.Get(model.Key{Company: company, Vendor: cin7core.Type, Kind: model.KindProduct, VendorID: p.ID})
			if !ok || r.Data.(*model.Product).Name != p.Name || r.Deleted != p.Deleted || !r.ModifiedAt.Equal(p.Modified) {
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

func (h *hookSink) Write(ctx context.Context, b []model.Record) (res sinks.WriteResult, err error) {
	res, err = h.Sink.Write(ctx, b)
	h.n++
	h.after(h.n)
	return res, err
}

// TestNewChecksTheSecretWithoutCalling: missing keys are SecretKeyMissing,
// a bad base URL InvalidConfig, and New sends nothing.
func TestNewChecksTheSecretWithoutCalling(t *testing.T) {
	noCalls := &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
		t.Error("New made a network call")
		return nil, http.ErrHandlerTimeout
	})}
	for _, tc := range []struct {
		name  string
		creds map[string][]byte
		base  string
		kind  connectors.ErrorKind
	}{
		{"ok", map[string][]byte{"accountId": []byte("a"), "applicationKey": []byte("k")}, "", ""},
		{"no account", map[string][]byte{"applicationKey": []byte("k")}, "", connectors.KindSecretKeyMissing},
		{"empty key", map[string][]byte{"accountId": []byte("a"), "applicationKey": nil}, "", connectors.KindSecretKeyMissing},
		{"bad base", map[string][]byte{"accountId": []byte("a"), "applicationKey": []byte("k")}, "ftp://x", connectors.KindInvalidConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := cin7core.New(context.Background(), connectors.Config{Type: cin7core.Type, Credentials: tc.creds, BaseURL: tc.base, HTTPClient: noCalls})
			if connectors.KindOf(err) != tc.kind {
				t.Fatalf("error %v, want kind %q", err, tc.kind)
			}
			if tc.kind == "" && len(c.Entities()) == 0 {
				t.Error("no entities")
			}
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
