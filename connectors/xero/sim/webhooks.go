package sim

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/simkit"
)

// Xero's webhooks, as the simulator plays them (docs/connectors/xero.md,
// Webhooks). Xero has no API for subscriptions: the app's one webhook is
// made in the developer portal (URL, event categories; Xero shows the
// webhook key), and it is not "OK", and delivers nothing, until the URL
// has passed the intent-to-receive check. SetWebhook plays the portal,
// IntentToReceive the check. Then every change of the dataset that Xero
// announces (contacts, invoices and bills, credit notes) becomes an event
// of the organisation WebhookConfig.Tenant; changes made within
// WebhookConfig.Gather go out together in one delivery, as Xero batches
// events (firstEventSequence…lastEventSequence), signed in x-xero-signature
// (base64 HMAC-SHA256 of the body with the key). A delivery not answered
// 200 within 5 seconds is repeated, less and less often, for about a day of
// vendor time; then the webhook is disabled and delivers nothing until it
// is re-enabled (EnableWebhook: the check again).
//
// A change Xero announces queues its delivery on the deliverer at once,
// from the dataset's change callback, unless one is already queued that has
// not yet taken the changes waiting: then it joins that one. The delivery,
// when its turn comes, gathers for WebhookConfig.Gather and then takes up
// to MaxEvents of the changes waiting (queuing the next delivery for the
// rest). So a deliverer with nothing pending has delivered every change
// made so far, and the gathering happens inside the delivery's turn.

// The webhook's status as the developer portal shows it. Only "OK" is
// seen in public material; the other two names are the simulator's.
const (
	WebhookIntentRequired = "INTENT_TO_RECEIVE_REQUIRED"
	WebhookOK             = "OK"
	WebhookDisabled       = "DISABLED"
)

// Xero's event categories the simulator announces (SUBSCRIPTION events are
// about the app, not an organisation's data).
const (
	CategoryContact    = "CONTACT"
	CategoryInvoice    = "INVOICE"
	CategoryCreditNote = "CREDITNOTE"
)

// SignatureHeader carries a delivery's signature.
const SignatureHeader = "x-xero-signature"

// WebhookTimeout is how long Xero waits for the receiver's reply.
const WebhookTimeout = 5 * time.Second

// WebhookRetries are the waits before each repeat of a failed delivery, on
// Xero's clock: "with decreasing frequency for up to 24 hours" (the
// schedule is the simulator's; they add up to 23 h 51 min).
var WebhookRetries = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour, 8 * time.Hour}

// WebhookPolicy is Xero's delivery rule: 200 within 5 seconds, repeats for
// a day, then the webhook is disabled.
var WebhookPolicy = simkit.DeliveryPolicy{Timeout: WebhookTimeout, Retries: WebhookRetries, DisableAfter: 1,
	OK: func(status int) bool { return status == http.StatusOK }}

// DefaultGather is how long the simulator gathers changes into one
// delivery (real time); DefaultMaxEvents bounds the events of one
// delivery. Xero documents neither: both are assumptions.
const (
	DefaultGather    = 200 * time.Millisecond
	DefaultMaxEvents = 100
)

// maxPendingChanges bounds the changes waiting to be gathered: beyond it
// they are dropped and counted (a vendor that gives up), never held.
const maxPendingChanges = 100000

// WebhookConfig is what the developer portal holds for the app's webhook.
type WebhookConfig struct {
	// URL is the delivery URL (absolute http or https).
	URL string
	// Key is the webhook key; empty lets the portal make one (the same
	// for every SetWebhook of the app, as Xero keeps the app's key).
	Key string
	// Categories subscribed to; nil means all three.
	Categories []string
	// Tenant is the organisation whose data the dataset is (the events'
	// tenantId); empty means the first connected one (Credentials'
	// tenantId). It must be connected.
	Tenant string
	// Validated plays a webhook that already passed intent-to-receive (a
	// test whose receiver is a plain capture, not a Xero receiver): it is
	// OK at once.
	Validated bool
	// Client sends the deliveries and the check (default: a plain client).
	Client *http.Client
	// Sleep waits Xero's time between attempts; nil waits real time
	// compressed by the simulator's TimeScale.
	Sleep func(ctx context.Context, d time.Duration) error
	// Gather and MaxEvents override DefaultGather and DefaultMaxEvents.
	Gather    time.Duration
	MaxEvents int
}

