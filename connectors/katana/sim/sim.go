// Package sim is an HTTP simulator of the Katana public API
// (https://api.katanamrp.com/v1) for the endpoints the connector reads. It
// renders a shared simkit dataset in Katana's documents: integer ids, ISO
// 8601 timestamps with milliseconds, quantities as decimal strings, a
// {"data": [...]} body and the X-Pagination header (every value a string,
// as in the community OpenAPI document). It checks the Bearer API key as
// Katana does (401), pages with page/limit (limit above 250 silently reduced
// to 250), filters with updated_at_min (inclusive), hides soft-deleted
// records unless include_deleted=true, caps lists with created_at_max
// (inclusive, like updated_at_min: an assumption), enforces 60 requests per
// 60 seconds per API key with 429 and Retry-After on a compressible clock,
// and injects faults.
//
// It embeds simkit.Base: the vendor's clock (with an optional skew from the
// client's), the Date header, the fault queue, the request statistics and
// the unstable-order knob.
//
// List order. Katana documents products, materials, locations and tax rates
// as "returned in sorted order, with the most recent ... appearing first",
// and inventory as "sorted ... with the oldest locations appearing first"
// (community OpenAPI document, operation descriptions). The simulator serves
// those lists that way: newest first by id (ids grow with creation), and
// inventory by location (oldest first) and, within a location, by variant
// id ascending. Customers, sales orders, price lists, price-list rows and
// price-list customers have no documented order; the simulator assumes the
// same newest-first order. No documented order depends on updated_at, so an
// edit never moves a record; a record created during a pass enters at the
// head (newest first) and a hard removal shifts every later record up.
// SetUnstable serves every list request in a fresh order instead (a fault:
// Katana is not reported to do it).
//
// Reading by id and quiet deletes. Products, materials, customers,
// locations, tax rates, sales orders and /variants take the documented ids
// filter (repeated or comma-separated). DeleteQuietly soft-deletes a record
// with deleted_at set and updated_at unchanged, as issue 13 reports Katana
// does; the dataset's own deletions move both.
//
// Webhooks. The simulator serves Katana's /webhooks registration API and
// delivers signed events on every change it announces (webhooks.go).
//
// Late price lists. AddLatePriceList makes /price_list_rows serve a row
// whose price list /price_lists does not list yet (a list created after the
// client read the lists); PublishLatePriceLists makes such lists appear.
package sim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
)

// BasePath is where the API lives on the simulator; a connector's BaseURL is
// the server's URL plus BasePath.
const BasePath = "/v1"

// MaxPageSize is Katana's largest page: a larger limit is silently reduced.
const MaxPageSize = 250

// DefaultPageSize is the page size without a limit parameter.
const DefaultPageSize = 50

// Options configure a Server.
type Options struct {
	// Dataset sizes and seeds the dataset (ignored when Data is set).
	Dataset simkit.Options
	// Data shares a dataset with other simulators or the test.
	Data *simkit.Dataset
	// TimeScale > 1 compresses the rate-limit window and Retry-After.
	TimeScale float64
	// Now overrides the clock (TimeScale is then ignored).
	Now func() time.Time

	// APIKey is the key the simulator accepts; empty derives one from the
	// seed.
	APIKey string
	// RateLimit is the number of requests per 60 seconds (default 60);
	// negative disables the limit.
	RateLimit int

	// WebhookClient sends webhook deliveries (default: a plain client;
	// give an httptest TLS server's client for an https receiver).
	WebhookClient *http.Client
	// WebhookSleep waits between a failed delivery and its repeat (Katana:
	// 30 s, 2 min, 15 min); nil waits real time divided by TimeScale.
	WebhookSleep func(ctx context.Context, d time.Duration) error
	// AllowHTTPWebhooks lets a webhook's URL be http:// (Katana requires
	// https; tests and demos receive on plain http).
	AllowHTTPWebhooks bool
	// HideWebhookTokens leaves the token out of the webhook list and
	// single reads (Katana's documents show it there; this models a Katana
	// that shows it only at creation).
	HideWebhookTokens bool
	// WebhookHrefBase is the API root the payloads' href link to (default
	// DefaultHrefBase).
	WebhookHrefBase string
}

