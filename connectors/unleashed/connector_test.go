package unleashed_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
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
	"github.com/erpsync/erpsync-operator/sinks/memory"
)

const (
	testScale = 600
	company   = "ACME-01"
)

type env struct {
	sim  *sim.Server
	srv  *httptest.Server
	conn connectors.Connector
	sink *memory.Sink
	rec  *connectortest.Recorder
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
	e.srv, e.rec = connectortest.Record(t, e.sim)
	secret := connectortest.SecretData(e.sim.Credentials(), o.secret)
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

func trimZeros(d string) string {
	if strings.Contains(d, ".") {
		d = strings.TrimRight(strings.TrimRight(d, "0"), ".")
	}
	return d
}

func key(k model.Kind, id string) model.Key {
	return model.Key{Company: company, Vendor: unleashed.Type, Kind: k, VendorID: id}
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
	queries, seen := e.rec.Queries(), e.rec.Requests()
	if want := regexp.MustCompile(`^/Products/3\?includeObsolete=true&pageSize=1000&modifiedSince=2025-06-01T12:30:45$`); !want.MatchString(queries[0]) {
		t.Errorf("request %q, want %v", queries[0], want)
	}
	if want := "/Taxes/1?pageSize=1000"; queries[1] != want {
		t.Errorf("request %q, want %q", queries[1], want)
	}
	h := seen[0].Header
	raw := strings.SplitN(queries[0], "?", 2)[1]
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

// TestStockPagesResume: the stock stream's pages run across warehouses and
// carry their position in Next; a fresh connector given a page's Next (a
// resumed pass) reads the same next page as the one that paged from the
// start, with one call and no listing of warehouses, and every page reports
// the whole stream's total.
func TestStockPagesResume(t *testing.T) {
	e := newEnv(t, envOpts{pageSize: 50})
	type seen struct {
		ids  []string
		next string
		more bool
	}
	var seq []seen
	cursor := ""
	for p := 1; p <= 20; p++ {
		page, err := e.conn.ListPage(context.Background(), connectors.PageRequest{Entity: model.KindStockLevel, Page: p, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range page.Records {
			ids = append(ids, r.VendorID)
		}
		if page.Total != 360 {
			t.Errorf("page %d: total %d, want 360 (120 products in 3 warehouses)", p, page.Total)
		}
		seq = append(seq, seen{ids, page.Next, page.More})
		if !page.More {
			break
		}
		if page.Next == "" {
			t.Fatalf("page %d: more follows but Next is empty", p)
		}
		cursor = page.Next
	}
	if len(seq) != 3*3 { // 120 rows per warehouse at 50 a page, 3 warehouses
		t.Fatalf("%d stock pages, want 9", len(seq))
	}
	for _, p := range []int{2, 4, 7, 9} {
		fresh := newEnv(t, envOpts{pageSize: 50})
		page, err := fresh.conn.ListPage(context.Background(), connectors.PageRequest{Entity: model.KindStockLevel, Page: p, Cursor: seq[p-2].next})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range page.Records {
			ids = append(ids, r.VendorID)
		}
		if fmt.Sprint(ids) != fmt.Sprint(seq[p-1].ids) || page.More != (p < 9) {
			t.Errorf("resumed page %d: %d records (more %v), sequential had %d", p, len(ids), page.More, len(seq[p-1].ids))
		}
		if n := fresh.sim.Stats().Requests.Load(); n != 1 || page.Calls != 1 {
			t.Errorf("resumed page %d cost %d calls (page says %d), want 1", p, n, page.Calls)
		}
	}
}

// TestAuthenticationFailure: a wrong API id is refused like a wrong key
// (the suite's Unauthorized scenario spoils the key).
func TestAuthenticationFailure(t *testing.T) {
	for _, tc := range []struct {
		name   string
		secret map[string]string
	}{
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

// TestIdleCycleRewritesNothing: an incremental run over unchanged data
// upserts nothing, including the kinds read in full every run and a
// document without LastModifiedOn, which is stamped with the response's
// date: its Raw holds nothing that changes per response, so the sink sees
// equal content and skips it.
func TestIdleCycleRewritesNothing(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.sim.CorruptNext("taxes", "LastModifiedOn", nil)
	first, err := e.run(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond) // the simulator's clock moves on
	e.sim.CorruptNext("taxes", "LastModifiedOn", nil)
	second, err := e.run(t, first.State)
	if err != nil {
		t.Fatal(err)
	}
	if second.Records[model.KindTaxRate] == 0 || second.Records[model.KindSupplier] == 0 {
		t.Fatalf("the idle run read no taxes or suppliers: %v", second.Records)
	}
	if second.Upserted != 0 {
		t.Errorf("an idle incremental run upserted %d records, want 0 (read %v)", second.Upserted, second.Records)
	}
}

// TestStockTotalKeepsGrowth: a product added while the stock pass reads
// its first warehouse is read there, and the stream's total keeps counting
// it after the pass moves to the next warehouse: a total that fell would
// make the engine repeat the pass as if rows had been removed.
func TestStockTotalKeepsGrowth(t *testing.T) {
	e := newEnv(t, envOpts{pageSize: 50})
	cursor, last := "", -1
	for p := 1; p <= 20; p++ {
		page, err := e.conn.ListPage(context.Background(), connectors.PageRequest{Entity: model.KindStockLevel, Page: p, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		if page.Total < last {
			t.Errorf("page %d: total fell from %d to %d with nothing removed", p, last, page.Total)
		}
		last = page.Total
		if p == 1 {
			e.sim.Dataset().AddProduct()
		}
		if !page.More {
			break
		}
		cursor = page.Next
	}
	// The added product has stock in every warehouse, and every warehouse
	// had pages left to read it on.
	if last != 363 {
		t.Errorf("final total %d, want 363 (120 products and one added while the first warehouse was read, in 3 warehouses)", last)
	}
}
