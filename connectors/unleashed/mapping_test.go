package unleashed

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

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current mapping")

var fetched = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func decodeFor(kind model.Kind, page int, body []byte) (*pageDoc, error) {
	s := streamFor(kind)
	return decodePage(kind, s.mapItem, page, body, mapEnv{Company: "ACME-01", Fetched: fetched})
}

// TestGoldenMapping maps the example payloads (see testdata/README.md) into
// canonical records and compares them with testdata/golden.
func TestGoldenMapping(t *testing.T) {
	for _, tc := range []struct {
		file string
		kind model.Kind
	}{
		{"products_vendor_apis.json", model.KindProduct},
		{"stockonhand_doc.json", model.KindStockLevel},
		{"productprices_doc.json", model.KindPriceRule},
		{"salesorders_doc.json", model.KindSalesOrder},
		{"customers_doc.json", model.KindCustomer},
	} {
		t.Run(tc.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			doc, err := decodeFor(tc.kind, 1, body)
			if err != nil {
				t.Fatalf("decoding %s: %v", tc.file, err)
			}
			if doc.Items == 0 || len(doc.Records) < doc.Items {
				t.Fatalf("%d items gave %d records", doc.Items, len(doc.Records))
			}
			for _, r := range doc.Records {
				if r.Company != "ACME-01" || r.Vendor != Type || r.VendorID == "" || r.ModifiedAt.IsZero() || r.Data == nil || r.Data.Kind() != r.Kind || len(r.Raw) == 0 {
					t.Errorf("incomplete record: %+v", r)
				}
			}
			got, err := json.MarshalIndent(doc.Records, "", "  ")
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
	doc, err := decodeFor(model.KindProduct, 1, body)
	if err != nil {
		t.Fatal(err)
	}
	p := doc.Records[0].Data.(*model.Product)
	if p.SKU != "WIDGET-RED" || p.SellPrice != "9.95" || p.CostPrice != "4.5" || p.Category != "Widgets" || p.UnitOfMeasure != "EA" ||
		len(p.Prices) != 2 || p.Prices[0] != (model.Price{Tier: "RRP", Amount: "12.5"}) || p.Prices[1] != (model.Price{Tier: "Wholesale", Amount: "8"}) {
		t.Errorf("product: %+v", p)
	}
	if !doc.Records[0].ModifiedAt.Equal(time.UnixMilli(1767312000000).UTC()) {
		t.Errorf("modified %v", doc.Records[0].ModifiedAt)
	}
	if doc.Total != 3 || doc.NumberOfPages != 2 || doc.PageNumber != 1 {
		t.Errorf("pagination %+v", doc)
	}
	body, _ = os.ReadFile("testdata/salesorders_doc.json")
	doc, err = decodeFor(model.KindSalesOrder, 1, body)
	if err != nil {
		t.Fatal(err)
	}
	so := doc.Records[0]
	if !so.Deleted || so.Data.(*model.SalesOrder).Total != "22.885" || len(so.Data.(*model.SalesOrder).Lines) != 1 {
		t.Errorf("deleted order: %+v", so)
	}
}

// TestCustomerChildren: contacts name their customer as parent; a customer
// names its contacts (an empty set when it has none) only when the
// document holds the whole list: the Contacts array is there and shorter
// than the inline cap.
func TestCustomerChildren(t *testing.T) {
	contacts := func(n int) string {
		var cs []string
		for i := range n {
			cs = append(cs, fmt.Sprintf(`{"Guid": "ct-%d", "FirstName": "F%d"}`, i, i))
		}
		return "[" + strings.Join(cs, ",") + "]"
	}
	for _, tc := range []struct {
		name, contacts string
		want           []string // nil: no claim about contacts
		records        int
	}{
		{"two contacts", contacts(2), []string{"ct-0", "ct-1"}, 3},
		{"none now", "[]", []string{}, 1},
		{"not asked for", "", nil, 1},
		{"null", "null", nil, 1},
		{"just under the cap", contacts(MaxInlineContacts - 1), nil, MaxInlineContacts},
		{"at the cap: maybe cut", contacts(MaxInlineContacts), nil, MaxInlineContacts + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			field := ""
			if tc.contacts != "" {
				field = `, "Contacts": ` + tc.contacts
			}
			body := `{"Pagination": {"NumberOfItems": 1, "PageSize": 1, "PageNumber": 1, "NumberOfPages": 1}, "Items": [
			  {"Guid": "cu-1", "CustomerCode": "C1", "LastModifiedOn": "/Date(1767225600000)/"` + field + `}]}`
			doc, err := decodeFor(model.KindCustomer, 1, []byte(body))
			if err != nil {
				t.Fatal(err)
			}
			if len(doc.Records) != tc.records {
				t.Fatalf("%d records, want %d", len(doc.Records), tc.records)
			}
			cu := doc.Records[0]
			if cu.Kind != model.KindCustomer || cu.Parent != "" {
				t.Fatalf("first record %+v", cu)
			}
			want := tc.want
			if tc.name == "just under the cap" {
				for i := range MaxInlineContacts - 1 {
					want = append(want, fmt.Sprintf("ct-%d", i))
				}
			}
			switch {
			case want == nil && cu.Children != nil:
				t.Errorf("children %+v, want no claim", cu.Children)
			case want != nil && (len(cu.Children) != 1 || cu.Children[0].Kind != model.KindContact || cu.Children[0].IDs == nil ||
				strings.Join(cu.Children[0].IDs, ",") != strings.Join(want, ",")):
				t.Errorf("children %+v, want contacts %v", cu.Children, want)
			}
			for _, r := range doc.Records[1:] {
				if r.Kind != model.KindContact || r.Parent != "cu-1" || r.ParentKind != model.KindCustomer || r.Children != nil {
					t.Errorf("contact %s: parent %q/%q children %v", r.VendorID, r.ParentKind, r.Parent, r.Children)
				}
			}
		})
	}
}

func TestParseTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"/Date(1473149768263)/", time.UnixMilli(1473149768263).UTC()},
		{"/Date(1539993600000+0000)/", time.UnixMilli(1539993600000).UTC()},
		{"/Date(1419937200000+1300)/", time.UnixMilli(1419937200000).UTC()},
		{"/Date(-86400000)/", time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC)},
		{"2016-10-08T20:31:25.963", time.Date(2016, 10, 8, 20, 31, 25, 963e6, time.UTC)},
		{"2024-04-17T23:11:05", time.Date(2024, 4, 17, 23, 11, 5, 0, time.UTC)},
		{"2024-04-17T23:11:05Z", time.Date(2024, 4, 17, 23, 11, 5, 0, time.UTC)},
		{"2026-01-01", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		got, err := parseTime(tc.in)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "/Date()/", "/Date(abc)/", "/Date(123+12)/", "/Date(1473149768263", "Date(1473149768263)", "yesterday"} {
		if _, err := parseTime(bad); err == nil {
			t.Errorf("parseTime(%q) succeeded", bad)
		}
	}
}

