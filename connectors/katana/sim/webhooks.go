package sim

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
)

// Katana's webhooks in the simulator.
//
// Registration: the API's /webhooks (POST, GET list with the ids, url and
// enabled filters and X-Pagination, GET one, PATCH, DELETE), behind the
// same Bearer key, rate limit and faults as every other request. A webhook
// is created with a 16-character lowercase hexadecimal token (the
// document's pattern) that the create answer and, as the document's
// examples show, the list and single reads carry (HideWebhookTokens leaves
// it out of the reads, for a Katana that shows it only at creation). The
// URL must be https (the document's pattern) unless AllowHTTPWebhooks.
// Katana documents no cap on the number of webhooks; the simulator has
// none.
//
// Deliveries: the simulator follows the dataset's change feed and, for each
// change of a kind Katana announces, queues one delivery per event on the
// deliverer of every enabled webhook subscribed to it (simkit.Deliverer, one
// per webhook, in order): {resource_type, action, webhook_id, object: {id,
// status, href}}, signed with x-sha2-signature (hexadecimal HMAC-SHA256 of
// the body, keyed with the token). Katana's delivery rule: a 2xx within 10
// seconds, else three repeats about 30 s, 2 min and 15 min later, each with
// X-Katana-Retry-Num 1, 2, 3 (developer.katanamrp.com/reference/webhooks).
// Katana documents no disabling after failures, so the simulator disables
// none by itself; DisableWebhook switches one off as a user can in Katana
// (enabled=false), and the registrar switches it back on.
//
// What each change announces (the events are documented; which ones a
// change fires is assumed):
//   - a product (dataset products): product.created, product.updated,
//     product.deleted; a created or deleted product also announces its
//     variant (variant.created, variant.deleted);
//   - a material (the one the simulator derives from each supplier):
//     material.* and its variant's variant.* the same way;
//   - a sales order (dataset orders): sales_order.created, .updated,
//     .deleted.
//
// A soft deletion and a hard removal both announce *.deleted, and so does
// DeleteQuietly (a deletion that does not move updated_at still fires
// Katana's event). Customers, locations, tax rates, price lists and stock
// changes announce nothing: Katana has no events for the first four, and
// current_inventory.* events name stock the connector reads only in full.

// WebhookKinds are the dataset kinds whose changes the simulator announces,
// with the connector's stream their events name.
var WebhookKinds = map[string]model.Kind{
	simkit.AdminProducts:  model.KindProduct, // product.*, and variant.* on creation and deletion
	simkit.AdminSuppliers: model.KindProduct, // material.* (the simulator's materials), and variant.*
	simkit.AdminOrders:    model.KindSalesOrder,
}

// Delivery is Katana's delivery rule for the simulator's deliverers.
var Delivery = simkit.DeliveryPolicy{
	Timeout: 10 * time.Second,
	Retries: []time.Duration{30 * time.Second, 2 * time.Minute, 15 * time.Minute},
}

