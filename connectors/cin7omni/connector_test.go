package cin7omni_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/cin7omni"
	"github.com/erpsync/erpsync-operator/connectors/cin7omni/sim"
	"github.com/erpsync/erpsync-operator/connectors/connectortest"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
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
	e.srv, e.rec = connectortest.Record(t, e.sim)
	secret := connectortest.SecretData(e.sim.Credentials(), o.secret)
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

func key(k model.Kind, id string) model.Key {
	return model.Key{Company: company, Vendor: cin7omni.Type, Kind: k, VendorID: id}
}

func TestRequestsAreVendorExact(t *testing.T) {
	e := newEnv(t, envOpts{rows: -1})
	since := time.Date(2025, 6, 1, 12, 30, 45, 123e6, time.UTC)
	if _, err := e.conn.ListPage(context.Background(), connectors.PageRequest{Entity: model.KindCustomer, Since: since, Page: 2, Cursor: "20017"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.conn.ListPage(context.Background(), connectors.PageRequest{Entity: model.KindStockLevel, Page: 3, Cursor: "500042:901,902"}); err != nil {
		t.Fatal(err)
	}
	seen := e.rec.Requests()
	u := seen[0].URL
	q := u.Query()
	if u.Path != "/api/v1/Contacts" || q.Get("where") != "Type='Customer' AND ModifiedDate>='2025-06-01T12:30:45Z' AND Id>20017" || q.Get("rows") != "250" ||
		q.Get("page") != "1" || q.Get("order") != "Id ASC" {
		t.Errorf("request %s", u)
	}
	u = seen[1].URL
	q = u.Query()
	if u.Path != "/api/v1/Stock" || q.Get("where") != "ProductOptionId>=500042" || q.Get("page") != "1" || q.Get("order") != "ProductOptionId ASC" {
		t.Errorf("request %s", u)
	}
	r := http.Request{Header: http.Header{"Authorization": {seen[0].Header.Get("Authorization")}}}
	if user, pass, ok := r.BasicAuth(); !ok || user != sim.DefaultUsername || pass != sim.DefaultAPIKey {
		t.Errorf("basic auth %q", seen[0].Header.Get("Authorization"))
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
	// One short page per entity. The clock is compressed real time, so on a
	// busy machine a request can meet the 3-a-second window and be refused
	// once: refusals are the limiter's business, not extra pages.
	throttled := e.sim.Stats().Throttled.Load()
	if got := e.sim.Stats().Requests.Load() - throttled; got != 8 || second.Calls-throttled != 8 {
		t.Errorf("incremental run made %d calls (engine counted %d) beyond %d refused, want 8", got, second.Calls-throttled, throttled)
	}
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

// TestAccountInLocalTime: Omni writes an account's dates with its local
// offset and (in the simulator, as an assumption) reads a date literal
// without a zone as local time. The connector sends its modified-since
// literal in UTC with Z and parses offsets, so the import stamps the right
// instants and an incremental run finds exactly the changes.
func TestAccountInLocalTime(t *testing.T) {
	// West of UTC: a UTC wall-clock literal read as local time would
	// start the window hours late and miss the changes.
	est := time.FixedZone("EST", -5*3600)
	e := newEnv(t, envOpts{sim: sim.Options{TimeZone: est}})
	first, err := e.run(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.sim.Dataset().View(func(d *simkit.Dataset) {
		p := d.Products[0]
		r, ok := e.sink.Get(key(model.KindProduct, strconv.Itoa(sim.OptionID(p))))
		if !ok || !r.ModifiedAt.Equal(p.Modified) {
			t.Errorf("product modified %v, dataset %v", r.ModifiedAt, p.Modified)
		}
	})
	time.Sleep(5 * time.Millisecond)
	touched := map[string]bool{}
	for _, id := range e.sim.Dataset().TouchProducts(3) {
		touched[id] = true
	}
	second, err := e.run(t, first.State, model.KindProduct)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	e.sim.Dataset().View(func(d *simkit.Dataset) {
		for _, p := range d.Products {
			if touched[p.ID] {
				want += 1 + min(1, len(p.SpecialPrices)) // the option and its special price
			}
		}
	})
	if got := second.Records[model.KindProduct]; got != int64(want) {
		t.Errorf("incremental run read %d product records, want the %d of the %d touched products", got, want, len(touched))
	}
}

// TestIdleCycleRewritesNothing: an incremental run over unchanged data
// upserts nothing, including the users, which carry no modified time and
// are stamped with the response's date: their Raw holds nothing that
// changes per response, so the sink sees equal content and skips them.
func TestIdleCycleRewritesNothing(t *testing.T) {
	e := newEnv(t, envOpts{})
	first, err := e.run(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond) // the simulator's clock moves on
	second, err := e.run(t, first.State)
	if err != nil {
		t.Fatal(err)
	}
	if second.Records[model.KindSalesPerson] == 0 {
		t.Fatalf("the idle run read no users: %v", second.Records)
	}
	if second.Upserted != 0 {
		t.Errorf("an idle incremental run upserted %d records, want 0 (read %v)", second.Upserted, second.Records)
	}
}
