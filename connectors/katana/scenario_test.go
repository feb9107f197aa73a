package katana

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/connectortest"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/katana/sim"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
)

// TestScenarios plays the one connector scenario suite against Katana.
func TestScenarios(t *testing.T) { connectortest.Run(t, harness{}) }

// harness is Katana's connectortest.Harness.
type harness struct{}

// Vendor implements connectortest.Harness.
func (harness) Vendor() string { return Type }

// Start implements connectortest.Harness.
func (harness) Start(t testing.TB, ds simkit.Options, clock *httpapi.FakeClock) *connectortest.Env {
	t.Helper()
	// Katana requires an https webhook URL; the suite receives on plain
	// http. Repeats of failed deliveries wait a hundred-thousandth of
	// Katana's 30 s, 2 min and 15 min.
	s := sim.New(sim.Options{Dataset: ds, Now: clock.Now, AllowHTTPWebhooks: true, WebhookSleep: compressedSleep(100_000)})
	t.Cleanup(s.Close)
	srv := connectortest.Serve(t, s)
	env := &connectortest.Env{
		Base:     &s.Base,
		Data:     s.Dataset(),
		Expected: func() []connectortest.Want { return expected(s) },
		// A price-list row naming a list created after the lists were read
		// (a reference the community OpenAPI document allows: rows carry
		// any price_list_id).
		SetAside: func() (model.Kind, string) {
			return model.KindPriceRule, strconv.Itoa(s.AddLatePriceList())
		},
		Caps: connectortest.Caps{ModifiedPrecision: time.Millisecond, MinuteLimit: 60, PageSize: PageSize, Throttle: 429},
	}
	env.ConnectBy(s.Credentials, func(t testing.TB, reg *httpapi.Registry, creds map[string][]byte) (connectors.Connector, error) {
		return NewWithOptions(context.Background(), connectors.Config{Type: Type, CompanyID: connectortest.Company, BaseURL: srv.URL + sim.BasePath,
			Credentials: creds, HTTPClient: srv.Client(), Log: connectortest.Log(t)}, Options{Clock: clock, Registry: reg})
	})
	env.Webhooks = &connectortest.WebhookEnv{
		Codec: Webhooks,
		Subscribe: func(t testing.TB, reg *httpapi.Registry, url string) (map[string][]byte, *simkit.Deliverer) {
			return subscribe(t, env, s, reg, url)
		},
		Kinds: sim.WebhookKinds,
	}
	return env
}

// subscribe registers the ErpSync's webhook through the connector's
// registrar, as the operator does, and returns the keys the receiver
// verifies with (the credentials with the webhook Secret merged over them)
// and the webhook's deliverer.
func subscribe(t testing.TB, env *connectortest.Env, s *sim.Server, reg *httpapi.Registry, url string) (map[string][]byte, *simkit.Deliverer) {
	t.Helper()
	c := env.Connect(t, reg)
	keys := map[string][]byte{connectors.WebhookKeyCredential: []byte("operator-generated")}
	for k, v := range s.Credentials() {
		keys[k] = []byte(v)
	}
	var streams []model.Kind
	for _, e := range c.Entities() {
		streams = append(streams, e.Name)
	}
	r, err := c.(connectors.WebhookRegistrar).EnsureWebhooks(context.Background(), connectors.WebhookTarget{URL: url, Keys: keys, Entities: streams})
	if err != nil {
		t.Fatalf("registering the webhook: %v", err)
	}
	for k, v := range r.Keys {
		keys[k] = v
	}
	for _, sub := range s.WebhookSubscriptions() {
		if sub.URL == url {
			return keys, sub.Deliverer
		}
	}
	t.Fatalf("no webhook delivers to %s", url)
	return nil, nil
}