// WebhookSubscription is the app's webhook as the portal shows it, with
// the simulator's delivery counters.
type WebhookSubscription struct {
	URL        string
	Key        string
	Categories []string
	Tenant     string
	Status     string
	// Events counts the events put into deliveries; Deliveries the
	// deliveries made of them.
	Events, Deliveries int64
	// Delivered, Failed, Attempts and Dropped are the deliverer's
	// counters (Dropped includes changes dropped while gathering).
	Delivered, Failed, Attempts, Dropped int64
	// Pending counts the deliveries queued.
	Pending int
}

// webhook is the app's webhook while it exists.
type webhook struct {
	s      *Server
	cfg    WebhookConfig
	key    []byte
	cats   map[string]bool
	d      *simkit.Deliverer
	unsub  func()
	client *http.Client

	mu      sync.Mutex
	status  string
	pending []simkit.Change
	// queued is set while a delivery is queued (or being built) that has
	// not yet taken the changes waiting: a new change joins it.
	queued bool
	stop   chan struct{}
	// ready is closed once bills holds the orders that had a bill when
	// the webhook was made.
	ready chan struct{}

	// the delivery goroutine only (after ready):
	seq   int
	bills map[string]string // order id -> the id of the bill derived from it

	events, deliveries, dropped atomic.Int64
}

// oddInvoiceKind is the change kind of an invoice AddInvoiceOfType made.
const oddInvoiceKind = "xero:odd_invoice"

// WebhookKeyOf returns the webhook key the portal makes for the app of a
// simulator with the given seed: 64 bytes, base64 (Xero's keys are long
// base64 strings).
func WebhookKeyOf(seed uint64) string {
	h := sha512.Sum512([]byte(fmt.Sprintf("webhook-key-%d", seed)))
	return base64.StdEncoding.EncodeToString(h[:])
}

// SetWebhook saves the app's webhook as the developer portal does,
// replacing any earlier one, and returns its key. It delivers nothing
// until IntentToReceive passes (or cfg.Validated).
func (s *Server) SetWebhook(cfg WebhookConfig) (key string, err error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("xero sim: webhook URL %q is not an absolute http(s) URL", cfg.URL)
	}
	if cfg.Tenant == "" {
		cfg.Tenant = s.tenants[0]
	} else if !s.connected(cfg.Tenant) {
		return "", fmt.Errorf("xero sim: webhook tenant %s is not connected to the app", cfg.Tenant)
	}
	if cfg.Categories == nil {
		cfg.Categories = []string{CategoryContact, CategoryInvoice, CategoryCreditNote}
	}
	cats := map[string]bool{}
	for _, c := range cfg.Categories {
		switch c {
		case CategoryContact, CategoryInvoice, CategoryCreditNote:
			cats[c] = true
		default:
			return "", fmt.Errorf("xero sim: webhook category %q is not one of %s, %s, %s", c, CategoryContact, CategoryInvoice, CategoryCreditNote)
		}
	}
	if cfg.Key == "" {
		cfg.Key = WebhookKeyOf(s.opts.Dataset.Seed)
	}
	if cfg.Gather <= 0 {
		cfg.Gather = DefaultGather
	}
	if cfg.MaxEvents <= 0 {
		cfg.MaxEvents = DefaultMaxEvents
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{}
	}
	sleep := cfg.Sleep
	if sleep == nil {
		sleep = s.sleep
	}
	s.RemoveWebhook()
	w := &webhook{s: s, cfg: cfg, key: []byte(cfg.Key), cats: cats, client: client, status: WebhookIntentRequired,
		stop: make(chan struct{}), ready: make(chan struct{}), bills: map[string]string{}}
	if cfg.Validated {
		w.status = WebhookOK
	}
	w.d = simkit.NewDeliverer(client, WebhookPolicy, sleep, w.onChange)
	// Subscribe first, then learn which orders have bills: a change in
	// between is queued and resolved after (its delivery waits for ready).
	w.unsub = s.data.Subscribe(w.changed)
	s.data.View(func(d *simkit.Dataset) {
		for _, o := range d.Orders {
			if hasBill(o) {
				w.bills[o.ID] = billID(o)
			}
		}
	})
	close(w.ready)
	s.hookMu.Lock()
	s.hook = w
	s.hookMu.Unlock()
	return cfg.Key, nil
}

