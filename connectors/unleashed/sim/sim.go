// Package sim is an http.Handler that behaves like the Unleashed Software
// API for the endpoints the unleashed connector reads: api-auth-id and
// api-auth-signature (base64 HMAC-SHA256 of the raw query string, keyed by
// the API key; a wrong signature gets 403) and the client-type header; the
// page number in the path (/Products/2) with pageSize up to 1000 and the
// {"Pagination": {...}, "Items": [...]} envelope; modifiedSince in UTC;
// Microsoft JSON dates ("/Date(1473149768263)/"); obsolete and deleted
// records hidden unless asked for; lists in the vendor's order (products and
// customers by code, credit notes and shipments last modified first, the
// rest in creation order); a monthly call quota per account that
// blocks every request once used up (403 whose body names the limit) until
// the 1st of the next month; and, from the embedded simkit.Base, the vendor
// clock with its skew, the Date header, fault injection, statistics and the
// unstable-order knob. It also serves the webhook subscription API and
// sends signed deliveries for every product and customer change
// (webhooks.go; the shape is partly assumed, see the connector's docs).
//
// It serves a simkit.Dataset, so tests can change records while a run is
// under way and know what a full import must yield (Expected).
package sim

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
)

// Defaults of the simulator, as Unleashed documents them.
const (
	DefaultAPIID  = "8e2cbd5b-94f1-4b8a-a6c0-3b8dbfa2c5c1"
	DefaultAPIKey = "kH9xLmQ2vR7pT4wZ8nB3cF6yJ1sD5gA0eU2iO7qW4rT9yX3vB6nM8kL1jH5gF2dS4aP7oI0uY3tR6eW9qZ=="
	// DefaultPageSize is the page size when the request names none.
	DefaultPageSize = 200
	// MaxPageSize is the largest pageSize Unleashed honours.
	MaxPageSize = 1000
	// MaxInlineContacts is how many contacts a customer carries inline with
	// includeAllContacts=true at most (Customers page: "up to 100").
	MaxInlineContacts = 100
	// QuotaMessage is the body text of the answer once the monthly quota is
	// used up.
	QuotaMessage = "You have reached your monthly API call limit. API access is blocked until the 1st of next month."
)

// Options configure a simulator.
type Options struct {
	// Dataset sizes and seeds the dataset built when Data is nil.
	Dataset simkit.Options
	// Data, when set, is served instead of a dataset built from Dataset.
	Data *simkit.Dataset
	// TimeScale > 1 makes the simulator's clock (Date header, modification
	// stamps, the monthly quota's calendar) run that much faster than real
	// time. Unleashed has no per-minute limit to compress.
	TimeScale float64
	// Now is the clock that stamps changes and the Date header; nil means a
	// simkit.Clock starting at the dataset's present.
	Now func() time.Time

	// APIID and APIKey override the credentials the simulator accepts.
	APIID, APIKey string
	// MonthlyQuota is the account's plan: calls per calendar month (UTC);
	// 0 means no quota.
	MonthlyQuota int
	// RequireClientType refuses requests without a client-type header
	// (Unleashed enforces it since 30 June 2025); nil means true.
	RequireClientType *bool

	// Webhooks (webhooks.go). WebhookClient sends deliveries (nil: a plain
	// http.Client). WebhookPolicy replaces DefaultDelivery. WebhookSleep
	// waits vendor time between attempts (nil: real time divided by
	// TimeScale). WebhookNow stamps x-unleashed-timestamp (nil: the wall
	// clock, as the receiver's replay window expects; the vendor clock
	// stamps records). MaxWebhookSubscriptions replaces the cap of 5.
	// RequireHTTPSWebhooks refuses http:// notification URLs as Unleashed
	// does (off by default so that local receivers work).
	WebhookClient           *http.Client
	WebhookPolicy           *simkit.DeliveryPolicy
	WebhookSleep            func(ctx context.Context, d time.Duration) error
	WebhookNow              func() time.Time
	MaxWebhookSubscriptions int
	RequireHTTPSWebhooks    bool
}

// Server is an Unleashed simulator.
type Server struct {
	// Base is the vendor clock (with its skew), the Date header, the fault
	// queue, the statistics and the unstable-order knob.
	simkit.Base
	opts Options
	data *simkit.Dataset

	mu          sync.Mutex
	month       time.Time // start of the counted month
	used        int
	groupPrices []groupPrice

	// Webhook subscriptions (webhooks.go). whMu is never held while
	// calling the dataset: the dataset's change feed takes it.
	whMu     sync.Mutex
	subs     []*webhookSub
	subSeq   int
	whClosed bool
	unfeed   func()
	feed     sync.Once
	notes    atomic.Int64
}

