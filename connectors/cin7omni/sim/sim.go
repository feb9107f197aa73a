// Package sim is an http.Handler that behaves like the Cin7 Omni API (v1)
// for the endpoints the cin7omni connector reads: HTTP Basic auth (API
// user name and connection key; 401 otherwise), page and rows paging (rows
// at most 250) answered with bare JSON arrays, the where clause
// (ModifiedDate>'2026-01-01T00:00:00Z' AND Type='Customer') and order
// parameters, ISO dates, the limits of 3 calls a second, 60 a minute and
// 5,000 a day answered with 429 and Retry-After, fault injection and a Date
// header.
//
// It serves a simkit.Dataset, so tests can change records while a run is
// under way and know what a full import must yield (Expected).
package sim

import (
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

// Defaults of the simulator, as Cin7 Omni documents them.
const (
	DefaultUsername = "AcmeTradingNZ"
	DefaultAPIKey   = "5f2e4c1a9b7d4e3f8a6c2b1d0e9f8a7b"
	// DefaultRows is the page size when the request names none.
	DefaultRows = 50
	// MaxRows is the largest page Cin7 Omni serves.
	MaxRows = 250
	// The documented limits.
	PerSecond = 3
	PerMinute = 60
	PerDay    = 5000
)

// Options configure a simulator.
type Options struct {
	// Dataset sizes and seeds the dataset built when Data is nil.
	Dataset simkit.Options
	// Data, when set, is served instead of a dataset built from Dataset.
	Data *simkit.Dataset
	// TimeScale > 1 compresses the rate-limit windows and Retry-After: with
	// 60, a minute passes in a real second. The simulator's clock (Date
	// header, modification stamps) runs as fast.
	TimeScale float64
	// Now is the clock that stamps changes and the Date header; nil means a
	// simkit.Clock starting at the dataset's present.
	Now func() time.Time

	// Username and APIKey override the credentials the simulator accepts.
	Username, APIKey string
	// Unlimited turns the rate limits off (for tests of other behaviour).
	Unlimited bool
	// PerSecond, PerMinute and PerDay override the documented limits.
	PerSecond, PerMinute, PerDay int
	// TimeZone is the account's time zone (nil: UTC). Omni's help pages
	// show dates with the account's local offset
	// ("2024-03-20T13:30:44.518448+13:00"): the simulator renders every
	// date in it, and reads a where-clause date literal without a zone as
	// local time (an assumption; literals with Z or an offset are exact).
	TimeZone *time.Location
}

// Server is a Cin7 Omni simulator.
type Server struct {
	// Base is the vendor clock (with its skew), the Date header, the fault
	// queue, the statistics and the unstable-order knob.
	simkit.Base
	opts    Options
	data    *simkit.Dataset
	loc     *time.Location
	limiter *simkit.Limiter

	mu       sync.Mutex
	day      time.Time
	dayUsed  int
	archived []archivedProduct
}

// New returns a simulator serving opts.Data or a dataset built from
// opts.Dataset.
func New(opts Options) *Server {
	if opts.Username == "" {
		opts.Username = DefaultUsername
	}
	if opts.APIKey == "" {
		opts.APIKey = DefaultAPIKey
	}
	if opts.TimeScale <= 0 {
		opts.TimeScale = 1
	}
	if opts.PerSecond == 0 {
		opts.PerSecond = PerSecond
	}
	if opts.PerMinute == 0 {
		opts.PerMinute = PerMinute
	}
	if opts.PerDay == 0 {
		opts.PerDay = PerDay
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
	s := &Server{opts: opts, data: data, loc: opts.TimeZone}
	if s.loc == nil {
		s.loc = time.UTC
	}
	s.Init(now)
	// Records are stamped and limits metered on the vendor's clock, skew
	// included.
	data.SetClock(s.Now)
	if !opts.Unlimited {
		s.limiter = simkit.NewLimiter(s.Now,
			simkit.Window{Name: "second", Limit: opts.PerSecond, Per: time.Second},
			simkit.Window{Name: "minute", Limit: opts.PerMinute, Per: time.Minute})
	}
	return s
}

// Credentials returns the Secret data that authenticates against the
// simulator.
func (s *Server) Credentials() map[string]string {
	return map[string]string{"username": s.opts.Username, "apiKey": s.opts.APIKey}
}

// Dataset returns the served dataset.
func (s *Server) Dataset() *simkit.Dataset { return s.data }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.Stats().Count(r.URL.Path)
	now := s.Now()
	s.SetDate(w)
	if s.ApplyFault(w, r) {
		return
	}
	user, key, ok := r.BasicAuth()
	if !ok || user != s.opts.Username || key != s.opts.APIKey {
		s.Stats().AuthFails.Add(1)
		w.Header().Set("WWW-Authenticate", `Basic realm="api.cin7.com"`)
		writeError(w, http.StatusUnauthorized, "Authorization has been denied for this request.")
		return
	}
	if r.Method != http.MethodGet {
		writeError(w, http.StatusMethodNotAllowed, "The requested resource does not support http method '"+r.Method+"'.")
		return
	}
	if wait, refused := s.admit(now); refused {
		s.Stats().Throttled.Add(1)
		// Retry-After in whole seconds of the simulator's clock, rounded up.
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		writeError(w, http.StatusTooManyRequests, "API rate limit exceeded: 3 calls per second, 60 per minute, 5000 per day.")
		return
	}
	endpoint, ok := route(r.URL.Path)
	if !ok {
		writeError(w, http.StatusNotFound, "No HTTP resource was found that matches the request URI.")
		return
	}
	req, err := parse(r, s.loc)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	body, err := routes[endpoint](s, req)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	body = s.Corrupt(endpoint, body)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	s.Stats().Served.Add(1)
}

// admit applies the second and minute windows (from their first call) and
// the day (a UTC calendar day); a refused call is not counted.
func (s *Server) admit(now time.Time) (time.Duration, bool) {
	if s.limiter == nil {
		return 0, false
	}
	s.mu.Lock()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	if !day.Equal(s.day) {
		s.day, s.dayUsed = day, 0
	}
	if s.dayUsed >= s.opts.PerDay {
		s.mu.Unlock()
		return day.Add(24 * time.Hour).Sub(now), true
	}
	s.mu.Unlock()
	if ok, _, wait := s.limiter.Allow(s.opts.Username); !ok {
		return wait, true
	}
	s.mu.Lock()
	s.dayUsed++
	s.mu.Unlock()
	return 0, false
}

// route maps /api/v1/Products (any case, /api optional) to "products".
func route(path string) (string, bool) {
	p := strings.ToLower(strings.Trim(path, "/"))
	p = strings.TrimPrefix(p, "api/")
	p, ok := strings.CutPrefix(p, "v1/")
	if !ok {
		return "", false
	}
	_, known := routes[p]
	return p, known
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct{ Message string }{msg})
}

