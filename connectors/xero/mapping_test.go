package xero

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

// TestGoldenMapping maps the example responses of Xero's OpenAPI document
// (and of ../shared/vendor-apis.md §4.6) and compares the canonical records
// with testdata/*.golden.json. Run with -update to rewrite them after a
// deliberate change, and review the diff.
func TestGoldenMapping(t *testing.T) {
	m := &mapper{company: "acme", now: goldenTime}
	for _, tc := range []struct {
		file, list string
		fn         func(*mapper, json.RawMessage) ([]model.Record, error)
	}{
		{"items.json", "Items", (*mapper).item},
		{"items_vendor_doc.json", "Items", (*mapper).item},
		{"contacts.json", "Contacts", (*mapper).contact},
		{"invoices.json", "Invoices", (*mapper).invoice},
		{"credit_notes.json", "CreditNotes", (*mapper).creditNote},
		{"tax_rates.json", "TaxRates", (*mapper).taxRate},
		{"currencies.json", "Currencies", (*mapper).currency},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var env map[string]json.RawMessage
			if err := json.Unmarshal(b, &env); err != nil {
				t.Fatal(err)
			}
			var data []json.RawMessage
			if err := json.Unmarshal(env[tc.list], &data); err != nil {
				t.Fatalf("%s: %v", tc.list, err)
			}
			page, err := mapAll("acme", data, func(raw json.RawMessage) ([]model.Record, error) { return tc.fn(m, raw) }, nil)
			if err != nil {
				t.Fatalf("mapping: %v", err)
			}
			if len(page.aside) != 0 {
				t.Fatalf("the OpenAPI examples were set aside: %+v", page.aside)
			}
			recs := page.recs
			if len(recs) == 0 {
				t.Fatal("no records")
			}
			for i := range recs {
				if recs[i].Data == nil || recs[i].Data.Kind() != recs[i].Kind || recs[i].VendorID == "" || recs[i].ModifiedAt.IsZero() {
					t.Errorf("record %d is incomplete: %+v", i, recs[i])
				}
				recs[i].Raw = nil
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

func TestMappingRejectsBadDocuments(t *testing.T) {
	m := &mapper{company: "acme", now: goldenTime}
	for _, tc := range []struct {
		name, doc, field string
		fn               func(*mapper, json.RawMessage) ([]model.Record, error)
	}{
		{"item without id", `{"Code":"A","UpdatedDateUTC":"/Date(1573755038314)/"}`, "ItemID", (*mapper).item},
		{"item bad date", `{"ItemID":"x","Code":"A","UpdatedDateUTC":"/Date(yesterday)/"}`, "UpdatedDateUTC", (*mapper).item},
		{"item bad price", `{"ItemID":"x","Code":"A","UpdatedDateUTC":"/Date(1573755038314)/","SalesDetails":{"UnitPrice":"ten"}}`, "SalesDetails.UnitPrice", (*mapper).item},
		{"item price of wrong type", `{"ItemID":"x","Code":"A","UpdatedDateUTC":"/Date(1573755038314)/","SalesDetails":{"UnitPrice":true}}`, "SalesDetails.UnitPrice", (*mapper).item},
		{"contact without date", `{"ContactID":"x","Name":"A"}`, "UpdatedDateUTC", (*mapper).contact},
		{"contact flag of wrong type", `{"ContactID":"x","Name":"A","IsCustomer":"yes","UpdatedDateUTC":"/Date(1573755038314)/"}`, "IsCustomer", (*mapper).contact},
		{"invoice bad line", `{"Type":"ACCREC","InvoiceID":"x","UpdatedDateUTC":"/Date(1573755038314)/","LineItems":[{"Quantity":"two"}]}`, "LineItems[0].Quantity", (*mapper).invoice},
		{"invoice of unknown type with a bad line", `{"Type":"ACCXXX","InvoiceID":"x","UpdatedDateUTC":"/Date(1573755038314)/","LineItems":[{"Quantity":"two"}]}`, "LineItems[0].Quantity", (*mapper).invoice},
		{"invoice bad due date", `{"Type":"ACCREC","InvoiceID":"x","DueDate":"/Date(12a)/","UpdatedDateUTC":"/Date(1573755038314)/"}`, "DueDate", (*mapper).invoice},
		{"credit note without id", `{"Type":"ACCRECCREDIT","UpdatedDateUTC":"/Date(1573755038314)/"}`, "CreditNoteID", (*mapper).creditNote},
		{"tax rate bad rate", `{"TaxType":"OUTPUT","EffectiveRate":"high"}`, "EffectiveRate", (*mapper).taxRate},
		{"currency without code", `{"Description":"x"}`, "Code", (*mapper).currency},
		{"not an object", `"item"`, "", (*mapper).item},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mapAll("acme", []json.RawMessage{json.RawMessage(tc.doc)}, func(raw json.RawMessage) ([]model.Record, error) { return tc.fn(m, raw) }, nil)
			if err == nil {
				t.Fatal("a broken document mapped without error")
			}
			if !strings.Contains(err.Error(), "record 0") || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name the record and field %q", err, tc.field)
			}
		})
	}
}

