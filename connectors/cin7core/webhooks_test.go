package cin7core_test

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/cin7core"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

const (
	saleID    = "9b1f3c2e-6a47-4d1e-9a53-0c2f5e7d8a11"
	productID = "4aadd8f6-4d3d-46ca-acbb-1a9a662f9bc1"
	otherID   = "0bd90aa9-72f9-4f9c-bb0d-9f7cc406b07a"
)

func TestWebhookCodecRouting(t *testing.T) {
	if r := cin7core.Webhooks.Routing(); r != connectors.RouteByPath {
		t.Errorf("Routing = %v, want RouteByPath", r)
	}
}

// TestWebhookVerify: a delivery is authentic when its Authorization header
// is the bearer credential the operator registered; Cin7 Core signs no
// body and sends no time stamp, so neither the body nor the time matters.
func TestWebhookVerify(t *testing.T) {
	keys := map[string][]byte{connectors.WebhookKeyCredential: []byte("c0rrect-horse"), "accountId": []byte("x")}
	body := []byte(`{"SaleID":"` + saleID + `","EventType":"Sale/Voided"}`)
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	hdr := func(vals ...string) http.Header {
		h := http.Header{}
		for _, v := range vals {
			h.Add("Authorization", v)
		}
		return h
	}
	for _, tc := range []struct {
		name    string
		h       http.Header
		body    []byte
		keys    map[string][]byte
		now     time.Time
		wantErr error // nil: authentic
		missing bool  // the key is missing: an error naming it, not a signature failure
	}{
		{name: "good credential", h: hdr("Bearer c0rrect-horse"), body: body, keys: keys, now: now},
		{name: "scheme in any case, spaces trimmed", h: hdr("  bearer   c0rrect-horse "), body: body, keys: keys, now: now},
		{name: "tampered body (Cin7 Core signs none)", h: hdr("Bearer c0rrect-horse"), body: []byte(`{"SaleID":"` + otherID + `","EventType":"Sale/Voided"}`), keys: keys, now: now},
		{name: "a year later (no replay window)", h: hdr("Bearer c0rrect-horse"), body: body, keys: keys, now: now.AddDate(1, 0, 0)},
		{name: "wrong credential", h: hdr("Bearer c0rrect-horsf"), body: body, keys: keys, now: now, wantErr: connectors.ErrWebhookSignature},
		{name: "credential prefix", h: hdr("Bearer c0rrect"), body: body, keys: keys, now: now, wantErr: connectors.ErrWebhookSignature},
		{name: "missing header", h: http.Header{}, body: body, keys: keys, now: now, wantErr: connectors.ErrWebhookSignature},
		{name: "two headers", h: hdr("Bearer c0rrect-horse", "Bearer c0rrect-horse"), body: body, keys: keys, now: now, wantErr: connectors.ErrWebhookSignature},
		{name: "basic instead of bearer", h: hdr("Basic YzBycmVjdC1ob3JzZTo="), body: body, keys: keys, now: now, wantErr: connectors.ErrWebhookSignature},
		{name: "scheme without credential", h: hdr("Bearer"), body: body, keys: keys, now: now, wantErr: connectors.ErrWebhookSignature},
		{name: "credential without scheme", h: hdr("c0rrect-horse"), body: body, keys: keys, now: now, wantErr: connectors.ErrWebhookSignature},
		{name: "key missing", h: hdr("Bearer c0rrect-horse"), body: body, keys: map[string][]byte{"accountId": []byte("x")}, now: now, missing: true},
		{name: "key empty", h: hdr("Bearer "), body: body, keys: map[string][]byte{connectors.WebhookKeyCredential: {}}, now: now, missing: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := cin7core.Webhooks.Verify(tc.h, tc.body, tc.keys, tc.now)
			switch {
			case tc.missing:
				if err == nil || errors.Is(err, connectors.ErrWebhookSignature) || !strings.Contains(err.Error(), connectors.WebhookKeyCredential) ||
					connectors.KindOf(err) != connectors.KindSecretKeyMissing {
					t.Errorf("Verify = %v, want a SecretKeyMissing error naming %q", err, connectors.WebhookKeyCredential)
				}
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("Verify = %v, want %v", err, tc.wantErr)
				}
				if err != nil && strings.Contains(err.Error(), "c0rrect") {
					t.Errorf("the error shows the credential: %v", err)
				}
			case err != nil:
				t.Errorf("Verify = %v, want nil", err)
			}
		})
	}
}

