package cin7core

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

// fetched is the response time golden records without a vendor modification
// time are stamped with.
var fetched = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// TestGoldenMapping maps the example payloads of the Cin7 Core spec
// (../shared/specs/cin7-core-openapi.yaml, extracted verbatim) and of
// ../shared/vendor-apis.md into canonical records and compares them with the
// golden files in testdata/golden.
func TestGoldenMapping(t *testing.T) {
	for _, tc := range []struct {
		file string
		kind model.Kind
	}{
		{"products_spec.json", model.KindProduct},
		{"products_vendor_apis.json", model.KindProduct},
		{"customers_spec.json", model.KindCustomer},
		{"suppliers_spec.json", model.KindSupplier},
		{"locations_spec.json", model.KindWarehouse},
		{"taxes_spec.json", model.KindTaxRate},
		{"availability_spec.json", model.KindStockLevel},
		{"salelist_spec.json", model.KindSalesOrder},
		{"salecreditnotelist_spec.json", model.KindCreditNote},
	} {
		t.Run(tc.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			doc, err := decodePage(streamFor(tc.kind), 1, body, mapEnv{Company: "ACME-01", Fetched: fetched})
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

// TestMappingSemantics pins the decisions the golden files encode.
func TestMappingSemantics(t *testing.T) {
	body, _ := os.ReadFile("testdata/products_vendor_apis.json")
	doc, err := decodePage(streamFor(model.KindProduct), 1, body, mapEnv{Company: "c", Fetched: fetched})
	if err != nil {
		t.Fatal(err)
	}
	live, dep := doc.Records[0], doc.Records[1]
	p := live.Data.(*model.Product)
	if p.SellPrice != "8" || p.CostPrice != "2.1" || len(p.Prices) != 2 || p.Prices[0] != (model.Price{Tier: "Tier 1", Amount: "8"}) || p.Prices[1].Amount != "6.5" {
		t.Errorf("prices: %+v", p)
	}
	if !live.ModifiedAt.Equal(time.Date(2026, 1, 4, 21, 13, 45, 183e6, time.UTC)) || live.Deleted {
		t.Errorf("live product: %v %v", live.ModifiedAt, live.Deleted)
	}
	if !dep.Deleted || !dep.Data.(*model.Product).Obsolete || !dep.ModifiedAt.Equal(time.Date(2026, 1, 5, 2, 0, 1, 5e8, time.UTC)) {
		t.Errorf("deprecated product: %+v", dep)
	}
	if doc.Total != 3 {
		t.Errorf("total %d", doc.Total)
	}

	body, _ = os.ReadFile("testdata/salelist_spec.json")
	doc, err = decodePage(streamFor(model.KindSalesOrder), 1, body, mapEnv{Company: "c", Fetched: fetched})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[model.Kind]int{}
	for _, r := range doc.Records {
		kinds[r.Kind]++
	}
	// Two sales; one has an invoice; one is shipping.
	if kinds[model.KindSalesOrder] != 2 || kinds[model.KindInvoice] != 1 || kinds[model.KindShipment] != 1 {
		t.Errorf("sale list kinds: %v", kinds)
	}
}

func TestParseTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"2017-09-29T03:03:13.913Z", time.Date(2017, 9, 29, 3, 3, 13, 913e6, time.UTC)},
		{"2021-11-11T13:27:28.16Z", time.Date(2021, 11, 11, 13, 27, 28, 160e6, time.UTC)},
		{"2021-11-11T13:27:28Z", time.Date(2021, 11, 11, 13, 27, 28, 0, time.UTC)},
		{"2017-09-29T00:00:00", time.Date(2017, 9, 29, 0, 0, 0, 0, time.UTC)},
		{"2024-08-18T11:43:38.787", time.Date(2024, 8, 18, 11, 43, 38, 787e6, time.UTC)},
		{"2024-03-20T13:30:44.5184481+13:00", time.Date(2024, 3, 20, 0, 30, 44, 518448100, time.UTC)},
		{"2026-01-01", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		got, err := parseTime(tc.in)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "yesterday", "/Date(1473149768263)/", "2026-13-01", "29/09/2017"} {
		if _, err := parseTime(bad); err == nil {
			t.Errorf("parseTime(%q) succeeded", bad)
		}
	}
}

// TestMalformedDocuments feeds broken documents: every one must fail with
// KindInvalidResponse naming the entity, the page and the field, and none
// may panic.
func TestMalformedDocuments(t *testing.T) {
	for _, tc := range []struct {
		name, body, field string
		kind              model.Kind
	}{
		{"not json", `{"Products": [`, "not a JSON object", model.KindProduct},
		{"list missing", `{"Total": 1, "Page": 1}`, "field Products", model.KindProduct},
		{"list not array", `{"Total": 1, "Products": {}}`, "field Products", model.KindProduct},
		{"bad total", `{"Total": "x", "Products": []}`, "field Total", model.KindProduct},
		{"item not object", `{"Total": 1, "Products": [42]}`, "Products[0]", model.KindProduct},
		{"bad date", `{"Total": 1, "Products": [{"ID": "a", "SKU": "s", "LastModifiedOn": "31/12/2025"}]}`, "field LastModifiedOn", model.KindProduct},
		{"missing date", `{"Total": 1, "Products": [{"ID": "a", "SKU": "s"}]}`, "field LastModifiedOn", model.KindProduct},
		{"missing id", `{"Total": 1, "Products": [{"SKU": "s", "LastModifiedOn": "2026-01-01T00:00:00Z"}]}`, "field ID", model.KindProduct},
		{"bad price", `{"Total": 1, "Products": [{"ID": "a", "SKU": "s", "LastModifiedOn": "2026-01-01T00:00:00Z", "PriceTier1": "cheap"}]}`, "field PriceTier1", model.KindProduct},
		{"bad tier", `{"Total": 1, "Products": [{"ID": "a", "SKU": "s", "LastModifiedOn": "2026-01-01T00:00:00Z", "PriceTiers": {"Tier 1": true}}]}`, "field PriceTiers.Tier 1", model.KindProduct},
		{"bad bool", `{"Total": 1, "LocationList": [{"ID": "a", "Name": "x", "IsDeprecated": "no"}]}`, "field IsDeprecated", model.KindWarehouse},
		{"bad contact", `{"Total": 1, "CustomerList": [{"ID": "a", "LastModifiedOn": "2026-01-01T00:00:00Z", "Contacts": [{"Name": "x"}]}]}`, "field Contacts[0].ID", model.KindCustomer},
		{"bad price rule", `{"Total": 1, "CustomerList": [{"ID": "a", "LastModifiedOn": "2026-01-01T00:00:00Z", "ProductPrices": [{"ProductID": "p", "Price": "x"}]}]}`, "field ProductPrices[0].Price", model.KindCustomer},
		{"bad quantity", `{"Total": 1, "ProductAvailabilityList": [{"ID": "a", "Location": "x", "OnHand": "lots"}]}`, "field OnHand", model.KindStockLevel},
		{"bad updated", `{"Total": 1, "SaleList": [{"SaleID": "a", "Updated": 17}]}`, "field Updated", model.KindSalesOrder},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodePage(streamFor(tc.kind), 7, []byte(tc.body), mapEnv{Company: "c", Fetched: fetched})
			if err == nil {
				t.Fatal("no error")
			}
			if connectors.KindOf(err) != connectors.KindInvalidResponse {
				t.Errorf("kind %q, want InvalidResponse: %v", connectors.KindOf(err), err)
			}
			msg := err.Error()
			if !strings.Contains(msg, string(tc.kind)) || !strings.Contains(msg, "page 7") || !strings.Contains(msg, tc.field) {
				t.Errorf("error %q does not name entity %s, page 7 and %q", msg, tc.kind, tc.field)
			}
			for _, leak := range []string{"31/12/2025", "cheap", "lots"} {
				if strings.Contains(msg, leak) {
					t.Errorf("error %q leaks the value %q", msg, leak)
				}
			}
		})
	}
}