// TestMappingSetsAsideUnknownTypes: a document whose type Xero's OpenAPI
// document allows but the connector does not map is set aside with its id,
// modified time, a bounded reason and the raw document; the documents
// beside it map as usual.
func TestMappingSetsAsideUnknownTypes(t *testing.T) {
	m := &mapper{company: "acme", now: goldenTime}
	long := strings.Repeat("X", 5000)
	for _, tc := range []struct {
		name, typ string
		kind      model.Kind
		fn        func(*mapper, json.RawMessage) ([]model.Record, error)
		doc       func(typ, id string) string
	}{
		{"invoice ACCRECCREDIT", "ACCRECCREDIT", model.KindInvoice, (*mapper).invoice, invoiceDoc},
		{"invoice APOVERPAYMENT", "APOVERPAYMENT", model.KindInvoice, (*mapper).invoice, invoiceDoc},
		{"invoice ARPREPAYMENT", "ARPREPAYMENT", model.KindInvoice, (*mapper).invoice, invoiceDoc},
		{"invoice of a type no document names, long", long, model.KindInvoice, (*mapper).invoice, invoiceDoc},
		{"credit note ACCREC", "ACCREC", model.KindCreditNote, (*mapper).creditNote, creditNoteDoc},
	} {
		t.Run(tc.name, func(t *testing.T) {
			good := "ACCREC"
			if tc.kind == model.KindCreditNote {
				good = "ACCRECCREDIT"
			}
			data := []json.RawMessage{json.RawMessage(tc.doc(good, "a")), json.RawMessage(tc.doc(tc.typ, "odd")), json.RawMessage(tc.doc(good, "b"))}
			got, err := mapAll("acme", data, func(raw json.RawMessage) ([]model.Record, error) { return tc.fn(m, raw) }, nil)
			if err != nil {
				t.Fatalf("the page failed: %v", err)
			}
			if len(got.recs) != 2 || got.recs[0].VendorID != "a" || got.recs[1].VendorID != "b" {
				t.Fatalf("records %+v, want a and b", got.recs)
			}
			if ids := got.ids(); len(ids) != 3 || ids[1] != "odd" {
				t.Fatalf("docs %v, want a, odd, b", ids)
			}
			if len(got.aside) != 1 {
				t.Fatalf("set aside %d, want 1", len(got.aside))
			}
			a := got.aside[0]
			if a.Company != "acme" || a.Vendor != Type || a.Kind != tc.kind || a.VendorID != "odd" || !a.ModifiedAt.Equal(time.UnixMilli(1573755038314)) {
				t.Errorf("set-aside entry %+v", a)
			}
			if len(a.Reason) > model.MaxReasonLen || len(a.Reason) > 200 || !strings.Contains(a.Reason, "Type") {
				t.Errorf("reason %q (%d bytes) is unbounded or does not name the field", a.Reason, len(a.Reason))
			}
			if !bytes.Equal(a.Raw, data[1]) {
				t.Errorf("raw document %s, want %s", a.Raw, data[1])
			}
		})
	}
}

func invoiceDoc(typ, id string) string {
	return fmt.Sprintf(`{"Type":%q,"InvoiceID":%q,"InvoiceNumber":"N","UpdatedDateUTC":"/Date(1573755038314)/","Total":1}`, typ, id)
}

func creditNoteDoc(typ, id string) string {
	return fmt.Sprintf(`{"Type":%q,"CreditNoteID":%q,"CreditNoteNumber":"N","UpdatedDateUTC":"/Date(1573755038314)/","Total":1}`, typ, id)
}

