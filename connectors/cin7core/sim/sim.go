// Package sim is an http.Handler that behaves like the Cin7 Core (DEAR
// Inventory) External API v2 for the endpoints the cin7core connector reads:
// the api-auth-accountid / api-auth-applicationkey headers (403 when wrong),
// Page/Limit paging (default 100, at most 1000) with the list-key-plus-Total
// envelope, ModifiedSince (products, customers, suppliers) and UpdatedSince
// (sale lists) filters in UTC ISO 8601, Cin7 Core's date formats, the 60
// calls a minute limit per API application answered with 429 (and now and
// then 503, as older servers did), fault injection and a Date header. For
// reconciliation it serves the exact ID filter of products, customers and
// suppliers, the sale lists' Search and GET /sale?ID= (400 for an unknown
// sale).
//
// It embeds simkit.Base (clock and skew, Date header, faults, statistics,
// list order). Lists come in dataset order (by code or creation), or, with
// UnstableOrder, in a fresh order for every request: the behaviour reported
// for Cin7 Core, whose documentation promises no list order at all.
//
// It serves a simkit.Dataset, so tests can change records while a run is
// under way and know what a full import must yield (Expected).
//
// It also serves the webhook endpoints (GET/POST/PUT/DELETE /webhooks) and
// delivers Cin7 Core's events for the dataset's changes to the subscribed
// URLs, with its retry and silent deactivation (see webhooks.go).
package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
)

// Defaults of the simulator, as Cin7 Core documents them.
const (
	DefaultAccountID      = "704ef231-cd93-49c9-a201-26b4b5d0d35b"
	DefaultApplicationKey = "0342a546-e0c2-0dff-f0be-6a5e17154033"
	// DefaultPageSize is the page size when the request names none.
	DefaultPageSize = 100
	// MaxPageSize is the largest Limit Cin7 Core honours.
	MaxPageSize = 1000
	// CallsPerMinute is the documented limit per API application.
	CallsPerMinute = 60
	// LimitMessage is the text Cin7 Core answers an over-limit call with.
	LimitMessage = "You reached 60 calls per minute API limit"
)

// Options configure a simulator.
type Options struct {
	// Dataset sizes and seeds the dataset built when Data is nil.
	Dataset simkit.Options
	// Data, when set, is served instead of a dataset built from Dataset.
	Data *simkit.Dataset
	// TimeScale > 1 compresses the rate-limit window: with 60, the 60 calls
	// a minute limit resets every real second. The simulator's clock (Date
	// header, modification stamps) runs as fast.
	TimeScale float64
	// Now is the clock that stamps changes and the Date header; nil means a
	// simkit.Clock starting at the dataset's present and running TimeScale
	// times faster than real time.
	Now func() time.Time

	// AccountID and ApplicationKey override the credentials the simulator
	// accepts.
	AccountID, ApplicationKey string
	// CallsPerMinute overrides the limit per API application; 0 means the
	// documented 60, negative means no limit.
	CallsPerMinute int
	// ServiceUnavailableEvery makes every n-th over-limit answer a 503 (the
	// status older Cin7 Core servers used) instead of a 429; 0 means 5,
	// negative means always 429.
	ServiceUnavailableEvery int
	// MaxPageSize caps Limit; 0 means 1000.
	MaxPageSize int
	// UnstableOrder serves every list request in a fresh order (see
	// simkit.Base.SetUnstable); SetUnstable changes it later.
	UnstableOrder bool

	// NoAutomation makes the account one without the Automation module:
	// the webhook endpoints answer 403 (see webhooks.go).
	NoAutomation bool
	// WebhookClient sends the deliveries; nil means a plain http.Client.
	WebhookClient *http.Client
	// WebhookSleep waits vendor time between delivery attempts (and the
	// WebhookDelay); nil means real time divided by TimeScale. A test's
	// fake clock makes retries instant.
	WebhookSleep func(ctx context.Context, d time.Duration) error
	// WebhookDelay is the vendor time between a change and its first
	// delivery attempt. Cin7 Core documents one minute; the default 0
	// delivers at once (a demo shows a change in seconds).
	WebhookDelay time.Duration
}

