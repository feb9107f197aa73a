package xero

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/connectortest"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/connectors/xero/sim"
)

// TestScenarios runs the one connector scenario suite against Xero.
func TestScenarios(t *testing.T) { connectortest.Run(t, xeroHarness{}) }

// scenarioPageSize is the page size of Contacts, Invoices and CreditNotes
// in the scenarios (Xero's is 1000): small datasets then span pages. Items
// are not paged at all.
const scenarioPageSize = 100

// xeroHarness is Xero's connectortest.Harness.
type xeroHarness struct{}

// Vendor implements connectortest.Harness.
func (xeroHarness) Vendor() string { return Type }

// Start implements connectortest.Harness: the simulator on the suite's
// fake clock, one credentials Secret for every connector of the
// environment, and a fresh token cache per connector (Connect plays a
// (re)started manager process).
func (xeroHarness) Start(t testing.TB, ds simkit.Options, clock *httpapi.FakeClock) *connectortest.Env {
	t.Helper()
	s := sim.New(sim.Options{Dataset: ds, Now: clock.Now})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	store := NewMemoryCredentialStore("scenarios/xero-"+t.Name(), s.Credentials())
	connect := func(t testing.TB, reg *httpapi.Registry, store *MemoryCredentialStore) connectors.Connector {
		t.Helper()
		log := logr.Discard()
		if tt, ok := t.(*testing.T); ok {
			log = testr.New(tt)
		}
		c, err := NewWithOptions(context.Background(), connectors.Config{
			Type: Type, CompanyID: connectortest.Company, BaseURL: srv.URL + sim.APIPath, Credentials: store.Data(),
			CredentialStore: store, HTTPClient: srv.Client(), Log: log,
		}, Options{Clock: clock, Registry: reg, tokens: newTokenCache(), pageSize: scenarioPageSize})
		if err != nil {
			t.Fatalf("building the Xero connector: %v", err)
		}
		return c
	}
	return &connectortest.Env{
		Base: &s.Base,
		Data: s.Dataset(),
		Connect: func(t testing.TB, reg *httpapi.Registry) connectors.Connector {
			return connect(t, reg, store)
		},
		ConnectWith: func(t testing.TB, reg *httpapi.Registry, edit func(map[string][]byte)) connectors.Connector {
			data := store.Data()
			edit(data)
			other := NewMemoryCredentialStore(store.Key()+"-edited", nil)
			for k, v := range data {
				other.Set(k, string(v))
			}
			return connect(t, reg, other)
		},
		Expected: func() []connectortest.Want { return expected(s) },
		SetAside: func() (model.Kind, string) {
			// Xero's OpenAPI document allows invoice types beyond the two
			// the connector maps (schema Invoice, Type).
			id := s.AddInvoiceOfType("ARPREPAYMENT")
			if id == "" {
				t.Fatalf("the dataset has no invoice to model an ARPREPAYMENT on")
			}
			return model.KindInvoice, id
		},
		Webhooks: webhookEnv(s, store, clock),
		Caps: connectortest.Caps{
			// UpdatedDateUTC has milliseconds, If-Modified-Since seconds.
			ModifiedPrecision: time.Second,
			MinuteLimit:       60,
			PageSize:          scenarioPageSize,
			Throttle:          429,
		},
	}
}

// webhookEnv is how the suite reaches the simulator's webhook. Xero has
// no subscription API: Subscribe plays the developer portal (the app's
// webhook to url, Xero's key) with the intent-to-receive check taken as
// passed, because the suite's capture server answers every delivery with
// its scenario's status rather than as a Xero receiver (the check itself
// is tested in sim). The keys are the credentials Secret's data with the
// webhook key under webhookKey, as an operator stores it. Xero's retry
// waits (a day in all) pass on the suite's fake clock at once.
func webhookEnv(s *sim.Server, store *MemoryCredentialStore, clock *httpapi.FakeClock) *connectortest.WebhookEnv {
	// Xero's time passes, unrecorded (the suite reads the clock's sleeps
	// as the connector's).
	sleep := func(ctx context.Context, d time.Duration) error {
		clock.Advance(d)
		return ctx.Err()
	}
	return &connectortest.WebhookEnv{
		Codec: Webhooks,
		Subscribe: func(t testing.TB, _ *httpapi.Registry, url string) (map[string][]byte, *simkit.Deliverer) {
			t.Helper()
			key, err := s.SetWebhook(sim.WebhookConfig{URL: url, Validated: true, Sleep: sleep})
			if err != nil {
				t.Fatalf("setting the Xero app's webhook: %v", err)
			}
			t.Cleanup(s.RemoveWebhook)
			keys := store.Data()
			keys[connectors.WebhookKeyXero] = []byte(key)
			return keys, s.WebhookDeliverer()
		},
		Tenant: s.Tenants()[0],
		Kinds: map[string]model.Kind{
			simkit.AdminCustomers:   model.KindCustomer, // contacts
			simkit.AdminSuppliers:   model.KindCustomer, // contacts too: read as customers, mapped to suppliers
			simkit.AdminInvoices:    model.KindInvoice,
			simkit.AdminCreditNotes: model.KindCreditNote,
			// Orders are no Xero document; the bills derived from every
			// fourth one are announced as invoices under their own id.
		},
	}
}