// RemoveWebhook deletes the app's webhook (nothing more is delivered; queued
// deliveries are dropped).
func (s *Server) RemoveWebhook() {
	s.hookMu.Lock()
	w := s.hook
	s.hook = nil
	s.hookMu.Unlock()
	if w == nil {
		return
	}
	w.unsub()
	close(w.stop)
	w.d.Close()
}

// Close stops the simulator's background work (the webhook's deliveries).
func (s *Server) Close() { s.RemoveWebhook() }

func (s *Server) webhook() *webhook {
	s.hookMu.Lock()
	defer s.hookMu.Unlock()
	return s.hook
}

// errNoWebhook is returned when the app has no webhook.
var errNoWebhook = errors.New("xero sim: the app has no webhook (SetWebhook)")

// IntentToReceive runs Xero's intent-to-receive check against the
// webhook's URL: one delivery with no events signed with the key and one
// signed wrongly, each answered within 5 seconds. The webhook is OK (and
// delivers) only when the first is answered 200 with an empty body and the
// second 401; otherwise it needs the check again. It returns the status;
// err says what failed.
func (s *Server) IntentToReceive(ctx context.Context) (string, error) {
	w := s.webhook()
	if w == nil {
		return "", errNoWebhook
	}
	wrong := make([]byte, 64)
	_, _ = rand.Read(wrong)
	good, gerr := w.probe(ctx, w.key)
	bad, berr := w.probe(ctx, wrong)
	var err error
	switch {
	case gerr != nil:
		err = fmt.Errorf("the correctly signed delivery: %w", gerr)
	case good != http.StatusOK:
		err = fmt.Errorf("the correctly signed delivery was answered %d, not 200", good)
	case berr != nil:
		err = fmt.Errorf("the wrongly signed delivery: %w", berr)
	case bad != http.StatusUnauthorized:
		err = fmt.Errorf("the wrongly signed delivery was answered %d, not 401", bad)
	}
	if err != nil {
		// Nothing is delivered until a check passes.
		w.d.SetDisabled(true)
		w.mu.Lock()
		w.status = WebhookIntentRequired
		w.mu.Unlock()
		return WebhookIntentRequired, fmt.Errorf("xero sim: intent to receive failed: %w", err)
	}
	w.mu.Lock()
	w.status = WebhookOK
	w.mu.Unlock()
	w.d.SetDisabled(false)
	return WebhookOK, nil
}

// errReplyBody: Xero wants no body in the reply.
var errReplyBody = errors.New("the reply has a body")