// webhookEvents are the events a webhook may subscribe to: the enum of
// createWebhook in Katana's reference (developer.katanamrp.com, 2026-05).
var webhookEvents = []string{
	"sales_order.created", "sales_order.packed", "sales_order.delivered", "sales_order.invoiced", "sales_order.updated",
	"sales_order.approved", "sales_order.deleted", "sales_order.availability_updated",
	"purchase_order.created", "purchase_order.updated", "purchase_order.deleted", "purchase_order.partially_received",
	"purchase_order.received", "purchase_order.billed", "purchase_order.approved",
	"purchase_order_row.created", "purchase_order_row.received", "purchase_order_row.updated", "purchase_order_row.deleted",
	"outsourced_purchase_order.created", "outsourced_purchase_order.updated", "outsourced_purchase_order.deleted",
	"outsourced_purchase_order.received", "outsourced_purchase_order.billed", "outsourced_purchase_order.approved",
	"outsourced_purchase_order_row.created", "outsourced_purchase_order_row.updated", "outsourced_purchase_order_row.deleted",
	"outsourced_purchase_order_row.received",
	"outsourced_purchase_order_recipe_row.created", "outsourced_purchase_order_recipe_row.updated", "outsourced_purchase_order_recipe_row.deleted",
	"manufacturing_order.created", "manufacturing_order.updated", "manufacturing_order.deleted", "manufacturing_order.in_progress",
	"manufacturing_order.blocked", "manufacturing_order.done",
	"manufacturing_order_recipe_row.created", "manufacturing_order_recipe_row.updated", "manufacturing_order_recipe_row.deleted",
	"manufacturing_order_recipe_row.ingredients_in_stock",
	"manufacturing_order_operation_row.created", "manufacturing_order_operation_row.updated", "manufacturing_order_operation_row.deleted",
	"manufacturing_order_operation_row.in_progress", "manufacturing_order_operation_row.paused", "manufacturing_order_operation_row.blocked",
	"manufacturing_order_operation_row.completed",
	"current_inventory.product_updated", "current_inventory.material_updated", "current_inventory.product_out_of_stock",
	"current_inventory.material_out_of_stock",
	"product.created", "product.updated", "product.deleted", "material.created", "material.updated", "material.deleted",
	"variant.created", "variant.updated", "variant.deleted",
	"product_recipe_row.created", "product_recipe_row.deleted", "product_recipe_row.updated",
}

// DefaultHrefBase is the API root the simulator's payloads link to.
const DefaultHrefBase = "https://api.katanamrp.com/v1"

// deliveryHeader carries a delivery's number from the simulator to its
// transport, which turns repeats into X-Katana-Retry-Num and drops it.
const deliveryHeader = "X-Katana-Sim-Delivery"

// maxWebhookBody bounds a registration request's body.
const maxWebhookBody = 1 << 20

// hook is one registered webhook.
type hook struct {
	id          int
	url, token  string
	enabled     bool
	description *string
	events      []string
	created     time.Time
	updated     time.Time
	d           *simkit.Deliverer
}

// hooks is the simulator's webhook state.
type hooks struct {
	mu     sync.Mutex
	list   []*hook // in creation order
	next   int
	seqs   map[string]int // dataset kind and id -> sequence, for changes that carry none
	cancel func()
	closed bool
	deliv  int64 // deliveries numbered so far
}

// event is one announcement of a change.
type event struct {
	resource, action string
	id               int
	deleted          bool
}

func seqKey(kind, id string) string { return kind + "\x00" + id }

// startWebhooks follows the dataset's change feed.
func (s *Server) startWebhooks() {
	s.wh.seqs = map[string]int{}
	s.wh.cancel = s.data.Subscribe(s.onChange)
	s.data.View(func(d *simkit.Dataset) {
		s.wh.mu.Lock()
		defer s.wh.mu.Unlock()
		keep := func(kind string, m simkit.Meta) {
			if _, ok := s.wh.seqs[seqKey(kind, m.ID)]; !ok {
				s.wh.seqs[seqKey(kind, m.ID)] = m.Seq
			}
		}
		for _, p := range d.Products {
			keep(simkit.AdminProducts, p.Meta)
		}
		for _, sp := range d.Suppliers {
			keep(simkit.AdminSuppliers, sp.Meta)
		}
		for _, o := range d.Orders {
			keep(simkit.AdminOrders, o.Meta)
		}
	})
}

