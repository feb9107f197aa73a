package unleashed_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/connectortest"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/connectors/unleashed"
	"github.com/erpsync/erpsync-operator/connectors/unleashed/sim"
)

// harnessPageSize is the connector's page size in the scenarios: small, so
// that the suite's datasets span several pages.
const harnessPageSize = 50

// harness runs the connector scenario suite against the Unleashed
// simulator.
type harness struct {
	// pageSize is the connector's page size (0: harnessPageSize).
	pageSize int
}

func (harness) Vendor() string { return unleashed.Type }

func (h harness) Start(t testing.TB, ds simkit.Options, clock *httpapi.FakeClock) *connectortest.Env {
	// Deliveries are stamped on the suite's clock (the receiver checks
	// them against it) and retried without waiting.
	s := sim.New(sim.Options{Dataset: ds, Now: clock.Now, WebhookNow: clock.Now, WebhookSleep: instant})
	t.Cleanup(s.CloseWebhooks)
	srv := connectortest.Serve(t, s)
	size := h.pageSize
	if size <= 0 {
		size = harnessPageSize
	}
	env := &connectortest.Env{
		Base:     &s.Base,
		Data:     s.Dataset(),
		Expected: func() []connectortest.Want { return expected(s) },
		SetAside: func() (model.Kind, string) {
			return model.KindPriceRule, s.ServeGroupPrice()
		},
		// Unleashed meters a monthly quota, no minute; modifiedSince takes
		// whole seconds.
		Caps: connectortest.Caps{ModifiedPrecision: time.Second, PageSize: size, Throttle: 429,
			// Stock and customer prices come from their own lists, not inside
			// the product: reconciliation finds them gone.
			ChildrenApart: []model.Kind{model.KindStockLevel, model.KindPriceRule}},
	}
	env.Webhooks = &connectortest.WebhookEnv{
		Codec: unleashed.Webhooks,
		// Customer and Product events (documented); the stock and
		// customer prices of a product have no event of their own.
		Kinds: map[string]model.Kind{simkit.AdminProducts: model.KindProduct, simkit.AdminCustomers: model.KindCustomer},
		Subscribe: func(t testing.TB, reg *httpapi.Registry, url string) (map[string][]byte, *simkit.Deliverer) {
			t.Helper()
			return harnessSubscribe(t, env, s, reg, url)
		},
	}
	return env.ConnectBy(s.Credentials, func(t testing.TB, reg *httpapi.Registry, creds map[string][]byte) (connectors.Connector, error) {
		return unleashed.NewWithOptions(context.Background(), connectors.Config{Type: unleashed.Type, CompanyID: connectortest.Company,
			BaseURL: srv.URL, Credentials: creds}, unleashed.Options{Clock: clock, Registry: reg, PageSize: size})
	})
}

func TestScenarios(t *testing.T) { connectortest.Run(t, harness{}) }

// harnessSubscribe registers url through the connector's WebhookRegistrar,
// as the operator does, and returns the receiver's keys (the credentials
// with the webhook Secret merged over them) and the subscription's
// deliverer.
func harnessSubscribe(t testing.TB, env *connectortest.Env, s *sim.Server, reg *httpapi.Registry, url string) (map[string][]byte, *simkit.Deliverer) {
	keys := connectortest.SecretData(s.Credentials(), nil)
	keys[connectors.WebhookKeyCredential] = []byte("suite-webhook-credential")
	r, ok := env.Connect(t, reg).(connectors.WebhookRegistrar)
	if !ok {
		t.Fatal("the unleashed connector is no WebhookRegistrar")
	}
	res, err := r.EnsureWebhooks(context.Background(), connectors.WebhookTarget{URL: url, Keys: keys,
		Entities: []model.Kind{model.KindCustomer, model.KindContact, model.KindProduct}})
	if err != nil {
		t.Fatalf("EnsureWebhooks: %v", err)
	}
	for k, v := range res.Keys {
		keys[k] = v
	}
	for _, sub := range s.WebhookSubscriptions() {
		if sub.URL == url {
			return keys, s.WebhookDeliverer(sub.ID)
		}
	}
	t.Fatalf("no subscription delivers to %s", url)
	return nil, nil
}