// probe sends one intent-to-receive delivery signed with key and returns
// the reply's status.
func (w *webhook) probe(ctx context.Context, key []byte) (int, error) {
	body, err := json.Marshal(map[string]any{"events": []any{}, "lastEventSequence": 0, "firstEventSequence": 0, "entropy": entropy()})
	if err != nil {
		return 0, fmt.Errorf("encoding: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("building the request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set(SignatureHeader, signature(key, body))
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("sending: %w", err)
	}
	defer resp.Body.Close()
	n, _ := io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode == http.StatusOK && n > 0 {
		return resp.StatusCode, errReplyBody
	}
	return resp.StatusCode, nil
}

// EnableWebhook re-enables a disabled webhook as the portal does: the
// intent-to-receive check again.
func (s *Server) EnableWebhook(ctx context.Context) (string, error) { return s.IntentToReceive(ctx) }

// DisableWebhook disables the webhook as Xero does after a day of failed
// deliveries; false when there is none.
func (s *Server) DisableWebhook() bool {
	w := s.webhook()
	if w == nil {
		return false
	}
	w.d.SetDisabled(true)
	return true
}

// WebhookDeliverer returns the webhook's deliverer (its counters; a test
// may switch it off and on as Xero and the portal do), nil without one.
func (s *Server) WebhookDeliverer() *simkit.Deliverer {
	if w := s.webhook(); w != nil {
		return w.d
	}
	return nil
}

// WebhookSubscriptions lists the app's webhook (none or one: Xero has one
// per app) with its status and counters.
func (s *Server) WebhookSubscriptions() []WebhookSubscription {
	w := s.webhook()
	if w == nil {
		return nil
	}
	w.mu.Lock()
	status := w.status
	w.mu.Unlock()
	st := w.d.Stats()
	return []WebhookSubscription{{URL: w.cfg.URL, Key: w.cfg.Key, Categories: slices.Clone(w.cfg.Categories), Tenant: w.cfg.Tenant, Status: status,
		Events: w.events.Load(), Deliveries: w.deliveries.Load(), Delivered: st.Delivered.Load(), Failed: st.Failed.Load(),
		Attempts: st.Attempts.Load(), Dropped: st.Dropped.Load() + w.dropped.Load(), Pending: w.d.Pending()}}
}

// onChange follows the deliverer: disabled by failures (or DisableWebhook),
// or switched back on.
func (w *webhook) onChange(disabled bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if disabled {
		// The deliverer dropped its queue: the changes waiting go with it.
		w.status = WebhookDisabled
		w.pending = nil
		w.queued = false
		return
	}
	w.status = WebhookOK
}

// changed is the dataset's change feed (the dataset is locked: queue only).
// Each change it keeps becomes exactly one event (announces).
func (w *webhook) changed(c simkit.Change) {
	if !w.announces(c) {
		return
	}
	w.mu.Lock()
	if w.status != WebhookOK {
		w.mu.Unlock()
		return // nothing is delivered until the check passed, nor while disabled
	}
	if len(w.pending) >= maxPendingChanges {
		w.mu.Unlock()
		w.dropped.Add(1)
		return
	}
	w.pending = append(w.pending, c)
	join := w.queued
	w.queued = true
	w.mu.Unlock()
	if !join {
		// A disabled deliverer drops it; onChange then forgets the
		// changes waiting.
		w.d.Enqueue(w.build)
	}
}

// announces reports whether Xero announces a change, in a subscribed
// category: contacts (customers and suppliers), invoices, credit notes,
// and the bill the simulator derives from every fourth order (hasBill).
func (w *webhook) announces(c simkit.Change) bool {
	switch c.Kind {
	case simkit.AdminCustomers, simkit.AdminSuppliers:
		return w.cats[CategoryContact]
	case simkit.AdminInvoices, oddInvoiceKind:
		return w.cats[CategoryInvoice]
	case simkit.AdminCreditNotes:
		return w.cats[CategoryCreditNote]
	case simkit.AdminOrders:
		return w.cats[CategoryInvoice] && billSeq(c.Seq)
	}
	return false // Xero announces no items, tax rates, currencies
}

// build is a delivery's turn on the deliverer: it gathers for
// cfg.Gather (unless MaxEvents changes already wait), takes up to
// MaxEvents of the changes waiting and queues the next delivery for the
// rest, and signs one delivery of their events.
func (w *webhook) build() simkit.Delivery {
	select {
	case <-w.ready:
	case <-w.stop:
	}
	w.mu.Lock()
	full := len(w.pending) >= w.cfg.MaxEvents
	w.mu.Unlock()
	if !full {
		t := time.NewTimer(w.cfg.Gather)
		select {
		case <-t.C:
		case <-w.stop:
			t.Stop()
		}
	}
	w.mu.Lock()
	n := min(len(w.pending), w.cfg.MaxEvents)
	batch := slices.Clone(w.pending[:n])
	w.pending = slices.Clone(w.pending[n:])
	next := len(w.pending) > 0 && w.status == WebhookOK
	if !next {
		w.pending = nil
		w.queued = false
	}
	w.mu.Unlock()
	if next {
		w.d.Enqueue(w.build)
	}
	return w.sign(w.resolve(batch))
}

// wireEvent is one event as Xero sends it.
type wireEvent struct {
	ResourceURL   string          `json:"resourceUrl"`
	ResourceID    string          `json:"resourceId"`
	EventDateUTC  string          `json:"eventDateUtc"`
	EventType     string          `json:"eventType"`
	EventCategory string          `json:"eventCategory"`
	TenantID      string          `json:"tenantId"`
	TenantType    string          `json:"tenantType"`
	Data          *creditNoteData `json:"data,omitempty"`
}

// creditNoteData is what a credit note event adds (xero-webhooks.yaml,
// CreditNoteWebhookEvent).
type creditNoteData struct {
	Type   string `json:"Type"`
	Status string `json:"Status"`
}

type wireDelivery struct {
	Events             []wireEvent `json:"events"`
	FirstEventSequence int         `json:"firstEventSequence"`
	LastEventSequence  int         `json:"lastEventSequence"`
	Entropy            string      `json:"entropy"`
}

// resolve turns changes into Xero's events, one each: contacts (customers
// and suppliers), invoices, the bills derived from orders, credit notes; of
// the subscribed categories (changed kept no others). A record removed
// outright is announced as an UPDATE: Xero has no delete events.
func (w *webhook) resolve(batch []simkit.Change) []wireEvent {
	var out []wireEvent
	add := func(c simkit.Change, cat, path, id string, data *creditNoteData) {
		if !w.cats[cat] {
			return
		}
		typ := "UPDATE"
		if c.Op == simkit.ChangeCreated {
			typ = "CREATE"
		}
		out = append(out, wireEvent{ResourceURL: "https://api.xero.com/api.xro/2.0/" + path + "/" + id, ResourceID: id,
			EventDateUTC: c.At.UTC().Format("2006-01-02T15:04:05.000"), EventType: typ, EventCategory: cat,
			TenantID: w.cfg.Tenant, TenantType: "ORGANISATION", Data: data})
	}
	w.s.data.View(func(d *simkit.Dataset) {
		for _, c := range batch {
			switch c.Kind {
			case simkit.AdminCustomers, simkit.AdminSuppliers:
				add(c, CategoryContact, "Contacts", c.ID, nil)
			case simkit.AdminInvoices, oddInvoiceKind:
				add(c, CategoryInvoice, "Invoices", c.ID, nil)
			case simkit.AdminCreditNotes:
				data := &creditNoteData{Type: "ACCRECCREDIT", Status: "DELETED"}
				if i := slices.IndexFunc(d.CreditNotes, func(cn *simkit.Document) bool { return cn.ID == c.ID }); i >= 0 {
					data.Status = docStatus(d.CreditNotes[i])
				}
				add(c, CategoryCreditNote, "CreditNotes", c.ID, data)
			case simkit.AdminOrders:
				// Xero has no sales orders; the bill the simulator derives
				// from every fourth order is an invoice (ACCPAY). An order
				// of those whose bill is not served (removed, or without
				// lines) is announced as an UPDATE of its bill all the
				// same: the read finds nothing, and nothing is deleted.
				_, had := w.bills[c.ID]
				bill := derivedID(c.ID, "bill")
				if i := slices.IndexFunc(d.Orders, func(o *simkit.Document) bool { return o.ID == c.ID }); i >= 0 && hasBill(d.Orders[i]) {
					if !had {
						c.Op = simkit.ChangeCreated
					}
					w.bills[c.ID] = bill
				} else {
					delete(w.bills, c.ID)
					c.Op = simkit.ChangeUpdated
				}
				add(c, CategoryInvoice, "Invoices", bill, nil)
			}
		}
	})
	return out
}

// sign makes one signed delivery of events, numbered on from the last.
// With no events (the changes waiting went with a disable that raced this
// delivery's turn) it is a delivery that names nothing, as Xero's
// intent-to-receive deliveries are.
func (w *webhook) sign(evs []wireEvent) simkit.Delivery {
	first := w.seq + 1
	w.seq += len(evs)
	if len(evs) == 0 {
		first = w.seq
	}
	if evs == nil {
		evs = []wireEvent{}
	}
	body, err := json.Marshal(wireDelivery{Events: evs, FirstEventSequence: first, LastEventSequence: w.seq, Entropy: entropy()})
	if err != nil {
		// Only our own values are encoded; should it fail, a delivery
		// naming nothing goes out instead.
		w.dropped.Add(int64(len(evs)))
		body = []byte(`{"events":[],"firstEventSequence":0,"lastEventSequence":0,"entropy":""}`)
	} else {
		w.events.Add(int64(len(evs)))
	}
	w.deliveries.Add(1)
	h := http.Header{}
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set(SignatureHeader, signature(w.key, body))
	return simkit.Delivery{URL: w.cfg.URL, Header: h, Body: body}
}

// signature is the x-xero-signature of body under key.
func signature(key, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// entropy is a delivery's random string (Xero's are 20 capital letters).
func entropy() string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = 'A' + b[i]%26
	}
	return string(b)
}

// hasBill and billID say which orders the simulator serves as a bill, and
// its InvoiceID (see bills).
func hasBill(o *simkit.Document) bool { return billSeq(o.Seq) && len(o.Lines) > 0 }

// billSeq says whether an order of that sequence number is one the
// simulator derives a bill from (when it has lines).
func billSeq(seq int) bool             { return seq%4 == 1 }
func billID(o *simkit.Document) string { return derivedID(o.ID, "bill") }

// sleep waits d of Xero's time: real time compressed by TimeScale.
func (s *Server) sleep(ctx context.Context, d time.Duration) error {
	if s.opts.TimeScale > 1 {
		d = time.Duration(float64(d) / s.opts.TimeScale)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
