package sim

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/simkit"
)

// Webhooks, as the simulator models them (docs/connectors/unleashed.md,
// "Webhooks"). Documented: Customer and Product created/updated/deleted,
// at most 5 subscriptions per account, the subscription API authenticated
// as the rest of the API. Assumed from public client code: the endpoints
// GET/POST /webhooks/subscriptions and DELETE /webhooks/subscriptions/{id};
// the create's answer carries the signatureKey once; each delivery is one
// event {subscriptionId, eventNotificationId, eventType, createdOn, data}
// with data a JSON-encoded string holding productGuid or customerGuid; the
// headers x-unleashed-timestamp (Unix seconds) and x-unleashed-signature
// (base64 HMAC-SHA256 of timestamp "." body with the signatureKey).
// Assumed with no source: the retry waits and disabling (DefaultDelivery).

// MaxWebhookSubscriptions is Unleashed's cap per account (documented).
const MaxWebhookSubscriptions = 5

// DefaultDelivery is the assumed delivery rule: a 10-second reply window,
// six retries over about three days (public code says failed deliveries are
// retried for 72 hours), and the subscription disabled once a delivery has
// failed every attempt. None of it is documented.
var DefaultDelivery = simkit.DeliveryPolicy{
	Timeout:      10 * time.Second,
	Retries:      []time.Duration{time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 12 * time.Hour, 24 * time.Hour, 32 * time.Hour},
	DisableAfter: 1,
}

// webhookObjects maps the dataset's kinds to the objects Unleashed
// announces and the data field naming the document.
var webhookObjects = map[string]struct{ object, field string }{
	simkit.AdminProducts:  {"product", "productGuid"},
	simkit.AdminCustomers: {"customer", "customerGuid"},
}

// knownEventTypes are the event types a subscription may name.
var knownEventTypes = map[string]bool{}

func init() {
	for _, o := range webhookObjects {
		for _, a := range []string{"created", "updated", "deleted"} {
			knownEventTypes[o.object+"."+a] = true
		}
	}
}

// eventType is the event Unleashed sends for a change: a record made
// obsolete (the dataset's deleted marker) is an edit, as it is in the app
// (assumed); a record removed is deleted.
func eventType(c simkit.Change) (string, string, bool) {
	o, ok := webhookObjects[c.Kind]
	if !ok {
		return "", "", false
	}
	switch c.Op {
	case simkit.ChangeCreated:
		return o.object + ".created", o.field, true
	case simkit.ChangeRemoved:
		return o.object + ".deleted", o.field, true
	default:
		return o.object + ".updated", o.field, true
	}
}

// WebhookSubscription is one subscription as a test sees it.
type WebhookSubscription struct {
	ID         string
	URL        string
	EventTypes []string
	// SignatureKey is the key its deliveries are signed with.
	SignatureKey string
	Disabled     bool
}

type webhookSub struct {
	id, url, desc, key string
	events             map[string]bool
	eventList          []string
	created            time.Time
	d                  *simkit.Deliverer
}

