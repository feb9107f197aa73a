// Package sim is an HTTP simulator of the Xero Accounting API
// (https://api.xero.com/api.xro/2.0) and of the identity endpoints the
// connector uses (the OAuth 2.0 token endpoint and GET /connections). It
// renders a shared simkit dataset in Xero's documents: GUIDs, the
// {"Id","Status","ProviderName","DateTimeUTC", <List>} envelope, /Date(ms)/
// and /Date(ms+0000)/ dates, money as JSON numbers, the pagination object on
// paged lists.
//
// It behaves like Xero where the connector depends on it: access tokens last
// 30 minutes; refresh tokens rotate on every refresh and a used one is
// accepted again only within a 30-minute grace period (for a lost response);
// every API call needs Authorization: Bearer, a connected xero-tenant-id and
// Accept: application/json (otherwise the answer is XML); If-Modified-Since
// filters to the second; page and pageSize (at most 1000) page Contacts,
// Invoices and CreditNotes while Items, TaxRates and Currencies come whole;
// Contacts and Invoices take summaryOnly=true and an IDs filter, and one
// credit note is read at /CreditNotes/{CreditNoteID};
// archived contacts need includeArchived=true; the per-organisation limits
// (60 a minute, 5,000 a day, 5 in flight) and the app's 10,000 a minute
// answer 429 with Retry-After and X-Rate-Limit-Problem. Paged lists are
// served in the order the request's order parameter names (UpdatedDateUTC
// ASC or DESC, ties by id: the tie order is an assumption, Xero documents
// none), and in creation order without one.
//
// It also plays the app's webhook (webhooks.go): the developer portal's
// settings, the intent-to-receive check, and signed, batched deliveries of
// contact, invoice and credit note changes with Xero's retry and disable
// rules.
//
// The clock (with an optional skew), the Date header, the fault queue, the
// statistics and the unstable-order knob come from the embedded
// simkit.Base. Time can be compressed (TimeScale) or driven by a test (Now).
package sim