type ev struct {
	kind    model.Kind
	id      string
	deleted bool
}

func events(evs []connectors.WebhookEvent) []ev {
	var out []ev
	for _, e := range evs {
		out = append(out, ev{e.Entity, e.ID, e.Deleted})
	}
	return out
}

// TestWebhookParse: every event type the connector maps, the ones it
// skips, and hostile bodies.
func TestWebhookParse(t *testing.T) {
	sale := func(typ string) string {
		return `{"SaleID":"` + saleID + `","SaleOrderNumber":"SO-00042","EventType":"` + typ + `"}`
	}
	so := ev{model.KindSalesOrder, saleID, false}
	cn := ev{model.KindCreditNote, saleID, false}
	type tc struct {
		name   string
		header string // EventTypeHeader
		body   string
		want   []ev
		err    bool
	}
	cases := []tc{
		{name: "Sale/Voided deletes", body: sale("Sale/Voided"), want: []ev{{model.KindSalesOrder, saleID, true}, cn}},
		{name: "Sale/Undo reads the credit note too", body: sale("Sale/Undo"), want: []ev{so, cn}},
		{name: "Sale/CreditNoteAuthorised", body: sale("Sale/CreditNoteAuthorised"), want: []ev{so, cn}},
		{name: "invoice event names the sale task", body: `{"SaleTaskID":"` + saleID + `","SaleOrderNumber":"SO-1","EventType":"Sale/InvoiceAuthorised","SaleRepEmail":"a@b.c"}`, want: []ev{so}},
		{name: "tracking event names the sale task", body: `{"SaleTaskID":"` + saleID + `","EventType":"Sale/ShipmentTrackingNumberChanged"}`, want: []ev{so}},
		{name: "SaleID wins over SaleTaskID", body: `{"SaleID":"` + saleID + `","SaleTaskID":"` + otherID + `","EventType":"Sale/Created"}`, want: []ev{so}},
		{name: "Customer/Updated", body: `{"CustomerDetailsList":[{"ID":"` + otherID + `","Name":"Acme"}],"EventType":"Customer/Updated"}`, want: []ev{{model.KindCustomer, otherID, false}}},
		{name: "Customer/Updated with two", body: `{"CustomerDetailsList":[{"ID":"` + otherID + `"},{"ID":"` + saleID + `"},{"ID":"` + otherID + `"}],"EventType":"Customer/Updated"}`,
			want: []ev{{model.KindCustomer, otherID, false}, {model.KindCustomer, saleID, false}}},
		{name: "Customer/Updated by CustomerID", body: `{"CustomerID":"` + otherID + `","EventType":"Customer/Updated"}`, want: []ev{{model.KindCustomer, otherID, false}}},
		{name: "Supplier/Updated", body: `{"SupplierDetailsList":[{"ID":"` + otherID + `"}],"EventType":"Supplier/Updated"}`, want: []ev{{model.KindSupplier, otherID, false}}},
		{name: "Product/Updated", body: `{"ProductID":"` + productID + `","EventType":"Product/Updated"}`, want: []ev{{model.KindProduct, productID, false}}},
		{name: "Product/Updated by ID", body: `{"ID":"` + productID + `","EventType":"Product/Updated"}`, want: []ev{{model.KindProduct, productID, false}}},
		{name: "stock rows (bare array)", body: `[{"ID":"` + productID + `","SKU":"A","Location":"Main","Available":3},{"ID":"` + productID + `","Location":"Back"},{"ID":"` + otherID + `"}]`,
			want: []ev{{model.KindStockLevel, productID, false}, {model.KindStockLevel, otherID, false}}},
		{name: "stock rows with the type header", header: "Stock/AvailableStockLevelChanged", body: `[{"ID":"` + productID + `"}]`, want: []ev{{model.KindStockLevel, productID, false}}},
		{name: "an array under another type's header", header: "Customer/Updated", body: `[{"ID":"` + productID + `"}]`},
		{name: "no EventType: the header names the type", header: "Sale/Voided", body: `{"SaleID":"` + saleID + `"}`, want: []ev{{model.KindSalesOrder, saleID, true}, cn}},
		{name: "body type wins over the header", header: "Sale/Voided", body: sale("Sale/OrderAuthorised"), want: []ev{so}},
		{name: "no type at all", body: `{"SaleID":"` + saleID + `"}`},
		{name: "purchase (no such stream)", body: `{"TaskID":"` + saleID + `","PurchaseOrderNumber":"PO-1","EventType":"Purchase/OrderAuthorised"}`},
		{name: "lead", body: `{"ID":"` + saleID + `","EventType":"Lead/Updated"}`},
		{name: "task", body: `{"ID":"` + saleID + `","EventType":"Task/Overdue"}`},
		{name: "unknown type", body: `{"SaleID":"` + saleID + `","EventType":"Sale/Exploded"}`},
		{name: "empty id", body: `{"SaleID":"","EventType":"Sale/Created"}`},
		{name: "id with a newline", body: `{"SaleID":"a\nb","EventType":"Sale/Created"}`},
		{name: "id too long", body: `{"SaleID":"` + strings.Repeat("a", 200) + `","EventType":"Sale/Created"}`},
		{name: "id of the wrong type", body: `{"SaleID":42,"EventType":"Sale/Created"}`, err: true},
		{name: "garbage", body: `{"SaleID":`, err: true},
		{name: "not JSON", body: `<xml/>`, err: true},
		{name: "empty", body: ``, err: true},
		{name: "a string", body: `"Sale/Voided"`, err: true},
		{name: "array of garbage", body: `[1,2,3]`, err: true},
	}
	for _, typ := range []string{"Sale/Created", "Sale/QuoteAuthorised", "Sale/OrderAuthorised", "Sale/Backordered", "Sale/ShipmentAuthorised",
		"Sale/InvoiceAuthorised", "Sale/PickAuthorised", "Sale/PackAuthorised", "Sale/PartialPaymentReceived", "Sale/FullPaymentReceived",
		"Sale/AttachmentAdded", "Sale/AdditionalAttributesChanged", "Sale/ShipmentTrackingNumberChanged"} {
		cases = append(cases, tc{name: typ, body: sale(typ), want: []ev{so}})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			if c.header != "" {
				h.Set(cin7core.EventTypeHeader, c.header)
			}
			got, err := cin7core.Webhooks.Parse(h, []byte(c.body))
			if c.err {
				if err == nil {
					t.Errorf("Parse = %v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if g := events(got); !slices.Equal(g, c.want) {
				t.Errorf("Parse = %v, want %v", g, c.want)
			}
			for _, e := range got {
				if e.Type == "" || !slices.Contains(cin7core.EventTypes, e.Type) {
					t.Errorf("event type %q", e.Type)
				}
				if !e.At.IsZero() || e.Tenant != "" {
					t.Errorf("At %v Tenant %q: Cin7 Core sends neither", e.At, e.Tenant)
				}
			}
		})
	}
}