// onChange runs under the dataset's lock: it only queues.
func (s *Server) onChange(c simkit.Change) {
	if _, ok := WebhookKinds[c.Kind]; !ok {
		return
	}
	s.wh.mu.Lock()
	defer s.wh.mu.Unlock()
	seq := c.Seq
	if seq > 0 {
		s.wh.seqs[seqKey(c.Kind, c.ID)] = seq
	} else {
		seq = s.wh.seqs[seqKey(c.Kind, c.ID)]
	}
	if seq <= 0 || s.wh.closed {
		return
	}
	if c.Op == simkit.ChangeRemoved {
		delete(s.wh.seqs, seqKey(c.Kind, c.ID))
	}
	for _, e := range announce(c.Kind, c.Op, seq) {
		for _, h := range s.wh.list {
			if h.enabled && slices.Contains(h.events, e.action) {
				s.wh.deliv++
				h.d.Enqueue(s.builder(h.id, h.url, h.token, e, s.wh.deliv))
			}
		}
	}
}

// announce returns the events Katana sends for a change of a dataset record.
func announce(kind string, op simkit.ChangeOp, seq int) []event {
	verb := map[simkit.ChangeOp]string{simkit.ChangeCreated: "created", simkit.ChangeUpdated: "updated",
		simkit.ChangeDeleted: "deleted", simkit.ChangeRemoved: "deleted"}[op]
	if verb == "" {
		return nil
	}
	deleted := verb == "deleted"
	item := func(resource string, id, variant int) []event {
		out := []event{{resource: resource, action: resource + "." + verb, id: id, deleted: deleted}}
		if verb != "updated" {
			out = append(out, event{resource: "variant", action: "variant." + verb, id: variant, deleted: deleted})
		}
		return out
	}
	switch kind {
	case simkit.AdminProducts:
		return item("product", seq, VariantID(seq))
	case simkit.AdminSuppliers:
		return item("material", MaterialID(seq), MaterialVariantID(seq))
	case simkit.AdminOrders:
		return []event{{resource: "sales_order", action: "sales_order." + verb, id: seq, deleted: deleted}}
	}
	return nil
}

// payload is Katana's event object.
type payload struct {
	ResourceType string        `json:"resource_type"`
	Action       string        `json:"action"`
	WebhookID    int           `json:"webhook_id"`
	Object       payloadObject `json:"object"`
}

type payloadObject struct {
	ID     string `json:"id"`
	Status string `json:"status,omitempty"`
	Href   string `json:"href,omitempty"`
}

// builder returns the delivery of one event to one webhook; it runs on the
// webhook's delivery goroutine, so it may read the dataset.
func (s *Server) builder(hookID int, url, token string, e event, n int64) func() simkit.Delivery {
	return func() simkit.Delivery {
		obj := payloadObject{ID: strconv.Itoa(e.id)}
		if e.resource == "sales_order" {
			obj.Status = s.orderStatus(e.id)
		}
		if !e.deleted {
			obj.Href = s.hrefBase() + "/" + map[string]string{"sales_order": "sales_orders", "product": "products",
				"material": "materials", "variant": "variants"}[e.resource] + "/" + obj.ID
		}
		body, err := json.Marshal(payload{ResourceType: e.resource, Action: e.action, WebhookID: hookID, Object: obj})
		if err != nil {
			body = []byte("{}")
		}
		return simkit.Delivery{URL: url, Body: body, Header: http.Header{
			"Content-Type":     {"application/json"},
			"X-Sha2-Signature": {SignBody(token, body)},
			deliveryHeader:     {strconv.FormatInt(n, 10)},
		}}
	}
}

