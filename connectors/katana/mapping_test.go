package katana

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/internal/vendorjson"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata from the current mapping")

// goldenTime stamps records of lists without a modification time.
var goldenTime = time.Date(2026, 2, 1, 12, 0, 0, 0, time.UTC)

// TestGoldenMapping maps the example payloads of the Katana OpenAPI document
// (and of ../shared/vendor-apis.md §5.6) and compares the canonical records
// with testdata/*.golden.json. Run with -update to rewrite them after a
// deliberate change, and review the diff.
func TestGoldenMapping(t *testing.T) {
	lists := loadData[kPriceList](t, "price_lists.json")
	custs := loadData[kPriceListCustomer](t, "price_list_customers.json")
	m := &mapper{company: "acme", now: goldenTime, lists: map[int64]kPriceList{}, listCustomers: map[int64][]kPriceListCustomer{}}
	for _, l := range lists {
		m.lists[l.ID] = l
	}
	for _, c := range custs {
		m.listCustomers[c.PriceListID] = append(m.listCustomers[c.PriceListID], c)
	}
	for _, tc := range []struct {
		file string
		fn   func(*mapper, json.RawMessage) ([]model.Record, error)
	}{
		{"products.json", (*mapper).item},
		{"products_vendor_doc.json", (*mapper).item},
		{"materials.json", (*mapper).item},
		{"inventory.json", (*mapper).inventory},
		{"locations.json", (*mapper).location},
		{"customers.json", (*mapper).customer},
		{"customers_with_addresses.json", (*mapper).customer},
		{"sales_orders.json", (*mapper).salesOrder},
		{"sales_orders_with_rows.json", (*mapper).salesOrder},
		{"tax_rates.json", (*mapper).taxRate},
		{"price_list_rows.json", (*mapper).priceRow},
	} {
		t.Run(tc.file, func(t *testing.T) {
			data := loadData[json.RawMessage](t, tc.file)
			recs, aside, err := mapAll(data, func(raw json.RawMessage) ([]model.Record, error) { return tc.fn(m, raw) })
			if err != nil || len(aside) > 0 {
				t.Fatalf("mapping: %v (%d set aside)", err, len(aside))
			}
			if len(recs) == 0 {
				t.Fatal("no records")
			}
			for i := range recs {
				if recs[i].Data == nil || recs[i].Data.Kind() != recs[i].Kind || recs[i].VendorID == "" || recs[i].ModifiedAt.IsZero() {
					t.Errorf("record %d is incomplete: %+v", i, recs[i])
				}
				recs[i].Raw = nil // the vendor document is the input; keep the golden file about the mapping
			}
			got, err := json.MarshalIndent(recs, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", strings.TrimSuffix(tc.file, ".json")+".golden.json")
			if *update {
				if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading %s (run go test -update to create it): %v", golden, err)
			}
			if !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(want)) {
				t.Errorf("mapping of %s differs from %s (run go test -run TestGoldenMapping -update and review the diff):\n%s", tc.file, golden, got)
			}
		})
	}
}

func loadData[T any](t *testing.T, file string) []T {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Data []T }
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return body.Data
}

