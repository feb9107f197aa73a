package xero

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/internal/vendorjson"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/connectors/xero/sim"
	"github.com/erpsync/erpsync-operator/internal/engine"
)

func TestNewChecksConfig(t *testing.T) {
	full := map[string]string{"clientId": "id", "clientSecret": "secret", "refreshToken": "rt"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range full {
			m[a] = b
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		name      string
		creds     map[string]string
		base      string
		noStore   bool
		want      connectors.ErrorKind
		wantToken string
	}{
		{name: "ok", creds: full, wantToken: DefaultTokenURL},
		{name: "simulator base URL", creds: full, base: "http://127.0.0.1:9/api.xro/2.0", wantToken: "http://127.0.0.1:9/connect/token"},
		{name: "token URL in the Secret", creds: with("tokenURL", "https://id.example.com/token"), base: "http://127.0.0.1:9/api.xro/2.0", wantToken: "https://id.example.com/token"},
		{name: "no client id", creds: with("clientId", ""), want: connectors.KindSecretKeyMissing},
		{name: "no client secret", creds: with("clientSecret", ""), want: connectors.KindSecretKeyMissing},
		{name: "no refresh token", creds: with("refreshToken", ""), want: connectors.KindSecretKeyMissing},
		{name: "no credential store", creds: full, noStore: true, want: connectors.KindInvalidConfig},
		{name: "bad base URL", creds: full, base: "api.xero.com", want: connectors.KindInvalidConfig},
		{name: "bad token URL", creds: with("tokenURL", "identity.xero.com"), want: connectors.KindInvalidConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := NewMemoryCredentialStore("ns/s", tc.creds)
			cfg := connectors.Config{Type: Type, BaseURL: tc.base, Credentials: store.Data(), CredentialStore: store}
			if tc.noStore {
				cfg.CredentialStore = nil
			}
			c, err := New(context.Background(), cfg)
			if got := connectors.KindOf(err); got != tc.want {
				t.Fatalf("error kind %q (%v), want %q", got, err, tc.want)
			}
			if err != nil {
				if strings.Contains(err.Error(), "secret\"") || strings.Contains(err.Error(), `"rt"`) {
					t.Fatalf("the error leaks a credential: %v", err)
				}
				return
			}
			if got := c.(*connector).tokenURL; got != tc.wantToken {
				t.Errorf("token URL %s, want %s", got, tc.wantToken)
			}
		})
	}
}

