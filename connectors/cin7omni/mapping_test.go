package cin7omni

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current mapping")

var fetched = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func decodeFor(kind model.Kind, page int, body []byte) ([]model.Record, int, error) {
	d, err := decodeDoc(kind, page, body)
	if err != nil {
		return nil, 0, err
	}
	return d.records, d.items, nil
}

func decodeDoc(kind model.Kind, page int, body []byte) (*decoded, error) {
	s := streamFor(kind)
	keyFn := idKey
	if kind == model.KindStockLevel {
		keyFn = stockKey
	}
	return decodePage(kind, s.mapItem, page, body, mapEnv{Company: "ACME-01", Fetched: fetched}, keyFn, nil)
}

// TestGoldenMapping maps the example payloads (see testdata/README.md) into
// canonical records and compares them with testdata/golden.
func TestGoldenMapping(t *testing.T) {
	for _, tc := range []struct {
		file string
		kind model.Kind
	}{
		{"products_vendor_apis.json", model.KindProduct},
		{"stock_help.json", model.KindStockLevel},
		{"contacts_doc.json", model.KindCustomer},
		{"salesorders_doc.json", model.KindSalesOrder},
	} {
		t.Run(tc.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			recs, items, err := decodeFor(tc.kind, 1, body)
			if err != nil {
				t.Fatalf("decoding %s: %v", tc.file, err)
			}
			if items == 0 || len(recs) < items {
				t.Fatalf("%d items gave %d records", items, len(recs))
			}
			for _, r := range recs {
				if r.Company != "ACME-01" || r.Vendor != Type || r.VendorID == "" || r.ModifiedAt.IsZero() || r.Data == nil || r.Data.Kind() != r.Kind || len(r.Raw) == 0 {
					t.Errorf("incomplete record: %+v", r)
				}
			}
			got, err := json.MarshalIndent(recs, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "golden", strings.TrimSuffix(tc.file, ".json")+".golden.json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGoldenMapping -update)", err)
			}
			if !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(want)) {
				t.Errorf("mapping of %s differs from %s (run with -update to accept):\n%s", tc.file, golden, got)
			}
		})
	}
}

func TestMappingSemantics(t *testing.T) {
	body, _ := os.ReadFile("testdata/products_vendor_apis.json")
	recs, _, err := decodeFor(model.KindProduct, 1, body)
	if err != nil {
		t.Fatal(err)
	}
	// One SKU of the first style, the second style (no options) as itself.
	if len(recs) != 2 || recs[0].VendorID != "5501" || recs[1].VendorID != "style/1202" || !recs[1].Deleted {
		t.Fatalf("records %+v", recs)
	}
	p := recs[0].Data.(*model.Product)
	if p.SKU != "TEE-01-RED-M" || p.ParentVendorID != "1201" || p.SellPrice != "29" || len(p.Prices) != 5 || p.Prices[1] != (model.Price{Tier: "Wholesale", Amount: "14.5"}) {
		t.Errorf("option: %+v", p)
	}
	body, _ = os.ReadFile("testdata/stock_help.json")
	recs, _, err = decodeFor(model.KindStockLevel, 1, body)
	if err != nil {
		t.Fatal(err)
	}
	if !recs[0].ModifiedAt.Equal(time.Date(2024, 3, 20, 0, 30, 44, 518448000, time.UTC)) || recs[0].VendorID != "5501/3" {
		t.Errorf("camelCase stock row: %+v", recs[0])
	}
	body, _ = os.ReadFile("testdata/salesorders_doc.json")
	recs, _, err = decodeFor(model.KindSalesOrder, 1, body)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[model.Kind]int{}
	for _, r := range recs {
		kinds[r.Kind]++
	}
	if kinds[model.KindSalesOrder] != 2 || kinds[model.KindInvoice] != 1 || kinds[model.KindShipment] != 1 || !recs[len(recs)-1].Deleted {
		t.Errorf("orders: %v, last %+v", kinds, recs[len(recs)-1])
	}
}

func TestParseTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"2020-03-10T21:29:36Z", time.Date(2020, 3, 10, 21, 29, 36, 0, time.UTC)},
		{"2024-03-20T13:30:44.518448+13:00", time.Date(2024, 3, 20, 0, 30, 44, 518448000, time.UTC)},
		{"2024-03-20T13:30:44.5184481+13:00", time.Date(2024, 3, 20, 0, 30, 44, 518448100, time.UTC)},
		{"2026-01-05T22:41:07.5Z", time.Date(2026, 1, 5, 22, 41, 7, 5e8, time.UTC)},
		{"2026-01-05T22:41:07", time.Date(2026, 1, 5, 22, 41, 7, 0, time.UTC)},
		{"2026-01-05", time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)},
	} {
		got, err := parseTime(tc.in)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "/Date(1473149768263)/", "05/01/2026", "soon"} {
		if _, err := parseTime(bad); err == nil {
			t.Errorf("parseTime(%q) succeeded", bad)
		}
	}
}

func TestWhereClause(t *testing.T) {
	since := time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.FixedZone("NZDT", 13*3600))
	for _, tc := range []struct {
		kind  model.Kind
		since time.Time
		want  string
	}{
		{model.KindCustomer, time.Time{}, "Type='Customer'"},
		{model.KindCustomer, since, "Type='Customer' AND ModifiedDate>='2026-01-01T14:04:05Z'"},
		{model.KindProduct, since, "ModifiedDate>='2026-01-01T14:04:05Z'"},
		{model.KindSalesPerson, since, ""},
	} {
		if got := streamFor(tc.kind).whereClause(tc.since, ""); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.kind, got, tc.want)
		}
	}
}

func TestMalformedDocuments(t *testing.T) {
	for _, tc := range []struct {
		name, body, field string
		kind              model.Kind
	}{
		{"not json", `[{"Id": 1,`, "not JSON", model.KindProduct},
		{"not an array", `{"Id": 1}`, "not a JSON array", model.KindProduct},
		{"item not object", `[7]`, "item 0", model.KindProduct},
		{"bad date", `[{"Id": 1, "ModifiedDate": "Tuesday"}]`, "field ModifiedDate", model.KindProduct},
		{"missing date", `[{"Id": 1}]`, "field ModifiedDate", model.KindProduct},
		{"bad id", `[{"Id": "one", "ModifiedDate": "2026-01-01T00:00:00Z"}]`, "field Id", model.KindProduct},
		{"bad price", `[{"Id": 1, "ModifiedDate": "2026-01-01T00:00:00Z", "ProductOptions": [{"Id": 2, "RetailPrice": "dear"}]}]`, "ProductOptions[0].RetailPrice", model.KindProduct},
		{"bad column", `[{"Id": 1, "ModifiedDate": "2026-01-01T00:00:00Z", "ProductOptions": [{"Id": 2, "PriceColumns": {"RetailNZD": true}}]}]`, "PriceColumns.RetailNZD", model.KindProduct},
		{"bad active", `[{"Id": 1, "ModifiedDate": "2026-01-01T00:00:00Z", "IsActive": "yes"}]`, "field IsActive", model.KindCustomer},
		{"bad qty", `[{"Id": 1, "ModifiedDate": "2026-01-01T00:00:00Z", "LineItems": [{"Qty": "two"}]}]`, "LineItems[0].Qty", model.KindSalesOrder},
		{"stock without branch", `[{"ProductOptionId": 2, "StockOnHand": 1}]`, "field BranchId", model.KindStockLevel},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := decodeFor(tc.kind, 6, []byte(tc.body))
			if connectors.KindOf(err) != connectors.KindInvalidResponse {
				t.Fatalf("error %v, want InvalidResponse", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, string(tc.kind)) || !strings.Contains(msg, "page 6") || !strings.Contains(msg, tc.field) {
				t.Errorf("error %q does not name entity %s, page 6 and %q", msg, tc.kind, tc.field)
			}
			for _, leak := range []string{"Tuesday", "dear", "two", "yes"} {
				if strings.Contains(msg, leak) {
					t.Errorf("error %q leaks %q", msg, leak)
				}
			}
		})
	}
}