// WebhookSign returns x-unleashed-signature: base64 of HMAC-SHA256(key,
// timestamp + "." + body).
func WebhookSign(key, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// WebhookSubscriptions returns the account's subscriptions in creation
// order.
func (s *Server) WebhookSubscriptions() []WebhookSubscription {
	s.whMu.Lock()
	defer s.whMu.Unlock()
	out := make([]WebhookSubscription, 0, len(s.subs))
	for _, w := range s.subs {
		out = append(out, WebhookSubscription{ID: w.id, URL: w.url, EventTypes: append([]string(nil), w.eventList...), SignatureKey: w.key, Disabled: w.d.Disabled()})
	}
	return out
}

// WebhookDeliverer returns the deliverer of a subscription (its counters,
// and SetDisabled as the vendor does), or nil.
func (s *Server) WebhookDeliverer(id string) *simkit.Deliverer {
	s.whMu.Lock()
	defer s.whMu.Unlock()
	for _, w := range s.subs {
		if w.id == id {
			return w.d
		}
	}
	return nil
}

// DisableWebhook switches a subscription off as Unleashed is assumed to do
// after failed deliveries; false when there is no such subscription.
func (s *Server) DisableWebhook(id string) bool {
	d := s.WebhookDeliverer(id)
	if d == nil {
		return false
	}
	d.SetDisabled(true)
	return true
}

// CloseWebhooks stops every subscription's deliveries (queued ones are
// dropped) and stops listening to the dataset. The subscriptions stay
// listed.
func (s *Server) CloseWebhooks() {
	s.whMu.Lock()
	subs := append([]*webhookSub(nil), s.subs...)
	cancel := s.unfeed
	s.unfeed = nil
	s.whClosed = true
	s.whMu.Unlock()
	if cancel != nil {
		cancel()
	}
	for _, w := range subs {
		w.d.Close()
	}
}

// onChange queues a delivery for each subscription to the change's event.
// It runs with the dataset locked: it only queues.
func (s *Server) onChange(c simkit.Change) {
	typ, field, ok := eventType(c)
	if !ok {
		return
	}
	s.whMu.Lock()
	defer s.whMu.Unlock()
	for _, w := range s.subs {
		if !w.events[typ] {
			continue
		}
		id, at := c.ID, c.At
		w.d.Enqueue(func() simkit.Delivery { return s.delivery(w, typ, field, id, at) })
	}
}

// delivery builds one signed event (on the delivery goroutine).
func (s *Server) delivery(w *webhookSub, typ, field, id string, at time.Time) simkit.Delivery {
	n := s.notes.Add(1)
	data, _ := json.Marshal(map[string]string{field: id})
	body, _ := json.Marshal(struct {
		SubscriptionID      string `json:"subscriptionId"`
		EventNotificationID string `json:"eventNotificationId"`
		EventType           string `json:"eventType"`
		CreatedOn           string `json:"createdOn"`
		Data                string `json:"data"`
	}{w.id, deriveGUID(zeroGUID, "notification/"+strconv.FormatInt(n, 10)), typ, at.UTC().Format("2006-01-02T15:04:05.000Z"), string(data)})
	ts := strconv.FormatInt(s.webhookNow().Unix(), 10)
	h := http.Header{}
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("x-unleashed-timestamp", ts)
	h.Set("x-unleashed-signature", WebhookSign(w.key, ts, body))
	return simkit.Delivery{URL: w.url, Header: h, Body: body}
}

func (s *Server) webhookNow() time.Time {
	if s.opts.WebhookNow != nil {
		return s.opts.WebhookNow()
	}
	return time.Now()
}

// serveWebhooks answers the subscription API: GET and POST
// /webhooks/subscriptions, GET and DELETE /webhooks/subscriptions/{id}.
// Authentication and the quota have been checked.
func (s *Server) serveWebhooks(w http.ResponseWriter, r *http.Request, id string) {
	switch {
	case id == "" && r.Method == http.MethodGet:
		s.whMu.Lock()
		items := make([]subscriptionDoc, 0, len(s.subs))
		for _, x := range s.subs {
			items = append(items, x.doc())
		}
		s.whMu.Unlock()
		writeJSON(w, http.StatusOK, struct {
			Items []subscriptionDoc `json:"items"`
		}{items})
	case id == "" && r.Method == http.MethodPost:
		s.createWebhook(w, r)
	case id != "" && r.Method == http.MethodGet:
		s.whMu.Lock()
		var doc *subscriptionDoc
		for _, x := range s.subs {
			if x.id == id {
				d := x.doc()
				doc = &d
			}
		}
		s.whMu.Unlock()
		if doc == nil {
			writeError(w, http.StatusNotFound, "Webhook subscription not found")
			return
		}
		writeJSON(w, http.StatusOK, doc)
	case id != "" && r.Method == http.MethodDelete:
		s.whMu.Lock()
		var gone *webhookSub
		for i, x := range s.subs {
			if x.id == id {
				gone = x
				s.subs = append(s.subs[:i:i], s.subs[i+1:]...)
				break
			}
		}
		s.whMu.Unlock()
		if gone == nil {
			writeError(w, http.StatusNotFound, "Webhook subscription not found")
			return
		}
		gone.d.Close()
		w.WriteHeader(http.StatusNoContent)
	default:
		writeError(w, http.StatusMethodNotAllowed, "Method not allowed")
	}
}

// subscriptionDoc is a subscription as the API shows it.
type subscriptionDoc struct {
	SubscriptionID  string   `json:"subscriptionId"`
	NotificationURL string   `json:"notificationUrl"`
	EventTypes      []string `json:"eventTypes"`
	Description     string   `json:"description"`
	Status          string   `json:"status"`
	CreatedOn       string   `json:"createdOn"`
	SignatureKey    string   `json:"signatureKey,omitempty"`
}

func (x *webhookSub) doc() subscriptionDoc {
	st := "Active"
	if x.d.Disabled() {
		st = "Disabled"
	}
	return subscriptionDoc{SubscriptionID: x.id, NotificationURL: x.url, EventTypes: append([]string(nil), x.eventList...), Description: x.desc,
		Status: st, CreatedOn: x.created.UTC().Format("2006-01-02T15:04:05.000Z")}
}

func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Description     string   `json:"description"`
		NotificationURL string   `json:"notificationUrl"`
		EventTypes      []string `json:"eventTypes"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, "The request body is not a webhook subscription")
		return
	}
	u, err := url.Parse(in.NotificationURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && (s.opts.RequireHTTPSWebhooks || u.Scheme != "http")) {
		writeError(w, http.StatusBadRequest, "notificationUrl must be a publicly accessible HTTPS URL")
		return
	}
	if len(in.EventTypes) == 0 {
		writeError(w, http.StatusBadRequest, "eventTypes must name at least one event")
		return
	}
	events := map[string]bool{}
	var list []string
	for _, e := range in.EventTypes {
		e = strings.ToLower(strings.TrimSpace(e))
		if !knownEventTypes[e] {
			writeError(w, http.StatusBadRequest, "Unknown event type")
			return
		}
		if !events[e] {
			events[e] = true
			list = append(list, e)
		}
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		writeError(w, http.StatusInternalServerError, "Could not make a signature key")
		return
	}
	// Listen to the dataset before taking whMu: the feed's callback takes
	// whMu with the dataset locked.
	s.feed.Do(func() {
		cancel := s.data.Subscribe(s.onChange)
		s.whMu.Lock()
		s.unfeed = cancel
		s.whMu.Unlock()
	})
	s.whMu.Lock()
	if s.whClosed {
		s.whMu.Unlock()
		writeError(w, http.StatusServiceUnavailable, "Webhooks are stopped")
		return
	}
	limit := s.opts.MaxWebhookSubscriptions
	if limit <= 0 {
		limit = MaxWebhookSubscriptions
	}
	if len(s.subs) >= limit {
		s.whMu.Unlock()
		writeError(w, http.StatusBadRequest, fmt.Sprintf("Maximum of %d webhook subscriptions per account reached", limit))
		return
	}
	s.subSeq++
	x := &webhookSub{id: deriveGUID(zeroGUID, "subscription/"+strconv.Itoa(s.subSeq)), url: in.NotificationURL, desc: in.Description,
		key: base64.RawURLEncoding.EncodeToString(raw[:]), events: events, eventList: list, created: s.Now()}
	policy := DefaultDelivery
	if s.opts.WebhookPolicy != nil {
		policy = *s.opts.WebhookPolicy
	}
	x.d = simkit.NewDeliverer(s.opts.WebhookClient, policy, s.webhookSleep(), nil)
	s.subs = append(s.subs, x)
	doc := x.doc()
	s.whMu.Unlock()
	doc.SignatureKey = x.key
	writeJSON(w, http.StatusCreated, doc)
}

// webhookSleep waits vendor time: the option's, else real time compressed
// by TimeScale.
func (s *Server) webhookSleep() func(ctx context.Context, d time.Duration) error {
	if s.opts.WebhookSleep != nil {
		return s.opts.WebhookSleep
	}
	scale := s.opts.TimeScale
	return func(ctx context.Context, d time.Duration) error {
		t := time.NewTimer(time.Duration(float64(d) / scale))
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// webhookRoute recognises /webhooks/subscriptions[/{id}] (any case).
func webhookRoute(path string) (id string, ok bool) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) < 2 || len(parts) > 3 || !strings.EqualFold(parts[0], "webhooks") || !strings.EqualFold(parts[1], "subscriptions") {
		return "", false
	}
	if len(parts) == 3 {
		if parts[2] == "" {
			return "", false
		}
		return strings.ToLower(parts[2]), true
	}
	return "", true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