// expected lists every record a full import of the simulator's dataset
// yields, with checks of the fields the suite's edits change.
func expected(s *sim.Server) []connectortest.Want {
	var out []connectortest.Want
	want := func(k model.Kind, id string, deleted bool, check func(r *model.Record) error) {
		out = append(out, connectortest.Want{Kind: k, VendorID: id, Deleted: deleted, Check: check})
	}
	s.Dataset().View(func(d *simkit.Dataset) {
		for _, x := range d.TaxRates {
			want(model.KindTaxRate, x.ID, x.Deleted, nil)
		}
		for _, x := range d.Currencies {
			want(model.KindCurrency, x.ID, x.Deleted, nil)
		}
		whID := map[string]string{}
		for _, x := range d.Warehouses {
			want(model.KindWarehouse, x.ID, x.Deleted, nil)
			whID[x.Code] = x.ID
		}
		for _, x := range d.SalesPeople {
			want(model.KindSalesPerson, x.ID, x.Deleted, nil)
		}
		for _, x := range d.Suppliers {
			want(model.KindSupplier, x.ID, x.Deleted, nil)
		}
		for _, c := range d.Customers {
			phone, name := c.Phone, c.Name
			want(model.KindCustomer, c.ID, c.Deleted, func(r *model.Record) error {
				cu, ok := r.Data.(*model.Customer)
				if !ok || cu.Phone != phone || cu.Name != name {
					return fmt.Errorf("customer %+v, want phone %q name %q", r.Data, phone, name)
				}
				return nil
			})
			for _, ct := range c.Contacts {
				want(model.KindContact, ct.ID, c.Deleted, nil)
			}
		}
		for _, p := range d.Products {
			name, price, mod := p.Name, trimZeros(p.SellPrice), p.Modified
			want(model.KindProduct, p.ID, p.Deleted, func(r *model.Record) error {
				pr, ok := r.Data.(*model.Product)
				if !ok || pr.Name != name || string(pr.SellPrice) != price || !r.ModifiedAt.Equal(mod) {
					return fmt.Errorf("name %q price %q modified %v, want %q %q %v", nameOf(pr), priceOf(pr), r.ModifiedAt, name, price, mod)
				}
				return nil
			})
			for _, st := range p.Stock {
				onHand := st.OnHand
				want(model.KindStockLevel, p.ID+"/"+whID[st.WarehouseCode], false, func(r *model.Record) error {
					if sl, ok := r.Data.(*model.StockLevel); !ok || sl.OnHand != onHand {
						return fmt.Errorf("stock %+v, want on hand %v", r.Data, onHand)
					}
					return nil
				})
			}
			for j, sp := range p.SpecialPrices {
				price := trimZeros(sp.Price)
				want(model.KindPriceRule, sim.PriceID(p.ID, sp.CustomerID, j), false, func(r *model.Record) error {
					if pr, ok := r.Data.(*model.PriceRule); !ok || string(pr.Price) != price {
						return fmt.Errorf("price rule %+v, want price %s", r.Data, price)
					}
					return nil
				})
			}
		}
		for _, o := range d.Orders {
			status := o.Status
			if o.Deleted {
				status = "Deleted"
			}
			want(model.KindSalesOrder, o.ID, o.Deleted, func(r *model.Record) error {
				if so, ok := r.Data.(*model.SalesOrder); !ok || so.Status != status {
					return fmt.Errorf("order %+v, want status %q", r.Data, status)
				}
				return nil
			})
			if o.Status == "Completed" {
				want(model.KindShipment, sim.ShipmentID(o.ID), o.Deleted, nil)
			}
		}
		for _, x := range d.Invoices {
			want(model.KindInvoice, x.ID, x.Deleted, nil)
		}
		for _, x := range d.CreditNotes {
			want(model.KindCreditNote, x.ID, x.Deleted, nil)
		}
	})
	return out
}

func nameOf(p *model.Product) string {
	if p == nil {
		return ""
	}
	return p.Name
}

func priceOf(p *model.Product) string {
	if p == nil {
		return ""
	}
	return string(p.SellPrice)
}