// Server is a Cin7 Core simulator.
type Server struct {
	simkit.Base
	opts     Options
	data     *simkit.Dataset
	limiter  *simkit.Limiter
	refusals atomic.Int64

	wh webhooks

	mu sync.Mutex
	// advanced holds the sales served as Cin7 Core "Advanced Sale"s (several
	// invoices and credit notes per sale), by sale id.
	advanced map[string]bool
}

// New returns a simulator serving opts.Data or a dataset built from
// opts.Dataset.
func New(opts Options) *Server {
	if opts.AccountID == "" {
		opts.AccountID = DefaultAccountID
	}
	if opts.ApplicationKey == "" {
		opts.ApplicationKey = DefaultApplicationKey
	}
	if opts.MaxPageSize <= 0 {
		opts.MaxPageSize = MaxPageSize
	}
	if opts.ServiceUnavailableEvery == 0 {
		opts.ServiceUnavailableEvery = 5
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
	s := &Server{opts: opts, data: data, advanced: map[string]bool{}}
	s.Init(now)
	s.SetUnstable(opts.UnstableOrder)
	// Changes are stamped on the vendor's clock, skew included.
	data.SetClock(s.Now)
	perMinute := opts.CallsPerMinute
	if perMinute == 0 {
		perMinute = CallsPerMinute
	}
	if perMinute > 0 {
		s.limiter = simkit.NewLimiter(s.Now, simkit.Window{Name: "minute", Limit: perMinute, Per: time.Minute})
	}
	return s
}

// Credentials returns the Secret data that authenticates against the
// simulator.
func (s *Server) Credentials() map[string]string {
	return map[string]string{"accountId": s.opts.AccountID, "applicationKey": s.opts.ApplicationKey}
}

// Dataset returns the served dataset.
func (s *Server) Dataset() *simkit.Dataset { return s.data }

// ServeAdvancedSale makes the sale of the dataset's first credit note an
// "Advanced Sale" from now on (a sale type Cin7 Core documents: several
// invoices, fulfilments and credit notes per sale) and stamps the credit
// note as changed. Its saleCreditNoteList row then names one credit note of
// a sale that may hold several, which the connector cannot key: it sets the
// row aside. It returns the sale id (the credit note's vendor id), or ""
// when the dataset has no credit note.
func (s *Server) ServeAdvancedSale() string {
	var id string
	s.data.Update(func(d *simkit.Dataset) {
		ix := indexSales(d)
		for _, o := range d.Orders {
			if cn := ix.credit[o.Number]; cn != nil {
				id = o.ID
				cn.Modified = d.Stamp()
				return
			}
		}
	})
	if id != "" {
		s.mu.Lock()
		s.advanced[id] = true
		s.mu.Unlock()
	}
	return id
}

func (s *Server) isAdvanced(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.advanced[id]
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.Stats().Count(r.URL.Path)
	s.SetDate(w)
	if s.ApplyFault(w, r) {
		return
	}
	endpoint := endpointOf(r.URL.Path)
	if r.Method != http.MethodGet && endpoint != "webhooks" {
		writeError(w, http.StatusMethodNotAllowed, "The simulator serves GET only")
		return
	}
	if r.Header.Get("api-auth-accountid") != s.opts.AccountID || r.Header.Get("api-auth-applicationkey") != s.opts.ApplicationKey {
		s.Stats().AuthFails.Add(1)
		writeError(w, http.StatusForbidden, "Incorrect credentials! Please check your Account ID and API Application Key.")
		return
	}
	if ok, _, _ := s.limiter.Allow(s.opts.ApplicationKey); !ok {
		s.Stats().Throttled.Add(1)
		n := s.refusals.Add(1)
		status := http.StatusTooManyRequests
		if every := int64(s.opts.ServiceUnavailableEvery); every > 0 && n%every == 0 {
			status = http.StatusServiceUnavailable
		}
		writeError(w, status, LimitMessage)
		return
	}
	if endpoint == "webhooks" {
		s.serveWebhooks(w, r)
		s.Stats().Served.Add(1)
		return
	}
	q := lowerQuery(r.URL.Query())
	h, ok := routes[endpoint]
	detail, isDetail := detailRoutes[endpoint]
	if !ok && !isDetail {
		writeError(w, http.StatusNotFound, fmt.Sprintf("Endpoint %q not found", endpoint))
		return
	}
	req, err := s.parse(q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var body []byte
	if isDetail {
		status, b := detail(s, req)
		if status != http.StatusOK {
			writeError(w, status, "Record with the given ID was not found")
			return
		}
		body = b
	} else {
		body = h(s, req)
	}
	body = s.Corrupt(endpoint, body)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	s.Stats().Served.Add(1)
}

// endpointOf strips the API root (/ExternalApi/v2, any case) and returns the
// endpoint in lower case: Cin7 Core's paths are case-insensitive.
func endpointOf(path string) string {
	p := strings.ToLower(strings.Trim(path, "/"))
	p = strings.TrimPrefix(p, "externalapi/v2/")
	p = strings.TrimPrefix(p, "externalapi/")
	return p
}

func lowerQuery(q url.Values) map[string]string {
	out := make(map[string]string, len(q))
	for k, v := range q {
		if len(v) > 0 {
			out[strings.ToLower(k)] = v[0]
		}
	}
	return out
}

// request is a parsed list request.
type request struct {
	page, limit int
	since       time.Time // ModifiedSince or UpdatedSince
	q           map[string]string
}

func (s *Server) parse(q map[string]string) (request, error) {
	req := request{page: 1, limit: DefaultPageSize, q: q}
	if v := q["page"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return req, fmt.Errorf("page must be a positive integer")
		}
		req.page = n
	}
	if v := q["limit"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return req, fmt.Errorf("limit must be a positive integer")
		}
		req.limit = min(n, s.opts.MaxPageSize)
	}
	for _, k := range []string{"modifiedsince", "updatedsince"} {
		if v := q[k]; v != "" {
			t, err := ParseTime(v)
			if err != nil {
				return req, fmt.Errorf("%s: date must follow ISO 8601 format", k)
			}
			req.since = t
		}
	}
	return req, nil
}

