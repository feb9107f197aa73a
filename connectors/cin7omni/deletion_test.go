package cin7omni_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/cin7omni/sim"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
)

// TestVendorMarkersReachTheCRM: each of Omni's deletion markers (contact
// IsActive=false, product Status=Inactive, option Status=Disabled, branch
// IsActive=false, order and credit note IsVoid), set in the simulator after
// an import, reaches the sink through an incremental run as a deleted
// record learned from the vendor, its children with it. The simulator
// stamps ModifiedDate on these changes, as on any edit (an assumption: Omni
// does not document it; TestListingLeavesOutMarkedRecords covers a vendor
// that does not).
func TestVendorMarkersReachTheCRM(t *testing.T) {
	type mark struct {
		kind model.Kind
		id   string
	}
	for _, tc := range []struct {
		name string
		// apply marks one record deleted in d, stamping it modified, and
		// returns the records that must then be deleted in the sink.
		apply func(d *simkit.Dataset, now time.Time) []mark
	}{
		{"customer IsActive=false", func(d *simkit.Dataset, now time.Time) []mark {
			for _, c := range d.Customers {
				if !c.Deleted && len(c.Contacts) > 0 {
					c.Deleted, c.Modified = true, now
					out := []mark{{model.KindCustomer, strconv.Itoa(sim.CustomerID(c))}}
					for j := range c.Contacts {
						out = append(out, mark{model.KindContact, strconv.Itoa(sim.SecondaryContactID(c, j))})
					}
					return out
				}
			}
			return nil
		}},
		{"supplier IsActive=false", func(d *simkit.Dataset, now time.Time) []mark {
			for _, s := range d.Suppliers {
				if !s.Deleted {
					s.Deleted, s.Modified = true, now
					return []mark{{model.KindSupplier, strconv.Itoa(sim.SupplierID(s))}}
				}
			}
			return nil
		}},
		{"branch IsActive=false", func(d *simkit.Dataset, now time.Time) []mark {
			w := d.Warehouses[0]
			w.Deleted, w.Modified = true, now
			return []mark{{model.KindWarehouse, strconv.Itoa(sim.BranchID(w))}}
		}},
		{"product Status=Inactive, option Disabled", func(d *simkit.Dataset, now time.Time) []mark {
			for _, p := range d.Products {
				if !p.Deleted && len(p.SpecialPrices) > 0 {
					p.Deleted, p.Modified = true, now
					oid := strconv.Itoa(sim.OptionID(p))
					return []mark{{model.KindProduct, oid}, {model.KindPriceRule, oid + "/special"}}
				}
			}
			return nil
		}},
		{"order IsVoid", func(d *simkit.Dataset, now time.Time) []mark {
			invoiced := sim.Invoiced(d)
			for _, o := range d.Orders {
				if !o.Deleted && invoiced(o) {
					o.Deleted, o.Modified = true, now
					id := strconv.Itoa(sim.OrderID(o))
					out := []mark{{model.KindSalesOrder, id}, {model.KindInvoice, id + "/invoice"}}
					if sim.Dispatched(o) {
						out = append(out, mark{model.KindShipment, id + "/dispatch"})
					}
					return out
				}
			}
			return nil
		}},
		{"credit note IsVoid", func(d *simkit.Dataset, now time.Time) []mark {
			for _, cn := range d.CreditNotes {
				if !cn.Deleted {
					cn.Deleted, cn.Modified = true, now
					return []mark{{model.KindCreditNote, strconv.Itoa(sim.CreditNoteID(cn))}}
				}
			}
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{})
			first, err := e.run(t, nil)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond)
			var marks []mark
			e.sim.Dataset().Update(func(d *simkit.Dataset) { marks = tc.apply(d, d.Stamp()) })
			if len(marks) == 0 {
				t.Fatal("the dataset has no record to mark")
			}
			for _, m := range marks {
				if r, ok := e.sink.Get(key(m.kind, m.id)); !ok || r.Deleted {
					t.Fatalf("%s %s before the change: stored %v, deleted %v", m.kind, m.id, ok, r.Deleted)
				}
			}
			if _, err := e.run(t, first.State); err != nil {
				t.Fatal(err)
			}
			for _, m := range marks {
				r, ok := e.sink.Get(key(m.kind, m.id))
				if !ok || !r.Deleted || r.DeletedVia != model.DeletedByVendor {
					t.Errorf("%s %s after an incremental run: stored %v, deleted %v via %q; want deleted via vendor", m.kind, m.id, ok, r.Deleted, r.DeletedVia)
				}
			}
		})
	}
}

// TestChildrenGoneFromTheirParent: a contact removed from its customer and
// a special price removed from its option (Omni stamps the parent modified,
// as any edit) are marked deleted by the incremental run that reads the
// parent, learned from the parent; the parent stays live.
func TestChildrenGoneFromTheirParent(t *testing.T) {
	e := newEnv(t, envOpts{})
	first, err := e.run(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	custID, contactID := "", ""
	prodID, ruleID := "", ""
	e.sim.Dataset().Update(func(d *simkit.Dataset) {
		now := d.Stamp()
		for _, c := range d.Customers {
			if !c.Deleted && len(c.Contacts) > 0 {
				j := len(c.Contacts) - 1
				custID, contactID = strconv.Itoa(sim.CustomerID(c)), strconv.Itoa(sim.SecondaryContactID(c, j))
				c.Contacts, c.Modified = c.Contacts[:j], now
				break
			}
		}
		for _, p := range d.Products {
			if !p.Deleted && len(p.SpecialPrices) > 0 {
				prodID = strconv.Itoa(sim.OptionID(p))
				ruleID = prodID + "/special"
				p.SpecialPrices, p.Modified = nil, now
				break
			}
		}
	})
	if contactID == "" || ruleID == "" {
		t.Fatal("the dataset has no contact or special price to remove")
	}
	if _, err := e.run(t, first.State); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		kind  model.Kind
		id    string
		gone  bool
		label string
	}{
		{model.KindContact, contactID, true, "removed contact"},
		{model.KindCustomer, custID, false, "its customer"},
		{model.KindPriceRule, ruleID, true, "removed special price"},
		{model.KindProduct, prodID, false, "its option"},
	} {
		r, ok := e.sink.Get(key(tc.kind, tc.id))
		switch {
		case !ok:
			t.Errorf("%s %s not stored", tc.label, tc.id)
		case tc.gone && (!r.Deleted || r.DeletedVia != model.DeletedFromParent):
			t.Errorf("%s %s: deleted %v via %q, want deleted via parent", tc.label, tc.id, r.Deleted, r.DeletedVia)
		case !tc.gone && r.Deleted:
			t.Errorf("%s %s was marked deleted", tc.label, tc.id)
		}
	}
}
