package sim

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/simkit"
)

// Webhooks, as Cin7 Core documents them (blueprint "Webhooks"; saved spec
// paths /webhooks and /webhooks?ID=): GET lists the account's webhooks,
// POST creates one, PUT updates one by ID, DELETE /webhooks?ID= deletes
// one; the same headers and the same limit of 60 calls a minute as every
// endpoint; at most 5 webhooks of one type; only with the Automation
// module (Options.NoAutomation answers 403). Every change of the dataset
// of a kind Cin7 Core announces becomes a delivery to every active webhook
// of the matching type: a JSON object with EventType and ids, or for the
// stock event a bare array of availability rows, with the webhook's
// authorisation and extra headers. A failed delivery is repeated 5 times
// (5, 10, 15, 20 and 25 minutes after the previous attempt); when all 6
// fail, the webhook silently becomes IsActive=false until a PUT switches
// it back on.
//
// Deliveries to one URL share one simkit.Deliverer (in order, one at a
// time); failures disable that deliverer and every webhook of its URL
// (Cin7 Core disables each webhook whose delivery failed; with one receiver
// per URL they fail together). A PUT with IsActive=true switches the
// webhook and its URL's deliverer back on, and the deliverer switched back
// on (by that PUT, or by a test) switches back on the webhooks its
// failures deactivated.
//
// A change's deliveries are made when it happens: the dataset's change
// callback runs with the dataset locked by the goroutine that changed it,
// so it reads the changed record there (directly: View would wait for the
// lock it holds) and queues each delivery, built, on its URL's deliverer.
// A sale edited and then removed is announced as it was when edited, as
// Cin7 Core announces a stage when it happens; and a deliverer with
// nothing pending has delivered every change made so far.

// Webhook figures.
const (
	// MaxWebhooksPerType is Cin7 Core's documented limit.
	MaxWebhooksPerType = 5
	// AutomationMessage is what the simulator answers the webhook
	// endpoints of an account without the Automation module with (the
	// status and text are assumed: the blueprint says the module is
	// needed, not how the API refuses).
	AutomationMessage = "Webhooks are available with the Automation module only. Please contact support."
	// maxWebhookBody bounds a POST or PUT body.
	maxWebhookBody = 64 << 10
)

// WebhookTypes are the types Cin7 Core accepts (the sources name 32).
var WebhookTypes = []string{
	"Sale/Created", "Sale/QuoteAuthorised", "Sale/OrderAuthorised", "Sale/Voided", "Sale/Backordered",
	"Sale/ShipmentAuthorised", "Sale/InvoiceAuthorised", "Sale/PickAuthorised", "Sale/PackAuthorised",
	"Sale/CreditNoteAuthorised", "Sale/Undo", "Sale/PartialPaymentReceived", "Sale/FullPaymentReceived",
	"Sale/AttachmentAdded", "Sale/AdditionalAttributesChanged", "Sale/ShipmentTrackingNumberChanged",
	"Purchase/OrderAuthorised", "Purchase/InvoiceAuthorised", "Purchase/StockReceivedAuthorised",
	"Purchase/CreditNoteAuthorised", "Purchase/Updated", "Customer/Updated", "Supplier/Updated", "Product/Updated",
	"Stock/AvailableStockLevelChanged", "Lead/Updated", "Lead/Converted", "Opportunity/Authorized",
	"Opportunity/AttachmentAdded", "Opportunity/Voided", "Opportunity/Converted", "Task/Overdue",
}

// DeliveryPolicy is Cin7 Core's retry rule: the first attempt, then 5, 10,
// 15, 20 and 25 minutes after the previous one; after the sixth failure
// the webhook is deactivated. The reply timeout is not documented (10 s
// assumed).
var DeliveryPolicy = simkit.DeliveryPolicy{
	Timeout:      10 * time.Second,
	Retries:      []time.Duration{5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 20 * time.Minute, 25 * time.Minute},
	DisableAfter: 1,
}

