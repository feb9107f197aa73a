package sim_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/connectors/unleashed/sim"
)

func call(t *testing.T, h http.Handler, method, target, body string, mutate func(r *http.Request)) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, target, rd)
	r.Header.Set("api-auth-id", sim.DefaultAPIID)
	r.Header.Set("api-auth-signature", sim.Sign(r.URL.RawQuery, sim.DefaultAPIKey))
	r.Header.Set("client-type", "acme/crmsync")
	r.Header.Set("Content-Type", "application/json")
	if mutate != nil {
		mutate(r)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func create(url string, events ...string) string {
	b, _ := json.Marshal(map[string]any{"description": "test", "notificationUrl": url, "eventTypes": events})
	return string(b)
}

type subDoc struct {
	SubscriptionID, NotificationURL, Status, SignatureKey string
	EventTypes                                            []string
}

func TestWebhookSubscriptionAPI(t *testing.T) {
	s := sim.New(sim.Options{Dataset: simkit.Options{Seed: 1, Products: 5, Customers: 3, Orders: 2}, MaxWebhookSubscriptions: 2, WebhookSleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() }})
	t.Cleanup(s.CloseWebhooks)
	tests := []struct {
		name, method, target, body string
		mutate                     func(r *http.Request)
		want                       int
	}{
		{"wrong signature", http.MethodGet, "/webhooks/subscriptions", "", func(r *http.Request) { r.Header.Set("api-auth-signature", "AAAA") }, http.StatusForbidden},
		{"no client-type", http.MethodPost, "/webhooks/subscriptions", create("https://h.example/a", "product.updated"), func(r *http.Request) { r.Header.Del("client-type") }, http.StatusBadRequest},
		{"unknown event type", http.MethodPost, "/webhooks/subscriptions", create("https://h.example/a", "salesorder.created"), nil, http.StatusBadRequest},
		{"no event types", http.MethodPost, "/webhooks/subscriptions", create("https://h.example/a"), nil, http.StatusBadRequest},
		{"not a URL", http.MethodPost, "/webhooks/subscriptions", create("hook", "product.updated"), nil, http.StatusBadRequest},
		{"ftp URL", http.MethodPost, "/webhooks/subscriptions", create("ftp://h.example/a", "product.updated"), nil, http.StatusBadRequest},
		{"not JSON", http.MethodPost, "/webhooks/subscriptions", "{", nil, http.StatusBadRequest},
		{"PUT", http.MethodPut, "/webhooks/subscriptions", create("https://h.example/a", "product.updated"), nil, http.StatusMethodNotAllowed},
		{"delete unknown", http.MethodDelete, "/webhooks/subscriptions/00000000-0000-4000-8000-000000000009", "", nil, http.StatusNotFound},
		{"get unknown", http.MethodGet, "/webhooks/subscriptions/nope", "", nil, http.StatusNotFound},
		{"POST elsewhere", http.MethodPost, "/Products", "{}", nil, http.StatusMethodNotAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if w := call(t, s, tc.method, tc.target, tc.body, tc.mutate); w.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.want, w.Body)
			}
		})
	}
	if n := len(s.WebhookSubscriptions()); n != 0 {
		t.Fatalf("%d subscriptions after refused calls", n)
	}
	before := s.QuotaUsed()
	w := call(t, s, http.MethodPost, "/webhooks/subscriptions", create("https://h.example/a", "Product.Updated", "customer.deleted", "product.updated"), nil)
	if w.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	var made subDoc
	if err := json.Unmarshal(w.Body.Bytes(), &made); err != nil || made.SubscriptionID == "" || len(made.SignatureKey) < 32 || made.Status != "Active" ||
		strings.Join(made.EventTypes, ",") != "product.updated,customer.deleted" {
		t.Fatalf("created %+v (%v)", made, err)
	}
	if s.QuotaUsed() != before+1 {
		t.Fatal("the subscription API is not counted in the monthly quota")
	}
	w = call(t, s, http.MethodGet, "/webhooks/subscriptions", "", nil)
	var list struct{ Items []subDoc }
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil || len(list.Items) != 1 || list.Items[0].SignatureKey != "" || list.Items[0].SubscriptionID != made.SubscriptionID {
		t.Fatalf("list %s: the key must be shown at creation only", w.Body)
	}
	if w := call(t, s, http.MethodGet, "/webhooks/subscriptions/"+made.SubscriptionID, "", nil); w.Code != http.StatusOK || strings.Contains(w.Body.String(), made.SignatureKey) {
		t.Fatalf("get one: %d %s", w.Code, w.Body)
	}
	if w := call(t, s, http.MethodPost, "/webhooks/subscriptions", create("http://localhost:1/b", "customer.created"), nil); w.Code != http.StatusCreated {
		t.Fatalf("second: %d", w.Code)
	}
	if w := call(t, s, http.MethodPost, "/webhooks/subscriptions", create("https://h.example/c", "customer.created"), nil); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "Maximum of 2") {
		t.Fatalf("over the cap: %d %s", w.Code, w.Body)
	}
	if !s.DisableWebhook(made.SubscriptionID) {
		t.Fatal("DisableWebhook found nothing")
	}
	w = call(t, s, http.MethodGet, "/webhooks/subscriptions", "", nil)
	if !strings.Contains(w.Body.String(), `"status":"Disabled"`) {
		t.Fatalf("list after disabling: %s", w.Body)
	}
	if w := call(t, s, http.MethodDelete, "/webhooks/subscriptions/"+made.SubscriptionID, "", nil); w.Code != http.StatusNoContent {
		t.Fatalf("delete: %d", w.Code)
	}
	if n := len(s.WebhookSubscriptions()); n != 1 {
		t.Fatalf("%d subscriptions after the delete, want 1", n)
	}
}