func TestMSDate(t *testing.T) {
	nz := time.FixedZone("+1300", 13*3600)
	for _, tc := range []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{"/Date(1573755038314)/", time.UnixMilli(1573755038314).UTC(), false},
		{"/Date(1539993600000+0000)/", time.Date(2018, 10, 20, 0, 0, 0, 0, time.UTC), false},
		{"/Date(1419937200000+1300)/", time.Date(2014, 12, 31, 0, 0, 0, 0, nz), false},
		{"/Date(-86400000)/", time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC), false},
		{"2019-03-05T18:59:06Z", time.Date(2019, 3, 5, 18, 59, 6, 0, time.UTC), false},
		{"2017-11-28T00:00:00", time.Date(2017, 11, 28, 0, 0, 0, 0, time.UTC), false},
		{"/Date(1573755038314+13)/", time.Time{}, true},
		{"/Date(abc)/", time.Time{}, true},
		{"/Date(1573755038314)", time.Time{}, true},
		{"28/11/2017", time.Time{}, true},
	} {
		got, err := msDate(tc.in)
		if (err != nil) != tc.bad || !got.Equal(tc.want) {
			t.Errorf("msDate(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.bad)
		}
		if !tc.bad && strings.Contains(tc.in, "+1300") && got.Format("2006-01-02") != "2014-12-31" {
			t.Errorf("msDate(%q) lost the local date: %v", tc.in, got)
		}
	}
}