// compressedSleep waits d divided by scale of real time.
func compressedSleep(scale float64) func(ctx context.Context, d time.Duration) error {
	return func(ctx context.Context, d time.Duration) error {
		tm := time.NewTimer(time.Duration(float64(d) / scale))
		defer tm.Stop()
		select {
		case <-tm.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// expected is what a full import of s must put in the CRM now, every kind
// the connector emits, each with a check of the fields edits change.
func expected(s *sim.Server) []connectortest.Want {
	var out []connectortest.Want
	want := func(k model.Kind, id string, deleted bool, check func(r *model.Record) error) {
		out = append(out, connectortest.Want{Kind: k, VendorID: id, Deleted: deleted, Check: check})
	}
	rows := s.PriceRows()
	s.Dataset().View(func(d *simkit.Dataset) {
		for _, t := range d.TaxRates {
			rate := t.Rate
			want(model.KindTaxRate, strconv.Itoa(t.Seq), false, func(r *model.Record) error {
				return differ("rate", r.Data.(*model.TaxRate).Rate, rate)
			})
		}
		for _, w := range d.Warehouses {
			name := w.Name
			want(model.KindWarehouse, strconv.Itoa(w.Seq), w.Deleted, func(r *model.Record) error {
				return differ("name", r.Data.(*model.Warehouse).Name, name)
			})
		}
		for _, c := range d.Customers {
			c := *c
			id := strconv.Itoa(c.Seq)
			want(model.KindCustomer, id, c.Deleted, func(r *model.Record) error {
				cu := r.Data.(*model.Customer)
				return first(differ("name", cu.Name, c.Name), differ("email", cu.Email, c.Email), differ("phone", cu.Phone, c.Phone),
					differ("currency", cu.Currency, c.Currency), differ("code", cu.Code, c.Code))
			})
			if len(c.Contacts) > 0 {
				p := c.Contacts[0]
				want(model.KindContact, id, c.Deleted, func(r *model.Record) error {
					ct := r.Data.(*model.Contact)
					return first(differ("first name", ct.FirstName, p.FirstName), differ("last name", ct.LastName, p.LastName), differ("phone", ct.Phone, c.Phone))
				})
			}
		}
		for _, p := range d.Products {
			p := *p
			vid := strconv.Itoa(sim.VariantID(p.Seq))
			want(model.KindProduct, vid, p.Deleted, func(r *model.Record) error {
				cp := r.Data.(*model.Product)
				return first(differ("sku", cp.SKU, p.SKU), differ("name", cp.Name, p.Name), differ("sell price", string(cp.SellPrice), canon(p.SellPrice)),
					differ("cost price", string(cp.CostPrice), canon(p.CostPrice)))
			})
			if p.Deleted {
				continue // Katana lists no stock for a deleted product
			}
			for wi, w := range d.Warehouses {
				st := p.Stock[wi%len(p.Stock)]
				want(model.KindStockLevel, vid+"/"+strconv.Itoa(w.Seq), false, func(r *model.Record) error {
					sl := r.Data.(*model.StockLevel)
					return first(differ("on hand", sl.OnHand, st.OnHand), differ("allocated", sl.Allocated, st.Allocated), differ("sku", sl.SKU, p.SKU))
				})
			}
		}
		for _, sp := range d.Suppliers {
			sp := *sp
			vid := strconv.Itoa(sim.MaterialVariantID(sp.Seq))
			want(model.KindProduct, vid, sp.Deleted, func(r *model.Record) error {
				return differ("sku", r.Data.(*model.Product).SKU, sim.MaterialSKU(&sp))
			})
			for wi, w := range d.Warehouses {
				onHand := sim.MaterialOnHand(&sp, wi)
				want(model.KindStockLevel, vid+"/"+strconv.Itoa(w.Seq), false, func(r *model.Record) error {
					return differ("on hand", r.Data.(*model.StockLevel).OnHand, onHand)
				})
			}
		}
		for _, o := range d.Orders {
			_, _, total := o.Totals()
			status, lines := sim.OrderStatus(o.Status), len(o.Lines)
			want(model.KindSalesOrder, strconv.Itoa(o.Seq), o.Deleted, func(r *model.Record) error {
				so := r.Data.(*model.SalesOrder)
				return first(differ("status", so.Status, status), differ("total", string(so.Total), canon(total)), differ("lines", len(so.Lines), lines))
			})
		}
	})
	for _, row := range rows {
		if !row.Listed {
			continue // set aside until its list is listed
		}
		id := strconv.Itoa(row.RowID)
		if row.CustomerSeq > 0 {
			id += "/" + strconv.Itoa(row.CustomerSeq)
		}
		want(model.KindPriceRule, id, !row.Active, func(r *model.Record) error {
			pr := r.Data.(*model.PriceRule)
			return first(differ("price", string(pr.Price), canon(row.Price)), differ("variant", pr.ProductVendorID, strconv.Itoa(row.VariantID)))
		})
	}
	return out
}

// differ reports a field whose stored value is not the vendor's.
func differ[T comparable](field string, got, want T) error {
	if got != want {
		return fmt.Errorf("%s is %v, the ERP says %v", field, got, want)
	}
	return nil
}

// first returns the first non-nil error.
func first(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