// SignBody returns Katana's signature of a body: the hexadecimal
// HMAC-SHA256 keyed with the webhook's token.
func SignBody(token string, body []byte) string {
	m := hmac.New(sha256.New, []byte(token))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func (s *Server) hrefBase() string {
	if s.opts.WebhookHrefBase != "" {
		return strings.TrimSuffix(s.opts.WebhookHrefBase, "/")
	}
	return DefaultHrefBase
}

// orderStatus is the Katana status of the order with the given id now ("" once
// it is gone).
func (s *Server) orderStatus(seq int) string {
	st := ""
	s.data.View(func(d *simkit.Dataset) {
		for _, o := range d.Orders {
			if o.Seq == seq {
				st = OrderStatus(o.Status)
				return
			}
		}
	})
	return st
}

// retryNumbering is a webhook's transport: it numbers the repeats of a
// delivery in X-Katana-Retry-Num (a deliverer sends one delivery at a
// time, so the last delivery number seen is the only one that can repeat).
type retryNumbering struct {
	base    http.RoundTripper
	mu      sync.Mutex
	last    string
	repeats int
}

func (t *retryNumbering) RoundTrip(req *http.Request) (*http.Response, error) {
	n := req.Header.Get(deliveryHeader)
	r := req.Clone(req.Context())
	r.Header.Del(deliveryHeader)
	t.mu.Lock()
	if n != "" && n == t.last {
		t.repeats++
	} else {
		t.last, t.repeats = n, 0
	}
	retry := t.repeats
	t.mu.Unlock()
	if retry > 0 {
		r.Header.Set("X-Katana-Retry-Num", strconv.Itoa(retry))
	}
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, fmt.Errorf("katana simulator delivery: %w", err)
	}
	return resp, nil
}

