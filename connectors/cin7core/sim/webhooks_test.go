package sim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/cin7core/sim"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
)

// receiver is a webhook endpoint that records what it receives and answers
// with status (200 unless set).
type receiver struct {
	mu     sync.Mutex
	got    []received
	status int
	srv    *httptest.Server
}

type received struct {
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{status: http.StatusOK}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{req.Header.Clone(), b})
		status := r.status
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) setStatus(s int) {
	r.mu.Lock()
	r.status = s
	r.mu.Unlock()
}

func (r *receiver) all() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// waitFor polls cond for up to 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// call sends one authenticated request to the simulator's webhook API.
func call(t *testing.T, h http.Handler, method, path string, body any) (int, []sim.Webhook, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	r := httptest.NewRequest(method, path, rd)
	r.Header.Set("api-auth-accountid", sim.DefaultAccountID)
	r.Header.Set("api-auth-applicationkey", sim.DefaultApplicationKey)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var out struct{ Webhooks []sim.Webhook }
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	return w.Code, out.Webhooks, w.Body.String()
}

// sleeps records the vendor waits of a simulator and returns at once.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.d)
}

func newWebhookSim(t *testing.T, o sim.Options) (*sim.Server, *sleeps) {
	t.Helper()
	sl := &sleeps{}
	if o.Dataset.Products == 0 {
		o.Dataset = simkit.Options{Seed: 5, Products: 20, Customers: 10, Orders: 20}
	}
	o.WebhookSleep = sl.sleep
	if o.CallsPerMinute == 0 {
		o.CallsPerMinute = -1
	}
	s := sim.New(o)
	t.Cleanup(s.Close)
	return s, sl
}

func bearerHook(typ, url string) map[string]any {
	return map[string]any{"Type": typ, "ExternalURL": url, "IsActive": true, "ExternalAuthorizationType": "bearerauth",
		"ExternalBearerToken": "s3cret", "ExternalHeaders": []map[string]string{{"Key": "X-Extra", "Value": typ}}}
}

// TestWebhookAPI: the endpoints' answers, validation, the limit of 5 per
// type, PUT and DELETE, the API's authentication, and the 403 of an
// account without the Automation module.
func TestWebhookAPI(t *testing.T) {
	s, _ := newWebhookSim(t, sim.Options{})
	const url = "https://crm.example/webhooks/cin7core/abc"
	for _, tc := range []struct {
		name   string
		body   map[string]any
		status int
		msg    string
	}{
		{"unknown type", map[string]any{"Type": "Sale/Exploded", "ExternalURL": url}, 400, "not a webhook type"},
		{"relative URL", map[string]any{"Type": "Sale/Voided", "ExternalURL": "/hook"}, 400, "ExternalURL"},
		{"bearer without token", map[string]any{"Type": "Sale/Voided", "ExternalURL": url, "ExternalAuthorizationType": "bearerauth"}, 400, "ExternalBearerToken"},
		{"unknown authorisation", map[string]any{"Type": "Sale/Voided", "ExternalURL": url, "ExternalAuthorizationType": "hmac"}, 400, "ExternalAuthorizationType"},
		{"header with a newline", map[string]any{"Type": "Sale/Voided", "ExternalURL": url, "ExternalHeaders": []map[string]string{{"Key": "X", "Value": "a\r\nb"}}}, 400, "ExternalHeaders"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := call(t, s, http.MethodPost, "/ExternalApi/v2/webhooks", tc.body)
			if code != tc.status || !strings.Contains(body, tc.msg) {
				t.Errorf("POST = %d %s, want %d with %q", code, body, tc.status, tc.msg)
			}
		})
	}
	var ids []string
	for i := range sim.MaxWebhooksPerType {
		code, hooks, body := call(t, s, http.MethodPost, "/ExternalApi/v2/webhooks", bearerHook("Customer/Updated", url+string(rune('a'+i))))
		if code != 200 || len(hooks) != 1 || hooks[0].ID == "" || !hooks[0].IsActive || hooks[0].Name == "" {
			t.Fatalf("POST %d = %d %s", i, code, body)
		}
		ids = append(ids, hooks[0].ID)
	}
	if code, _, body := call(t, s, http.MethodPost, "/ExternalApi/v2/webhooks", bearerHook("Customer/Updated", url)); code != 400 || !strings.Contains(body, "limit of 5") {
		t.Errorf("a 6th webhook of a type = %d %s, want 400 (limit of 5)", code, body)
	}
	if code, _, _ := call(t, s, http.MethodPost, "/ExternalApi/v2/webhooks", bearerHook("Supplier/Updated", url)); code != 200 {
		t.Errorf("another type = %d, want 200", code)
	}
	// A PUT that moves a webhook to a full type is refused too.
	if code, _, _ := call(t, s, http.MethodPut, "/ExternalApi/v2/webhooks", map[string]any{"ID": ids[0], "Type": "Customer/Updated", "IsActive": false}); code != 200 {
		t.Errorf("PUT keeping the type = %d", code)
	}
	code, hooks, _ := call(t, s, http.MethodGet, "/ExternalApi/v2/webhooks", nil)
	if code != 200 || len(hooks) != 6 || hooks[0].IsActive || hooks[0].ExternalBearerToken != "s3cret" || len(hooks[0].ExternalHeaders) != 1 {
		t.Fatalf("GET = %d %+v", code, hooks)
	}
	if code, _, _ := call(t, s, http.MethodPut, "/ExternalApi/v2/webhooks", map[string]any{"ID": hooks[5].ID, "Type": "Customer/Updated"}); code != 400 {
		t.Errorf("PUT to a full type = %d, want 400", code)
	}
	if code, _, _ := call(t, s, http.MethodPut, "/ExternalApi/v2/webhooks", map[string]any{"ID": "nope", "IsActive": true}); code != 400 {
		t.Errorf("PUT of an unknown id = %d, want 400", code)
	}
	if code, hooks, _ := call(t, s, http.MethodDelete, "/ExternalApi/v2/webhooks?ID="+ids[1], nil); code != 200 || len(hooks) != 0 {
		t.Errorf("DELETE = %d %v", code, hooks)
	}
	if code, _, _ := call(t, s, http.MethodDelete, "/ExternalApi/v2/webhooks?ID="+ids[1], nil); code != 400 {
		t.Errorf("DELETE again = %d, want 400", code)
	}
	if n := len(s.WebhookSubscriptions()); n != 5 {
		t.Errorf("%d webhooks left, want 5", n)
	}

	// The API's own authentication.
	r := httptest.NewRequest(http.MethodGet, "/ExternalApi/v2/webhooks", nil)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	if w.Code != http.StatusForbidden {
		t.Errorf("GET without credentials = %d, want 403", w.Code)
	}

	// An account without the Automation module.
	na, _ := newWebhookSim(t, sim.Options{NoAutomation: true})
	if code, _, body := call(t, na, http.MethodGet, "/ExternalApi/v2/webhooks", nil); code != http.StatusForbidden || !strings.Contains(body, "Automation module") {
		t.Errorf("without the module: %d %s", code, body)
	}
}