func TestDecimal(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		bad      bool
	}{
		{"5000.0000", "5000", false},
		{"999.0", "999", false},
		{"0.10", "0.1", false},
		{"-12.50", "-12.5", false},
		{"1E2", "100", false},
		{"", "", false},
		{"true", "", true},
		{"12,5", "", true},
	} {
		got, err := vendorjson.Decimal(json.Number(tc.in))
		if (err != nil) != tc.bad || string(got) != tc.want {
			t.Errorf("decimal(%q) = %q, %v; want %q (error %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

// TestChildrenNameTheirParent: the people of a contact and the stock row of
// an item carry their parent, and the parent lists every child of the kind
// its document holds in full (none left: an empty list, so that the sink
// marks the former children deleted).
func TestChildrenNameTheirParent(t *testing.T) {
	m := &mapper{company: "acme", now: goldenTime}
	const when = `"UpdatedDateUTC":"/Date(1573755038314)/"`
	type child struct {
		kind model.Kind
		ids  []string
	}
	for _, tc := range []struct {
		name, doc  string
		fn         func(*mapper, json.RawMessage) ([]model.Record, error)
		parentKind model.Kind
		children   child
		// others are records of the document that carry no Children.
		others []model.Kind
	}{
		{"customer with a person and two contact persons",
			`{"ContactID":"c1","Name":"A","FirstName":"F","LastName":"L","IsCustomer":true,"ContactPersons":[{"FirstName":"P"},{"LastName":"Q"}],` + when + `}`,
			(*mapper).contact, model.KindCustomer, child{model.KindContact, []string{"c1/0", "c1/1", "c1/2"}}, nil},
		{"customer and supplier: the people hang off the customer",
			`{"ContactID":"c2","Name":"A","FirstName":"F","IsCustomer":true,"IsSupplier":true,` + when + `}`,
			(*mapper).contact, model.KindCustomer, child{model.KindContact, []string{"c2/0"}}, []model.Kind{model.KindSupplier}},
		{"supplier only: the people hang off the supplier",
			`{"ContactID":"c3","Name":"A","IsSupplier":true,"ContactPersons":[{"FirstName":"P"}],` + when + `}`,
			(*mapper).contact, model.KindSupplier, child{model.KindContact, []string{"c3/1"}}, nil},
		{"contact without people: an empty list",
			`{"ContactID":"c4","Name":"A",` + when + `}`,
			(*mapper).contact, model.KindCustomer, child{model.KindContact, []string{}}, nil},
		{"archived contact: its people are deleted and still listed",
			`{"ContactID":"c5","Name":"A","ContactStatus":"ARCHIVED","FirstName":"F",` + when + `}`,
			(*mapper).contact, model.KindCustomer, child{model.KindContact, []string{"c5/0"}}, nil},
		{"tracked item: its one stock row",
			`{"ItemID":"i1","Code":"A","IsTrackedAsInventory":true,"QuantityOnHand":3,` + when + `}`,
			(*mapper).item, model.KindProduct, child{model.KindStockLevel, []string{"i1"}}, nil},
		{"untracked item: no stock row",
			`{"ItemID":"i2","Code":"A","IsTrackedAsInventory":false,` + when + `}`,
			(*mapper).item, model.KindProduct, child{model.KindStockLevel, []string{}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := tc.fn(m, json.RawMessage(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			var parent *model.Record
			var got []string
			var others []model.Kind
			for i := range recs {
				r := &recs[i]
				switch r.Kind {
				case tc.parentKind:
					parent = r
				case tc.children.kind:
					got = append(got, r.VendorID)
					if r.Parent != recs[0].VendorID || r.ParentKind != tc.parentKind {
						t.Errorf("child %s names parent %s/%q, want %s/%q", r.VendorID, r.ParentKind, r.Parent, tc.parentKind, recs[0].VendorID)
					}
					if r.Deleted != recs[0].Deleted {
						t.Errorf("child %s deleted=%v, its parent %v", r.VendorID, r.Deleted, recs[0].Deleted)
					}
				default:
					others = append(others, r.Kind)
					if r.Children != nil || r.Parent != "" {
						t.Errorf("%s record carries parent %q or children %+v", r.Kind, r.Parent, r.Children)
					}
				}
			}
			if parent == nil {
				t.Fatalf("no %s record in %+v", tc.parentKind, recs)
			}
			if parent.Parent != "" {
				t.Errorf("the parent names a parent %q", parent.Parent)
			}
			want := []model.ChildSet{{Kind: tc.children.kind, IDs: tc.children.ids}}
			if fmt.Sprint(parent.Children) != fmt.Sprint(want) || parent.Children[0].IDs == nil {
				t.Errorf("children %+v, want %+v (a non-nil list)", parent.Children, want)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.children.ids) && !(len(got) == 0 && len(tc.children.ids) == 0) {
				t.Errorf("child records %v, want %v", got, tc.children.ids)
			}
			if fmt.Sprint(others) != fmt.Sprint(tc.others) && !(len(others) == 0 && len(tc.others) == 0) {
				t.Errorf("other records %v, want %v", others, tc.others)
			}
		})
	}
}

// TestMarkersMapToDeleted: every deletion marker Xero has (a contact's
// ContactStatus ARCHIVED or GDPRREQUEST, a merge into another contact, a
// document's Status DELETED or VOIDED, a tax rate's Status DELETED or
// ARCHIVED) maps to a deleted record, and the statuses beside them to a
// live one.
func TestMarkersMapToDeleted(t *testing.T) {
	m := &mapper{company: "acme", now: goldenTime}
	const when = `"UpdatedDateUTC":"/Date(1573755038314)/"`
	contact := func(extra string) string {
		return `{"ContactID":"c","Name":"A","IsCustomer":true,` + extra + when + `}`
	}
	doc := func(idField, typ, status string) string {
		return fmt.Sprintf(`{"Type":%q,%q:"d","Status":%q,%s}`, typ, idField, status, when)
	}
	for _, tc := range []struct {
		name    string
		fn      func(*mapper, json.RawMessage) ([]model.Record, error)
		doc     string
		deleted bool
	}{
		{"contact ACTIVE", (*mapper).contact, contact(`"ContactStatus":"ACTIVE",`), false},
		{"contact ARCHIVED", (*mapper).contact, contact(`"ContactStatus":"ARCHIVED",`), true},
		{"contact GDPRREQUEST", (*mapper).contact, contact(`"ContactStatus":"GDPRREQUEST",`), true},
		{"contact merged into another", (*mapper).contact, contact(`"ContactStatus":"ACTIVE","MergedToContactID":"other",`), true},
		{"invoice AUTHORISED", (*mapper).invoice, doc("InvoiceID", "ACCREC", "AUTHORISED"), false},
		{"invoice PAID", (*mapper).invoice, doc("InvoiceID", "ACCREC", "PAID"), false},
		{"invoice DELETED", (*mapper).invoice, doc("InvoiceID", "ACCREC", "DELETED"), true},
		{"bill VOIDED", (*mapper).invoice, doc("InvoiceID", "ACCPAY", "VOIDED"), true},
		{"credit note DRAFT", (*mapper).creditNote, doc("CreditNoteID", "ACCRECCREDIT", "DRAFT"), false},
		{"credit note DELETED", (*mapper).creditNote, doc("CreditNoteID", "ACCRECCREDIT", "DELETED"), true},
		{"credit note VOIDED", (*mapper).creditNote, doc("CreditNoteID", "ACCPAYCREDIT", "VOIDED"), true},
		{"tax rate ACTIVE", (*mapper).taxRate, `{"TaxType":"T","Status":"ACTIVE","EffectiveRate":15}`, false},
		{"tax rate PENDING", (*mapper).taxRate, `{"TaxType":"T","Status":"PENDING","EffectiveRate":15}`, false},
		{"tax rate DELETED", (*mapper).taxRate, `{"TaxType":"T","Status":"DELETED","EffectiveRate":15}`, true},
		{"tax rate ARCHIVED", (*mapper).taxRate, `{"TaxType":"T","Status":"ARCHIVED","EffectiveRate":15}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := tc.fn(m, json.RawMessage(tc.doc))
			if err != nil || len(recs) == 0 {
				t.Fatalf("mapping: %v (%d records)", err, len(recs))
			}
			for _, r := range recs {
				if r.Deleted != tc.deleted {
					t.Errorf("%s %s: deleted %v, want %v", r.Kind, r.VendorID, r.Deleted, tc.deleted)
				}
			}
		})
	}
}