// Webhook is one webhook as the simulator serves it (the saved spec's
// webhooks_get_200_response_Webhooks_inner).
type Webhook struct {
	ID                        string       `json:"ID"`
	Type                      string       `json:"Type"`
	Name                      string       `json:"Name"`
	ExternalURL               string       `json:"ExternalURL"`
	IsActive                  bool         `json:"IsActive"`
	ExternalAuthorizationType string       `json:"ExternalAuthorizationType"`
	ExternalBearerToken       string       `json:"ExternalBearerToken"`
	ExternalUserName          string       `json:"ExternalUserName"`
	ExternalPassword          string       `json:"ExternalPassword"`
	ExternalHeaders           []HeaderPair `json:"ExternalHeaders"`
}

// HeaderPair is one extra header of a webhook.
type HeaderPair struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

// webhookEdit is a POST or PUT body: absent fields keep their value.
type webhookEdit struct {
	ID                        *string       `json:"ID"`
	Type                      *string       `json:"Type"`
	Name                      *string       `json:"Name"`
	ExternalURL               *string       `json:"ExternalURL"`
	IsActive                  *bool         `json:"IsActive"`
	ExternalAuthorizationType *string       `json:"ExternalAuthorizationType"`
	ExternalBearerToken       *string       `json:"ExternalBearerToken"`
	ExternalUserName          *string       `json:"ExternalUserName"`
	ExternalPassword          *string       `json:"ExternalPassword"`
	ExternalHeaders           *[]HeaderPair `json:"ExternalHeaders"`
}

func (e webhookEdit) apply(h *Webhook) {
	set := func(dst *string, src *string) {
		if src != nil {
			*dst = strings.TrimSpace(*src)
		}
	}
	set(&h.Type, e.Type)
	set(&h.Name, e.Name)
	set(&h.ExternalURL, e.ExternalURL)
	set(&h.ExternalAuthorizationType, e.ExternalAuthorizationType)
	set(&h.ExternalBearerToken, e.ExternalBearerToken)
	set(&h.ExternalUserName, e.ExternalUserName)
	set(&h.ExternalPassword, e.ExternalPassword)
	if e.IsActive != nil {
		h.IsActive = *e.IsActive
	}
	if e.ExternalHeaders != nil {
		h.ExternalHeaders = slices.Clone(*e.ExternalHeaders)
	}
}

// validate checks a webhook as Cin7 Core would (messages assumed).
func (h *Webhook) validate() error {
	if !slices.Contains(WebhookTypes, h.Type) {
		return fmt.Errorf("the Type %q is not a webhook type", h.Type)
	}
	u, err := url.Parse(h.ExternalURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("ExternalURL must be an absolute http(s) URL")
	}
	if h.ExternalAuthorizationType == "" {
		h.ExternalAuthorizationType = "noauth"
	}
	switch h.ExternalAuthorizationType {
	case "noauth":
	case "bearerauth":
		if h.ExternalBearerToken == "" {
			return fmt.Errorf("ExternalBearerToken is required for bearerauth")
		}
	case "basicauth":
		if h.ExternalUserName == "" {
			return fmt.Errorf("ExternalUserName is required for basicauth")
		}
	default:
		return fmt.Errorf("ExternalAuthorizationType must be noauth, basicauth or bearerauth")
	}
	for _, p := range h.ExternalHeaders {
		if !headerToken(p.Key) || strings.ContainsAny(p.Value, "\r\n") {
			return fmt.Errorf("ExternalHeaders: %q is not a valid header", p.Key)
		}
	}
	return nil
}