// TestWebhookEndpointsAreRateLimited: the webhook endpoints count against
// the 60 calls a minute with every other endpoint.
func TestWebhookEndpointsAreRateLimited(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s, _ := newWebhookSim(t, sim.Options{Now: func() time.Time { return now }, CallsPerMinute: 3, ServiceUnavailableEvery: -1})
	for i := range 3 {
		if code, _, _ := call(t, s, http.MethodGet, "/ExternalApi/v2/webhooks", nil); code != 200 {
			t.Fatalf("call %d = %d", i, code)
		}
	}
	if code, _, body := call(t, s, http.MethodPost, "/ExternalApi/v2/webhooks", bearerHook("Sale/Voided", "https://x.example/h")); code != http.StatusTooManyRequests || !strings.Contains(body, sim.LimitMessage) {
		t.Errorf("4th call = %d %s, want 429", code, body)
	}
	if w, body := get(t, s, "/ExternalApi/v2/product", true); w.Code != http.StatusTooManyRequests {
		t.Errorf("a read after the webhook calls is not limited: %d %v", w.Code, body)
	}
}

// TestWebhookDeliveries: each announced change reaches the active webhooks
// of its type with the webhook's authorisation and extra headers and the
// payload shape of its kind; removals and kinds Cin7 Core does not
// announce deliver nothing.
func TestWebhookDeliveries(t *testing.T) {
	s, _ := newWebhookSim(t, sim.Options{})
	rcv := newReceiver(t)
	for _, typ := range []string{"Product/Updated", "Stock/AvailableStockLevelChanged", "Customer/Updated", "Supplier/Updated",
		"Sale/Created", "Sale/Voided", "Sale/ShipmentAuthorised", "Sale/InvoiceAuthorised", "Sale/CreditNoteAuthorised", "Sale/Undo"} {
		if code, _, body := call(t, s, http.MethodPost, "/ExternalApi/v2/webhooks", bearerHook(typ, rcv.srv.URL)); code != 200 {
			t.Fatalf("POST %s = %d %s", typ, code, body)
		}
	}
	// A webhook switched off receives nothing.
	off := bearerHook("Sale/OrderAuthorised", rcv.srv.URL)
	off["IsActive"] = false
	call(t, s, http.MethodPost, "/ExternalApi/v2/webhooks", off)

	d := s.Dataset()
	var product, customer, supplier, order, invoiceOrder, creditOrder string
	d.View(func(d *simkit.Dataset) {
		product, customer, supplier = d.Products[0].ID, d.Customers[0].ID, d.Suppliers[0].ID
		order = d.Orders[0].ID
		byNumber := map[string]string{}
		for _, o := range d.Orders {
			byNumber[o.Number] = o.ID
		}
		invoiceOrder = byNumber[d.Invoices[0].OrderNumber]
		invByNumber := map[string]string{}
		for _, inv := range d.Invoices {
			invByNumber[inv.Number] = inv.OrderNumber
		}
		creditOrder = byNumber[invByNumber[d.CreditNotes[0].OrderNumber]]
	})
	type want struct {
		typ, field, id string
	}
	var wants []want
	step := func(what string, f func(), w ...want) {
		t.Helper()
		before := len(rcv.all())
		f()
		wants = append(wants, w...)
		waitFor(t, what, func() bool { return len(rcv.all()) >= before+len(w) })
	}
	step("a product edit", func() { d.TouchProduct(product) }, want{"Product/Updated", "ProductID", product}, want{"Stock/AvailableStockLevelChanged", "ID", product})
	// A product deprecated: its stock did not change, so no stock event.
	step("a product deprecated", func() { d.DeleteProduct(product) }, want{"Product/Updated", "ProductID", product})
	step("a customer edit", func() { _, _ = d.Touch(simkit.AdminCustomers, customer) }, want{"Customer/Updated", "CustomerDetailsList", customer})
	step("a supplier edit", func() { _, _ = d.Touch(simkit.AdminSuppliers, supplier) }, want{"Supplier/Updated", "SupplierDetailsList", supplier})
	step("a sale voided", func() { _, _ = d.Mark(simkit.AdminOrders, order, true, true) }, want{"Sale/Voided", "SaleID", order})
	step("an invoice edit", func() { _, _ = d.Touch(simkit.AdminInvoices, firstID(d, simkit.AdminInvoices)) }, want{"Sale/InvoiceAuthorised", "SaleTaskID", invoiceOrder})
	step("a credit note edit", func() { _, _ = d.Touch(simkit.AdminCreditNotes, firstID(d, simkit.AdminCreditNotes)) }, want{"Sale/CreditNoteAuthorised", "SaleID", creditOrder})
	// Nothing for a removal, a tax rule, or a type whose webhook is off
	// (a Placed order's edit is Sale/OrderAuthorised).
	before := len(rcv.all())
	_, _ = d.Remove(simkit.AdminSuppliers, supplier)
	_, _ = d.Touch(simkit.AdminTaxRates, firstID(d, simkit.AdminTaxRates))
	var placed string
	d.View(func(d *simkit.Dataset) {
		for _, o := range d.Orders {
			if o.Status == "Placed" && !o.Deleted {
				placed = o.ID
			}
		}
	})
	if placed != "" {
		_, _ = d.Touch(simkit.AdminOrders, placed)
	}
	step("a sale created", func() {
		d.Update(func(d *simkit.Dataset) {
			o := *d.Orders[1]
			o.ID, o.Number = "0000aaaa-0000-4000-8000-000000000001", "SO-NEW-1"
			d.Orders = append(d.Orders, &o)
			d.Notify(simkit.AdminOrders, o.ID, simkit.ChangeCreated)
		})
	}, want{"Sale/Created", "SaleID", "0000aaaa-0000-4000-8000-000000000001"})
	got := rcv.all()
	if len(got) != before+1 {
		t.Errorf("removal, tax rule and a switched-off type delivered %d, want none", len(got)-before-1)
	}
	if len(got) != len(wants) {
		t.Fatalf("%d deliveries, want %d", len(got), len(wants))
	}
	for i, w := range wants {
		g := got[i]
		if a := g.header.Get("Authorization"); a != "Bearer s3cret" {
			t.Errorf("delivery %d: Authorization %q", i, a)
		}
		if x := g.header.Get("X-Extra"); x != w.typ {
			t.Errorf("delivery %d: extra header %q, want %q", i, x, w.typ)
		}
		if w.typ == "Stock/AvailableStockLevelChanged" {
			var rows []map[string]any
			if err := json.Unmarshal(g.body, &rows); err != nil || len(rows) == 0 || rows[0]["ID"] != w.id || rows[0]["Location"] == "" {
				t.Errorf("stock delivery %s: %v", g.body, err)
			}
			continue
		}
		var obj map[string]any
		if err := json.Unmarshal(g.body, &obj); err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
		if obj["EventType"] != w.typ {
			t.Errorf("delivery %d: EventType %v, want %s", i, obj["EventType"], w.typ)
		}
		id := obj[w.field]
		if l, ok := id.([]any); ok && len(l) == 1 {
			id = l[0].(map[string]any)["ID"]
		}
		if id != w.id {
			t.Errorf("delivery %d (%s): %s = %v, want %s", i, w.typ, w.field, obj[w.field], w.id)
		}
	}
}