// TestMappingRejectsBadDocuments checks that a broken document fails with an
// error naming the field, and never panics.
func TestMappingRejectsBadDocuments(t *testing.T) {
	m := &mapper{company: "acme", now: goldenTime, lists: map[int64]kPriceList{1: {ID: 1, Name: "L", UpdatedAt: "2024-01-01T00:00:00Z"}}}
	for _, tc := range []struct {
		name, doc, field string
		fn               func(*mapper, json.RawMessage) ([]model.Record, error)
	}{
		{"product without id", `{"name":"x","updated_at":"2024-01-01T00:00:00Z","variants":[]}`, "id", (*mapper).item},
		{"product bad time", `{"id":1,"name":"x","updated_at":"yesterday","variants":[]}`, "updated_at", (*mapper).item},
		{"variant bad price", `{"id":1,"name":"x","updated_at":"2024-01-01T00:00:00Z","variants":[{"id":2,"sales_price":"abc"}]}`, "sales_price", (*mapper).item},
		{"variant price wrong type", `{"id":1,"name":"x","updated_at":"2024-01-01T00:00:00Z","variants":[{"id":2,"sales_price":true}]}`, "sales_price", (*mapper).item},
		{"inventory bad quantity", `{"variant_id":1,"location_id":2,"quantity_in_stock":"lots"}`, "quantity_in_stock", (*mapper).inventory},
		{"inventory without variant", `{"location_id":2,"quantity_in_stock":"1"}`, "variant_id", (*mapper).inventory},
		{"customer id is a string", `{"id":"seven","name":"x","updated_at":"2024-01-01T00:00:00Z"}`, "id", (*mapper).customer},
		{"customer without updated_at", `{"id":7,"name":"x"}`, "updated_at", (*mapper).customer},
		{"order row bad quantity", `{"id":1,"order_no":"SO1","updated_at":"2024-01-01T00:00:00Z","sales_order_rows":[{"id":1,"variant_id":2,"quantity":"many"}]}`, "sales_order_rows[0].quantity", (*mapper).salesOrder},
		{"row of a known list with a bad amount", `{"id":1,"price_list_id":1,"variant_id":2,"adjustment_method":"fixed","amount":"x","updated_at":"2024-01-01T00:00:00Z"}`, "amount", (*mapper).priceRow},
		{"tax rate bad rate", `{"id":1,"name":"GST","rate":"fifteen","updated_at":"2024-01-01T00:00:00Z"}`, "rate", (*mapper).taxRate},
		{"not an object", `[1,2]`, "", (*mapper).location},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := mapAll([]json.RawMessage{json.RawMessage(tc.doc)}, func(raw json.RawMessage) ([]model.Record, error) { return tc.fn(m, raw) })
			if err == nil {
				t.Fatal("a broken document mapped without error")
			}
			if !strings.Contains(err.Error(), "record 0") || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name the record and field %q", err, tc.field)
			}
		})
	}
}

