package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/simkit"
)

// call makes one API request and decodes its JSON answer into out.
func call(t *testing.T, srv *httptest.Server, key, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, srv.URL+BasePath+path, rd)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

// TestWebhookRegistrationAPI serves Katana's /webhooks as the documents
// describe it, behind the API's key and rate limit.
func TestWebhookRegistrationAPI(t *testing.T) {
	s, srv, _ := newSim(t, Options{RateLimit: -1})
	t.Cleanup(s.Close)
	key := s.Credentials()["apiKey"]
	events := []string{"product.updated", "sales_order.deleted"}
	if code := call(t, srv, "", http.MethodPost, "/webhooks", map[string]any{"url": "https://a.example/x", "subscribed_events": events}, nil); code != 401 {
		t.Errorf("create without the key: %d, want 401", code)
	}
	for _, bad := range []map[string]any{
		{"url": "http://a.example/x", "subscribed_events": events},
		{"url": "https://a.example/x", "subscribed_events": []string{}},
		{"url": "https://a.example/x"},
		{"subscribed_events": events},
		{"url": "https://a.example/x", "subscribed_events": []string{"customer.created"}},
		{"url": "https://a.example/x", "subscribed_events": events, "secret": "mine"},
	} {
		var e struct {
			Name    string
			Details []map[string]any
		}
		if code := call(t, srv, key, http.MethodPost, "/webhooks", bad, &e); code != 422 || e.Name != "UnprocessableEntityError" || len(e.Details) == 0 {
			t.Errorf("create %v: %d %+v, want 422 with details", bad, code, e)
		}
	}
	var a, b map[string]any
	if code := call(t, srv, key, http.MethodPost, "/webhooks", map[string]any{"url": "https://a.example/x", "subscribed_events": events, "description": "d"}, &a); code != 200 {
		t.Fatalf("create: %d", code)
	}
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(a["token"].(string)) || a["enabled"] != true || a["url"] != "https://a.example/x" {
		t.Errorf("created %v: want a 16-hex token, enabled", a)
	}
	call(t, srv, key, http.MethodPost, "/webhooks", map[string]any{"url": "https://b.example/y", "subscribed_events": events, "enabled": false}, &b)
	if b["enabled"] != false || b["token"] == a["token"] {
		t.Errorf("second webhook %v", b)
	}
	all := list(t, s, srv, "/webhooks", key)
	if len(all.data) != 2 || all.data[0]["id"] != b["id"] || all.pag["total_records"] != "2" {
		t.Errorf("list %v %v: want both, newest first", all.data, all.pag)
	}
	if all.data[1]["token"] != a["token"] {
		t.Errorf("the list shows token %v, want the creation's (as Katana's examples show)", all.data[1]["token"])
	}
	for q, want := range map[string]int{"?url=https://a.example/x": 1, "?url=https://a.example": 0, "?enabled=false": 1, "?ids=" + strconv.Itoa(int(a["id"].(float64))): 1} {
		if got := list(t, s, srv, "/webhooks"+q, key); len(got.data) != want {
			t.Errorf("list%s: %d, want %d", q, len(got.data), want)
		}
	}
	id := strconv.Itoa(int(a["id"].(float64)))
	var u map[string]any
	if code := call(t, srv, key, http.MethodPatch, "/webhooks/"+id, map[string]any{"enabled": false, "subscribed_events": []string{"variant.deleted"}}, &u); code != 200 || u["enabled"] != false || u["token"] != a["token"] {
		t.Errorf("patch: %d %v", code, u)
	}
	if subs := s.WebhookSubscriptions(); subs[0].Enabled || !slices.Equal(subs[0].Events, []string{"variant.deleted"}) || !subs[0].Deliverer.Disabled() {
		t.Errorf("after the patch: %+v", subs[0])
	}
	if code := call(t, srv, key, http.MethodPatch, "/webhooks/"+id, map[string]any{"subscribed_events": []string{}}, nil); code != 422 {
		t.Errorf("patch with no events: %d, want 422", code)
	}
	if code := call(t, srv, key, http.MethodDelete, "/webhooks/"+id, nil, nil); code != 204 {
		t.Errorf("delete: %d, want 204", code)
	}
	for _, m := range []string{http.MethodDelete, http.MethodGet, http.MethodPatch} {
		if code := call(t, srv, key, m, "/webhooks/"+id, map[string]any{"enabled": true}, nil); code != 404 {
			t.Errorf("%s of a deleted webhook: %d, want 404", m, code)
		}
	}
	if code := call(t, srv, key, http.MethodPost, "/products", map[string]any{}, nil); code != 405 {
		t.Errorf("POST /products: %d, want 405", code)
	}

	hidden, hsrv, _ := newSim(t, Options{RateLimit: -1, HideWebhookTokens: true})
	t.Cleanup(hidden.Close)
	hkey := hidden.Credentials()["apiKey"]
	var c map[string]any
	call(t, hsrv, hkey, http.MethodPost, "/webhooks", map[string]any{"url": "https://a.example/x", "subscribed_events": events}, &c)
	if c["token"] == nil || c["token"] == "" {
		t.Errorf("create with hidden tokens: %v, want the token", c)
	}
	if got := list(t, hidden, hsrv, "/webhooks", hkey); len(got.data) != 1 || got.data[0]["token"] != nil {
		t.Errorf("list with hidden tokens: %v", got.data)
	}
}