// Server is the simulator; it implements http.Handler. Its embedded
// simkit.Base gives Now (the vendor's clock, skew included), Faults, Stats,
// SetSkew and SetUnstable.
type Server struct {
	simkit.Base
	opts    Options
	data    *simkit.Dataset
	apiKey  string
	limiter *simkit.Limiter
	limit   int

	mu    sync.Mutex
	index *ids // dataset references -> Katana ids, rebuilt when the dataset changes shape
	// quiet holds the deletion times of records deleted by DeleteQuietly,
	// by dataset id; replaced, never changed in place (renders read it).
	quiet map[string]time.Time
	// late holds price lists created "after the client read the lists":
	// their rows are served at once, the lists themselves once published.
	late []lateList
	// wh holds the registered webhooks (webhooks.go).
	wh hooks
}

// lateList is a price list of AddLatePriceList with its one row.
type lateList struct {
	listID, rowID, variantID int
	amount                   string
	created                  time.Time
	published                bool
}

// Late price lists and their rows have ids in their own ranges, beyond any
// the dataset yields.
const (
	lateListBase = 900_000
	lateRowBase  = 90_000_000
)

// New builds a simulator.
func New(opts Options) *Server {
	s := &Server{opts: opts, data: opts.Data}
	if s.data == nil {
		s.data = simkit.NewDataset(opts.Dataset)
	}
	now := opts.Now
	if now == nil {
		now = simkit.NewClock(clockBase(s.data, opts.Dataset.Now), opts.TimeScale).Now
	}
	s.Init(now)
	// Changes are stamped on the vendor's clock, skew included.
	s.data.SetClock(s.Now)
	s.apiKey = opts.APIKey
	if s.apiKey == "" {
		h := sha256.Sum256([]byte(fmt.Sprintf("katana-sim-%d", opts.Dataset.Seed)))
		s.apiKey = hex.EncodeToString(h[:16])
	}
	s.limit = opts.RateLimit
	if s.limit == 0 {
		s.limit = 60
	}
	if s.limit > 0 {
		// The limit meters elapsed time, which a skew does not change.
		s.limiter = simkit.NewLimiter(now, simkit.Window{Name: "minute", Limit: s.limit, Per: time.Minute})
	}
	s.startWebhooks()
	return s
}