// TestRowOfUnknownListIsSetAside maps a page whose middle row names a price
// list the connector has not read: that row is set aside with its raw
// document, its modified time and a reason naming the list id, and the rows
// around it map.
func TestRowOfUnknownListIsSetAside(t *testing.T) {
	m := &mapper{company: "acme", now: goldenTime, lists: map[int64]kPriceList{1: {ID: 1, Name: "L", UpdatedAt: "2024-01-01T00:00:00Z"}}}
	row := func(id, list int) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"id":%d,"price_list_id":%d,"variant_id":2,"adjustment_method":"fixed","amount":"1.5","updated_at":"2024-02-03T04:05:06.789Z"}`, id, list))
	}
	recs, aside, err := mapAll([]json.RawMessage{row(10, 1), row(11, 77), row(12, 1)}, func(raw json.RawMessage) ([]model.Record, error) { return m.priceRow(raw) })
	if err != nil {
		t.Fatalf("a row of an unknown list failed the page: %v", err)
	}
	if len(recs) != 2 || recs[0].VendorID != "10" || recs[1].VendorID != "12" {
		t.Fatalf("records %+v, want rows 10 and 12", recs)
	}
	if len(aside) != 1 {
		t.Fatalf("%d set aside, want 1", len(aside))
	}
	a := aside[0]
	if a.err.kind != model.KindPriceRule || a.err.id != "11" || !a.err.mod.Equal(time.Date(2024, 2, 3, 4, 5, 6, 789e6, time.UTC)) ||
		!strings.Contains(a.err.reason, "77") || len(a.err.reason) > model.MaxReasonLen || string(a.raw) != string(row(11, 77)) {
		t.Fatalf("set aside %+v (raw %s)", a.err, a.raw)
	}
}

func TestDecimal(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		bad      bool
	}{
		{"1250.0000000000", "1250", false},
		{"12.50", "12.5", false},
		{"0.010", "0.01", false},
		{"-0.50", "-0.5", false},
		{"-0.0", "0", false},
		{"40", "40", false},
		{"007.10", "7.1", false},
		{".5", "0.5", false},
		{"1e3", "1000", false},
		{"2.5E-2", "0.025", false},
		{"", "", false},
		{"abc", "", true},
		{"1.2.3", "", true},
		{"-", "", true},
	} {
		got, err := vendorjson.Decimal(json.Number(tc.in))
		if (err != nil) != tc.bad || string(got) != tc.want {
			t.Errorf("decimal(%q) = %q, %v; want %q (error %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

func TestTimestamp(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{"2020-10-23T10:37:05.085Z", time.Date(2020, 10, 23, 10, 37, 5, 85e6, time.UTC), false},
		{"2024-01-15T10:00:00Z", time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC), false},
		{"2024-01-15T12:00:00+02:00", time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC), false},
		{"2024-01-15T10:00:00.123456", time.Date(2024, 1, 15, 10, 0, 0, 123456e3, time.UTC), false},
		{"15/01/2024", time.Time{}, true},
	} {
		got, err := timestamp(tc.in)
		if (err != nil) != tc.bad || !got.Equal(tc.want) {
			t.Errorf("timestamp(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParsePagination(t *testing.T) {
	for _, tc := range []struct {
		name, in     string
		records, pgs int
		last         string // "", "true", "false"
		bad          bool
	}{
		{"strings (community document)", `{"total_records":"142","total_pages":"8","offset":"50","page":"2","first_page":"false","last_page":"false"}`, 142, 8, "false", false},
		{"numbers and booleans (portal document)", `{"total_records":3,"total_pages":1,"page":1,"first_page":true,"last_page":true}`, 3, 1, "true", false},
		{"absent", ``, -1, -1, "", false},
		{"partial", `{"last_page":"true"}`, -1, -1, "true", false},
		{"not JSON", `total_records=3`, 0, 0, "", true},
		{"bad number", `{"total_pages":"many"}`, 0, 0, "", true},
		{"bad boolean", `{"last_page":"maybe"}`, 0, 0, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parsePagination(tc.in)
			if (err != nil) != tc.bad {
				t.Fatalf("error %v, want error %v", err, tc.bad)
			}
			if tc.bad {
				return
			}
			last := ""
			if p.lastPage != nil {
				last = map[bool]string{true: "true", false: "false"}[*p.lastPage]
			}
			if p.totalRecords != tc.records || p.totalPages != tc.pgs || last != tc.last {
				t.Errorf("got %+v (last %q)", p, last)
			}
		})
	}
}

// TestDeletionMarkers maps documents whose deletion markers are set without
// updated_at moving (as reported of Katana): each arrives deleted, and its
// version is the marker's time, so that a listing compared by version sees
// the change. It also checks the children rules: a customer names its one
// contact (none once the name is cleared), and stock rows and price rules
// name their variant as parent.
func TestDeletionMarkers(t *testing.T) {
	const upd, del = "2024-01-01T00:00:00.000Z", "2024-03-04T05:06:07.089Z"
	updT, delT := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 3, 4, 5, 6, 7, 89e6, time.UTC)
	m := &mapper{company: "acme", now: goldenTime, lists: map[int64]kPriceList{1: {ID: 1, Name: "L", UpdatedAt: upd}},
		listCustomers: map[int64][]kPriceListCustomer{1: {{ID: 5, PriceListID: 1, CustomerID: 7, UpdatedAt: upd}}}}
	type want struct {
		kind       model.Kind
		id         string
		deleted    bool
		mod        time.Time
		parent     string
		parentKind model.Kind
		children   []model.ChildSet
	}
	for _, tc := range []struct {
		name string
		doc  string
		fn   func(*mapper, json.RawMessage) ([]model.Record, error)
		want []want
	}{
		{"product deleted quietly", `{"id":1,"name":"x","updated_at":"` + upd + `","deleted_at":"` + del + `","variants":[{"id":2,"updated_at":"` + upd + `"}]}`,
			(*mapper).item, []want{{kind: model.KindProduct, id: "2", deleted: true, mod: delT}}},
		{"product archived quietly", `{"id":1,"name":"x","updated_at":"` + upd + `","archived_at":"` + del + `","variants":[{"id":2,"updated_at":"` + upd + `"}]}`,
			(*mapper).item, []want{{kind: model.KindProduct, id: "2", deleted: true, mod: delT}}},
		{"one variant deleted quietly", `{"id":1,"name":"x","updated_at":"` + upd + `","variants":[{"id":2,"updated_at":"` + upd + `","deleted_at":"` + del + `"},{"id":3,"updated_at":"` + upd + `"}]}`,
			(*mapper).item, []want{{kind: model.KindProduct, id: "2", deleted: true, mod: delT}, {kind: model.KindProduct, id: "3", mod: updT}}},
		{"live product", `{"id":1,"name":"x","updated_at":"` + upd + `","variants":[{"id":2,"updated_at":"` + upd + `"}]}`,
			(*mapper).item, []want{{kind: model.KindProduct, id: "2", mod: updT}}},
		{"location deleted quietly", `{"id":4,"name":"x","updated_at":"` + upd + `","deleted_at":"` + del + `"}`,
			(*mapper).location, []want{{kind: model.KindWarehouse, id: "4", deleted: true, mod: delT}}},
		{"customer deleted quietly", `{"id":7,"name":"x","first_name":"A","updated_at":"` + upd + `","deleted_at":"` + del + `"}`,
			(*mapper).customer, []want{
				{kind: model.KindCustomer, id: "7", deleted: true, mod: delT, children: []model.ChildSet{{Kind: model.KindContact, IDs: []string{"7"}}}},
				{kind: model.KindContact, id: "7", deleted: true, mod: delT, parent: "7", parentKind: model.KindCustomer}}},
		{"customer without a contact person", `{"id":7,"name":"x","updated_at":"` + upd + `"}`,
			(*mapper).customer, []want{{kind: model.KindCustomer, id: "7", mod: updT, children: []model.ChildSet{{Kind: model.KindContact, IDs: []string{}}}}}},
		{"customer address deleted quietly", `{"id":7,"name":"x","updated_at":"` + upd + `","addresses":[{"id":1,"entity_type":"billing","deleted_at":"` + del + `"}]}`,
			(*mapper).customer, []want{{kind: model.KindCustomer, id: "7", mod: delT, children: []model.ChildSet{{Kind: model.KindContact, IDs: []string{}}}}}},
		{"order deleted quietly", `{"id":9,"order_no":"SO1","updated_at":"` + upd + `","deleted_at":"` + del + `"}`,
			(*mapper).salesOrder, []want{{kind: model.KindSalesOrder, id: "9", deleted: true, mod: delT}}},
		{"order row deleted quietly", `{"id":9,"order_no":"SO1","updated_at":"` + upd + `","sales_order_rows":[{"id":1,"variant_id":2,"quantity":1,"deleted_at":"` + del + `"}]}`,
			(*mapper).salesOrder, []want{{kind: model.KindSalesOrder, id: "9", mod: delT}}},
		{"stock row", `{"variant_id":2,"location_id":4,"quantity_in_stock":"1"}`,
			(*mapper).inventory, []want{{kind: model.KindStockLevel, id: "2/4", mod: goldenTime, parent: "2", parentKind: model.KindProduct}}},
		{"price rule", `{"id":11,"price_list_id":1,"variant_id":2,"adjustment_method":"fixed","amount":"1","updated_at":"` + upd + `"}`,
			(*mapper).priceRow, []want{{kind: model.KindPriceRule, id: "11/7", mod: updT, parent: "2", parentKind: model.KindProduct}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, aside, err := mapAll([]json.RawMessage{json.RawMessage(tc.doc)}, func(raw json.RawMessage) ([]model.Record, error) { return tc.fn(m, raw) })
			if err != nil || len(aside) > 0 {
				t.Fatalf("mapping: %v (%d set aside)", err, len(aside))
			}
			if len(recs) != len(tc.want) {
				t.Fatalf("%d records, want %d: %+v", len(recs), len(tc.want), recs)
			}
			for i, w := range tc.want {
				r := recs[i]
				got := want{kind: r.Kind, id: r.VendorID, deleted: r.Deleted, mod: r.ModifiedAt, parent: r.Parent, parentKind: r.ParentKind, children: r.Children}
				if fmt.Sprint(got) != fmt.Sprint(w) || !got.mod.Equal(w.mod) {
					t.Errorf("record %d: got %+v, want %+v", i, got, w)
				}
			}
		})
	}
}