// TestMappingNeverPanics throws mutated documents at every stream.
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
					_, _ = decodePage(s, 1, []byte(m(string(body))), mapEnv{Fetched: fetched})
				}()
			}
		}
	}
}

// TestSetAsideAndDocs: a page lists the vendor id of every item it held
// (the units of Total), and a credit note row of an Advanced Sale is set
// aside (raw row, bounded reason, its Updated time) while the rows around
// it map.
func TestSetAsideAndDocs(t *testing.T) {
	row := func(id, typ string) string {
		return `{"SaleID": "` + id + `", "Type": "` + typ + `", "CreditNoteNumber": "CR-1", "CreditNoteStatus": "AUTHORISED", "Status": "CREDITED",
			"Customer": "C", "CustomerID": "c1", "Updated": "2026-02-03T04:05:06.7Z"}`
	}
	for _, tc := range []struct {
		typ     string
		aside   bool
		records int
	}{
		{"Simple Sale", false, 3},
		{"Credit Note", false, 3},
		{"Service Sale", false, 3},
		{"Advanced Sale", true, 2},
		{"advanced sale ", true, 2},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			body := `{"Total": 3, "Page": 1, "SaleList": [` + row("s1", "Simple Sale") + `,` + row("s2", tc.typ) + `,` + row("s3", "Simple Sale") + `]}`
			doc, err := decodePage(streamFor(model.KindCreditNote), 1, []byte(body), mapEnv{Company: "c", Fetched: fetched})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(doc.Docs, ",") != "s1,s2,s3" || doc.Total != 3 || len(doc.Records) != tc.records {
				t.Fatalf("docs %v, total %d, %d records", doc.Docs, doc.Total, len(doc.Records))
			}
			if !tc.aside {
				if len(doc.SetAside) != 0 {
					t.Fatalf("set aside %+v", doc.SetAside)
				}
				return
			}
			if len(doc.SetAside) != 1 {
				t.Fatalf("set aside %+v, want s2", doc.SetAside)
			}
			a := doc.SetAside[0]
			if a.VendorID != "s2" || a.Kind != model.KindCreditNote || a.Company != "c" || a.Vendor != Type ||
				!a.ModifiedAt.Equal(time.Date(2026, 2, 3, 4, 5, 6, 7e8, time.UTC)) || !strings.Contains(string(a.Raw), `"SaleID": "s2"`) ||
				a.Reason == "" || len(a.Reason) > model.MaxReasonLen {
				t.Errorf("set aside %+v", a)
			}
			for _, r := range doc.Records {
				if r.VendorID == "s2" {
					t.Errorf("the set-aside row was mapped too: %+v", r)
				}
			}
		})
	}
}