import (
	"crypto/sha256"
	"encoding/hex"
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

// APIPath is where the Accounting API lives on the simulator; a connector's
// BaseURL is the server's URL plus APIPath.
const APIPath = "/api.xro/2.0"

// MaxPageSize is the largest pageSize the simulator serves (Xero's, per
// third-party documentation; the OpenAPI document gives none).
const MaxPageSize = 1000

// Options configure a Server.
type Options struct {
	// Dataset sizes and seeds the dataset (ignored when Data is set).
	Dataset simkit.Options
	// Data shares a dataset with other simulators or the test. Every tenant
	// serves the same dataset.
	Data *simkit.Dataset
	// TimeScale > 1 compresses rate-limit windows, Retry-After and token
	// lifetimes.
	TimeScale float64
	// Now overrides the clock (TimeScale is then ignored).
	Now func() time.Time

	// Tenants is the number of organisations connected to the app
	// (default 1); their ids are in Tenants().
	Tenants int
	// ClientID and ClientSecret are the app's credentials; empty derives
	// them from the seed.
	ClientID, ClientSecret string
	// AccessTokenLifetime defaults to Xero's 30 minutes.
	AccessTokenLifetime time.Duration
	// RefreshGrace is how long a used refresh token is still accepted
	// (default 30 minutes, Xero's grace for a lost response).
	RefreshGrace time.Duration
	// RefreshTokenLifetime is how long an unused refresh token lives
	// (default 60 days).
	RefreshTokenLifetime time.Duration
	// MinuteLimit, DayLimit and Concurrency are per organisation (defaults
	// 60, 5000, 5); AppMinuteLimit is per app (default 10000). Negative
	// disables a limit.
	MinuteLimit, DayLimit, Concurrency, AppMinuteLimit int
	// ProviderName is the app's name in the envelope.
	ProviderName string
}

// Server is the simulator; it implements http.Handler.
type Server struct {
	simkit.Base
	opts    Options
	data    *simkit.Dataset
	tenants []string
	grants  grants
	tenant  *simkit.Limiter
	app     *simkit.Limiter

	mu       sync.Mutex
	inflight map[string]int
	index    *ids
	// odd holds invoices of types beyond ACCREC and ACCPAY (see
	// AddInvoiceOfType), served after the dataset's.
	odd []oddInvoice

	hookMu sync.Mutex
	hook   *webhook // the app's webhook (webhooks.go), nil without one
}

// New builds a simulator.
func New(opts Options) *Server {
	s := &Server{data: opts.Data, inflight: map[string]int{}}
	if s.data == nil {
		s.data = simkit.NewDataset(opts.Dataset)
	}
	seed := opts.Dataset.Seed
	if opts.Tenants <= 0 {
		opts.Tenants = 1
	}
	h := func(s string) string {
		x := sha256.Sum256([]byte(fmt.Sprintf("%s-%d", s, seed)))
		return hex.EncodeToString(x[:])
	}
	if opts.ClientID == "" {
		opts.ClientID = strings.ToUpper(h("client")[:32])
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = h("secret")[:48]
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.AccessTokenLifetime, 30*time.Minute)
	def(&opts.RefreshGrace, 30*time.Minute)
	def(&opts.RefreshTokenLifetime, 60*24*time.Hour)
	defInt := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	defInt(&opts.MinuteLimit, 60)
	defInt(&opts.DayLimit, 5000)
	defInt(&opts.Concurrency, 5)
	defInt(&opts.AppMinuteLimit, 10000)
	if opts.ProviderName == "" {
		opts.ProviderName = "ErpSync"
	}
	s.opts = opts
	now := opts.Now
	if now == nil {
		now = simkit.NewClock(clockBase(s.data, opts.Dataset.Now), opts.TimeScale).Now
	}
	s.Init(now)
	// Changes are stamped on the vendor's (possibly skewed) clock.
	s.data.SetClock(s.Now)
	for i := 1; i <= opts.Tenants; i++ {
		x := h(fmt.Sprintf("tenant%d", i))
		s.tenants = append(s.tenants, fmt.Sprintf("%s-%s-4%s-8%s-%s", x[:8], x[8:12], x[13:16], x[17:20], x[20:32]))
	}
	s.grants = grants{refresh: map[string]*refreshState{}, access: map[string]time.Time{}}
	var tw []simkit.Window
	if opts.MinuteLimit > 0 {
		tw = append(tw, simkit.Window{Name: "minute", Limit: opts.MinuteLimit, Per: time.Minute})
	}
	if opts.DayLimit > 0 {
		tw = append(tw, simkit.Window{Name: "day", Limit: opts.DayLimit, Per: 24 * time.Hour})
	}
	s.tenant = simkit.NewLimiter(s.Now, tw...)
	if opts.AppMinuteLimit > 0 {
		s.app = simkit.NewLimiter(s.Now, simkit.Window{Name: "appminute", Limit: opts.AppMinuteLimit, Per: time.Minute})
	}
	return s
}

// clockBase starts the simulated clock after every record of the dataset.
func clockBase(d *simkit.Dataset, now time.Time) time.Time {
	if !now.IsZero() {
		return now
	}
	var latest time.Time
	d.View(func(d *simkit.Dataset) {
		for _, p := range d.Products {
			latest = later(latest, p.Modified)
		}
		for _, c := range d.Customers {
			latest = later(latest, c.Modified)
		}
		for _, o := range d.Orders {
			latest = later(latest, o.Modified)
		}
		for _, o := range d.Invoices {
			latest = later(latest, o.Modified)
		}
	})
	if latest.IsZero() {
		return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return latest.Truncate(time.Hour).Add(2 * time.Hour)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Tenants returns the ids of the connected organisations.
func (s *Server) Tenants() []string { return append([]string(nil), s.tenants...) }

// Credentials returns Secret data that works now: the app's client id and
// secret, a freshly authorised refresh token (each call authorises anew,
// as a person reconnecting the app would) and the first tenant's id.
func (s *Server) Credentials() map[string]string {
	return map[string]string{
		"clientId":     s.opts.ClientID,
		"clientSecret": s.opts.ClientSecret,
		"refreshToken": s.Authorize(),
		"tenantId":     s.tenants[0],
	}
}

// Dataset returns the simulator's dataset.
func (s *Server) Dataset() *simkit.Dataset { return s.data }

// Expected returns the canonical records per kind a full import yields.
func (s *Server) Expected() map[model.Kind]int {
	out := map[model.Kind]int{}
	s.data.View(func(d *simkit.Dataset) {
		contacts, live, tracked := 0, 0, 0
		for _, c := range d.Customers {
			contacts += len(c.Contacts)
		}
		for _, p := range d.Products {
			if !p.Deleted {
				live++
				if isTracked(p) {
					tracked++
				}
			}
		}
		out[model.KindTaxRate] = len(d.TaxRates)
		out[model.KindCurrency] = len(d.Currencies)
		out[model.KindCustomer] = len(d.Customers)
		out[model.KindSupplier] = len(d.Suppliers)
		out[model.KindContact] = contacts
		out[model.KindProduct] = live
		out[model.KindStockLevel] = tracked
		out[model.KindInvoice] = len(d.Invoices) + len(bills(d))
		out[model.KindCreditNote] = len(d.CreditNotes)
	})
	return out
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.Stats().Count(r.URL.Path)
	switch r.URL.Path {
	case TokenPath:
		s.serveToken(w, r)
		return
	case ConnectionsPath:
		s.serveConnections(w, r)
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, APIPath)
	if !ok {
		s.problem(w, r, http.StatusNotFound, "NotFound", "The resource you're looking for cannot be found")
		return
	}
	if !s.accessOK(bearer(r)) {
		s.Stats().AuthFails.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		s.problem(w, r, http.StatusUnauthorized, "Unauthorized", "AuthenticationUnsuccessful")
		return
	}
	tenant := r.Header.Get("xero-tenant-id")
	if !s.connected(tenant) {
		s.Stats().AuthFails.Add(1)
		s.problem(w, r, http.StatusForbidden, "Forbidden", "AuthorizationUnsuccessful")
		return
	}
	if !s.admit(w, r, tenant) {
		return
	}
	defer s.release(tenant)
	// Faults apply to API requests only; see LoseTokenResponses for the
	// token endpoint.
	if s.ApplyFault(w, r) {
		return
	}
	if r.Method != http.MethodGet {
		s.problem(w, r, http.StatusMethodNotAllowed, "MethodNotAllowed", "the simulator serves GET only")
		return
	}
	q, err := parseQuery(r)
	if err != nil {
		s.validation(w, r, err.Error())
		return
	}
	switch strings.ToLower(path) {
	case "/items":
		s.serveItems(w, r, q)
	case "/contacts":
		s.serveContacts(w, r, q)
	case "/invoices":
		s.serveInvoices(w, r, q)
	case "/creditnotes":
		s.serveCreditNotes(w, r, q, "")
	case "/taxrates":
		s.serveTaxRates(w, r)
	case "/currencies":
		s.serveCurrencies(w, r)
	default:
		if rest, ok := strings.CutPrefix(strings.ToLower(path), "/creditnotes/"); ok && rest != "" && !strings.Contains(rest, "/") {
			s.serveCreditNotes(w, r, q, path[len(path)-len(rest):])
			return
		}
		s.problem(w, r, http.StatusNotFound, "NotFound", "The resource you're looking for cannot be found")
	}
}

func (s *Server) connected(tenant string) bool {
	for _, t := range s.tenants {
		if strings.EqualFold(t, tenant) {
			return true
		}
	}
	return false
}

// admit applies the concurrency cap and the rate limits; on refusal it has
// answered 429.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, tenant string) bool {
	s.mu.Lock()
	if s.opts.Concurrency > 0 && s.inflight[tenant] >= s.opts.Concurrency {
		s.mu.Unlock()
		s.throttle(w, r, "concurrent", time.Second)
		return false
	}
	s.inflight[tenant]++
	s.mu.Unlock()
	ok, window, retry := s.tenant.Allow(tenant)
	if ok && s.app != nil {
		ok, window, retry = s.app.Allow("app")
	}
	if !ok {
		s.release(tenant)
		s.throttle(w, r, window, retry)
		return false
	}
	rem := s.tenant.Remaining(tenant)
	if s.opts.DayLimit > 0 {
		w.Header().Set("X-DayLimit-Remaining", strconv.Itoa(rem["day"]))
	}
	if s.opts.MinuteLimit > 0 {
		w.Header().Set("X-MinLimit-Remaining", strconv.Itoa(rem["minute"]))
	}
	if s.app != nil {
		w.Header().Set("X-AppMinLimit-Remaining", strconv.Itoa(s.app.Remaining("app")["appminute"]))
	}
	return true
}

func (s *Server) release(tenant string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight[tenant]--
}

func (s *Server) throttle(w http.ResponseWriter, r *http.Request, window string, retry time.Duration) {
	s.Stats().Throttled.Add(1)
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(retry.Seconds())))))
	w.Header().Set("X-Rate-Limit-Problem", window)
	s.problem(w, r, http.StatusTooManyRequests, "Too Many Requests", "rate limit exceeded: "+window)
}

// problem answers an error the way Xero's API gateway does.
func (s *Server) problem(w http.ResponseWriter, r *http.Request, status int, title, detail string) {
	s.write(w, r, status, map[string]any{"Type": nil, "Title": title, "Status": status, "Detail": detail, "Instance": newToken(""), "Extensions": map[string]any{}})
}

// validation answers 400 with Xero's ValidationException document.
func (s *Server) validation(w http.ResponseWriter, r *http.Request, msg string) {
	s.write(w, r, http.StatusBadRequest, map[string]any{"ErrorNumber": 16, "Type": "QueryParseException", "Message": msg})
}
