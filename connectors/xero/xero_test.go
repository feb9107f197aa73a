package xero

import (
	"context"
	"encoding/json"
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

// TestDeletionsArrive: each of Xero's markers (an archived customer or
// supplier, a deleted draft invoice, a voided invoice, a voided credit
// note), set with the record stamped modified, arrives deleted on the next
// incremental run, as the vendor's own marker, the customer's people with
// it; the records beside them stay live.
func TestDeletionsArrive(t *testing.T) {
	invoice := func(status string) func(d *simkit.Dataset) string {
		return func(d *simkit.Dataset) string {
			for _, inv := range d.Invoices {
				if inv.Status == status && !inv.Deleted {
					return inv.ID
				}
			}
			return ""
		}
	}
	for _, tc := range []struct {
		name   string
		kind   model.Kind
		choose func(d *simkit.Dataset) string
		status string // the status Xero serves after the marker
	}{
		{"archived customer", model.KindCustomer, func(d *simkit.Dataset) string { return d.Customers[2].ID }, "ARCHIVED"},
		{"archived supplier", model.KindSupplier, func(d *simkit.Dataset) string { return d.Suppliers[0].ID }, "ARCHIVED"},
		{"deleted draft invoice", model.KindInvoice, invoice("DRAFT"), "DELETED"},
		{"voided invoice", model.KindInvoice, invoice("AUTHORISED"), "VOIDED"},
		{"voided credit note", model.KindCreditNote, func(d *simkit.Dataset) string { return d.CreditNotes[0].ID }, "VOIDED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, sim.Options{}, nil)
			if _, err := h.run(context.Background()); err != nil {
				t.Fatalf("import: %v", err)
			}
			var id string
			h.sim.Dataset().View(func(d *simkit.Dataset) { id = tc.choose(d) })
			if id == "" {
				t.Fatal("the dataset has no record to mark")
			}
			if r, ok := h.get(tc.kind, id); !ok || r.Deleted {
				t.Fatalf("before the marker: stored %v, deleted %v", ok, r.Deleted)
			}
			h.clock.Advance(10 * time.Minute)
			switch tc.kind {
			case model.KindCustomer, model.KindSupplier:
				if !h.sim.ArchiveContact(id, true) {
					t.Fatal("the simulator did not archive the contact")
				}
			default:
				if st := h.sim.VoidDocument(id, true); st != tc.status {
					t.Fatalf("the simulator serves status %q, want %q", st, tc.status)
				}
			}
			before := len(h.sink.Records())
			res, err := h.run(context.Background())
			if err != nil {
				t.Fatalf("incremental run: %v", err)
			}
			if res.Upserted == 0 || res.Upserted > 5 {
				t.Errorf("the incremental run upserted %d records, want the marked one (and its people)", res.Upserted)
			}
			r, ok := h.get(tc.kind, id)
			if !ok || !r.Deleted || r.DeletedVia != model.DeletedByVendor {
				t.Fatalf("after the marker: stored %v, deleted %v via %q; want deleted via %q", ok, r.Deleted, r.DeletedVia, model.DeletedByVendor)
			}
			var status string
			switch p := r.Data.(type) {
			case *model.Customer:
				status = p.Status
			case *model.Supplier:
				status = tc.status // the canonical supplier has no status field
			case *model.Invoice:
				status = p.Status
			case *model.CreditNote:
				status = p.Status
			}
			if status != tc.status {
				t.Errorf("stored status %q, want %q", status, tc.status)
			}
			if tc.kind == model.KindCustomer {
				if p, ok := h.get(model.KindContact, id+"/0"); !ok || !p.Deleted {
					t.Errorf("the archived customer's person: stored %v, deleted %v", ok, p.Deleted)
				}
			}
			live := 0
			for _, rec := range h.sink.Records() {
				if !rec.Deleted {
					live++
				}
			}
			if len(h.sink.Records()) != before || live == 0 {
				t.Errorf("the sink holds %d records (%d live), %d before: a marker adds no record and deletes nothing else", len(h.sink.Records()), live, before)
			}
		})
	}
}