// ParseTime reads a Cin7 Core ISO 8601 date parameter: with or without
// fraction and zone; no zone means UTC.
func ParseTime(v string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("cannot parse %q", v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		ErrorCode int
		Exception string
	}{status, msg})
}

// Expected returns the number of canonical records of each kind a full
// import of the served dataset yields (deleted records included).
func (s *Server) Expected() map[model.Kind]int {
	out := map[model.Kind]int{}
	s.data.View(func(d *simkit.Dataset) {
		out[model.KindTaxRate] = len(d.TaxRates)
		out[model.KindWarehouse] = len(d.Warehouses)
		out[model.KindSupplier] = len(d.Suppliers)
		out[model.KindCustomer] = len(d.Customers)
		for _, c := range d.Customers {
			out[model.KindContact] += len(c.Contacts)
		}
		out[model.KindPriceRule] = countPrices(customerPrices(d))
		out[model.KindProduct] = len(d.Products)
		for _, p := range d.Products {
			out[model.KindStockLevel] += len(p.Stock)
		}
		out[model.KindSalesOrder] = len(d.Orders)
		ix := indexSales(d)
		for _, o := range d.Orders {
			if ix.invoice[o.Number] != nil {
				out[model.KindInvoice]++
			}
			if shipped(o) {
				out[model.KindShipment]++
			}
		}
		out[model.KindCreditNote] = len(ix.credit)
	})
	return out
}