// newDeliverer starts the deliverer of a new webhook.
func (s *Server) newDeliverer() *simkit.Deliverer {
	base := s.opts.WebhookClient
	if base == nil {
		base = &http.Client{}
	}
	c := *base
	rt := c.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	c.Transport = &retryNumbering{base: rt}
	sleep := s.opts.WebhookSleep
	if sleep == nil {
		scale := s.opts.TimeScale
		if scale < 1 {
			scale = 1
		}
		sleep = func(ctx context.Context, d time.Duration) error {
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
	return simkit.NewDeliverer(&c, Delivery, sleep, nil)
}

// WebhookSubscription is a view of one registered webhook.
type WebhookSubscription struct {
	ID      int
	URL     string
	Token   string
	Enabled bool
	Events  []string
	// Deliverer sends its deliveries (its Stats count them).
	Deliverer *simkit.Deliverer
}

// WebhookSubscriptions returns the registered webhooks, oldest first.
func (s *Server) WebhookSubscriptions() []WebhookSubscription {
	s.wh.mu.Lock()
	defer s.wh.mu.Unlock()
	out := make([]WebhookSubscription, 0, len(s.wh.list))
	for _, h := range s.wh.list {
		out = append(out, WebhookSubscription{ID: h.id, URL: h.url, Token: h.token, Enabled: h.enabled, Events: slices.Clone(h.events), Deliverer: h.d})
	}
	return out
}

// DisableWebhook switches a webhook off, as a Katana user can (enabled =
// false); it returns false when no webhook has the id. Katana documents no
// disabling of its own after failed deliveries.
func (s *Server) DisableWebhook(id int) bool {
	s.wh.mu.Lock()
	defer s.wh.mu.Unlock()
	for _, h := range s.wh.list {
		if h.id == id {
			h.enabled = false
			h.updated = s.Now()
			h.d.SetDisabled(true)
			return true
		}
	}
	return false
}

// Close stops every webhook's deliveries (queued ones are dropped) and the
// change feed. The API keeps serving.
func (s *Server) Close() {
	s.wh.mu.Lock()
	if s.wh.closed {
		s.wh.mu.Unlock()
		return
	}
	s.wh.closed = true
	list := s.wh.list
	cancel := s.wh.cancel
	s.wh.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	for _, h := range list {
		h.d.Close()
	}
}

// kWebhook is Katana's Webhook object as the simulator renders it.
type kWebhook struct {
	ID          int      `json:"id"`
	URL         string   `json:"url"`
	Token       string   `json:"token,omitempty"`
	Enabled     bool     `json:"enabled"`
	Description *string  `json:"description"`
	Events      []string `json:"subscribed_events"`
	CreatedAt   string   `json:"created_at"`
	UpdatedAt   string   `json:"updated_at"`
}

func (h *hook) render(token bool) kWebhook {
	w := kWebhook{ID: h.id, URL: h.url, Enabled: h.enabled, Description: h.description, Events: slices.Clone(h.events),
		CreatedAt: ts(h.created), UpdatedAt: ts(h.updated)}
	if token {
		w.Token = h.token
	}
	return w
}

// webhookRequest is the body of createWebhook and updateWebhook.
type webhookRequest struct {
	URL         *string   `json:"url"`
	Enabled     *bool     `json:"enabled"`
	Events      *[]string `json:"subscribed_events"`
	Description *string   `json:"description"`
}

// detail is one entry of a 422's details.
type detail struct {
	Path    string `json:"path"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// check validates a request body: create needs url and subscribed_events.
func (s *Server) check(r *http.Request, create bool) (webhookRequest, []detail) {
	var req webhookRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxWebhookBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, []detail{{Path: "", Code: "type", Message: "the body must be a JSON object with url, enabled, subscribed_events and description only"}}
	}
	var out []detail
	if req.URL == nil && create {
		out = append(out, detail{Path: ".url", Code: "required", Message: "should have required property 'url'"})
	}
	if req.URL != nil {
		u := *req.URL
		if !strings.HasPrefix(u, "https://") && !(s.opts.AllowHTTPWebhooks && strings.HasPrefix(u, "http://")) {
			out = append(out, detail{Path: ".url", Code: "pattern", Message: `should match pattern "^https://.*$"`})
		}
	}
	if req.Events == nil && create {
		out = append(out, detail{Path: ".subscribed_events", Code: "required", Message: "should have required property 'subscribed_events'"})
	}
	if req.Events != nil {
		if len(*req.Events) == 0 {
			out = append(out, detail{Path: ".subscribed_events", Code: "minItems", Message: "should NOT have fewer than 1 items"})
		}
		for i, e := range *req.Events {
			if !slices.Contains(webhookEvents, e) {
				out = append(out, detail{Path: fmt.Sprintf(".subscribed_events[%d]", i), Code: "enum", Message: "should be equal to one of the allowed values"})
			}
		}
	}
	return req, out
}

// serveWebhooks serves /webhooks and /webhooks/{id}; auth, the rate limit
// and faults have been applied.
func (s *Server) serveWebhooks(w http.ResponseWriter, r *http.Request, path string) {
	rest := strings.TrimPrefix(strings.TrimPrefix(path, "/webhooks"), "/")
	if rest == "" {
		switch r.Method {
		case http.MethodGet:
			s.listWebhooks(w, r)
		case http.MethodPost:
			s.createWebhook(w, r)
		default:
			s.errorBody(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "method not allowed")
		}
		return
	}
	id, err := strconv.Atoi(rest)
	if err != nil || id < 1 {
		s.errorBody(w, http.StatusNotFound, "NotFoundError", "Not found")
		return
	}
	switch r.Method {
	case http.MethodGet:
		s.wh.mu.Lock()
		h := s.findHook(id)
		var out kWebhook
		if h != nil {
			out = h.render(!s.opts.HideWebhookTokens)
		}
		s.wh.mu.Unlock()
		if h == nil {
			s.errorBody(w, http.StatusNotFound, "NotFoundError", "Not found")
			return
		}
		s.writeJSON(w, http.StatusOK, out)
		s.Stats().Served.Add(1)
	case http.MethodPatch:
		s.updateWebhook(w, r, id)
	case http.MethodDelete:
		s.wh.mu.Lock()
		h := s.findHook(id)
		if h != nil {
			s.wh.list = slices.DeleteFunc(slices.Clone(s.wh.list), func(x *hook) bool { return x == h })
		}
		s.wh.mu.Unlock()
		if h == nil {
			s.errorBody(w, http.StatusNotFound, "NotFoundError", "Not found")
			return
		}
		h.d.Close()
		w.WriteHeader(http.StatusNoContent)
		s.Stats().Served.Add(1)
	default:
		s.errorBody(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "method not allowed")
	}
}

// findHook returns the webhook with the id; s.wh.mu is held.
func (s *Server) findHook(id int) *hook {
	for _, h := range s.wh.list {
		if h.id == id {
			return h
		}
	}
	return nil
}

func (s *Server) unprocessable(w http.ResponseWriter, details []detail) {
	s.writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"statusCode": 422, "name": "UnprocessableEntityError",
		"message": "The request body is invalid. See error object `details` property for more info.", "code": "VALIDATION_FAILED", "details": details})
}

func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request) {
	req, bad := s.check(r, true)
	if len(bad) > 0 {
		s.unprocessable(w, bad)
		return
	}
	token, err := newToken()
	if err != nil {
		s.errorBody(w, http.StatusInternalServerError, "InternalServerError", "Internal Server Error")
		return
	}
	now := s.Now()
	h := &hook{url: *req.URL, token: token, enabled: req.Enabled == nil || *req.Enabled, description: req.Description,
		events: slices.Clone(*req.Events), created: now, updated: now}
	s.wh.mu.Lock()
	if s.wh.closed {
		s.wh.mu.Unlock()
		s.errorBody(w, http.StatusServiceUnavailable, "ServiceUnavailable", "the simulator is closed")
		return
	}
	s.wh.next++
	h.id = s.wh.next
	h.d = s.newDeliverer()
	h.d.SetDisabled(!h.enabled)
	s.wh.list = append(slices.Clone(s.wh.list), h)
	out := h.render(true)
	s.wh.mu.Unlock()
	s.writeJSON(w, http.StatusOK, out)
	s.Stats().Served.Add(1)
}

func (s *Server) updateWebhook(w http.ResponseWriter, r *http.Request, id int) {
	req, bad := s.check(r, false)
	s.wh.mu.Lock()
	h := s.findHook(id)
	if h == nil {
		s.wh.mu.Unlock()
		s.errorBody(w, http.StatusNotFound, "NotFoundError", "Not found")
		return
	}
	if len(bad) > 0 {
		s.wh.mu.Unlock()
		s.unprocessable(w, bad)
		return
	}
	if req.URL != nil {
		h.url = *req.URL
	}
	if req.Events != nil {
		h.events = slices.Clone(*req.Events)
	}
	if req.Description != nil {
		h.description = req.Description
	}
	if req.Enabled != nil {
		h.enabled = *req.Enabled
		h.d.SetDisabled(!h.enabled)
	}
	h.updated = s.Now()
	out := h.render(true)
	s.wh.mu.Unlock()
	s.writeJSON(w, http.StatusOK, out)
	s.Stats().Served.Add(1)
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) {
	q, err := parseQuery(r)
	if err != nil {
		s.errorBody(w, http.StatusUnprocessableEntity, "UnprocessableEntityError", err.Error())
		return
	}
	v := r.URL.Query()
	var enabled *bool
	if e := v.Get("enabled"); e != "" {
		b, err := strconv.ParseBool(e)
		if err != nil {
			s.errorBody(w, http.StatusUnprocessableEntity, "UnprocessableEntityError", "enabled must be a boolean")
			return
		}
		enabled = &b
	}
	s.wh.mu.Lock()
	var sel []kWebhook
	for i := len(s.wh.list) - 1; i >= 0; i-- { // newest first
		h := s.wh.list[i]
		if (q.ids != nil && !q.ids[h.id]) || (v.Has("url") && h.url != v.Get("url")) || (enabled != nil && h.enabled != *enabled) {
			continue
		}
		sel = append(sel, h.render(!s.opts.HideWebhookTokens))
	}
	s.wh.mu.Unlock()
	start, end := pageOf(len(sel), q)
	items := make([]any, 0, end-start)
	for _, x := range sel[start:end] {
		items = append(items, x)
	}
	s.writeList(w, q, len(sel), items)
}

// newToken returns a token of Katana's form: 16 lowercase hexadecimal
// characters.
func newToken() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", errors.New("no randomness for a token")
	}
	return hex.EncodeToString(b), nil
}