// TestUnstampedMarkerNeedsAFullRead: Xero does not document that setting a
// marker moves UpdatedDateUTC. Should it not, an If-Modified-Since read
// cannot see the archived contact (nor can an id listing, whose version is
// the same UpdatedDateUTC); a full read does. This pins the limit the docs
// page states.
func TestUnstampedMarkerNeedsAFullRead(t *testing.T) {
	h := newHarness(t, sim.Options{}, nil)
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("import: %v", err)
	}
	var id string
	h.sim.Dataset().View(func(d *simkit.Dataset) { id = d.Customers[4].ID })
	h.clock.Advance(10 * time.Minute)
	if !h.sim.ArchiveContact(id, false) {
		t.Fatal("the simulator did not archive the contact")
	}
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("incremental run: %v", err)
	}
	if r, _ := h.get(model.KindCustomer, id); r.Deleted {
		t.Fatal("an incremental run saw a marker that did not move UpdatedDateUTC: the simulator stamped it")
	}
	res, err := engine.Execute(context.Background(), engine.Run{Connector: h.conn, Sink: h.sink, State: h.state, Now: h.clock.Now, Full: true})
	if err != nil {
		t.Fatalf("full read: %v", err)
	}
	h.state = res.State
	if r, ok := h.get(model.KindCustomer, id); !ok || !r.Deleted || r.DeletedVia != model.DeletedByVendor {
		t.Errorf("after a full read: stored %v, deleted %v via %q", ok, r.Deleted, r.DeletedVia)
	}
}

// TestRemovedPersonIsDeleted: a person removed from a contact in Xero (the
// contact is stamped modified, as any edit of it is) is marked deleted when
// the next incremental run writes the contact, as learned from its parent;
// the contact's other people stay live.
func TestRemovedPersonIsDeleted(t *testing.T) {
	h := newHarness(t, sim.Options{}, nil)
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("import: %v", err)
	}
	h.clock.Advance(10 * time.Minute)
	var custID string
	var kept, n int
	h.sim.Dataset().View(func(d *simkit.Dataset) {
		for i, c := range d.Customers {
			if len(c.Contacts) > 1 {
				n = i
				break
			}
		}
	})
	custID, _ = h.sim.Dataset().DropContact(n)
	h.sim.Dataset().View(func(d *simkit.Dataset) { kept = len(d.Customers[n].Contacts) })
	if custID == "" || kept == 0 {
		t.Fatal("the dataset has no customer with two people")
	}
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("incremental run: %v", err)
	}
	gone := fmt.Sprintf("%s/%d", custID, kept)
	if r, ok := h.get(model.KindContact, gone); !ok || !r.Deleted || r.DeletedVia != model.DeletedFromParent {
		t.Errorf("the removed person %s: stored %v, deleted %v via %q; want deleted via %q", gone, ok, r.Deleted, r.DeletedVia, model.DeletedFromParent)
	}
	for i := 0; i < kept; i++ {
		if r, ok := h.get(model.KindContact, fmt.Sprintf("%s/%d", custID, i)); !ok || r.Deleted {
			t.Errorf("person %d of the contact: stored %v, deleted %v; want live", i, ok, r.Deleted)
		}
	}
	if r, ok := h.get(model.KindCustomer, custID); !ok || r.Deleted {
		t.Errorf("the contact itself: stored %v, deleted %v; want live", ok, r.Deleted)
	}
}

// TestIdleCycleRewritesNothing: Xero gives stock levels (QuantityOnHand),
// tax rates and currencies no modified time, so they are stamped with the
// response's date, which moves every cycle. Their content (payload and raw
// document, no envelope date in it) does not: an idle cycle reads them all
// again and the sink rewrites none.
func TestIdleCycleRewritesNothing(t *testing.T) {
	h := newHarness(t, sim.Options{}, nil)
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("import: %v", err)
	}
	stamped := map[model.Key]time.Time{}
	for _, r := range h.sink.Records() {
		if r.Kind == model.KindStockLevel || r.Kind == model.KindTaxRate || r.Kind == model.KindCurrency {
			stamped[r.Key()] = r.ModifiedAt
		}
	}
	if len(stamped) == 0 {
		t.Fatal("the import stored no stock level, tax rate or currency")
	}
	h.clock.Advance(10 * time.Minute)
	res, err := h.run(context.Background())
	if err != nil {
		t.Fatalf("idle cycle: %v", err)
	}
	if res.Records[model.KindProduct] == 0 || res.Records[model.KindTaxRate] == 0 {
		t.Fatalf("the idle cycle read %v: items and tax rates are read in full every cycle", res.Records)
	}
	if res.Upserted != 0 {
		t.Errorf("an idle cycle upserted %d records, want 0", res.Upserted)
	}
	for k, at := range stamped {
		if r, ok := h.sink.Get(k); !ok || !r.ModifiedAt.Equal(at) {
			t.Errorf("%s/%s was rewritten by an idle cycle (stamped %v, now %v)", k.Kind, k.VendorID, at, r.ModifiedAt)
			break
		}
	}
}