// TestFullImportEqualsDataset reads everything through the engine into a
// memory sink and compares it record for record with the dataset.
func TestFullImportEqualsDataset(t *testing.T) {
	h := newHarness(t, sim.Options{}, nil)
	res, err := h.run(context.Background())
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	got, want := h.counts(), h.sim.Expected()
	for _, k := range model.Kinds {
		if got[k] != want[k] {
			t.Errorf("%s: %d records, want %d", k, got[k], want[k])
		}
	}
	if n := h.sim.Stats().Throttled.Load(); n != 0 {
		t.Errorf("%d requests refused for a rate limit", n)
	}
	if h.sim.Refreshes() != 1 {
		t.Errorf("%d token refreshes, want 1", h.sim.Refreshes())
	}
	if want := minCalls(h.sim); h.apiCalls() != int64(want) {
		t.Errorf("%d API calls, the page sizes allow %d", h.apiCalls(), want)
	}
	if res.Calls != h.sim.Stats().Requests.Load() {
		t.Errorf("the engine counted %d calls, the simulator %d (token calls included)", res.Calls, h.sim.Stats().Requests.Load())
	}
	h.secretUsable(t, h.store)

	h.sim.Dataset().View(func(d *simkit.Dataset) {
		for _, p := range d.Products {
			r, ok := h.get(model.KindProduct, p.ID)
			if p.Deleted {
				if ok {
					t.Fatalf("deleted product %s was imported (Xero deletes items)", p.SKU)
				}
				continue
			}
			if !ok {
				t.Fatalf("product %s missing", p.SKU)
			}
			cp := r.Data.(*model.Product)
			if cp.SKU != p.SKU || cp.Name != p.Name || string(cp.SellPrice) != canon(p.SellPrice) || string(cp.CostPrice) != canon(p.CostPrice) || !r.ModifiedAt.Equal(p.Modified) {
				t.Fatalf("product %s: %+v mod %v, want %+v", p.SKU, cp, r.ModifiedAt, p)
			}
			st, ok := h.get(model.KindStockLevel, p.ID)
			if ok != (p.Seq%5 != 0) {
				t.Fatalf("stock of %s: present=%v, want tracked items only", p.SKU, ok)
			}
			if ok {
				var sum float64
				for _, s := range p.Stock {
					sum += s.OnHand
				}
				if sl := st.Data.(*model.StockLevel); sl.OnHand != sum || sl.Warehouse != stockWarehouse {
					t.Fatalf("stock of %s: %+v, want %v on hand", p.SKU, sl, sum)
				}
			}
		}
		for _, c := range d.Customers {
			r, ok := h.get(model.KindCustomer, c.ID)
			if !ok {
				t.Fatalf("customer %s missing", c.Code)
			}
			cu := r.Data.(*model.Customer)
			if cu.Code != c.Code || cu.Name != c.Name || cu.Email != c.Email || cu.Phone != c.Phone || cu.Currency != c.Currency || len(cu.Addresses) != 1 {
				t.Fatalf("customer %s: %+v", c.Code, cu)
			}
			for i, p := range c.Contacts {
				cr, ok := h.get(model.KindContact, fmt.Sprintf("%s/%d", c.ID, i))
				if !ok || cr.Data.(*model.Contact).LastName != p.LastName || cr.Data.(*model.Contact).CustomerVendorID != c.ID {
					t.Fatalf("contact %d of %s: %+v", i, c.Code, cr)
				}
			}
		}
		for _, s := range d.Suppliers {
			if r, ok := h.get(model.KindSupplier, s.ID); !ok || r.Data.(*model.Supplier).Code != s.Code {
				t.Fatalf("supplier %s: %+v", s.Code, r)
			}
		}
		for _, inv := range d.Invoices {
			r, ok := h.get(model.KindInvoice, inv.ID)
			if !ok {
				t.Fatalf("invoice %s missing", inv.Number)
			}
			x := r.Data.(*model.Invoice)
			sub, tax, total := inv.Totals()
			if x.Number != inv.Number || x.Type != "sales" || string(x.SubTotal) != canon(sub) || string(x.TaxTotal) != canon(tax) ||
				string(x.Total) != canon(total) || len(x.Lines) != len(inv.Lines) || x.SalesOrderNumber != inv.OrderNumber ||
				x.CustomerVendorID != inv.CustomerID || r.Deleted != inv.Deleted || !x.IssueDate.Equal(inv.Date) {
				t.Fatalf("invoice %s: %+v", inv.Number, x)
			}
		}
		for _, cn := range d.CreditNotes {
			r, ok := h.get(model.KindCreditNote, cn.ID)
			if !ok || r.Data.(*model.CreditNote).Number != cn.Number || r.Data.(*model.CreditNote).InvoiceNumber != cn.OrderNumber {
				t.Fatalf("credit note %s: %+v", cn.Number, r)
			}
		}
	})
	bills := 0
	for _, r := range h.sink.Records() {
		if r.Kind == model.KindInvoice && r.Data.(*model.Invoice).Type == "bill" {
			bills++
		}
	}
	if bills == 0 {
		t.Error("no supplier bills (ACCPAY) were imported")
	}
}

func canon(s string) string {
	d, err := vendorjson.Decimal(json.Number(s))
	if err != nil {
		panic(err)
	}
	return string(d)
}

// minCalls is the fewest API calls Xero's page sizes allow for a full
// import: one each for the unpaged lists, one per 1000 for the paged ones.
func minCalls(s *sim.Server) int {
	pages := func(n int) int { return max(1, (n+PageSize-1)/PageSize) }
	e := s.Expected()
	invoices := e[model.KindInvoice]
	notes := e[model.KindCreditNote]
	var contacts int
	s.Dataset().View(func(d *simkit.Dataset) { contacts = len(d.Customers) + len(d.Suppliers) })
	return 1 + 1 + pages(contacts) + 1 + pages(invoices) + pages(notes)
}