// TestSignature pins the signing rule with independent vectors: the HMAC
// of the query string only, empty when there is none.
func TestSignature(t *testing.T) {
	for _, tc := range []struct{ query, key, want string }{
		// echo -n 'customerCode=ACME' | openssl dgst -sha256 -hmac 'secret' -binary | base64
		{"customerCode=ACME", "secret", "MMJ4rzZTX5ykRut5ZdHG0w3lBM8/L4oj2iDSVK120do="},
		{"", "secret", "+eZuF5tnR65UEI+C+K3os8Jddv0wr95sOVgixTAZYWk="},
	} {
		if got := sign(tc.query, tc.key); got != tc.want {
			t.Errorf("sign(%q) = %s, want %s", tc.query, got, tc.want)
		}
	}
	var q query
	q.add("modifiedSince", "2026-01-01T10:20:30")
	q.add("orderStatus", "Parked,Placed")
	q.add("customerCode", "A&B C")
	if got := q.String(); got != "modifiedSince=2026-01-01T10:20:30&orderStatus=Parked,Placed&customerCode=A%26B%20C" {
		t.Errorf("query %s", got)
	}
}

func TestMalformedDocuments(t *testing.T) {
	pg := `"Pagination": {"NumberOfItems": 1, "PageSize": 1000, "PageNumber": 1, "NumberOfPages": 1}`
	for _, tc := range []struct {
		name, body, field string
		kind              model.Kind
	}{
		{"not json", `{"Items": [`, "not JSON", model.KindProduct},
		{"no pagination", `{"Items": []}`, "field Pagination", model.KindProduct},
		{"bad pagination", `{"Pagination": {"NumberOfPages": "x"}, "Items": []}`, "Pagination.NumberOfItems", model.KindProduct},
		{"no items", `{` + pg + `}`, "field Items", model.KindProduct},
		{"bad date", `{` + pg + `, "Items": [{"Guid": "g", "ProductCode": "c", "LastModifiedOn": "/Date(soon)/"}]}`, "field LastModifiedOn", model.KindProduct},
		{"missing date", `{` + pg + `, "Items": [{"Guid": "g", "ProductCode": "c"}]}`, "field LastModifiedOn", model.KindProduct},
		{"missing guid", `{` + pg + `, "Items": [{"ProductCode": "c", "LastModifiedOn": "/Date(1)/"}]}`, "field Guid", model.KindProduct},
		{"bad tier", `{` + pg + `, "Items": [{"Guid": "g", "ProductCode": "c", "LastModifiedOn": "/Date(1)/", "SellPriceTier1": {"Name": "RRP", "Value": "cheap"}}]}`, "SellPriceTier1.Value", model.KindProduct},
		{"bad obsolete", `{` + pg + `, "Items": [{"Guid": "g", "ProductCode": "c", "LastModifiedOn": "/Date(1)/", "Obsolete": "no"}]}`, "field Obsolete", model.KindProduct},
		{"stock without warehouse", `{` + pg + `, "Items": [{"Guid": "g", "ProductCode": "c", "LastModifiedOn": "/Date(1)/", "QtyOnHand": 1}]}`, "WarehouseId", model.KindStockLevel},
		{"bad line", `{` + pg + `, "Items": [{"Guid": "g", "OrderNumber": "SO-1", "LastModifiedOn": "/Date(1)/", "SalesOrderLines": [{"OrderQuantity": "two"}]}]}`, "SalesOrderLines[0].OrderQuantity", model.KindSalesOrder},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeFor(tc.kind, 4, []byte(tc.body))
			if connectors.KindOf(err) != connectors.KindInvalidResponse {
				t.Fatalf("error %v, want InvalidResponse", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, string(tc.kind)) || !strings.Contains(msg, "page 4") || !strings.Contains(msg, tc.field) {
				t.Errorf("error %q does not name entity %s, page 4 and %q", msg, tc.kind, tc.field)
			}
			for _, leak := range []string{"soon", "cheap", "two"} {
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
		func(s string) string { return strings.ReplaceAll(s, "/Date(", "/Date(x") },
		func(s string) string { return strings.ReplaceAll(s, "0", "-") },
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
					_, _ = decodePage(s.kind, s.mapItem, 1, []byte(m(string(body))), mapEnv{Fetched: fetched})
				}()
			}
		}
	}
}