// TestWebhookEndpointsAreRateLimited counts registration calls in the
// API's limit.
func TestWebhookEndpointsAreRateLimited(t *testing.T) {
	s, srv, _ := newSim(t, Options{RateLimit: 3})
	t.Cleanup(s.Close)
	key := s.Credentials()["apiKey"]
	codes := []int{}
	for range 4 {
		codes = append(codes, call(t, srv, key, http.MethodGet, "/webhooks", nil, nil))
	}
	if !slices.Equal(codes, []int{200, 200, 200, 429}) {
		t.Errorf("codes %v, want the fourth throttled", codes)
	}
}

// receiver records deliveries and answers with the codes queued in fail
// (then 200).
type receiver struct {
	mu   sync.Mutex
	got  []received
	fail []int
	srv  *httptest.Server
}

type received struct {
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{req.Header.Clone(), b})
		code := 200
		if len(r.fail) > 0 {
			code, r.fail = r.fail[0], r.fail[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// wait returns the deliveries once there are n, failing after a while.
func (r *receiver) wait(t *testing.T, n int) []received {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		got := slices.Clone(r.got)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries, want %d", len(got), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *receiver) count() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.got) }

type sent struct {
	ResourceType string `json:"resource_type"`
	Action       string
	WebhookID    int `json:"webhook_id"`
	Object       struct{ ID, Status, Href string }
}

func decodeSent(t *testing.T, rc received, token string) sent {
	t.Helper()
	if sig := rc.header.Get("X-Sha2-Signature"); sig != SignBody(token, rc.body) {
		t.Errorf("signature %q does not sign the body with the token", sig)
	}
	if rc.header.Get(deliveryHeader) != "" {
		t.Errorf("the simulator's own header reached the receiver")
	}
	var p sent
	if err := json.Unmarshal(rc.body, &p); err != nil {
		t.Fatalf("body %s: %v", rc.body, err)
	}
	return p
}

// TestWebhookDeliveries sends Katana's payload, signed, for each change
// Katana announces, to the webhooks subscribed to its event.
func TestWebhookDeliveries(t *testing.T) {
	var mu sync.Mutex
	var slept []time.Duration
	s, srv, _ := newSim(t, Options{RateLimit: -1, AllowHTTPWebhooks: true, WebhookSleep: func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		slept = append(slept, d)
		mu.Unlock()
		return ctx.Err()
	}})
	t.Cleanup(s.Close)
	key := s.Credentials()["apiKey"]
	all := newReceiver(t)
	orders := newReceiver(t)
	var a, o map[string]any
	call(t, srv, key, http.MethodPost, "/webhooks", map[string]any{"url": all.srv.URL, "subscribed_events": []string{
		"product.created", "product.updated", "product.deleted", "variant.created", "variant.deleted", "material.updated",
		"sales_order.updated", "sales_order.deleted"}}, &a)
	call(t, srv, key, http.MethodPost, "/webhooks", map[string]any{"url": orders.srv.URL, "subscribed_events": []string{"sales_order.updated"}}, &o)
	token, hookID := a["token"].(string), int(a["id"].(float64))
	d := s.Dataset()
	var p0, p1, p2, p3 simkit.Product
	var order simkit.Document
	var sup simkit.Supplier
	d.View(func(d *simkit.Dataset) {
		p0, p1, p2, p3 = *d.Products[0], *d.Products[1], *d.Products[2], *d.Products[3]
		order, sup = *d.Orders[0], *d.Suppliers[0]
	})

	type want struct {
		action string
		id     int
		href   bool
	}
	for _, step := range []struct {
		name   string
		change func()
		want   []want
	}{
		{"edit a product", func() { d.TouchProduct(p0.ID) }, []want{{"product.updated", p0.Seq, true}}},
		{"edit a customer (no Katana event)", func() { d.TouchCustomers(1) }, nil},
		{"add a product", func() { p := d.AddProduct(); p0 = p }, []want{{"product.created", -1, true}, {"variant.created", -2, true}}},
		{"soft-delete a product", func() { d.DeleteProduct(p1.ID) }, []want{{"product.deleted", p1.Seq, false}, {"variant.deleted", VariantID(p1.Seq), false}}},
		{"remove a product (no seq in the change)", func() { d.RemoveProducts(2, 1) }, []want{{"product.deleted", p2.Seq, false}, {"variant.deleted", VariantID(p2.Seq), false}}},
		{"delete quietly", func() { s.DeleteQuietly(p3.ID) }, []want{{"product.deleted", p3.Seq, false}, {"variant.deleted", VariantID(p3.Seq), false}}},
		{"edit a material", func() { _, _ = d.Touch(simkit.AdminSuppliers, sup.ID) }, []want{{"material.updated", MaterialID(sup.Seq), true}}},
		{"edit an order", func() { _, _ = d.Touch(simkit.AdminOrders, order.ID) }, []want{{"sales_order.updated", order.Seq, true}}},
		{"delete an order", func() { _, _ = d.Mark(simkit.AdminOrders, order.ID, true, true) }, []want{{"sales_order.deleted", order.Seq, false}}},
	} {
		before := all.count()
		step.change()
		if len(step.want) == 0 {
			time.Sleep(50 * time.Millisecond)
			if n := all.count(); n != before {
				t.Errorf("%s: %d deliveries, want none", step.name, n-before)
			}
			continue
		}
		got := all.wait(t, before+len(step.want))[before:]
		for i, w := range step.want {
			p := decodeSent(t, got[i], token)
			id := w.id
			switch id {
			case -1: // the added product
				id = p0.Seq
			case -2:
				id = VariantID(p0.Seq)
			}
			if p.Action != w.action || p.Object.ID != strconv.Itoa(id) || p.WebhookID != hookID || !strings.HasPrefix(w.action, p.ResourceType+".") {
				t.Errorf("%s: delivery %d is %+v, want %s of %d", step.name, i, p, w.action, id)
			}
			if (p.Object.Href != "") != w.href {
				t.Errorf("%s: href %q (want one: %v)", step.name, p.Object.Href, w.href)
			}
			if w.action[:11] == "sales_order" && p.Object.Status == "" {
				t.Errorf("%s: no status on a sales order", step.name)
			}
		}
	}
	if got := orders.wait(t, 1); len(got) != 1 || decodeSent(t, got[0], o["token"].(string)).Action != "sales_order.updated" {
		t.Errorf("the sales_order.updated webhook got %d deliveries", len(got))
	}

	// A receiver that fails: three repeats, 30 s, 2 min and 15 min apart,
	// numbered in X-Katana-Retry-Num; the webhook stays enabled.
	all.mu.Lock()
	all.fail = []int{500, 503, 500, 200}
	all.mu.Unlock()
	before := all.count()
	d.TouchProduct(p0.ID)
	got := all.wait(t, before+4)[before:]
	var nums []string
	for _, rc := range got {
		nums = append(nums, rc.header.Get("X-Katana-Retry-Num"))
	}
	if !slices.Equal(nums, []string{"", "1", "2", "3"}) || !bytes.Equal(got[0].body, got[3].body) {
		t.Errorf("retry numbers %v, want none then 1, 2, 3 of the same body", nums)
	}
	mu.Lock()
	if !slices.Equal(slept, []time.Duration{30 * time.Second, 2 * time.Minute, 15 * time.Minute}) {
		t.Errorf("waits %v", slept)
	}
	mu.Unlock()
	all.mu.Lock()
	all.fail = []int{500, 500, 500, 500}
	all.mu.Unlock()
	before = all.count()
	d.TouchProduct(p0.ID)
	all.wait(t, before+4)
	sub := s.WebhookSubscriptions()[0]
	deadline := time.Now().Add(5 * time.Second)
	for sub.Deliverer.Stats().Failed.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := sub.Deliverer.Stats(); st.Failed.Load() != 1 || sub.Deliverer.Disabled() {
		t.Errorf("after four failed attempts: failed %d, disabled %v (Katana documents no disabling)", st.Failed.Load(), sub.Deliverer.Disabled())
	}

	// Switched off (as a Katana user can): nothing is delivered.
	if !s.DisableWebhook(hookID) || s.DisableWebhook(999) {
		t.Fatal("DisableWebhook")
	}
	before = all.count()
	d.TouchProduct(p0.ID)
	time.Sleep(50 * time.Millisecond)
	if n := all.count(); n != before {
		t.Errorf("a disabled webhook delivered %d", n-before)
	}
	s.Close()
	s.Close()
}