// TestIncrementalReadsOnlyChanges checks If-Modified-Since: after a few
// changes the next run reads only those, one call per list.
func TestIncrementalReadsOnlyChanges(t *testing.T) {
	var ims atomic.Int32
	h := newHarness(t, sim.Options{}, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if v := r.Header.Get("If-Modified-Since"); v != "" {
				if _, err := time.Parse("2006-01-02T15:04:05Z", v); err != nil {
					t.Errorf("If-Modified-Since %q is not UTC whole seconds", v)
				}
				ims.Add(1)
			}
			next.ServeHTTP(w, r)
		})
	})
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("import: %v", err)
	}
	if ims.Load() != 0 {
		t.Error("the first import sent If-Modified-Since")
	}
	h.clock.Advance(10 * time.Minute)
	d := h.sim.Dataset()
	products := map[string]bool{}
	for _, id := range d.TouchProducts(4) {
		products[id] = true
	}
	customers := map[string]bool{}
	for _, id := range d.TouchCustomers(3) {
		customers[id] = true
	}
	h.sim.Stats().Reset()
	res, err := h.run(context.Background())
	if err != nil {
		t.Fatalf("incremental run: %v", err)
	}
	if got := res.Records[model.KindCustomer]; got < int64(len(customers)) || got > int64(3*len(customers)) {
		t.Errorf("customers stream read %d records for %d changed customers", got, len(customers))
	}
	// Items are read whole every run (one call, as Xero does not page
	// them): every item and stock level again, the changed ones newer.
	if got, want := res.Records[model.KindProduct], int64(h.sim.Expected()[model.KindProduct]+h.sim.Expected()[model.KindStockLevel]); got != want {
		t.Errorf("products stream read %d records, want %d", got, want)
	}
	for id := range products {
		if r, ok := h.get(model.KindProduct, id); !ok || r.ModifiedAt.Before(h.clock.Now().Add(-time.Minute)) {
			t.Errorf("changed product %s not updated: %+v", id, r)
		}
	}
	for _, k := range []model.Kind{model.KindInvoice, model.KindCreditNote} {
		if res.Records[k] != 0 {
			t.Errorf("%s: read %d unchanged records", k, res.Records[k])
		}
	}
	byPath := h.sim.Stats().ByPath()
	for _, p := range []string{"/Contacts", "/Items", "/Invoices", "/CreditNotes", "/TaxRates", "/Currencies"} {
		if n := byPath[sim.APIPath+p]; n != 1 {
			t.Errorf("%s: %d calls, want 1", p, n)
		}
	}
	if ims.Load() != 3 {
		t.Errorf("%d requests carried If-Modified-Since, want the 3 incremental lists", ims.Load())
	}
	if h.sim.Refreshes() != 1 {
		t.Errorf("%d refreshes: the access token is still fresh and must be reused", h.sim.Refreshes())
	}
}

// TestDeletionsArrive: an archived contact and a voided invoice arrive
// deleted on the next incremental run.
func TestDeletionsArrive(t *testing.T) {
	h := newHarness(t, sim.Options{}, nil)
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("import: %v", err)
	}
	h.clock.Advance(10 * time.Minute)
	var custID, invID string
	h.sim.Dataset().Update(func(d *simkit.Dataset) {
		c := d.Customers[2]
		c.Deleted, c.Modified = true, d.Stamp()
		inv := d.Invoices[0]
		inv.Deleted, inv.Modified = true, d.Stamp()
		custID, invID = c.ID, inv.ID
	})
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("incremental run: %v", err)
	}
	if r, ok := h.get(model.KindCustomer, custID); !ok || !r.Deleted {
		t.Errorf("archived contact not deleted: %+v", r)
	}
	if r, ok := h.get(model.KindContact, custID+"/0"); !ok || !r.Deleted {
		t.Errorf("the archived contact's person not deleted: %+v", r)
	}
	if r, ok := h.get(model.KindInvoice, invID); !ok || !r.Deleted || (r.Data.(*model.Invoice).Status != "VOIDED" && r.Data.(*model.Invoice).Status != "DELETED") {
		t.Errorf("voided invoice not deleted: %+v", r)
	}
}

func TestTenantDiscovery(t *testing.T) {
	t.Run("one organisation", func(t *testing.T) {
		h := newHarness(t, sim.Options{}, nil)
		h.store.Set("tenantId", "")
		h.conn = h.connector(t, h.store, "")
		if _, err := h.run(context.Background()); err != nil {
			t.Fatalf("import: %v", err)
		}
		if n := h.sim.Stats().ByPath()[sim.ConnectionsPath]; n != 1 {
			t.Errorf("%d calls to /connections, want 1", n)
		}
	})
	t.Run("several organisations", func(t *testing.T) {
		h := newHarness(t, sim.Options{Tenants: 2}, nil)
		h.store.Set("tenantId", "")
		h.conn = h.connector(t, h.store, "")
		_, err := h.run(context.Background())
		if connectors.KindOf(err) != connectors.KindInvalidConfig || !strings.Contains(err.Error(), h.sim.Tenants()[1]) {
			t.Fatalf("error %v, want InvalidConfig naming the organisations", err)
		}
	})
	t.Run("spec tenant wins", func(t *testing.T) {
		h := newHarness(t, sim.Options{Tenants: 2}, nil)
		h.conn = h.connector(t, h.store, h.sim.Tenants()[1])
		if _, err := h.run(context.Background()); err != nil {
			t.Fatalf("import: %v", err)
		}
	})
	t.Run("unknown tenant", func(t *testing.T) {
		h := newHarness(t, sim.Options{}, nil)
		h.conn = h.connector(t, h.store, "00000000-0000-4000-8000-000000000000")
		_, err := h.run(context.Background())
		if connectors.KindOf(err) != connectors.KindAuthenticationFailed || !strings.Contains(err.Error(), "tenantId") {
			t.Fatalf("error %v, want AuthenticationFailed naming tenantId", err)
		}
	})
}