func TestMappingNeverPanics(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.json")
	mutations := []func(string) string{
		func(s string) string { return s[:len(s)/2] },
		func(s string) string { return strings.ReplaceAll(s, `"`, `'`) },
		func(s string) string { return strings.ReplaceAll(s, ": ", ": null, \"x\": ") },
		func(s string) string { return strings.ReplaceAll(s, "true", `"true"`) },
		func(s string) string { return strings.ReplaceAll(s, "[", "[null,") },
		func(s string) string { return strings.ReplaceAll(s, "{", "[") },
		func(s string) string { return strings.ReplaceAll(s, "0", "-") },
		func(s string) string { return strings.ReplaceAll(s, "Z\"", "+99:99\"") },
	}
	for _, f := range files {
		body, _ := os.ReadFile(f)
		for _, s := range streams {
			for _, m := range mutations {
				func() {
					defer func() {
						if r := recover(); r != nil {
							t.Fatalf("%s on %s panicked: %v", s.kind, f, r)
						}
					}()
					_, _ = decodePage(s.kind, s.mapItem, 1, []byte(m(string(body))), mapEnv{Fetched: fetched}, stockKey, nil)
					_, _ = decodePage(s.kind, s.mapItem, 1, []byte(m(string(body))), mapEnv{Fetched: fetched}, idKey, nil)
				}()
			}
		}
	}
}

// TestSetAside: products and options whose status Omni does not document
// are set aside with their id, modified time, a bounded reason and the raw
// document; the rest of the page maps.
func TestSetAside(t *testing.T) {
	long := strings.Repeat("x", 500)
	page := `[
	  {"Id": 1, "Status": "` + long + `", "ModifiedDate": "2026-01-05T22:41:07Z", "ProductOptions": [{"Id": 11, "Status": "Primary"}]},
	  {"Id": 2, "Status": "Public", "ModifiedDate": "2026-01-05T22:41:07Z", "ProductOptions": [
	    {"Id": 21, "Status": "Primary", "ProductOptionCode": "A"}, {"Id": 22, "Status": "Hidden", "ProductOptionCode": "B"}]},
	  {"Id": 3, "Status": "ShowInB2B", "ModifiedDate": "2026-01-05T22:41:07Z", "ProductOptions": []}
	]`
	d, err := decodeDoc(model.KindProduct, 1, []byte(page))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range d.records {
		ids = append(ids, r.VendorID)
	}
	if strings.Join(ids, ",") != "21,style/3" {
		t.Errorf("mapped %v, want 21 and style/3", ids)
	}
	// A style set aside takes its options with it (11): Omni still
	// serves them, so no listing or full read may take them for gone.
	if len(d.aside) != 3 || d.aside[0].VendorID != "style/1" || d.aside[1].VendorID != "11" || d.aside[2].VendorID != "22" {
		t.Fatalf("set aside %+v, want style/1, 11 and 22", d.aside)
	}
	for _, a := range d.aside {
		if a.Kind != model.KindProduct || a.Company != "ACME-01" || len(a.Raw) == 0 || a.Reason == "" || len(a.Reason) > 300 ||
			!a.ModifiedAt.Equal(time.Date(2026, 1, 5, 22, 41, 7, 0, time.UTC)) || strings.Contains(a.Reason, long) {
			t.Errorf("set-aside %+v", a)
		}
	}
	if strings.Join(d.docs, ",") != "1,2,3" {
		t.Errorf("docs %v, want the three products", d.docs)
	}
}

// TestStockOfAProductWithoutOptions: a stock row with ProductOptionId 0
// belongs to the product mapped as style/<id>, not to a shared "0".
func TestStockOfAProductWithoutOptions(t *testing.T) {
	d, err := decodeDoc(model.KindStockLevel, 1, []byte(`[{"ProductId": 7, "ProductOptionId": 0, "BranchId": 901, "StockOnHand": 3}]`))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.records) != 1 || d.records[0].VendorID != "style/7/901" || d.records[0].Data.(*model.StockLevel).ProductVendorID != "style/7" {
		t.Errorf("records %+v", d.records)
	}
}