// request is a parsed list request.
type request struct {
	page, rows int
	where      []cond
	order      string
	// fields are the fields= names: each document is cut to them.
	fields []string
}

func parse(r *http.Request, loc *time.Location) (request, error) {
	q := map[string]string{}
	for k, v := range r.URL.Query() {
		if len(v) > 0 {
			q[strings.ToLower(k)] = v[0]
		}
	}
	req := request{page: 1, rows: DefaultRows, order: q["order"]}
	if v := q["page"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return req, fmt.Errorf("page must be a positive whole number")
		}
		req.page = n
	}
	if v := q["rows"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return req, fmt.Errorf("rows must be a positive whole number")
		}
		req.rows = min(n, MaxRows)
	}
	if v := q["fields"]; v != "" {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f == "" {
				return req, fmt.Errorf("fields must be a comma-separated list of field names")
			}
			req.fields = append(req.fields, f)
		}
	}
	if v := q["where"]; v != "" {
		conds, err := parseWhere(v, loc)
		if err != nil {
			return req, err
		}
		req.where = conds
	}
	return req, nil
}

// Expected returns the number of canonical records of each kind a full
// import of the served dataset yields (inactive and void ones included).
func (s *Server) Expected() map[model.Kind]int {
	out := map[model.Kind]int{}
	s.data.View(func(d *simkit.Dataset) {
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
			if len(p.SpecialPrices) > 0 {
				out[model.KindPriceRule]++
			}
		}
		ix := indexDocs(d)
		out[model.KindSalesOrder] = len(d.Orders)
		for _, o := range d.Orders {
			if ix.invoice[o.Number] != nil {
				out[model.KindInvoice]++
			}
			if dispatched(o) {
				out[model.KindShipment]++
			}
		}
		out[model.KindCreditNote] = len(d.CreditNotes)
	})
	return out
}