func TestAuthFailures(t *testing.T) {
	for _, tc := range []struct {
		name, key, value, want string
	}{
		{"refresh token revoked", "refreshToken", "rt_revoked", "Reconnect the Xero app"},
		{"wrong client secret", "clientSecret", "wrong", "clientSecret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, sim.Options{}, nil)
			h.store.Set(tc.key, tc.value)
			h.conn = h.connector(t, h.store, "")
			res, err := h.run(context.Background())
			if connectors.KindOf(err) != connectors.KindAuthenticationFailed || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v (kind %q), want AuthenticationFailed saying %q", err, connectors.KindOf(err), tc.want)
			}
			if strings.Contains(err.Error(), tc.value) {
				t.Errorf("the error leaks the credential: %v", err)
			}
			if n := h.sim.Stats().ByPath()[sim.TokenPath]; n != 1 {
				t.Errorf("%d token requests; a refused credential must not be retried", n)
			}
			if h.apiCalls() != 0 || res.Upserted != 0 {
				t.Errorf("API calls %d, records %d after a refused credential", h.apiCalls(), res.Upserted)
			}
		})
	}
}

// Test429StormLosesNothing throttles requests of several lists; the run
// waits Retry-After and ends with every record.
func Test429StormLosesNothing(t *testing.T) {
	h := newHarness(t, sim.Options{}, nil)
	for _, p := range []string{"/TaxRates", "/Contacts", "/Items", "/Invoices"} {
		h.sim.Faults().Inject(simkit.Fault{Kind: simkit.FaultStatus, Status: 429, RetryAfter: 30, PathContains: p, Count: 3})
	}
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("import under a 429 storm: %v", err)
	}
	if n := h.sim.Stats().Faults.Load(); n != 12 {
		t.Errorf("%d injected 429s answered, want 12", n)
	}
	if slept := h.clock.Slept(); slept < 4*3*30*time.Second {
		t.Errorf("the run waited %v; Retry-After asked for %v", slept, 4*3*30*time.Second)
	}
	got, want := h.counts(), h.sim.Expected()
	for _, k := range model.Kinds {
		if got[k] != want[k] {
			t.Errorf("%s: %d records, want %d", k, got[k], want[k])
		}
	}
}

// TestMinuteLimitIsKept runs with the simulator's real per-organisation
// minute limit on a dataset that needs more than 60 calls in incremental
// runs back to back: the client paces itself and nothing is refused.
func TestMinuteLimitIsKept(t *testing.T) {
	h := newHarness(t, sim.Options{}, nil)
	for range 12 {
		if _, err := h.run(context.Background()); err != nil {
			t.Fatalf("run: %v", err)
		}
	}
	if h.apiCalls() <= 60 {
		t.Fatalf("only %d calls: the test does not reach the limit", h.apiCalls())
	}
	if n := h.sim.Stats().Throttled.Load(); n != 0 {
		t.Errorf("%d requests refused for the minute limit", n)
	}
	if h.clock.Slept() < 50*time.Second {
		t.Errorf("the client waited only %v for %d calls at 60 a minute", h.clock.Slept(), h.apiCalls())
	}
}

func TestMalformedPageFailsCleanly(t *testing.T) {
	h := newHarness(t, sim.Options{}, nil)
	h.sim.Faults().Inject(simkit.Fault{Kind: simkit.FaultMalformed, PathContains: "/Items"})
	_, err := h.run(context.Background())
	if connectors.KindOf(err) != connectors.KindInvalidResponse || !strings.Contains(err.Error(), "products page 1") {
		t.Fatalf("error %v (kind %q), want InvalidResponse naming products page 1", err, connectors.KindOf(err))
	}
	for _, st := range h.state {
		switch st.Name {
		case model.KindCustomer:
			if st.Watermark.IsZero() {
				t.Error("customers finished before the failure but have no watermark")
			}
		case model.KindProduct:
			if !st.Watermark.IsZero() {
				t.Error("products failed but got a watermark")
			}
		}
	}
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	if got, want := h.counts()[model.KindProduct], h.sim.Expected()[model.KindProduct]; got != want {
		t.Errorf("products after rerun: %d, want %d", got, want)
	}
}