// TestChildrenAndParents: every record read inside a parent document names
// its parent, and every parent whose document lists a child kind completely
// names those children (an empty set when it has none now).
func TestChildrenAndParents(t *testing.T) {
	type rel struct{ parent, parentKind, children string }
	for _, tc := range []struct {
		name string
		kind model.Kind
		body string
		want map[string]rel // by kind/vendor id
	}{
		{"customer with two contacts", model.KindCustomer,
			`[{"Id": 20001, "ModifiedDate": "2026-01-05T22:41:07Z", "IsActive": true, "SecondaryContacts": [{"Id": 400011}, {"Id": 400012}]}]`,
			map[string]rel{"customers/20001": {children: "contacts:400011,400012"},
				"contacts/400011": {parent: "20001", parentKind: "customers"}, "contacts/400012": {parent: "20001", parentKind: "customers"}}},
		{"customer without contacts", model.KindCustomer,
			`[{"Id": 20002, "ModifiedDate": "2026-01-05T22:41:07Z", "IsActive": false}]`,
			map[string]rel{"customers/20002": {children: "contacts:"}}},
		{"option with a special price, option without", model.KindProduct,
			`[{"Id": 1201, "Status": "Public", "ModifiedDate": "2026-01-05T22:41:07Z", "ProductOptions": [
			  {"Id": 5501, "Status": "Primary", "SpecialPrice": 19.5, "SpecialsStartDate": "2026-01-01T00:00:00Z", "SpecialDays": 10},
			  {"Id": 5502, "Status": "Active", "SpecialPrice": 0}]}]`,
			map[string]rel{"products/5501": {children: "price_rules:5501/special"}, "price_rules/5501/special": {parent: "5501", parentKind: "products"},
				"products/5502": {children: "price_rules:"}}},
		{"product without options", model.KindProduct,
			`[{"Id": 1202, "Status": "Inactive", "ModifiedDate": "2026-01-05T22:41:07Z", "ProductOptions": []}]`,
			map[string]rel{"products/style/1202": {}}},
		{"invoiced and dispatched order, bare order", model.KindSalesOrder,
			`[{"Id": 700123, "ModifiedDate": "2026-01-05T22:41:07Z", "InvoiceNumber": 10077, "InvoiceDate": "2026-01-05T00:00:00Z", "DispatchedDate": "2026-01-06T00:00:00Z"},
			  {"Id": 700124, "ModifiedDate": "2026-01-05T22:41:07Z", "IsVoid": true}]`,
			map[string]rel{"sales_orders/700123": {children: "invoices:700123/invoice shipments:700123/dispatch"},
				"invoices/700123/invoice": {parent: "700123", parentKind: "sales_orders"}, "shipments/700123/dispatch": {parent: "700123", parentKind: "sales_orders"},
				"sales_orders/700124": {children: "invoices: shipments:"}}},
		{"stock rows are read on their own", model.KindStockLevel,
			`[{"ProductId": 1201, "ProductOptionId": 5501, "BranchId": 3, "StockOnHand": 2}]`,
			map[string]rel{"stock_levels/5501/3": {}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, _, err := decodeFor(tc.kind, 1, []byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]rel{}
			for _, r := range recs {
				var sets []string
				for _, cs := range r.Children {
					if cs.IDs == nil {
						t.Errorf("%s %s: child set %s with nil ids (want an empty slice)", r.Kind, r.VendorID, cs.Kind)
					}
					sets = append(sets, string(cs.Kind)+":"+strings.Join(cs.IDs, ","))
				}
				got[string(r.Kind)+"/"+r.VendorID] = rel{r.Parent, string(r.ParentKind), strings.Join(sets, " ")}
			}
			if len(got) != len(tc.want) {
				t.Errorf("records %v, want %v", got, tc.want)
			}
			for k, w := range tc.want {
				if g, ok := got[k]; !ok || g != w {
					t.Errorf("%s: %+v, want %+v", k, g, w)
				}
			}
		})
	}
}
