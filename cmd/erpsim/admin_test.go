package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/simkit"
)

// testFleet serves the admin API of every vendor over a small dataset.
func testFleet(t *testing.T) (*fleet, *httptest.Server) {
	t.Helper()
	f := &fleet{}
	// A fast clock: every change is stamped later than the one before.
	for _, v := range vendors(simkit.Options{Seed: 3, Products: 12, Customers: 6, Orders: 30, Warehouses: 3}, 1000) {
		f.vendors = append(f.vendors, &runningVendor{vendor: v, rootURL: "http://127.0.0.1:1"})
	}
	srv := httptest.NewServer(f.adminHandler())
	t.Cleanup(srv.Close)
	return f, srv
}

// call makes an admin request and returns the status and body.
func call(t *testing.T, srv *httptest.Server, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func refs(t *testing.T, srv *httptest.Server, vendor, kind string) []simkit.RecordRef {
	t.Helper()
	code, b := call(t, srv, "GET", "/vendors/"+vendor+"/records/"+kind, "")
	if code != http.StatusOK {
		t.Fatalf("list %s: %d %s", kind, code, b)
	}
	var out []simkit.RecordRef
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func expectedTotal(v *runningVendor) int {
	n := 0
	for _, c := range v.sim.Expected() {
		n += c
	}
	return n
}

// TestHardDeleteEveryKind deletes one record of every kind in every vendor:
// the answer is the record, it is gone from the dataset, a second delete is
// a 404, and every vendor serves fewer records for the kinds all of them
// serve (Xero has no sales orders).
func TestHardDeleteEveryKind(t *testing.T) {
	f, srv := testFleet(t)
	for _, v := range f.vendors {
		for _, kind := range simkit.AdminKinds {
			t.Run(v.name+"/"+kind, func(t *testing.T) {
				before := refs(t, srv, v.name, kind)
				if len(before) < 2 {
					t.Fatalf("the dataset has %d %s", len(before), kind)
				}
				target := before[1]
				served := expectedTotal(v)
				code, b := call(t, srv, "GET", "/vendors/"+v.name+"/records/"+kind+"/"+target.ID, "")
				if code != http.StatusOK || !strings.Contains(string(b), target.ID) {
					t.Fatalf("GET: %d %s", code, b)
				}
				code, b = call(t, srv, "DELETE", "/vendors/"+v.name+"/records/"+kind+"/"+target.ID, "")
				if code != http.StatusOK || !strings.Contains(string(b), target.ID) {
					t.Fatalf("DELETE: %d %s", code, b)
				}
				after := refs(t, srv, v.name, kind)
				if len(after) != len(before)-1 || slices.ContainsFunc(after, func(r simkit.RecordRef) bool { return r.ID == target.ID }) {
					t.Fatalf("after the delete the dataset lists %d of %d %s, target included: %v", len(after), len(before), kind, slices.ContainsFunc(after, func(r simkit.RecordRef) bool { return r.ID == target.ID }))
				}
				for _, m := range []string{"GET", "DELETE"} {
					if code, b := call(t, srv, m, "/vendors/"+v.name+"/records/"+kind+"/"+target.ID, ""); code != http.StatusNotFound {
						t.Errorf("%s of the deleted record: %d %s", m, code, b)
					}
				}
				if kind == simkit.AdminProducts || kind == simkit.AdminCustomers {
					if now := expectedTotal(v); now >= served {
						t.Errorf("the simulator serves %d records after the delete, %d before", now, served)
					}
				}
			})
		}
	}
}

// TestHardDeleteSideEffects: what the vendor changes with a removal.
func TestHardDeleteSideEffects(t *testing.T) {
	f, srv := testFleet(t)
	ds := f.vendors[0].sim.Dataset()
	name := f.vendors[0].name
	var (
		inv        simkit.Document
		order      *simkit.Document
		orderMod   time.Time
		cust       simkit.Customer
		wh         string
		withPrices []string
		productMod map[string]time.Time // before each case
	)
	ds.View(func(d *simkit.Dataset) {
		inv = *d.Invoices[0]
		for _, o := range d.Orders {
			if o.Number == inv.OrderNumber {
				order, orderMod = o, o.Modified
			}
		}
		for _, p := range d.Products {
			if len(p.SpecialPrices) > 0 {
				cust = *d.Customers[slices.IndexFunc(d.Customers, func(c *simkit.Customer) bool { return c.ID == p.SpecialPrices[0].CustomerID })]
				break
			}
		}
		for _, p := range d.Products {
			if slices.ContainsFunc(p.SpecialPrices, func(sp simkit.SpecialPrice) bool { return sp.CustomerID == cust.ID }) {
				withPrices = append(withPrices, p.ID)
			}
		}
		wh = d.Warehouses[0].Code
	})
	if order == nil || len(withPrices) == 0 {
		t.Fatal("the dataset lacks an invoiced order or a customer price")
	}
	cases := []struct {
		name, kind, id string
		check          func(t *testing.T, d *simkit.Dataset)
	}{
		{"an invoice stamps its order", simkit.AdminInvoices, inv.ID, func(t *testing.T, d *simkit.Dataset) {
			if !order.Modified.After(orderMod) {
				t.Errorf("order %s modified %v, was %v", order.Number, order.Modified, orderMod)
			}
		}},
		{"a customer's prices leave its products", simkit.AdminCustomers, cust.ID, func(t *testing.T, d *simkit.Dataset) {
			for _, p := range d.Products {
				if slices.ContainsFunc(p.SpecialPrices, func(sp simkit.SpecialPrice) bool { return sp.CustomerID == cust.ID }) {
					t.Errorf("product %s still prices the deleted customer", p.SKU)
				}
				if slices.Contains(withPrices, p.ID) && !p.Modified.After(productMod[p.ID]) {
					t.Errorf("product %s lost a price without being stamped (%v)", p.SKU, p.Modified)
				}
			}
		}},
		{"a warehouse's stock rows leave every product", simkit.AdminWarehouses, "", func(t *testing.T, d *simkit.Dataset) {
			for _, p := range d.Products {
				if slices.ContainsFunc(p.Stock, func(s simkit.Stock) bool { return s.WarehouseCode == wh }) {
					t.Errorf("product %s still has stock in %s", p.SKU, wh)
				}
				if len(p.Stock) != len(d.Warehouses) || !p.Modified.After(productMod[p.ID]) {
					t.Errorf("product %s: %d stock rows for %d warehouses, modified %v", p.SKU, len(p.Stock), len(d.Warehouses), p.Modified)
				}
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			productMod = map[string]time.Time{}
			ds.View(func(d *simkit.Dataset) {
				for _, p := range d.Products {
					productMod[p.ID] = p.Modified
				}
			})
			id := tc.id
			if id == "" {
				id = refs(t, srv, name, tc.kind)[0].ID
			}
			if code, b := call(t, srv, "DELETE", "/vendors/"+name+"/records/"+tc.kind+"/"+id, ""); code != http.StatusOK {
				t.Fatalf("DELETE: %d %s", code, b)
			}
			ds.View(func(d *simkit.Dataset) { tc.check(t, d) })
		})
	}
}

// TestRemoveChildren removes a contact, a special price and a stock row:
// the parent loses the child and is stamped modified; a second removal is
// a 404.
func TestRemoveChildren(t *testing.T) {
	f, srv := testFleet(t)
	for _, v := range f.vendors {
		ds := v.sim.Dataset()
		var cust simkit.Customer
		var prod simkit.Product
		ds.View(func(d *simkit.Dataset) {
			cust = *d.Customers[slices.IndexFunc(d.Customers, func(c *simkit.Customer) bool { return len(c.Contacts) > 0 })]
			prod = *d.Products[slices.IndexFunc(d.Products, func(p *simkit.Product) bool { return len(p.SpecialPrices) > 0 && len(p.Stock) > 1 })]
		})
		cases := []struct {
			name, path string
			gone       func(d *simkit.Dataset) (bool, time.Time)
		}{
			{"contact", "customers/" + cust.ID + "/contacts/" + cust.Contacts[0].ID, func(d *simkit.Dataset) (bool, time.Time) {
				c := d.Customers[slices.IndexFunc(d.Customers, func(c *simkit.Customer) bool { return c.ID == cust.ID })]
				return !slices.ContainsFunc(c.Contacts, func(x simkit.Contact) bool { return x.ID == cust.Contacts[0].ID }), c.Modified
			}},
			{"special price", "products/" + prod.ID + "/prices/" + prod.SpecialPrices[0].CustomerID, func(d *simkit.Dataset) (bool, time.Time) {
				p := d.Products[slices.IndexFunc(d.Products, func(p *simkit.Product) bool { return p.ID == prod.ID })]
				return !slices.ContainsFunc(p.SpecialPrices, func(x simkit.SpecialPrice) bool { return x.CustomerID == prod.SpecialPrices[0].CustomerID }), p.Modified
			}},
			{"stock row", "products/" + prod.ID + "/stock/" + prod.Stock[0].WarehouseCode, func(d *simkit.Dataset) (bool, time.Time) {
				p := d.Products[slices.IndexFunc(d.Products, func(p *simkit.Product) bool { return p.ID == prod.ID })]
				return !slices.ContainsFunc(p.Stock, func(x simkit.Stock) bool { return x.WarehouseCode == prod.Stock[0].WarehouseCode }), p.Modified
			}},
		}
		for _, tc := range cases {
			t.Run(v.name+"/"+tc.name, func(t *testing.T) {
				path := "/vendors/" + v.name + "/records/" + tc.path
				var gone bool
				var before, mod time.Time
				ds.View(func(d *simkit.Dataset) { _, before = tc.gone(d) })
				if code, b := call(t, srv, "DELETE", path, ""); code != http.StatusNoContent {
					t.Fatalf("DELETE %s: %d %s", path, code, b)
				}
				ds.View(func(d *simkit.Dataset) { gone, mod = tc.gone(d) })
				if !gone || !mod.After(before) {
					t.Errorf("child gone %v, parent modified %v (was %v)", gone, mod, before)
				}
				if code, b := call(t, srv, "DELETE", path, ""); code != http.StatusNotFound {
					t.Errorf("second DELETE: %d %s", code, b)
				}
			})
		}
	}
}

// TestPatchMarksAndTouches sets and clears vendor markers, loudly and
// quietly, and touches.
func TestPatchMarksAndTouches(t *testing.T) {
	f, srv := testFleet(t)
	for _, v := range f.vendors {
		t.Run(v.name, func(t *testing.T) {
			id := refs(t, srv, v.name, simkit.AdminCustomers)[2].ID
			get := func() simkit.Customer {
				var c simkit.Customer
				code, b := call(t, srv, "GET", "/vendors/"+v.name+"/records/customers/"+id, "")
				if code != http.StatusOK {
					t.Fatalf("GET: %d %s", code, b)
				}
				if err := json.Unmarshal(b, &c); err != nil {
					t.Fatal(err)
				}
				return c
			}
			orig := get()
			steps := []struct {
				body        string
				deleted     bool
				modifiedNow bool
			}{
				{`{"deleted": true, "quiet": true}`, true, false},
				{`{"deleted": false}`, false, true},
				{`{}`, false, true},
				{`{"deleted": true}`, true, true},
			}
			for _, s := range steps {
				before := get()
				if code, b := call(t, srv, "PATCH", "/vendors/"+v.name+"/records/customers/"+id, s.body); code != http.StatusOK {
					t.Fatalf("PATCH %s: %d %s", s.body, code, b)
				}
				c := get()
				if c.Deleted != s.deleted {
					t.Errorf("PATCH %s: deleted %v", s.body, c.Deleted)
				}
				if moved := !c.Modified.Equal(before.Modified); moved != s.modifiedNow {
					t.Errorf("PATCH %s: modified %v -> %v (moved %v, want %v)", s.body, before.Modified, c.Modified, moved, s.modifiedNow)
				}
			}
			if !orig.Modified.Before(get().Modified) {
				t.Errorf("modified did not move forward")
			}
		})
	}
}

// TestListShare sets the knob the mass-deletion guard's e2e test turns: the
// simulator's lists keep only their head.
func TestListShare(t *testing.T) {
	f, srv := testFleet(t)
	for _, v := range f.vendors {
		t.Run(v.name, func(t *testing.T) {
			if code, b := call(t, srv, "POST", "/vendors/"+v.name+"/list-share", `{"percent": 50}`); code != http.StatusOK {
				t.Fatalf("POST: %d %s", code, b)
			}
			if code, b := call(t, srv, "GET", "/vendors/"+v.name+"/list-share", ""); code != http.StatusOK || strings.TrimSpace(string(b)) != `{"percent":50}` {
				t.Fatalf("GET: %d %s", code, b)
			}
			o, ok := v.sim.(interface{ Order([]int) []int })
			if !ok {
				t.Fatal("the simulator does not embed simkit.Base")
			}
			if got := o.Order([]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}); len(got) != 5 {
				t.Errorf("a list of 10 serves %d with a 50%% share", len(got))
			}
			call(t, srv, "POST", "/vendors/"+v.name+"/list-share", `{"percent": 0}`)
			if got := o.Order([]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}); len(got) != 10 {
				t.Errorf("a list of 10 serves %d after the share is restored", len(got))
			}
		})
	}
}

// TestBadInput: every mistake is a clear 4xx and changes nothing.
func TestBadInput(t *testing.T) {
	f, srv := testFleet(t)
	id := refs(t, srv, "katana", simkit.AdminProducts)[0].ID
	cust := refs(t, srv, "katana", simkit.AdminCustomers)[0].ID
	cases := []struct {
		method, path, body string
		code               int
		says               string
	}{
		{"GET", "/vendors/sap/records/products", "", 404, "no such vendor"},
		{"GET", "/vendors/katana/records/widgets", "", 400, "unknown record kind"},
		{"GET", "/vendors/katana/records/widgets/" + id, "", 400, "unknown record kind"},
		{"DELETE", "/vendors/katana/records/widgets/" + id, "", 400, "unknown record kind"},
		{"GET", "/vendors/katana/records/products/nope", "", 404, "no such record"},
		{"DELETE", "/vendors/katana/records/products/nope", "", 404, "no such record"},
		{"DELETE", "/vendors/katana/records/customers/" + id, "", 404, "no such record"},
		{"DELETE", "/vendors/katana/records/customers/" + cust + "/contacts/nope", "", 404, "has no contact"},
		{"DELETE", "/vendors/katana/records/products/" + id + "/stock/WH99", "", 404, "no stock"},
		{"DELETE", "/vendors/katana/records/products/nope/prices/" + cust, "", 404, "no such record"},
		{"PATCH", "/vendors/katana/records/products/" + id, `{"deleted": "yes"}`, 400, "bad JSON"},
		{"PATCH", "/vendors/katana/records/products/" + id, `{"purge": true}`, 400, "unknown field"},
		{"PATCH", "/vendors/katana/records/products/" + id, `{"quiet": true}`, 400, "needs"},
		{"PATCH", "/vendors/katana/records/products/" + id, `{} {}`, 400, "more than one"},
		{"PATCH", "/vendors/katana/records/products/" + id, `{"deleted": true, "pad": "` + strings.Repeat("x", maxAdminBody) + `"}`, 413, "over"},
		{"PATCH", "/vendors/katana/records/tax_rates/" + refs(t, srv, "katana", simkit.AdminTaxRates)[0].ID, `{"deleted": true, "quiet": true}`, 409, "cannot delete"},
		{"POST", "/vendors/katana/list-share", `{"percent": 101}`, 400, "0 to 100"},
		{"POST", "/vendors/katana/list-share", `{"percent": -1}`, 400, "0 to 100"},
		{"POST", "/vendors/katana/list-share", `{}`, 400, "0 to 100"},
		{"POST", "/vendors/katana/list-share", `[50]`, 400, "bad JSON"},
	}
	katana := f.vendors[slices.IndexFunc(f.vendors, func(v *runningVendor) bool { return v.name == "katana" })]
	before := expectedTotal(katana)
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path[:min(len(tc.path), 60)]+" "+tc.body[:min(len(tc.body), 30)], func(t *testing.T) {
			code, b := call(t, srv, tc.method, tc.path, tc.body)
			if code != tc.code || !strings.Contains(string(b), tc.says) {
				t.Errorf("%d %q, want %d saying %q", code, b, tc.code, tc.says)
			}
		})
	}
	if after := expectedTotal(katana); after != before {
		t.Errorf("bad requests changed what the simulator serves: %d -> %d", before, after)
	}
	if r, err := katana.sim.Dataset().Record(simkit.AdminProducts, id); err != nil || r.(*simkit.Product).Deleted {
		t.Errorf("the product changed: %v", err)
	}
}