// clockBase starts the simulated clock after every record of the dataset,
// so that changes made during a run are newer than anything already there.
func clockBase(d *simkit.Dataset, now time.Time) time.Time {
	if !now.IsZero() {
		return now
	}
	var latest time.Time
	d.View(func(d *simkit.Dataset) {
		for _, p := range d.Products {
			if p.Modified.After(latest) {
				latest = p.Modified
			}
		}
		for _, c := range d.Customers {
			if c.Modified.After(latest) {
				latest = c.Modified
			}
		}
		for _, o := range d.Orders {
			if o.Modified.After(latest) {
				latest = o.Modified
			}
		}
	})
	if latest.IsZero() {
		return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return latest.Truncate(time.Hour).Add(2 * time.Hour)
}

// DeleteQuietly soft-deletes the product, material (supplier), customer,
// location or sales order with the given dataset id the way Katana is
// reported to (issue 13): deleted_at is set to now and updated_at does not
// move, so a read filtered by updated_at_min does not return it. It
// returns false when no live record has the id.
func (s *Server) DeleteQuietly(id string) bool {
	found := false
	s.data.Update(func(d *simkit.Dataset) {
		var m *simkit.Meta
		var kind string
		for _, p := range d.Products {
			if p.ID == id {
				m, kind = &p.Meta, simkit.AdminProducts
			}
		}
		for _, sp := range d.Suppliers {
			if sp.ID == id {
				m, kind = &sp.Meta, simkit.AdminSuppliers
			}
		}
		for _, c := range d.Customers {
			if c.ID == id {
				m, kind = &c.Meta, simkit.AdminCustomers
			}
		}
		for _, w := range d.Warehouses {
			if w.ID == id {
				m, kind = &w.Meta, simkit.AdminWarehouses
			}
		}
		for _, o := range d.Orders {
			if o.ID == id {
				m, kind = &o.Meta, simkit.AdminOrders
			}
		}
		if m == nil || m.Deleted {
			return
		}
		m.Deleted, found = true, true
		// The deletion does not move updated_at, but it fires Katana's
		// *.deleted webhook (an assumption: the event is documented, the
		// quiet marker only reported).
		defer d.Notify(kind, id, simkit.ChangeDeleted)
		at := d.Stamp()
		s.mu.Lock()
		defer s.mu.Unlock()
		quiet := make(map[string]time.Time, len(s.quiet)+1)
		for k, v := range s.quiet {
			quiet[k] = v
		}
		quiet[id] = at
		s.quiet = quiet
		s.index = nil // rebuilt with the new snapshot; a built index never changes
	})
	return found
}

// Credentials returns Secret data that works now.
func (s *Server) Credentials() map[string]string { return map[string]string{"apiKey": s.apiKey} }

// Dataset returns the simulator's dataset.
func (s *Server) Dataset() *simkit.Dataset { return s.data }

// Materials is the number of materials the simulator adds to the dataset:
// one raw material per supplier (the dataset has no materials of its own).
func (s *Server) Materials() int {
	n := 0
	s.data.View(func(d *simkit.Dataset) { n = len(d.Suppliers) })
	return n
}

// Expected returns the canonical records per kind a full import yields.
func (s *Server) Expected() map[model.Kind]int {
	out := map[model.Kind]int{}
	s.data.View(func(d *simkit.Dataset) {
		live := 0
		for _, p := range d.Products {
			if !p.Deleted {
				live++
			}
		}
		out[model.KindTaxRate] = len(d.TaxRates)
		out[model.KindWarehouse] = len(d.Warehouses)
		out[model.KindCustomer] = len(d.Customers)
		out[model.KindContact] = len(d.Customers) // the person named on each customer
		out[model.KindProduct] = len(d.Products) + len(d.Suppliers)
		out[model.KindStockLevel] = (live + len(d.Suppliers)) * len(d.Warehouses)
		out[model.KindPriceRule] = len(priceRefs(d, s.idx(d)))
		out[model.KindSalesOrder] = len(d.Orders)
	})
	for _, l := range s.lateLists() {
		if l.published {
			out[model.KindPriceRule]++
		}
	}
	return out
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.Stats().Count(r.URL.Path)
	s.SetDate(w)
	path, ok := strings.CutPrefix(r.URL.Path, BasePath)
	hooks := ok && (path == "/webhooks" || strings.HasPrefix(path, "/webhooks/"))
	if r.Method != http.MethodGet && !hooks {
		s.errorBody(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "the simulator serves GET only, and the webhook endpoints")
		return
	}
	if !s.authorised(r) {
		s.Stats().AuthFails.Add(1)
		s.errorBody(w, http.StatusUnauthorized, "UnauthorizedError", "Unauthorized")
		return
	}
	if s.limiter != nil {
		ok, _, retry := s.limiter.Allow(s.apiKey)
		rem := s.limiter.Remaining(s.apiKey)["minute"]
		w.Header().Set("X-Ratelimit-Limit", strconv.Itoa(s.limit))
		w.Header().Set("X-Ratelimit-Remaining", strconv.Itoa(max(rem, 0)))
		if !ok {
			s.Stats().Throttled.Add(1)
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retry.Seconds()))))
			w.Header().Set("X-Ratelimit-Reset", strconv.FormatInt(s.Now().Add(retry).UnixMilli(), 10))
			s.errorBody(w, http.StatusTooManyRequests, "TooManyRequests", "Too Many Requests")
			return
		}
	}
	if s.ApplyFault(w, r) {
		return
	}
	if hooks {
		s.serveWebhooks(w, r, path)
		return
	}
	if !ok {
		s.errorBody(w, http.StatusNotFound, "NotFoundError", "Not found")
		return
	}
	q, err := parseQuery(r)
	if err != nil {
		s.errorBody(w, http.StatusUnprocessableEntity, "UnprocessableEntityError", err.Error())
		return
	}
	var list lister
	switch path {
	case "/products":
		list = s.products
	case "/materials":
		list = s.materials
	case "/variants":
		list = s.variants
	case "/inventory":
		list = s.inventory
	case "/locations":
		list = s.locations
	case "/customers":
		list = s.customers
	case "/sales_orders":
		list = s.salesOrders
	case "/tax_rates":
		list = s.taxRates
	case "/price_lists":
		list = s.priceLists
	case "/price_list_rows":
		list = s.priceListRows
	case "/price_list_customers":
		list = s.priceListCustomers
	default:
		s.errorBody(w, http.StatusNotFound, "NotFoundError", "Not found")
		return
	}
	var total int
	var items []any
	s.data.View(func(d *simkit.Dataset) {
		total, items = list(d, q)
	})
	s.writeList(w, q, total, items)
}