// New returns a simulator serving opts.Data or a dataset built from
// opts.Dataset.
func New(opts Options) *Server {
	if opts.APIID == "" {
		opts.APIID = DefaultAPIID
	}
	if opts.APIKey == "" {
		opts.APIKey = DefaultAPIKey
	}
	if opts.TimeScale <= 0 {
		opts.TimeScale = 1
	}
	data := opts.Data
	if data == nil {
		data = simkit.NewDataset(opts.Dataset)
	}
	now := opts.Now
	if now == nil {
		var base time.Time
		data.Update(func(d *simkit.Dataset) { base = d.Stamp() })
		now = simkit.NewClock(base, opts.TimeScale).Now
	}
	s := &Server{opts: opts, data: data}
	s.Init(now)
	// Records are stamped on the vendor's clock, skew included.
	data.SetClock(s.Now)
	return s
}

// Credentials returns the Secret data that authenticates against the
// simulator.
func (s *Server) Credentials() map[string]string {
	return map[string]string{"apiId": s.opts.APIID, "apiKey": s.opts.APIKey}
}

// Dataset returns the served dataset.
func (s *Server) Dataset() *simkit.Dataset { return s.data }

// QuotaUsed returns the calls counted against the quota this month.
func (s *Server) QuotaUsed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}

// ServeGroupPrice makes GET /ProductPrices serve, from now on, a discount
// for a whole product group and one customer: a row with ProductGroup and
// no Product, which Unleashed allows (the ProductPrices page documents the
// ProductGroup field and the productGroupPrices filter) and the connector
// sets aside, as it maps prices of products only. The row is modified now;
// ServeGroupPrice returns its Guid.
func (s *Server) ServeGroupPrice() string {
	var cust string
	s.data.View(func(d *simkit.Dataset) {
		if len(d.Customers) > 0 {
			cust = d.Customers[0].ID
		}
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.groupPrices) + 1
	gp := groupPrice{guid: deriveGUID(zeroGUID, "groupprice/"+strconv.Itoa(n)), group: "Hardware", customerID: cust, discount: 10,
		modified: simkit.Stamp(s.Now(), time.Millisecond)}
	s.groupPrices = append(s.groupPrices, gp)
	return gp.guid
}

// Sign returns the api-auth-signature of a raw query string (without '?')
// for an API key: base64(HMAC-SHA256(key, query)).
func Sign(rawQuery, apiKey string) string {
	m := hmac.New(sha256.New, []byte(apiKey))
	m.Write([]byte(rawQuery))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.Stats().Count(r.URL.Path)
	now := s.Now()
	s.SetDate(w)
	if s.ApplyFault(w, r) {
		return
	}
	whID, isWebhooks := webhookRoute(r.URL.Path)
	if r.Method != http.MethodGet && !isWebhooks {
		writeError(w, http.StatusMethodNotAllowed, "The simulator serves GET only")
		return
	}
	// Authentication: the id, then the signature of exactly the query
	// string sent.
	want := Sign(r.URL.RawQuery, s.opts.APIKey)
	if r.Header.Get("api-auth-id") != s.opts.APIID || !hmac.Equal([]byte(r.Header.Get("api-auth-signature")), []byte(want)) {
		s.Stats().AuthFails.Add(1)
		writeError(w, http.StatusForbidden, "Forbidden: the API id or signature is invalid")
		return
	}
	if (s.opts.RequireClientType == nil || *s.opts.RequireClientType) && !validClientType(r.Header.Get("client-type")) {
		writeError(w, http.StatusBadRequest, "The client-type header is required: <partner>/<app>, lower case, no spaces")
		return
	}
	if !s.countQuota(now) {
		s.Stats().Throttled.Add(1)
		writeError(w, http.StatusForbidden, QuotaMessage)
		return
	}
	if isWebhooks {
		s.serveWebhooks(w, r, whID)
		s.Stats().Served.Add(1)
		return
	}
	rt, ok := route(r.URL.Path)
	if !ok {
		writeError(w, http.StatusNotFound, "Resource not found")
		return
	}
	h := routes[rt.endpoint]
	req, err := parse(r, rt.page)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	req.id, req.allWarehouses = rt.id, rt.allWarehouses
	var body []byte
	if rt.id != "" && !rt.allWarehouses {
		// One document by Guid: whatever its status, the document itself.
		req.single = true
		if body, ok = one(h(s, req), rt.id); !ok {
			writeError(w, http.StatusNotFound, "Resource not found")
			return
		}
	} else {
		body = h(s, req)
	}
	body = s.Corrupt(rt.endpoint, body)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	s.Stats().Served.Add(1)
}

// validClientType checks "<partner_or_account>/<app>": lower case, no
// spaces, one word each side.
func validClientType(v string) bool {
	a, b, ok := strings.Cut(v, "/")
	if !ok || a == "" || b == "" || strings.Contains(b, "/") {
		return false
	}
	return v == strings.ToLower(v) && !strings.ContainsAny(v, " \t")
}

// countQuota counts a call against the month's quota; false once it is used
// up (the call is not served).
func (s *Server) countQuota(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	if !start.Equal(s.month) {
		s.month, s.used = start, 0
	}
	if s.opts.MonthlyQuota > 0 && s.used >= s.opts.MonthlyQuota {
		return false
	}
	s.used++
	return true
}

// routed is where a request goes.
type routed struct {
	endpoint string
	page     int
	// id is the Guid of GET /{Endpoint}/{guid} (one document) and of GET
	// /StockOnHand/{productGuid}/AllWarehouses (allWarehouses).
	id            string
	allWarehouses bool
}

// single lists the endpoints that read one document by Guid.
var single = map[string]bool{"products": true, "customers": true, "warehouses": true, "salesorders": true, "invoices": true,
	"creditnotes": true, "salesshipments": true}

// route splits /Products, /Products/2, /Products/Page/2, /Products/{guid}
// and /StockOnHand/{guid}/AllWarehouses (any case).
func route(path string) (rt routed, ok bool) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) == 0 {
		return rt, false
	}
	rt.endpoint = strings.ToLower(parts[0])
	if _, known := routes[rt.endpoint]; !known {
		return rt, false
	}
	rt.page = 1
	rest := parts[1:]
	if len(rest) == 2 && strings.EqualFold(rest[0], "Page") {
		rest = rest[1:]
	}
	if len(rest) == 2 && rt.endpoint == "stockonhand" && strings.EqualFold(rest[1], "AllWarehouses") && isGUID(rest[0]) {
		rt.id, rt.allWarehouses = strings.ToLower(rest[0]), true
		return rt, true
	}
	switch len(rest) {
	case 0:
	case 1:
		if single[rt.endpoint] && isGUID(rest[0]) {
			rt.id = strings.ToLower(rest[0])
			return rt, true
		}
		n, err := strconv.Atoi(rest[0])
		if err != nil || n < 1 {
			return rt, false
		}
		rt.page = n
	default:
		return rt, false
	}
	return rt, true
}