// TestChildrenNameTheirParent: records read inside a customer or a sale row
// carry their parent, and the parent names every child of the kinds its
// document lists completely (an empty set when it has none now); a
// deprecated customer's contacts and prices are deleted with it, a voided
// invoice by its own marker.
func TestChildrenNameTheirParent(t *testing.T) {
	type want struct {
		kind     model.Kind
		id       string
		parent   string
		deleted  bool
		via      model.DeletionSource
		children map[model.Kind][]string // nil: no Children
	}
	for _, tc := range []struct {
		name string
		kind model.Kind
		body string
		want []want
	}{
		{
			name: "customer with contacts and prices",
			kind: model.KindCustomer,
			body: `{"Total":1,"CustomerList":[{"ID":"c1","Name":"Acme","Status":"Active","LastModifiedOn":"2026-01-02T03:04:05.6Z",
				"Contacts":[{"ID":"k1","Name":"Pat Buyer"},{"ID":"k2","Name":"Sam"}],
				"ProductPrices":[{"ProductID":"p1","Price":5},{"ProductID":"p2","Price":6}]}]}`,
			want: []want{
				{kind: model.KindCustomer, id: "c1", children: map[model.Kind][]string{model.KindContact: {"k1", "k2"}, model.KindPriceRule: {"c1/p1", "c1/p2"}}},
				{kind: model.KindContact, id: "k1", parent: "c1"},
				{kind: model.KindContact, id: "k2", parent: "c1"},
				{kind: model.KindPriceRule, id: "c1/p1", parent: "c1"},
				{kind: model.KindPriceRule, id: "c1/p2", parent: "c1"},
			},
		},
		{
			name: "customer without contacts, prices not asked for",
			kind: model.KindCustomer,
			body: `{"Total":1,"CustomerList":[{"ID":"c2","Name":"Solo","Status":"Active","LastModifiedOn":"2026-01-02T03:04:05Z","Contacts":[]}]}`,
			want: []want{{kind: model.KindCustomer, id: "c2", children: map[model.Kind][]string{model.KindContact: {}}}},
		},
		{
			name: "deprecated customer",
			kind: model.KindCustomer,
			body: `{"Total":1,"CustomerList":[{"ID":"c3","Name":"Gone","Status":"Deprecated","LastModifiedOn":"2026-01-02T03:04:05Z",
				"Contacts":[{"ID":"k3","Name":"Lee"}],"ProductPrices":[]}]}`,
			want: []want{
				{kind: model.KindCustomer, id: "c3", deleted: true, via: model.DeletedByVendor,
					children: map[model.Kind][]string{model.KindContact: {"k3"}, model.KindPriceRule: {}}},
				{kind: model.KindContact, id: "k3", parent: "c3", deleted: true, via: model.DeletedWithParent},
			},
		},
		{
			name: "simple sale, invoiced and shipped, invoice voided",
			kind: model.KindSalesOrder,
			body: `{"Total":1,"SaleList":[{"SaleID":"s1","OrderNumber":"SO-1","Status":"COMPLETED","Type":"Simple Sale",
				"Updated":"2026-01-02T03:04:05Z","InvoiceNumber":"INV-1","CombinedInvoiceStatus":"VOIDED","InvoiceAmount":10,
				"PaidAmount":0,"CombinedShippingStatus":"SHIPPED"}]}`,
			want: []want{
				{kind: model.KindSalesOrder, id: "s1", children: map[model.Kind][]string{model.KindInvoice: {"s1/INV-1"}, model.KindShipment: {"s1/shipment"}}},
				{kind: model.KindInvoice, id: "s1/INV-1", parent: "s1", deleted: true, via: model.DeletedByVendor},
				{kind: model.KindShipment, id: "s1/shipment", parent: "s1"},
			},
		},
		{
			name: "voided simple sale without invoice or shipment",
			kind: model.KindSalesOrder,
			body: `{"Total":1,"SaleList":[{"SaleID":"s2","OrderNumber":"SO-2","Status":"VOIDED","Type":"Simple Sale",
				"Updated":"2026-01-02T03:04:05Z","InvoiceNumber":null,"CombinedShippingStatus":"NOT SHIPPED"}]}`,
			want: []want{{kind: model.KindSalesOrder, id: "s2", deleted: true, via: model.DeletedByVendor,
				children: map[model.Kind][]string{model.KindInvoice: {}, model.KindShipment: {}}}},
		},
		{
			name: "advanced sale: the row does not list every invoice",
			kind: model.KindSalesOrder,
			body: `{"Total":1,"SaleList":[{"SaleID":"s3","OrderNumber":"SO-3","Status":"VOIDED","Type":"Advanced Sale",
				"Updated":"2026-01-02T03:04:05Z","InvoiceNumber":"INV-3","CombinedInvoiceStatus":"INVOICED","InvoiceAmount":10,
				"PaidAmount":0,"CombinedShippingStatus":"SHIPPED"}]}`,
			want: []want{
				{kind: model.KindSalesOrder, id: "s3", deleted: true, via: model.DeletedByVendor,
					children: map[model.Kind][]string{model.KindShipment: {"s3/shipment"}}},
				{kind: model.KindInvoice, id: "s3/INV-3", parent: "s3", deleted: true, via: model.DeletedWithParent},
				{kind: model.KindShipment, id: "s3/shipment", parent: "s3", deleted: true, via: model.DeletedWithParent},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := decodePage(streamFor(tc.kind), 1, []byte(tc.body), mapEnv{Company: "c", Fetched: fetched})
			if err != nil {
				t.Fatal(err)
			}
			if len(doc.Records) != len(tc.want) {
				t.Fatalf("%d records, want %d: %+v", len(doc.Records), len(tc.want), doc.Records)
			}
			for i, w := range tc.want {
				r := doc.Records[i]
				wantParentKind := model.Kind("")
				if w.parent != "" {
					wantParentKind = tc.kind
				}
				if r.Kind != w.kind || r.VendorID != w.id || r.Parent != w.parent || r.ParentKind != wantParentKind ||
					r.Deleted != w.deleted || r.DeletedVia != w.via {
					t.Errorf("record %d: %s %s parent %q/%q deleted %v via %q; want %s %s parent %q/%q deleted %v via %q", i,
						r.Kind, r.VendorID, r.Parent, r.ParentKind, r.Deleted, r.DeletedVia, w.kind, w.id, w.parent, wantParentKind, w.deleted, w.via)
				}
				if w.children == nil {
					if r.Children != nil {
						t.Errorf("record %d (%s): children %+v, want none", i, r.VendorID, r.Children)
					}
					continue
				}
				got := map[model.Kind][]string{}
				for _, c := range r.Children {
					if c.IDs == nil {
						t.Errorf("record %d: child set %s has nil IDs (must be empty, not nil)", i, c.Kind)
					}
					got[c.Kind] = c.IDs
				}
				if len(got) != len(w.children) {
					t.Errorf("record %d (%s): children %v, want %v", i, r.VendorID, got, w.children)
				}
				for k, ids := range w.children {
					if g, ok := got[k]; !ok || strings.Join(g, ",") != strings.Join(ids, ",") {
						t.Errorf("record %d (%s): %s children %v, want %v", i, r.VendorID, k, g, ids)
					}
				}
			}
		})
	}
}