func (s *Server) authorised(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && tok == s.apiKey
}

// lister returns the total of the filtered list and the items of the
// requested page.
type lister func(d *simkit.Dataset, q query) (int, []any)

// query is a parsed list request.
type query struct {
	page, limit    int
	since          time.Time
	createdMax     time.Time
	includeDeleted bool
	extend         map[string]bool
	// ids is the documented ids filter (nil: none); it is honoured by the
	// lists the connector reads by id.
	ids map[int]bool
}

func parseQuery(r *http.Request) (query, error) {
	v := r.URL.Query()
	q := query{page: 1, limit: DefaultPageSize, extend: map[string]bool{}}
	if p := v.Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			return q, fmt.Errorf("page must be a positive integer")
		}
		q.page = n
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return q, fmt.Errorf("limit must be a positive integer")
		}
		q.limit = min(n, MaxPageSize)
	}
	if u := v.Get("updated_at_min"); u != "" {
		t, err := time.Parse(time.RFC3339Nano, u)
		if err != nil {
			return q, fmt.Errorf("updated_at_min must be compatible with ISO 8601")
		}
		q.since = t.UTC()
	}
	if c := v.Get("created_at_max"); c != "" {
		t, err := time.Parse(time.RFC3339Nano, c)
		if err != nil {
			return q, fmt.Errorf("created_at_max must be compatible with ISO 8601")
		}
		q.createdMax = t.UTC()
	}
	q.includeDeleted = v.Get("include_deleted") == "true"
	// ids is an array of integers: repeated (ids=1&ids=2, OpenAPI's
	// default form) or comma-separated; both are accepted.
	for _, e := range v["ids"] {
		for _, x := range strings.Split(e, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(x))
			if err != nil || n < 1 {
				return q, fmt.Errorf("ids must be an array of positive integers")
			}
			if q.ids == nil {
				q.ids = map[int]bool{}
			}
			q.ids[n] = true
		}
	}
	for _, e := range v["extend"] {
		for _, x := range strings.Split(e, ",") {
			q.extend[x] = true
		}
	}
	return q, nil
}

func (s *Server) writeList(w http.ResponseWriter, q query, total int, items []any) {
	pages := (total + q.limit - 1) / q.limit
	pag := map[string]string{
		"total_records": strconv.Itoa(total),
		"total_pages":   strconv.Itoa(pages),
		"offset":        strconv.Itoa((q.page - 1) * q.limit),
		"page":          strconv.Itoa(q.page),
		"first_page":    strconv.FormatBool(q.page == 1),
		"last_page":     strconv.FormatBool(q.page >= pages),
	}
	hb, _ := json.Marshal(pag)
	w.Header().Set("X-Pagination", string(hb))
	if items == nil {
		items = []any{}
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"data": items})
	s.Stats().Served.Add(1)
}

func (s *Server) errorBody(w http.ResponseWriter, status int, name, msg string) {
	s.writeJSON(w, status, map[string]any{"statusCode": status, "name": name, "message": msg})
}

func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "simulator could not encode its answer", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// pageOf returns the page's bounds in a list of n.
func pageOf(n int, q query) (start, end int) {
	start, end, _ = simkit.PageOf(n, q.page, q.limit)
	return start, end
}