// TestSetAside: price rows the canonical model cannot hold are set aside
// with their id, modified time, a bounded reason and the raw row, and the
// rest of the page maps.
func TestSetAside(t *testing.T) {
	long := strings.Repeat("x", 500)
	page := `{"Pagination": {"NumberOfItems": 4, "PageSize": 4, "PageNumber": 1, "NumberOfPages": 1}, "Items": [
	  {"Guid": "g-1", "Product": null, "ProductGroup": {"Guid": "pg-1", "GroupName": "` + long + `"}, "Customer": {"Guid": "c-1"},
	   "PriceType": "Discount", "DiscountValue": 10, "LastModifiedOn": "/Date(1767225600000)/"},
	  {"Guid": "g-2", "Product": {"Guid": "p-2", "ProductCode": "B"}, "PriceType": "Markup", "DefaultSellPrice": 5, "LastModifiedOn": "/Date(1767225600000)/"},
	  {"Guid": "g-3", "Product": {"Guid": "p-3", "ProductCode": "C"}, "PriceType": "Fixed Price", "CustomerPrice": 7.5},
	  {"Guid": "g-4", "Product": {"Guid": "p-4", "ProductCode": "D"}, "PriceType": "Markup", "CustomerPrice": 8}
	]}`
	doc, err := decodeFor(model.KindPriceRule, 1, []byte(page))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range doc.Records {
		ids = append(ids, r.VendorID)
	}
	if strings.Join(ids, ",") != "g-3,g-4" {
		t.Errorf("mapped %v, want g-3 and g-4 (a markup row that carries its price maps)", ids)
	}
	if len(doc.SetAside) != 2 {
		t.Fatalf("set aside %d rows, want 2: %+v", len(doc.SetAside), doc.SetAside)
	}
	for i, want := range []string{"g-1", "g-2"} {
		a := doc.SetAside[i]
		if a.VendorID != want || a.Kind != model.KindPriceRule || a.Company != "ACME-01" || a.Vendor != Type || len(a.Raw) == 0 ||
			!a.ModifiedAt.Equal(time.UnixMilli(1767225600000).UTC()) || a.Reason == "" || len(a.Reason) > 200 {
			t.Errorf("set-aside %d: %+v", i, a)
		}
	}
	if strings.Contains(doc.SetAside[0].Reason, long) {
		t.Error("the reason carries the whole group name")
	}
}
