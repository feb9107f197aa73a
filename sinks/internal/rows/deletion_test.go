package rows

import (
	"strings"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
)

func TestHashesMatchTheModel(t *testing.T) {
	for _, tc := range []struct {
		kind      model.Kind
		data, raw string
	}{
		{model.KindProduct, `{"sku":"A"}`, `{"Guid":"1"}`},
		{model.KindCustomer, `{}`, ``},
		{model.KindStockLevel, strings.Repeat(`{"x":1}`, 500), `null`},
	} {
		live, deleted := hashes(tc.kind, []byte(tc.data), []byte(tc.raw))
		if want := model.HashContent(tc.kind, false, []byte(tc.data), []byte(tc.raw)); live != want {
			t.Errorf("%s live hash %s, want %s", tc.kind, live, want)
		}
		if want := model.HashContent(tc.kind, true, []byte(tc.data), []byte(tc.raw)); deleted != want {
			t.Errorf("%s deleted hash %s, want %s", tc.kind, deleted, want)
		}
	}
}

func TestRowKeepsParentAndSource(t *testing.T) {
	tb, _ := Lookup(model.KindStockLevel)
	for _, tc := range []struct {
		name                     string
		deleted                  bool
		via                      model.DeletionSource
		wantVia                  string
		wantHashIsTheDeletedHash bool
	}{
		{"live", false, "", "", false},
		{"live with a source ignores it", false, model.DeletedByReconciliation, "", false},
		{"deleted without a source: the vendor's", true, "", "vendor", true},
		{"deleted with a source", true, model.DeletedAbsentFromFullRead, "absent", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := model.Record{Company: "c", Vendor: "v", Kind: model.KindStockLevel, VendorID: "p/w", ModifiedAt: time.Unix(1, 0),
				Parent: "p", ParentKind: model.KindProduct, Deleted: tc.deleted, DeletedVia: tc.via, Data: &model.StockLevel{SKU: "A"}}
			row, err := tb.Row(&r, tb.Columns)
			if err != nil {
				t.Fatal(err)
			}
			h, _ := r.ContentHash()
			r.Deleted = true
			dh, _ := r.ContentHash()
			if row.Parent != "p" || row.ParentKind != "products" || row.Via != tc.wantVia || row.Hash != h || row.DeletedHash != dh ||
				(row.Hash == row.DeletedHash) != tc.wantHashIsTheDeletedHash {
				t.Errorf("row %+v", row)
			}
		})
	}
}

func TestPlanRules(t *testing.T) {
	at := time.Date(2025, 1, 1, 0, 0, 0, 1500, time.UTC)
	cust := func(id string, deleted bool, sets ...model.ChildSet) model.Record {
		return model.Record{Company: "c", Vendor: "v", Kind: model.KindCustomer, VendorID: id, ModifiedAt: at, Deleted: deleted, Children: sets, Data: &model.Customer{}}
	}
	groups, _, err := Plan([]model.Record{
		cust("a", false, model.ChildSet{Kind: model.KindContact, IDs: []string{"k1", "k2"}}, model.ChildSet{Kind: model.KindContact, IDs: []string{"k2", "k3"}}),
		cust("b", false, model.ChildSet{Kind: model.KindPriceRule}),
		cust("c", false),
		cust("d", true, model.ChildSet{Kind: model.KindContact, IDs: []string{"k9"}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	rules := PlanRules(groups)
	ref := func(id string) ParentRef {
		return ParentRef{Company: "c", Vendor: "v", VendorID: id, ModifiedAt: StoredTime(at)}
	}
	if len(rules.Children) != 2 {
		t.Fatalf("rules %+v, want one per child kind", rules.Children)
	}
	contacts, prices := rules.Children[0], rules.Children[1]
	// Two sets of one kind keep only the children both name.
	if contacts.ChildKind != model.KindContact || len(contacts.Parents) != 1 || contacts.Parents[0] != ref("a") ||
		len(contacts.Keep) != 1 || contacts.Keep[0] != (ChildRef{Company: "c", Vendor: "v", ParentID: "a", ChildID: "k2"}) {
		t.Errorf("contacts rule %+v", contacts)
	}
	// An empty set keeps nothing.
	if prices.ChildKind != model.KindPriceRule || len(prices.Parents) != 1 || prices.Parents[0] != ref("b") || len(prices.Keep) != 0 {
		t.Errorf("price rule rule %+v", prices)
	}
	// A deleted record's children all go, whatever its sets say.
	if d := rules.Deleted[model.KindCustomer]; len(d) != 1 || d[0] != ref("d") {
		t.Errorf("deleted %+v", rules.Deleted)
	}
	if (Rules{}).Empty() != true || rules.Empty() {
		t.Errorf("Empty")
	}
}

func TestPlanTombstones(t *testing.T) {
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	key := func(kind model.Kind, id string) model.Key {
		return model.Key{Company: "c", Vendor: "v", Kind: kind, VendorID: id}
	}
	for _, tc := range []struct {
		name    string
		in      []model.Tombstone
		want    map[model.Kind][]string // ids with their source
		wantErr string
	}{
		{"grouped in sync order, sorted, first of a key wins", []model.Tombstone{
			{Key: key(model.KindInvoice, "b"), At: at, Via: model.DeletedByReconciliation},
			{Key: key(model.KindCustomer, "z"), At: at, Via: model.DeletedAbsentFromFullRead},
			{Key: key(model.KindInvoice, "a"), At: at, Via: model.DeletedByReconciliation},
			{Key: key(model.KindInvoice, "b"), At: at, Via: model.DeletedAbsentFromFullRead},
		}, map[model.Kind][]string{model.KindCustomer: {"z:absent"}, model.KindInvoice: {"a:reconcile", "b:reconcile"}}, ""},
		{"no time", []model.Tombstone{{Key: key(model.KindInvoice, "a"), Via: model.DeletedByReconciliation}}, nil, "no time"},
		{"no source", []model.Tombstone{{Key: key(model.KindInvoice, "a"), At: at}}, nil, "unknown deletion source"},
		{"unknown kind", []model.Tombstone{{Key: key("widgets", "a"), At: at, Via: model.DeletedByReconciliation}}, nil, "unknown kind"},
		{"empty id", []model.Tombstone{{Key: key(model.KindInvoice, ""), At: at, Via: model.DeletedByReconciliation}}, nil, "empty vendor id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			groups, kinds, err := PlanTombstones(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(kinds) != len(tc.want) {
				t.Fatalf("kinds %v", kinds)
			}
			for i := 1; i < len(kinds); i++ {
				if kinds[i].Order() < kinds[i-1].Order() {
					t.Fatalf("kinds %v not in sync order", kinds)
				}
			}
			for k, ids := range tc.want {
				var got []string
				for _, tb := range groups[k] {
					got = append(got, tb.VendorID+":"+tb.Via)
				}
				if strings.Join(got, ",") != strings.Join(ids, ",") {
					t.Errorf("%s: %v, want %v", k, got, ids)
				}
			}
		})
	}
}