func headerToken(k string) bool {
	if k == "" || len(k) > 256 {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// webhooks is the simulator's webhook state. Lock order: feedMu, then
// the dataset's lock, then mu (the change callback takes mu with the
// dataset locked), then a deliverer's.
type webhooks struct {
	mu    sync.Mutex
	seq   int
	hooks []*Webhook
	lanes map[string]*simkit.Deliverer // by ExternalURL
	// off lists, by URL, the ids of the webhooks its deliverer's failures
	// deactivated. Switching the deliverer back on from outside the API (a
	// test or erpsim, standing for the registrar's PUTs of each) switches
	// them on; a PUT (putOn) switches on only the webhook it names.
	off   map[string][]string
	putOn map[string]bool
	// stock is each product's availability as last announced (Cin7 Core
	// announces a change of the available stock level, not every edit).
	stock map[string]string
	// ctx ends at Close: it cuts a WebhookDelay short.
	ctx    context.Context
	cancel context.CancelFunc

	// The change feed, subscribed once a webhook exists.
	feedMu  sync.Mutex
	started bool
	unsub   func()
}

// serveWebhooks answers the /webhooks endpoints (already authenticated and
// counted against the rate limit).
func (s *Server) serveWebhooks(w http.ResponseWriter, r *http.Request) {
	if s.opts.NoAutomation {
		writeError(w, http.StatusForbidden, AutomationMessage)
		return
	}
	wh := &s.wh
	switch r.Method {
	case http.MethodGet:
		writeWebhooks(w, s.WebhookSubscriptions())
	case http.MethodPost, http.MethodPut:
		var e webhookEdit
		if err := json.NewDecoder(io.LimitReader(r.Body, maxWebhookBody)).Decode(&e); err != nil {
			writeError(w, http.StatusBadRequest, "The request body is not a webhook")
			return
		}
		// Before wh.mu: subscribing takes the dataset's lock.
		s.startFeed()
		h, reenable, closing, status, msg := s.editWebhook(r.Method == http.MethodPost, e)
		if closing != nil {
			closing.Close()
		}
		if status != http.StatusOK {
			writeError(w, status, msg)
			return
		}
		if reenable != nil {
			// Outside wh.mu: switching a deliverer back on calls back.
			reenable.SetDisabled(false)
		}
		writeWebhooks(w, []Webhook{h})
	case http.MethodDelete:
		id := lowerQuery(r.URL.Query())["id"]
		wh.mu.Lock()
		i := slices.IndexFunc(wh.hooks, func(h *Webhook) bool { return strings.EqualFold(h.ID, id) })
		var closing *simkit.Deliverer
		if i >= 0 {
			gone := wh.hooks[i]
			wh.hooks = slices.Delete(wh.hooks, i, i+1)
			if !slices.ContainsFunc(wh.hooks, func(h *Webhook) bool { return h.ExternalURL == gone.ExternalURL }) {
				closing = wh.lanes[gone.ExternalURL]
				delete(wh.lanes, gone.ExternalURL)
			}
		}
		wh.mu.Unlock()
		if i < 0 {
			writeError(w, http.StatusBadRequest, "Webhook with the given ID was not found")
			return
		}
		if closing != nil {
			closing.Close()
		}
		writeWebhooks(w, []Webhook{})
	default:
		writeError(w, http.StatusMethodNotAllowed, "The webhook endpoint takes GET, POST, PUT and DELETE")
	}
}

// editWebhook creates (POST) or updates (PUT) a webhook. It returns the
// result, the deliverers to switch back on and to close (outside the lock:
// both wait on or call back into the webhook state) and, on failure, a
// status and message.
func (s *Server) editWebhook(create bool, e webhookEdit) (h Webhook, reenable, closing *simkit.Deliverer, status int, msg string) {
	wh := &s.wh
	wh.mu.Lock()
	defer wh.mu.Unlock()
	var old *Webhook
	if create {
		h = Webhook{IsActive: true}
	} else {
		if e.ID == nil {
			return Webhook{}, nil, nil, http.StatusBadRequest, "ID is required"
		}
		i := slices.IndexFunc(wh.hooks, func(x *Webhook) bool { return strings.EqualFold(x.ID, *e.ID) })
		if i < 0 {
			return Webhook{}, nil, nil, http.StatusBadRequest, "Webhook with the given ID was not found"
		}
		old = wh.hooks[i]
		h = *old
		h.ExternalHeaders = slices.Clone(old.ExternalHeaders)
	}
	e.apply(&h)
	if err := h.validate(); err != nil {
		return Webhook{}, nil, nil, http.StatusBadRequest, err.Error()
	}
	if old == nil || old.Type != h.Type {
		n := 0
		for _, x := range wh.hooks {
			if x.Type == h.Type {
				n++
			}
		}
		if n >= MaxWebhooksPerType {
			return Webhook{}, nil, nil, http.StatusBadRequest, fmt.Sprintf("There is a limit of %d webhooks of the same type", MaxWebhooksPerType)
		}
	}
	if h.Name == "" {
		h.Name = h.Type
	}
	if h.IsActive && old != nil && wh.off[old.ExternalURL] != nil {
		wh.off[old.ExternalURL] = slices.DeleteFunc(wh.off[old.ExternalURL], func(id string) bool { return id == old.ID })
	}
	if create {
		wh.seq++
		h.ID = fmt.Sprintf("%08x-7e6b-4c1d-9a0f-%012x", wh.seq, wh.seq)
		wh.hooks = append(wh.hooks, &h)
	} else {
		if old.ExternalURL != h.ExternalURL && !slices.ContainsFunc(wh.hooks, func(x *Webhook) bool { return x != old && x.ExternalURL == old.ExternalURL }) {
			closing = wh.lanes[old.ExternalURL]
			delete(wh.lanes, old.ExternalURL)
		}
		*old = h
	}
	lane := s.lane(h.ExternalURL)
	if h.IsActive && lane.Disabled() {
		reenable = lane
		if wh.putOn == nil {
			wh.putOn = map[string]bool{}
		}
		wh.putOn[h.ExternalURL] = true
	}
	return h, reenable, closing, http.StatusOK, ""
}

func writeWebhooks(w http.ResponseWriter, hooks []Webhook) {
	if hooks == nil {
		hooks = []Webhook{}
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(struct{ Webhooks []Webhook }{hooks})
}

// lane returns the deliverer of a URL, making it if needed. wh.mu is held.
func (s *Server) lane(rawURL string) *simkit.Deliverer {
	wh := &s.wh
	if d := wh.lanes[rawURL]; d != nil {
		return d
	}
	if wh.lanes == nil {
		wh.lanes = map[string]*simkit.Deliverer{}
	}
	d := simkit.NewDeliverer(s.opts.WebhookClient, DeliveryPolicy, s.webhookSleep, func(disabled bool) {
		wh.mu.Lock()
		defer wh.mu.Unlock()
		if !disabled {
			if wh.putOn[rawURL] {
				// By a PUT, which switched on the webhook it names.
				delete(wh.putOn, rawURL)
				return
			}
			// From outside the API: so are the webhooks its failures
			// deactivated, as the registrar's PUTs would.
			for _, h := range wh.hooks {
				if h.ExternalURL == rawURL && slices.Contains(wh.off[rawURL], h.ID) {
					h.IsActive = true
				}
			}
			delete(wh.off, rawURL)
			return
		}
		// Every attempt failed: Cin7 Core deactivates the webhook, quietly.
		if wh.off == nil {
			wh.off = map[string][]string{}
		}
		for _, h := range wh.hooks {
			if h.ExternalURL == rawURL && h.IsActive {
				h.IsActive = false
				wh.off[rawURL] = append(wh.off[rawURL], h.ID)
			}
		}
	})
	wh.lanes[rawURL] = d
	return d
}

// webhookSleep waits d of vendor time.
func (s *Server) webhookSleep(ctx context.Context, d time.Duration) error {
	if s.opts.WebhookSleep != nil {
		return s.opts.WebhookSleep(ctx, d)
	}
	t := time.NewTimer(time.Duration(float64(d) / s.opts.TimeScale))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// WebhookSubscriptions returns a copy of the account's webhooks, in the
// order they were made.
func (s *Server) WebhookSubscriptions() []Webhook {
	s.wh.mu.Lock()
	defer s.wh.mu.Unlock()
	out := make([]Webhook, 0, len(s.wh.hooks))
	for _, h := range s.wh.hooks {
		c := *h
		c.ExternalHeaders = slices.Clone(h.ExternalHeaders)
		out = append(out, c)
	}
	return out
}

// WebhookDeliverer returns the deliverer of the webhooks of a URL (its
// counters; SetDisabled as the vendor's failures would), nil when no
// webhook delivers there.
func (s *Server) WebhookDeliverer(rawURL string) *simkit.Deliverer {
	s.wh.mu.Lock()
	defer s.wh.mu.Unlock()
	return s.wh.lanes[rawURL]
}

// DisableWebhooks does what Cin7 Core does after a delivery failed six
// times: the webhooks of the URL become IsActive=false and deliver
// nothing until switched back on. It returns how many it disabled.
func (s *Server) DisableWebhooks(rawURL string) int {
	s.wh.mu.Lock()
	d := s.wh.lanes[rawURL]
	n := 0
	for _, h := range s.wh.hooks {
		if h.ExternalURL == rawURL && h.IsActive {
			n++
			if d == nil {
				h.IsActive = false
			}
		}
	}
	s.wh.mu.Unlock()
	if d != nil {
		// Its callback deactivates them, as failures do.
		d.SetDisabled(true)
	}
	return n
}

// Close stops the webhook feed and every deliverer (queued deliveries are
// dropped). The API keeps answering.
func (s *Server) Close() {
	wh := &s.wh
	wh.feedMu.Lock()
	if wh.started {
		wh.started = false
		wh.unsub()
	}
	wh.feedMu.Unlock()
	wh.mu.Lock()
	lanes := wh.lanes
	wh.lanes = nil
	if wh.cancel != nil {
		wh.cancel()
	}
	wh.mu.Unlock()
	for _, d := range lanes {
		d.Close()
	}
}

// startFeed subscribes to the dataset's changes once a webhook exists. It
// takes the dataset's lock: never call it holding wh.mu.
func (s *Server) startFeed() {
	wh := &s.wh
	wh.feedMu.Lock()
	defer wh.feedMu.Unlock()
	if wh.started {
		return
	}
	wh.mu.Lock()
	if wh.ctx == nil || wh.ctx.Err() != nil {
		wh.ctx, wh.cancel = context.WithCancel(context.Background())
	}
	wh.mu.Unlock()
	wh.started = true
	wh.unsub = s.data.Subscribe(s.onChange)
}

// onChange queues the deliveries of one change on the deliverer of every
// active webhook of each notice's type. It runs with the dataset locked
// by the goroutine that changed it, so it reads the dataset directly
// (View would wait for the lock this goroutine holds) and never blocks:
// a WebhookDelay is waited by the delivery, on the delivery goroutine.
func (s *Server) onChange(c simkit.Change) {
	wh := &s.wh
	wh.mu.Lock()
	defer wh.mu.Unlock()
	if len(wh.hooks) == 0 {
		return
	}
	if wh.stock == nil {
		wh.stock = map[string]string{}
	}
	notices := newView(s.data).notices(c, wh.stock)
	due := s.Now().Add(s.opts.WebhookDelay)
	ctx := wh.ctx
	for _, n := range notices {
		for _, h := range wh.hooks {
			if h.Type != n.typ || !h.IsActive {
				continue
			}
			d := wh.lanes[h.ExternalURL]
			if d == nil {
				continue
			}
			del := simkit.Delivery{URL: h.ExternalURL, Header: deliveryHeader(h), Body: n.body}
			d.Enqueue(func() simkit.Delivery {
				// Cin7 Core's first attempt comes a minute after the event
				// (WebhookDelay); a delivery queued behind others waits
				// only what is left of it.
				if wait := due.Sub(s.Now()); wait > 0 && ctx != nil {
					_ = s.webhookSleep(ctx, wait)
				}
				return del
			})
		}
	}
}

// notice is one delivery body of one webhook type.
type notice struct {
	typ  string
	body []byte
}

// deliveryHeader is the headers of a delivery of h: its authorisation and
// its extra headers.
func deliveryHeader(h *Webhook) http.Header {
	out := http.Header{}
	out.Set("Content-Type", "application/json")
	switch h.ExternalAuthorizationType {
	case "bearerauth":
		out.Set("Authorization", "Bearer "+h.ExternalBearerToken)
	case "basicauth":
		out.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(h.ExternalUserName+":"+h.ExternalPassword)))
	}
	for _, p := range h.ExternalHeaders {
		out.Add(p.Key, p.Value)
	}
	return out
}

// view indexes the dataset for building notices (inside View).
type view struct {
	d        *simkit.Dataset
	ix       salesIndex
	products map[string]*simkit.Product
	orders   map[string]*simkit.Document
	invoices map[string]*simkit.Document
	credits  map[string]*simkit.Document
	names    map[string]string // warehouse code -> name
}

func newView(d *simkit.Dataset) *view {
	v := &view{d: d, ix: indexSales(d), products: map[string]*simkit.Product{}, orders: map[string]*simkit.Document{},
		invoices: map[string]*simkit.Document{}, credits: map[string]*simkit.Document{}, names: map[string]string{}}
	for _, p := range d.Products {
		v.products[p.ID] = p
	}
	for _, o := range d.Orders {
		v.orders[o.ID] = o
	}
	for _, inv := range d.Invoices {
		v.invoices[inv.ID] = inv
	}
	for _, cn := range d.CreditNotes {
		v.credits[cn.ID] = cn
	}
	for _, w := range d.Warehouses {
		v.names[w.Code] = w.Name
	}
	return v
}

// orderEvent is the stage event the simulator sends for an edit of an
// order in a status (the dataset's edit stands for the stage Cin7 Core
// would announce).
var orderEvent = map[string]string{
	"Parked":      "Sale/QuoteAuthorised",
	"Placed":      "Sale/OrderAuthorised",
	"Backordered": "Sale/Backordered",
	"Completed":   "Sale/ShipmentAuthorised",
}

// notices are the deliveries one change makes. Cin7 Core has no delete
// event but Sale/Voided, and no event for tax rules, locations,
// currencies or sales people: a removed record, or a change of those,
// makes none (the poll and reconciliation find them).
func (v *view) notices(c simkit.Change, stock map[string]string) []notice {
	if c.Op == simkit.ChangeRemoved {
		if c.Kind == simkit.AdminProducts {
			delete(stock, c.ID)
		}
		return nil
	}
	switch c.Kind {
	case simkit.AdminProducts:
		out := []notice{{"Product/Updated", object(map[string]any{"ProductID": c.ID, "EventType": "Product/Updated"})}}
		if p := v.products[c.ID]; p != nil && len(p.Stock) > 0 {
			rows := make([]Availability, 0, len(p.Stock))
			for j := range p.Stock {
				rows = append(rows, availabilityRow(p, j, v.names))
			}
			b := object(rows)
			// Cin7 Core announces a change of the available stock level,
			// not every edit of a product.
			if stock[p.ID] != string(b) {
				stock[p.ID] = string(b)
				out = append(out, notice{"Stock/AvailableStockLevelChanged", b})
			}
		}
		return out
	case simkit.AdminCustomers:
		return []notice{{"Customer/Updated", object(map[string]any{"CustomerDetailsList": []map[string]string{{"ID": c.ID}}, "EventType": "Customer/Updated"})}}
	case simkit.AdminSuppliers:
		return []notice{{"Supplier/Updated", object(map[string]any{"SupplierDetailsList": []map[string]string{{"ID": c.ID}}, "EventType": "Supplier/Updated"})}}
	case simkit.AdminOrders:
		o := v.orders[c.ID]
		if o == nil {
			return nil
		}
		typ := orderEvent[o.Status]
		switch {
		case c.Op == simkit.ChangeCreated:
			typ = "Sale/Created"
		case c.Op == simkit.ChangeDeleted || o.Deleted:
			typ = "Sale/Voided"
		case typ == "":
			typ = "Sale/OrderAuthorised"
		}
		return []notice{saleNotice(typ, "SaleID", o)}
	case simkit.AdminInvoices:
		inv := v.invoices[c.ID]
		if inv == nil || v.ix.order[inv.OrderNumber] == nil {
			return nil
		}
		o := v.ix.order[inv.OrderNumber]
		switch {
		case inv.Deleted:
			return []notice{saleNotice("Sale/Undo", "SaleID", o)}
		case inv.Status == "PAID":
			return []notice{saleNotice("Sale/FullPaymentReceived", "SaleID", o)}
		}
		// Invoice events name the sale task (third-party code reads
		// SaleTaskID from them); for a simple sale it is the sale's id.
		return []notice{saleNotice("Sale/InvoiceAuthorised", "SaleTaskID", o)}
	case simkit.AdminCreditNotes:
		cn := v.credits[c.ID]
		if cn == nil {
			return nil
		}
		inv := v.ix.invoiceByNumber[cn.OrderNumber]
		if inv == nil || v.ix.order[inv.OrderNumber] == nil {
			return nil
		}
		typ := "Sale/CreditNoteAuthorised"
		if cn.Deleted {
			typ = "Sale/Undo"
		}
		return []notice{saleNotice(typ, "SaleID", v.ix.order[inv.OrderNumber])}
	}
	return nil
}

func saleNotice(typ, idField string, o *simkit.Document) notice {
	return notice{typ, object(map[string]any{idField: o.ID, "SaleOrderNumber": o.Number, "EventType": typ})}
}

func object(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("cin7core sim: rendering a webhook: %v", err)) // only our own values are rendered
	}
	return b
}
