package cin7omni_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/cin7omni"
	"github.com/erpsync/erpsync-operator/connectors/cin7omni/sim"
	"github.com/erpsync/erpsync-operator/connectors/connectortest"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
)

// harnessRows is the connector's page size in the scenarios: small, so
// that the suite's datasets span several pages.
const harnessRows = 50

// harness runs the connector scenario suite against the Cin7 Omni
// simulator, with its documented limits (3 a second, 60 a minute).
type harness struct {
	// loc is the account's time zone (nil: UTC).
	loc *time.Location
	// rows is the connector's page size (0: harnessRows).
	rows int
}

func (harness) Vendor() string { return cin7omni.Type }

func (h harness) Start(t testing.TB, ds simkit.Options, clock *httpapi.FakeClock) *connectortest.Env {
	s := sim.New(sim.Options{Dataset: ds, Now: clock.Now, TimeZone: h.loc})
	srv := connectortest.Serve(t, s)
	rows := h.rows
	if rows <= 0 {
		rows = harnessRows
	}
	env := &connectortest.Env{
		Base:     &s.Base,
		Data:     s.Dataset(),
		Expected: func() []connectortest.Want { return expected(s) },
		SetAside: func() (model.Kind, string) {
			return model.KindProduct, "style/" + strconv.Itoa(s.ServeArchivedProduct())
		},
		// The where clause's date literal has whole seconds.
		Caps: connectortest.Caps{ModifiedPrecision: time.Second, MinuteLimit: cin7omni.PerMinute, PageSize: rows, Throttle: 429,
			// Stock rows come from /v1/Stock, not inside the product.
			ChildrenApart: []model.Kind{model.KindStockLevel}},
	}
	return env.ConnectBy(s.Credentials, func(t testing.TB, reg *httpapi.Registry, creds map[string][]byte) (connectors.Connector, error) {
		return cin7omni.NewWithOptions(context.Background(), connectors.Config{Type: cin7omni.Type, CompanyID: connectortest.Company,
			BaseURL: srv.URL + "/api/", Credentials: creds}, cin7omni.Options{Clock: clock, Registry: reg, Rows: rows})
	})
}

func TestScenarios(t *testing.T) { connectortest.Run(t, harness{}) }

func itoa(n int) string { return strconv.Itoa(n) }

// expected lists every record a full import of the simulator's dataset
// yields, with checks of the fields the suite's edits change.
func expected(s *sim.Server) []connectortest.Want {
	var out []connectortest.Want
	want := func(k model.Kind, id string, deleted bool, check func(r *model.Record) error) {
		out = append(out, connectortest.Want{Kind: k, VendorID: id, Deleted: deleted, Check: check})
	}
	s.Dataset().View(func(d *simkit.Dataset) {
		branch := map[string]int{}
		for _, w := range d.Warehouses {
			want(model.KindWarehouse, itoa(sim.BranchID(w)), w.Deleted, nil)
			branch[w.Code] = sim.BranchID(w)
		}
		for _, x := range d.SalesPeople {
			want(model.KindSalesPerson, itoa(sim.UserID(x)), x.Deleted, nil)
		}
		for _, x := range d.Suppliers {
			want(model.KindSupplier, itoa(sim.SupplierID(x)), x.Deleted, nil)
		}
		for _, c := range d.Customers {
			phone := c.Phone
			want(model.KindCustomer, itoa(sim.CustomerID(c)), c.Deleted, func(r *model.Record) error {
				if cu, ok := r.Data.(*model.Customer); !ok || cu.Phone != phone {
					return fmt.Errorf("customer %+v, want phone %q", r.Data, phone)
				}
				return nil
			})
			for j := range c.Contacts {
				want(model.KindContact, itoa(sim.SecondaryContactID(c, j)), c.Deleted, nil)
			}
		}
		for _, p := range d.Products {
			oid := itoa(sim.OptionID(p))
			name, price, mod := p.Name, trim(p.SellPrice), p.Modified
			want(model.KindProduct, oid, p.Deleted, func(r *model.Record) error {
				pr, ok := r.Data.(*model.Product)
				if !ok || pr.Name != name || string(pr.SellPrice) != price || !r.ModifiedAt.Equal(mod) {
					return fmt.Errorf("product %+v modified %v, want name %q price %s modified %v", r.Data, r.ModifiedAt, name, price, mod)
				}
				return nil
			})
			if len(p.SpecialPrices) > 0 {
				sp := trim(p.SpecialPrices[0].Price)
				want(model.KindPriceRule, oid+"/special", p.Deleted, func(r *model.Record) error {
					if pr, ok := r.Data.(*model.PriceRule); !ok || string(pr.Price) != sp {
						return fmt.Errorf("price rule %+v, want %s", r.Data, sp)
					}
					return nil
				})
			}
			for _, st := range p.Stock {
				onHand := st.OnHand
				want(model.KindStockLevel, oid+"/"+itoa(branch[st.WarehouseCode]), false, func(r *model.Record) error {
					if sl, ok := r.Data.(*model.StockLevel); !ok || sl.OnHand != onHand {
						return fmt.Errorf("stock %+v, want on hand %v", r.Data, onHand)
					}
					return nil
				})
			}
		}
		invoiced := sim.Invoiced(d)
		for _, o := range d.Orders {
			id := itoa(sim.OrderID(o))
			dispatched := sim.Dispatched(o)
			want(model.KindSalesOrder, id, o.Deleted, nil)
			if invoiced(o) {
				want(model.KindInvoice, id+"/invoice", o.Deleted, nil)
			}
			if dispatched {
				want(model.KindShipment, id+"/dispatch", o.Deleted, nil)
			}
		}
		for _, cn := range d.CreditNotes {
			want(model.KindCreditNote, itoa(sim.CreditNoteID(cn)), cn.Deleted, nil)
		}
	})
	return out
}

// trim drops a decimal's trailing zeros, as the mapping does.
func trim(d string) string {
	if strings.Contains(d, ".") {
		d = strings.TrimRight(strings.TrimRight(d, "0"), ".")
	}
	return d
}