func TestAcceptJSONAndTenantHeaderAreSent(t *testing.T) {
	h := newHarness(t, sim.Options{}, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, sim.APIPath) {
				if r.Header.Get("Accept") != "application/json" || r.Header.Get("xero-tenant-id") == "" || !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
					t.Errorf("%s: headers %v", r.URL.Path, r.Header)
				}
				if q := r.URL.Query(); q.Get("page") != "" && q.Get("pageSize") != fmt.Sprint(PageSize) {
					t.Errorf("%s: pageSize %q", r.URL.Path, q.Get("pageSize"))
				}
			}
			next.ServeHTTP(w, r)
		})
	})
	if _, err := h.run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestContextCancelStopsTheRun(t *testing.T) {
	h := newHarness(t, sim.Options{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if n := h.sim.Stats().Requests.Load(); n != 0 {
		t.Errorf("%d requests after cancel", n)
	}
}

// TestDailyLimitMidRun runs into the organisation's daily limit in the middle
// of the invoices: the run stops with QuotaExhausted and the reset time, the
// entities finished before keep their new watermarks, nothing is sent until
// the reset, and the next run after it resumes the invoices where they
// stopped.
func TestDailyLimitMidRun(t *testing.T) {
	// 6 calls a day: tax rates, currencies, contacts, items, invoices 1 and
	// 2; invoice page 3 is refused. After the reset the next run needs the
	// same 4, invoice page 3 and the credit notes: 6 again.
	h := newHarness(t, sim.Options{DayLimit: 6, Dataset: simkit.Options{Seed: 3, Products: 50, Customers: 30, Orders: 3200}}, nil)
	if n := h.sim.Expected()[model.KindInvoice]; n <= 2*PageSize || n > 3*PageSize {
		t.Fatalf("the dataset has %d invoices; the test needs three pages", n)
	}
	_, err := h.run(context.Background())
	if connectors.KindOf(err) != connectors.KindQuotaExhausted {
		t.Fatalf("error %v (kind %q), want QuotaExhausted", err, connectors.KindOf(err))
	}
	retryAt := connectors.RetryAtOf(err)
	if !retryAt.After(h.clock.Now().Add(23 * time.Hour)) {
		t.Fatalf("RetryAt %v is not the daily reset (now %v)", retryAt, h.clock.Now())
	}
	state := map[model.Kind]engine.EntityState{}
	for _, st := range h.state {
		state[st.Name] = st
	}
	if state[model.KindCustomer].Watermark.IsZero() {
		t.Error("customers finished before the limit but have no watermark")
	}
	for _, k := range []model.Kind{model.KindTaxRate, model.KindCurrency, model.KindProduct} {
		if state[k].LastCompleted.IsZero() || state[k].Resume != nil {
			t.Errorf("%s (read in full) finished before the limit but is not marked complete: %+v", k, state[k])
		}
	}
	if cp := state[model.KindInvoice].Resume; cp == nil || cp.Page != 2 || !state[model.KindInvoice].Watermark.IsZero() {
		t.Fatalf("invoices: %+v, want a checkpoint after page 2 and no watermark", state[model.KindInvoice])
	}
	if _, ok := state[model.KindCreditNote]; ok && !state[model.KindCreditNote].Watermark.IsZero() {
		t.Fatal("credit notes were not reached but have a watermark")
	}

	// Before the reset nothing is sent: the quota is known to be used up.
	sent := h.apiCalls()
	if _, err := h.run(context.Background()); connectors.KindOf(err) != connectors.KindQuotaExhausted {
		t.Fatalf("run before the reset: %v, want QuotaExhausted", err)
	}
	if h.apiCalls() != sent {
		t.Fatalf("%d requests sent before the reset", h.apiCalls()-sent)
	}

	h.clock.Set(retryAt.Add(time.Second))
	res, err := h.run(context.Background())
	if err != nil {
		t.Fatalf("run after the reset: %v", err)
	}
	if got, want := res.Records[model.KindInvoice], int64(h.sim.Expected()[model.KindInvoice]-2*PageSize); got != want {
		t.Errorf("the resumed invoices pass read %d records, want the %d of page 3", got, want)
	}
	got, want := h.counts(), h.sim.Expected()
	for _, k := range model.Kinds {
		if got[k] != want[k] {
			t.Errorf("%s: %d records, want %d", k, got[k], want[k])
		}
	}
	if n := h.sim.Stats().Throttled.Load(); n != 1 {
		t.Errorf("the simulator refused %d requests, want only the one that found the limit", n)
	}
}