// TestFullResyncRepairsUnstampedChanges: Xero documents changes that do
// not bump UpdatedDateUTC (due dates and sent flags on partly paid
// documents, a contact's IsSupplier/IsCustomer). An incremental run cannot
// see them; a full resync reads the record with the same UpdatedDateUTC
// and different content, and the CRM takes it.
func TestFullResyncRepairsUnstampedChanges(t *testing.T) {
	h := newHarness(t, sim.Options{}, nil)
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("import: %v", err)
	}
	var custID, invID string
	var phone string
	h.sim.Dataset().Update(func(d *simkit.Dataset) {
		c := d.Customers[3]
		c.Phone = "+64 9 123 4567" // no new Modified: Xero did not stamp it
		custID, phone = c.ID, c.Phone
		inv := d.Invoices[1]
		inv.DueDate = inv.DueDate.Add(14 * 24 * time.Hour)
		invID = inv.ID
	})
	h.clock.Advance(10 * time.Minute)
	res, err := engine.Execute(context.Background(), engine.Run{Connector: h.conn, Sink: h.sink, State: h.state, Now: h.clock.Now, Full: true})
	if err != nil {
		t.Fatalf("full resync: %v", err)
	}
	h.state = res.State
	if r, ok := h.get(model.KindCustomer, custID); !ok || r.Data.(*model.Customer).Phone != phone {
		t.Errorf("customer after a full resync: %+v, want phone %q", r.Data, phone)
	}
	var due time.Time
	h.sim.Dataset().View(func(d *simkit.Dataset) { due = d.Invoices[1].DueDate })
	if r, ok := h.get(model.KindInvoice, invID); !ok || r.Data.(*model.Invoice).DueDate == nil || !r.Data.(*model.Invoice).DueDate.Equal(due) {
		t.Errorf("invoice after a full resync: due %v, want %v", r.Data.(*model.Invoice).DueDate, due)
	}
	// The customer, its person (who carries the contact's phone) and the
	// invoice.
	if res.Upserted != 3 {
		t.Errorf("the full resync upserted %d records, want the 3 changed", res.Upserted)
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

// TestRequestsAreXeros checks what every request carries: Accept JSON (the
// default is XML), the organisation, a bearer token; on paged lists the
// page size and the UpdatedDateUTC order the keyset relies on; and, on
// incremental reads, If-Modified-Since in UTC whole seconds, which the
// first import never sends.
func TestRequestsAreXeros(t *testing.T) {
	var ims atomic.Int32
	var first atomic.Bool
	first.Store(true)
	h := newHarness(t, sim.Options{}, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, sim.APIPath) {
				if r.Header.Get("Accept") != "application/json" || r.Header.Get("xero-tenant-id") == "" || !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
					t.Errorf("%s: headers %v", r.URL.Path, r.Header)
				}
				if q := r.URL.Query(); q.Get("page") != "" && (q.Get("pageSize") != fmt.Sprint(PageSize) || q.Get("order") != "UpdatedDateUTC ASC") {
					t.Errorf("%s: pageSize %q order %q", r.URL.Path, q.Get("pageSize"), q.Get("order"))
				}
				if v := r.Header.Get("If-Modified-Since"); v != "" {
					if _, err := time.Parse("2006-01-02T15:04:05Z", v); err != nil {
						t.Errorf("If-Modified-Since %q is not UTC whole seconds", v)
					}
					if first.Load() {
						t.Errorf("%s: the first import sent If-Modified-Since %s", r.URL.Path, v)
					}
					ims.Add(1)
				}
			}
			next.ServeHTTP(w, r)
		})
	})
	if _, err := h.run(context.Background()); err != nil {
		t.Fatal(err)
	}
	first.Store(false)
	h.clock.Advance(10 * time.Minute)
	h.sim.Dataset().TouchCustomers(2)
	if _, err := h.run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ims.Load() != 3 {
		t.Errorf("%d requests carried If-Modified-Since, want the 3 incremental lists", ims.Load())
	}
	if h.sim.Refreshes() != 1 {
		t.Errorf("%d refreshes: the access token is still fresh and must be reused", h.sim.Refreshes())
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
	first, err := h.run(context.Background())
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
	// Page 3 holds what pages 1 and 2 did not: nothing is read twice (the
	// keyset drops the record its cursor restarts on), nothing repeated.
	if got, want := res.Records[model.KindInvoice], int64(h.sim.Expected()[model.KindInvoice])-first.Records[model.KindInvoice]; got != want || first.Records[model.KindInvoice] < 2*PageSize-2 {
		t.Errorf("the resumed invoices pass read %d records after %d before the limit, want the %d of page 3", got, first.Records[model.KindInvoice], want)
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