// TestWebhookParseHugeArrays: a stock event naming very many products is
// parsed in bounded work into at most 20000 distinct events; repeats cost
// nothing.
func TestWebhookParseHugeArrays(t *testing.T) {
	var b strings.Builder
	b.WriteString("[")
	for i := range 30000 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"ID":"p-%d","Location":"Main"}`, i)
	}
	b.WriteString("]")
	start := time.Now()
	got, err := cin7core.Webhooks.Parse(http.Header{}, []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 20000 {
		t.Errorf("%d events, want the cap of 20000", len(got))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("parsing took %v", d)
	}
	same := "[" + strings.Repeat(`{"ID":"`+productID+`"},`, 50000) + `{"ID":"` + productID + `"}]`
	got, err = cin7core.Webhooks.Parse(http.Header{}, []byte(same))
	if err != nil || len(got) != 1 {
		t.Errorf("50001 rows of one product: %d events, %v", len(got), err)
	}
	list := `{"EventType":"Customer/Updated","CustomerDetailsList":[` + strings.TrimSuffix(strings.Repeat(`{"ID":"`+otherID+`"},`, 100000), ",") + `]}`
	got, err = cin7core.Webhooks.Parse(http.Header{}, []byte(list))
	if err != nil || len(got) != 1 {
		t.Errorf("a list of 100000 repeats: %d events, %v", len(got), err)
	}
}

// TestEventTypesFor: the webhooks the registrar subscribes to per stream.
func TestEventTypesFor(t *testing.T) {
	for _, tc := range []struct {
		entities []model.Kind
		want     []string
	}{
		{nil, []string{}},
		{[]model.Kind{model.KindTaxRate, model.KindWarehouse}, []string{}},
		{[]model.Kind{model.KindCustomer}, []string{"Customer/Updated"}},
		{[]model.Kind{model.KindProduct, model.KindStockLevel, model.KindSupplier}, []string{"Product/Updated", "Stock/AvailableStockLevelChanged", "Supplier/Updated"}},
		{[]model.Kind{model.KindCreditNote}, []string{"Sale/CreditNoteAuthorised", "Sale/Undo", "Sale/Voided"}},
	} {
		if got := cin7core.EventTypesFor(tc.entities); !slices.Equal(got, tc.want) {
			t.Errorf("EventTypesFor(%v) = %v, want %v", tc.entities, got, tc.want)
		}
	}
	sales := cin7core.EventTypesFor([]model.Kind{model.KindSalesOrder})
	if len(sales) != 14 || slices.Contains(sales, "Sale/AttachmentAdded") || slices.Contains(sales, "Sale/AdditionalAttributesChanged") || !slices.Contains(sales, "Sale/Voided") {
		t.Errorf("sales subscribe to %v", sales)
	}
	for _, typ := range cin7core.EventTypesFor([]model.Kind{model.KindSalesOrder, model.KindCreditNote, model.KindCustomer, model.KindSupplier, model.KindProduct, model.KindStockLevel}) {
		if !slices.Contains(cin7core.EventTypes, typ) {
			t.Errorf("%s is not a Cin7 Core type", typ)
		}
	}
}

// FuzzParse: no input panics, and every event names a stream of the
// connector with a printable, bounded id.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"SaleID":"` + saleID + `","EventType":"Sale/Voided"}`,
		`{"CustomerDetailsList":[{"ID":"a"}],"EventType":"Customer/Updated"}`,
		`[{"ID":"p","Location":"x"}]`,
		`{"ProductID":"p","EventType":"Product/Updated"}`,
		`[`, `{}`, `null`, `[null]`, `{"EventType":null}`,
	} {
		f.Add(s, "")
		f.Add(s, "Sale/Voided")
	}
	streams := map[model.Kind]bool{model.KindSalesOrder: true, model.KindCreditNote: true, model.KindCustomer: true,
		model.KindSupplier: true, model.KindProduct: true, model.KindStockLevel: true}
	f.Fuzz(func(t *testing.T, body, header string) {
		h := http.Header{}
		h.Set(cin7core.EventTypeHeader, header)
		got, err := cin7core.Webhooks.Parse(h, []byte(body))
		if err != nil {
			return
		}
		for _, e := range got {
			if !streams[e.Entity] || e.ID == "" || len(e.ID) > 128 || strings.ContainsAny(e.ID, " \n\r\t") {
				t.Errorf("event %+v", e)
			}
			if e.Deleted && (e.Entity != model.KindSalesOrder || e.Type != "Sale/Voided") {
				t.Errorf("a delete that is not Sale/Voided: %+v", e)
			}
		}
	})
}