// expected is every record a full import of the simulator's data yields
// now, with checks of the fields edits change.
func expected(s *sim.Server) []connectortest.Want {
	var out []connectortest.Want
	add := func(kind model.Kind, id string, deleted bool, check func(r *model.Record) error) {
		out = append(out, connectortest.Want{Kind: kind, VendorID: id, Deleted: deleted, Check: check})
	}
	s.Dataset().View(func(d *simkit.Dataset) {
		for _, tr := range d.TaxRates {
			add(model.KindTaxRate, tr.Code, tr.Deleted, nil)
		}
		for _, c := range d.Currencies {
			add(model.KindCurrency, c.Code, false, nil)
		}
		for _, c := range d.Customers {
			name, phone, email := c.Name, c.Phone, c.Email
			add(model.KindCustomer, c.ID, c.Deleted, func(r *model.Record) error {
				cu, ok := r.Data.(*model.Customer)
				switch {
				case !ok:
					return fmt.Errorf("payload %T", r.Data)
				case cu.Name != name || cu.Phone != phone || cu.Email != email:
					return fmt.Errorf("name %q phone %q email %q, want %q %q %q", cu.Name, cu.Phone, cu.Email, name, phone, email)
				}
				return nil
			})
			for i, p := range c.Contacts {
				last := p.LastName
				add(model.KindContact, fmt.Sprintf("%s/%d", c.ID, i), c.Deleted, func(r *model.Record) error {
					if ct, ok := r.Data.(*model.Contact); !ok || ct.LastName != last {
						return fmt.Errorf("contact %+v, want last name %q", r.Data, last)
					}
					return nil
				})
			}
		}
		for _, sp := range d.Suppliers {
			name := sp.Name
			add(model.KindSupplier, sp.ID, sp.Deleted, func(r *model.Record) error {
				if su, ok := r.Data.(*model.Supplier); !ok || su.Name != name {
					return fmt.Errorf("supplier %+v, want name %q", r.Data, name)
				}
				return nil
			})
		}
		for _, p := range d.Products {
			if p.Deleted {
				continue // Xero deletes items outright: they vanish from /Items
			}
			name, sell, cost := p.Name, canon(p.SellPrice), canon(p.CostPrice)
			add(model.KindProduct, p.ID, false, func(r *model.Record) error {
				pr, ok := r.Data.(*model.Product)
				switch {
				case !ok:
					return fmt.Errorf("payload %T", r.Data)
				case pr.Name != name || string(pr.SellPrice) != sell || string(pr.CostPrice) != cost:
					return fmt.Errorf("name %q sell %s cost %s, want %q %s %s", pr.Name, pr.SellPrice, pr.CostPrice, name, sell, cost)
				}
				return nil
			})
			if !sim.IsTracked(p) {
				continue
			}
			var onHand float64
			for _, st := range p.Stock {
				onHand += st.OnHand
			}
			add(model.KindStockLevel, p.ID, false, func(r *model.Record) error {
				if sl, ok := r.Data.(*model.StockLevel); !ok || sl.OnHand != onHand || sl.Warehouse != stockWarehouse {
					return fmt.Errorf("stock %+v, want %v on hand in %s", r.Data, onHand, stockWarehouse)
				}
				return nil
			})
		}
	})
	for _, doc := range s.Documents() {
		number, status := doc.Number, doc.Status
		switch doc.Kind {
		case model.KindInvoice:
			typ := map[string]string{"ACCREC": "sales", "ACCPAY": "bill"}[doc.Type]
			add(model.KindInvoice, doc.ID, doc.Deleted, func(r *model.Record) error {
				if inv, ok := r.Data.(*model.Invoice); !ok || inv.Number != number || inv.Status != status || inv.Type != typ {
					return fmt.Errorf("invoice %+v, want number %s status %s type %s", r.Data, number, status, typ)
				}
				return nil
			})
		case model.KindCreditNote:
			add(model.KindCreditNote, doc.ID, doc.Deleted, func(r *model.Record) error {
				if cn, ok := r.Data.(*model.CreditNote); !ok || cn.Number != number || cn.Status != status {
					return fmt.Errorf("credit note %+v, want number %s status %s", r.Data, number, status)
				}
				return nil
			})
		}
	}
	return out
}

// TestHarnessExpectedMatchesTheSimulator: the harness's Expected counts
// agree with the simulator's own per-kind counts, so that the suite
// compares against every record.
func TestHarnessExpectedMatchesTheSimulator(t *testing.T) {
	clock := httpapi.NewFakeClock(testStart)
	env := xeroHarness{}.Start(t, smallDataset(), clock)
	s := sim.New(sim.Options{Data: env.Data, Now: clock.Now})
	got := map[model.Kind]int{}
	for _, w := range env.Expected() {
		got[w.Kind]++
	}
	for k, n := range s.Expected() {
		if got[k] != n {
			t.Errorf("%s: the harness expects %d records, the simulator serves %d", k, got[k], n)
		}
	}
}