func TestWebhookHTTPSRequired(t *testing.T) {
	s := sim.New(sim.Options{Dataset: simkit.Options{Seed: 1, Products: 2, Customers: 1, Orders: 1}, RequireHTTPSWebhooks: true})
	t.Cleanup(s.CloseWebhooks)
	if w := call(t, s, http.MethodPost, "/webhooks/subscriptions", create("http://h.example/a", "product.updated"), nil); w.Code != http.StatusBadRequest {
		t.Fatalf("http URL: %d", w.Code)
	}
}

// TestWebhookDeliveries: each change of a product or customer reaches the
// subscriptions to its event, signed, in Unleashed's payload shape; other
// kinds announce nothing.
func TestWebhookDeliveries(t *testing.T) {
	var mu sync.Mutex
	var got []*http.Request
	var bodies [][]byte
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got, bodies = append(got, r), append(bodies, b)
		mu.Unlock()
	}))
	t.Cleanup(rcv.Close)
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	s := sim.New(sim.Options{Dataset: simkit.Options{Seed: 1, Products: 20, Customers: 5, Orders: 3}, WebhookNow: func() time.Time { return at }})
	t.Cleanup(s.CloseWebhooks)
	for _, c := range []string{create(rcv.URL+"/all", "product.created", "product.updated", "product.deleted", "customer.updated"), create(rcv.URL+"/deletes", "product.deleted")} {
		if w := call(t, s, http.MethodPost, "/webhooks/subscriptions", c, nil); w.Code != http.StatusCreated {
			t.Fatalf("create: %d", w.Code)
		}
	}
	keys := map[string]string{}
	for _, sub := range s.WebhookSubscriptions() {
		keys[sub.URL[len(rcv.URL):]] = sub.SignatureKey
	}
	d := s.Dataset()
	p := d.ProductIDs()[2]
	d.TouchProduct(p)
	added := d.AddProduct()
	d.DeleteProduct(p) // obsolete: an edit
	removed := d.RemoveProducts(0, 1)[0]
	cust := d.TouchCustomers(1)[0]
	d.TouchOrders(2)
	want := map[string][]string{
		"/all":     {"product.updated " + p, "product.created " + added.ID, "product.updated " + p, "product.deleted " + removed, "customer.updated " + cust},
		"/deletes": {"product.deleted " + removed},
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries, want 6", n)
		}
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	seen := map[string][]string{}
	for i, r := range got {
		ts := r.Header.Get("x-unleashed-timestamp")
		if ts != strconv.FormatInt(at.Unix(), 10) {
			t.Fatalf("timestamp %q", ts)
		}
		if sig := r.Header.Get("x-unleashed-signature"); sig != sim.WebhookSign(keys[r.URL.Path], ts, bodies[i]) {
			t.Fatalf("delivery %d to %s not signed with its subscription's key", i, r.URL.Path)
		}
		var ev struct {
			SubscriptionID, EventNotificationID, EventType, CreatedOn, Data string
		}
		if err := json.Unmarshal(bodies[i], &ev); err != nil || ev.SubscriptionID == "" || ev.EventNotificationID == "" {
			t.Fatalf("body %s (%v)", bodies[i], err)
		}
		if _, err := time.Parse(time.RFC3339Nano, ev.CreatedOn); err != nil {
			t.Fatalf("createdOn %q", ev.CreatedOn)
		}
		var data map[string]string
		if err := json.Unmarshal([]byte(ev.Data), &data); err != nil {
			t.Fatalf("data %q is not a JSON-encoded object", ev.Data)
		}
		id := data["productGuid"] + data["customerGuid"]
		seen[r.URL.Path] = append(seen[r.URL.Path], ev.EventType+" "+id)
	}
	for path, w := range want {
		if strings.Join(seen[path], "|") != strings.Join(w, "|") {
			t.Errorf("%s got\n%v\nwant\n%v", path, seen[path], w)
		}
	}
}