// isGUID reports whether v has the shape of a GUID (36 characters, dashes
// at 8, 13, 18 and 23, hex digits elsewhere).
func isGUID(v string) bool {
	if len(v) != 36 {
		return false
	}
	for i, c := range v {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'):
		default:
			return false
		}
	}
	return true
}

// one picks the document whose Guid is id out of a rendered list: the body
// of GET /{Endpoint}/{guid} is the document itself (an assumption: the
// pages show list envelopes only).
func one(list []byte, id string) ([]byte, bool) {
	var env struct {
		Items []json.RawMessage `json:"Items"`
	}
	if json.Unmarshal(list, &env) != nil {
		return nil, false
	}
	for _, it := range env.Items {
		var g struct{ Guid string }
		if json.Unmarshal(it, &g) == nil && strings.EqualFold(g.Guid, id) {
			return it, true
		}
	}
	return nil, false
}

// request is a parsed list request.
type request struct {
	page, size int
	since      time.Time
	q          map[string]string
	// id and allWarehouses: see routed. single is a read of one document:
	// the list it is picked from holds every record, whatever its status,
	// on one page, in the order it is stored.
	id            string
	allWarehouses bool
	single        bool
}

func parse(r *http.Request, page int) (request, error) {
	q := map[string]string{}
	for k, v := range r.URL.Query() {
		if len(v) > 0 {
			q[strings.ToLower(k)] = v[0]
		}
	}
	req := request{page: page, size: DefaultPageSize, q: q}
	if v, ok := q["pagesize"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return req, fmt.Errorf("pageSize must be a number between 1 and %d", MaxPageSize)
		}
		req.size = min(n, MaxPageSize)
	}
	if v := q["modifiedsince"]; v != "" {
		t, err := ParseSince(v)
		if err != nil {
			return req, fmt.Errorf("modifiedSince must be a UTC date, yyyy-MM-dd or yyyy-MM-ddTHH:mm:ss")
		}
		req.since = t
	}
	return req, nil
}

// ParseSince reads a modifiedSince value: a UTC date or date and time,
// without zone.
func ParseSince(v string) (time.Time, error) {
	for _, l := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02", time.RFC3339Nano} {
		if t, err := time.Parse(l, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("cannot parse %q", v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Description      string
		DebugInformation *string
	}{msg, nil})
}

// Expected returns the number of canonical records of each kind a full
// import of the served dataset yields (deleted and obsolete included).
func (s *Server) Expected() map[model.Kind]int {
	out := map[model.Kind]int{}
	s.data.View(func(d *simkit.Dataset) {
		out[model.KindTaxRate] = len(d.TaxRates)
		out[model.KindCurrency] = len(d.Currencies)
		out[model.KindWarehouse] = len(d.Warehouses)
		out[model.KindSalesPerson] = len(d.SalesPeople)
		out[model.KindSupplier] = len(d.Suppliers)
		out[model.KindCustomer] = len(d.Customers)
		for _, c := range d.Customers {
			out[model.KindContact] += len(c.Contacts)
		}
		out[model.KindProduct] = len(d.Products)
		for _, p := range d.Products {
			out[model.KindStockLevel] += len(p.Stock)
			out[model.KindPriceRule] += len(p.SpecialPrices)
		}
		out[model.KindSalesOrder] = len(d.Orders)
		out[model.KindInvoice] = len(d.Invoices)
		out[model.KindCreditNote] = len(d.CreditNotes)
		for _, o := range d.Orders {
			if hasShipment(o) {
				out[model.KindShipment]++
			}
		}
	})
	return out
}