func firstID(d *simkit.Dataset, kind string) string {
	refs, err := d.Refs(kind)
	if err != nil || len(refs) == 0 {
		return ""
	}
	return refs[0].ID
}

// TestWebhookRetriesThenDisables: a delivery that fails is repeated 5, 10,
// 15, 20 and 25 minutes later; after the sixth failure the URL's webhooks
// are silently IsActive=false and deliver nothing; a PUT with IsActive
// switches one back on.
func TestWebhookRetriesThenDisables(t *testing.T) {
	s, sl := newWebhookSim(t, sim.Options{})
	rcv := newReceiver(t)
	rcv.setStatus(http.StatusInternalServerError)
	_, hooks, _ := call(t, s, http.MethodPost, "/ExternalApi/v2/webhooks", bearerHook("Customer/Updated", rcv.srv.URL))
	call(t, s, http.MethodPost, "/ExternalApi/v2/webhooks", bearerHook("Supplier/Updated", rcv.srv.URL))
	d := s.Dataset()
	_, _ = d.Touch(simkit.AdminCustomers, firstID(d, simkit.AdminCustomers))
	lane := s.WebhookDeliverer(rcv.srv.URL)
	waitFor(t, "the webhook to be disabled", lane.Disabled)
	if n := len(rcv.all()); n != 6 {
		t.Errorf("%d attempts, want 6", n)
	}
	wantWaits := []time.Duration{5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 20 * time.Minute, 25 * time.Minute}
	if got := sl.all(); !slices.Equal(got, wantWaits) {
		t.Errorf("waits %v, want %v", got, wantWaits)
	}
	for _, h := range s.WebhookSubscriptions() {
		if h.IsActive {
			t.Errorf("%s still active after six failures", h.Type)
		}
	}
	// Disabled: a change delivers nothing.
	rcv.setStatus(http.StatusOK)
	_, _ = d.Touch(simkit.AdminCustomers, firstID(d, simkit.AdminCustomers))
	time.Sleep(50 * time.Millisecond)
	if n := len(rcv.all()); n != 6 {
		t.Errorf("a disabled webhook delivered (%d requests)", n)
	}
	// Switched back on by PUT.
	if code, got, _ := call(t, s, http.MethodPut, "/ExternalApi/v2/webhooks", map[string]any{"ID": hooks[0].ID, "IsActive": true}); code != 200 || !got[0].IsActive {
		t.Fatalf("PUT IsActive = %d %+v", code, got)
	}
	if lane.Disabled() {
		t.Fatal("the deliverer is still disabled")
	}
	_, _ = d.Touch(simkit.AdminCustomers, firstID(d, simkit.AdminCustomers))
	_, _ = d.Touch(simkit.AdminSuppliers, firstID(d, simkit.AdminSuppliers)) // its webhook is still off
	waitFor(t, "a delivery after re-enabling", func() bool { return len(rcv.all()) == 7 })
	time.Sleep(50 * time.Millisecond)
	if n := len(rcv.all()); n != 7 {
		t.Errorf("%d requests, want 7 (the supplier webhook is still off)", n)
	}
	if st := lane.Stats(); st.Delivered.Load() != 1 || st.Failed.Load() != 1 || st.Attempts.Load() != 7 {
		t.Errorf("stats: delivered %d failed %d attempts %d", st.Delivered.Load(), st.Failed.Load(), st.Attempts.Load())
	}

	// DisableWebhooks does the same on demand (for erpsim and tests).
	if n := s.DisableWebhooks(rcv.srv.URL); n != 1 || !lane.Disabled() {
		t.Errorf("DisableWebhooks disabled %d, deliverer disabled %v", n, lane.Disabled())
	}
}

// TestWebhookDelay: with a WebhookDelay, the first attempt waits it (on
// the vendor's clock), less the moment between the change and its
// delivery's turn.
func TestWebhookDelay(t *testing.T) {
	s, sl := newWebhookSim(t, sim.Options{WebhookDelay: time.Minute})
	rcv := newReceiver(t)
	call(t, s, http.MethodPost, "/ExternalApi/v2/webhooks", bearerHook("Customer/Updated", rcv.srv.URL))
	_, _ = s.Dataset().Touch(simkit.AdminCustomers, firstID(s.Dataset(), simkit.AdminCustomers))
	waitFor(t, "the delivery", func() bool { return len(rcv.all()) == 1 })
	if got := sl.all(); len(got) == 0 || got[0] > time.Minute || got[0] < time.Minute-time.Second {
		t.Errorf("waits %v, want the minute first", got)
	}
}
