// Package hostile is the server a hostile tenant runs: an Unleashed-shaped
// API that attacks the manager calling it instead of serving it. The
// end-to-end tests and `erpsim --hostile` use it to show that one tenant's
// ErpSync cannot touch another company's rows, limits or network.
//
// Each attack lives under its own first path segment, so one server serves
// every attack at once and a tenant picks one with its baseURL
// (http://host:port/<attack>):
//
//	forge            the Unleashed API over the victim's dataset (same seed,
//	                 so the same ids), every record modified in year 9999
//	                 and deleted
//	throttle         429 with Retry-After: 1000000000 (about 31 years)
//	redirect-private 302 to the "internal service" (a listener on a
//	                 loopback address the egress policy does not allow)
//	redirect-http    302 to the same path on another host, over plain http
//	                 (when the server itself is reached over https, a
//	                 downgrade)
//	huge             200 with a well-formed but endless JSON body (HugeBytes)
//	slow             200 whose body trickles one byte a second for SlowFor
//	exfil            401 to everything; counts who sent credentials here
//
// Every request is counted per attack, with the credential headers it
// carried (their names only: values are never kept), so a test can prove
// that a refused ErpSync never called out, or never sent its secret.
package hostile

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/simkit"
	unleashedsim "github.com/erpsync/erpsync-operator/connectors/unleashed/sim"
)

// Attacks served, in the order of the package documentation.
const (
	Forge           = "forge"
	Throttle        = "throttle"
	RedirectPrivate = "redirect-private"
	RedirectHTTP    = "redirect-http"
	Huge            = "huge"
	Slow            = "slow"
	Exfil           = "exfil"
)

// Attacks lists every attack path.
var Attacks = []string{Forge, Throttle, RedirectPrivate, RedirectHTTP, Huge, Slow, Exfil}

// RetryAfter is the Retry-After the throttle attack sends, in seconds.
const RetryAfter = 1_000_000_000

// ForgedTime is the modified time of every forged record.
var ForgedTime = time.Date(9999, time.December, 31, 23, 59, 59, 0, time.UTC)

// Defaults of Options.
const (
	DefaultHugeBytes = 1 << 30
	DefaultSlowFor   = 10 * time.Minute
	// DefaultAPIKey is the hostile tenant's own Unleashed API key: the
	// forged API accepts it with the victim's (non-secret) API id.
	DefaultAPIKey = "hostile-tenant-key-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ=="
)

// credentialHeaders are the request headers that carry vendor credentials.
var credentialHeaders = []string{"Authorization", "Api-Auth-Id", "Api-Auth-Signature", "Api-Key", "X-Api-Key", "Api-Auth-Applicationkey", "Api-Auth-Accountid", "Cookie"}

// Options configure a Server.
type Options struct {
	// Dataset is the victim's dataset options: with the same seed the
	// forged records carry the victim's ids.
	Dataset simkit.Options
	// APIID and APIKey are what the forged Unleashed API accepts; APIID
	// defaults to the Unleashed simulator's (the victim's) id, APIKey to
	// DefaultAPIKey.
	APIID, APIKey string
	// InternalURL is where redirect-private sends the caller: a service the
	// caller must not reach.
	InternalURL string
	// PlainURL is the root URL redirect-http sends the caller to (a plain
	// http listener on another host).
	PlainURL string
	// HugeBytes is the size of the huge body (default DefaultHugeBytes).
	HugeBytes int64
	// SlowFor is how long a slow answer trickles (default DefaultSlowFor).
	SlowFor time.Duration
}

// Server is the hostile API. It is safe for concurrent use.
type Server struct {
	opts  Options
	forge *unleashedsim.Server

	mu    sync.Mutex
	stats map[string]*routeStats
}

type routeStats struct {
	requests int64
	headers  map[string]int64
}

// New returns a hostile server.
func New(opts Options) *Server {
	if opts.APIID == "" {
		opts.APIID = unleashedsim.DefaultAPIID
	}
	if opts.APIKey == "" {
		opts.APIKey = DefaultAPIKey
	}
	if opts.HugeBytes <= 0 {
		opts.HugeBytes = DefaultHugeBytes
	}
	if opts.SlowFor <= 0 {
		opts.SlowFor = DefaultSlowFor
	}
	data := simkit.NewDataset(opts.Dataset)
	Forged(data)
	return &Server{
		opts:  opts,
		forge: unleashedsim.New(unleashedsim.Options{Data: data, APIID: opts.APIID, APIKey: opts.APIKey}),
		stats: map[string]*routeStats{},
	}
}

// Forged stamps every record of d (and every stock row) with ForgedTime and
// marks it deleted.
func Forged(d *simkit.Dataset) {
	d.Update(func(d *simkit.Dataset) {
		var metas []*simkit.Meta
		for _, x := range d.Warehouses {
			metas = append(metas, &x.Meta)
		}
		for _, x := range d.TaxRates {
			metas = append(metas, &x.Meta)
		}
		for _, x := range d.Currencies {
			metas = append(metas, &x.Meta)
		}
		for _, x := range d.SalesPeople {
			metas = append(metas, &x.Meta)
		}
		for _, x := range d.Suppliers {
			metas = append(metas, &x.Meta)
		}
		for _, x := range d.Customers {
			metas = append(metas, &x.Meta)
		}
		for _, x := range d.Products {
			metas = append(metas, &x.Meta)
			for i := range x.Stock {
				x.Stock[i].Modified = ForgedTime
			}
		}
		for _, docs := range [][]*simkit.Document{d.Orders, d.Invoices, d.CreditNotes} {
			for _, x := range docs {
				metas = append(metas, &x.Meta)
			}
		}
		for _, m := range metas {
			m.Modified = ForgedTime
			m.Deleted = true
		}
	})
}

// Credentials returns the Secret data the hostile tenant uses against the
// forged API.
func (s *Server) Credentials() map[string]string {
	return map[string]string{"apiId": s.opts.APIID, "apiKey": s.opts.APIKey}
}

// RouteStats is what one attack path received.
type RouteStats struct {
	Requests int64 `json:"requests"`
	// Headers counts the requests that carried each credential header
	// (canonical names).
	Headers map[string]int64 `json:"headers,omitempty"`
}

// Stats returns what each attack path received (paths with no request are
// included with zero).
func (s *Server) Stats() map[string]RouteStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]RouteStats, len(Attacks)+1)
	for _, a := range Attacks {
		out[a] = RouteStats{}
	}
	for k, v := range s.stats {
		rs := RouteStats{Requests: v.requests}
		if len(v.headers) > 0 {
			rs.Headers = make(map[string]int64, len(v.headers))
			for h, n := range v.headers {
				rs.Headers[h] = n
			}
		}
		out[k] = rs
	}
	return out
}

// ResetStats zeroes the counters.
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = map[string]*routeStats{}
	s.forge.Stats().Reset()
}

func (s *Server) count(route string, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats[route]
	if st == nil {
		st = &routeStats{headers: map[string]int64{}}
		s.stats[route] = st
	}
	st.requests++
	for _, h := range credentialHeaders {
		if r.Header.Get(h) != "" {
			st.headers[http.CanonicalHeaderKey(h)]++
		}
	}
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	route, rest := splitRoute(r.URL.Path)
	if !knownAttack(route) {
		// Unknown paths are counted too: a request that arrives at all
		// is what a test of a refused ErpSync looks for.
		s.count("other", r)
		http.NotFound(w, r)
		return
	}
	s.count(route, r)
	switch route {
	case Forge:
		r2 := r.Clone(r.Context())
		r2.URL.Path = rest
		r2.URL.RawPath = ""
		s.forge.ServeHTTP(w, r2)
	case Throttle:
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfter))
		http.Error(w, "Too Many Requests", http.StatusTooManyRequests)
	case RedirectPrivate:
		redirect(w, r, s.opts.InternalURL, rest)
	case RedirectHTTP:
		redirect(w, r, s.opts.PlainURL, rest)
	case Huge:
		s.huge(w, r)
	case Slow:
		s.slow(w, r)
	case Exfil:
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
	}
}

func knownAttack(route string) bool {
	for _, a := range Attacks {
		if a == route {
			return true
		}
	}
	return false
}

// splitRoute splits "/forge/Products/1" into "forge" and "/Products/1".
func splitRoute(p string) (route, rest string) {
	p = strings.TrimPrefix(p, "/")
	route, rest, _ = strings.Cut(p, "/")
	return route, "/" + rest
}

func redirect(w http.ResponseWriter, r *http.Request, root, rest string) {
	if root == "" {
		http.Error(w, "no redirect target configured", http.StatusNotFound)
		return
	}
	target := strings.TrimSuffix(root, "/") + rest
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	w.Header().Set("Location", target)
	w.WriteHeader(http.StatusFound)
}

// huge answers a page whose single item has a name of HugeBytes bytes: valid
// JSON if read to the end, so only a size cap stops a client buffering it.
func (s *Server) huge(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if _, err := io.WriteString(w, `{"Pagination":{"NumberOfItems":1,"PageSize":200,"PageNumber":1,"NumberOfPages":1},"Items":[{"Guid":"00000000-0000-0000-0000-000000000001","ProductCode":"`); err != nil {
		return
	}
	chunk := []byte(strings.Repeat("x", 64<<10))
	for left := s.opts.HugeBytes; left > 0; {
		if r.Context().Err() != nil {
			return
		}
		n := min(left, int64(len(chunk)))
		if _, err := w.Write(chunk[:n]); err != nil {
			return
		}
		left -= n
	}
	_, _ = io.WriteString(w, `"}]}`)
}

// slow answers 200 at once, then one byte a second for SlowFor, then an
// empty page: header and idle timeouts never fire.
func (s *Server) slow(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	deadline := time.Now().Add(s.opts.SlowFor)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for time.Now().Before(deadline) {
		if _, err := io.WriteString(w, " "); err != nil {
			return
		}
		if fl != nil {
			fl.Flush()
		}
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
	_, _ = io.WriteString(w, `{"Pagination":{"NumberOfItems":0,"PageSize":200,"PageNumber":1,"NumberOfPages":1},"Items":[]}`)
}

// Internal is the service a hostile tenant wants the manager to reach: it
// answers 200 to anything and counts what it received.
type Internal struct {
	mu       sync.Mutex
	requests int64
}

// ServeHTTP implements http.Handler.
func (i *Internal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i.mu.Lock()
	i.requests++
	i.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"internal":"metadata you must not read"}`)
}

// Requests returns how many requests reached the service.
func (i *Internal) Requests() int64 {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.requests
}

// Reset zeroes the counter.
func (i *Internal) Reset() {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.requests = 0
}

// State is what a running hostile deployment publishes.
type State struct {
	// BaseURL is the hostile API's root: an ErpSync picks an attack with
	// baseURL BaseURL + "/" + attack.
	BaseURL string `json:"baseURL"`
	// InternalURL is the service redirect-private points at (and that an
	// ErpSync may name directly).
	InternalURL string `json:"internalURL"`
	// PlainURL is where redirect-http points.
	PlainURL string `json:"plainURL"`
	// Credentials are the hostile tenant's own, for the forged API.
	Credentials map[string]string `json:"credentials"`
	// Routes is what each attack path received.
	Routes map[string]RouteStats `json:"routes"`
	// Internal is the number of requests that reached the internal service.
	Internal int64 `json:"internal"`
	// Plain is the number of requests that reached the plain listener.
	Plain int64 `json:"plain"`
}

// Running is a started hostile deployment: the hostile API, the internal
// service and the plain-http target of redirect-http, each on its own
// listener.
type Running struct {
	Server   *Server
	Internal *Internal
	Plain    *Internal

	baseURL, internalURL, plainURL string
	servers                        []*http.Server
}

// StartConfig says where a Running listens.
type StartConfig struct {
	// Listen is the host of the hostile API (it plays a public host the
	// egress policy allows).
	Listen string
	// InternalListen is the host of the internal service: an address the
	// egress policy must refuse (default 127.0.0.2, loopback but not the
	// API's host).
	InternalListen string
	// PlainListen is the host of redirect-http's target (default
	// 127.0.0.3).
	PlainListen string
	Options     Options
}

// Start starts the hostile API, the internal service and the plain target.
func Start(c StartConfig) (*Running, error) {
	if c.Listen == "" {
		c.Listen = "127.0.0.1"
	}
	if c.InternalListen == "" {
		c.InternalListen = "127.0.0.2"
	}
	if c.PlainListen == "" {
		c.PlainListen = "127.0.0.3"
	}
	run := &Running{Internal: &Internal{}, Plain: &Internal{}}
	serve := func(host string, h http.Handler) (string, error) {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return "", fmt.Errorf("hostile: listening on %s: %w", host, err)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		run.servers = append(run.servers, srv)
		go func() { _ = srv.Serve(ln) }()
		return "http://" + ln.Addr().String(), nil
	}
	var err error
	if run.internalURL, err = serve(c.InternalListen, run.Internal); err != nil {
		return nil, err
	}
	if run.plainURL, err = serve(c.PlainListen, run.Plain); err != nil {
		run.Shutdown(context.Background())
		return nil, err
	}
	c.Options.InternalURL, c.Options.PlainURL = run.internalURL, run.plainURL
	run.Server = New(c.Options)
	if run.baseURL, err = serve(c.Listen, run.Server); err != nil {
		run.Shutdown(context.Background())
		return nil, err
	}
	return run, nil
}

// State returns what the deployment publishes.
func (r *Running) State() State {
	return State{BaseURL: r.baseURL, InternalURL: r.internalURL, PlainURL: r.plainURL,
		Credentials: r.Server.Credentials(), Routes: r.Server.Stats(),
		Internal: r.Internal.Requests(), Plain: r.Plain.Requests()}
}

// Reset zeroes every counter.
func (r *Running) Reset() {
	r.Server.ResetStats()
	r.Internal.Reset()
	r.Plain.Reset()
}

// Shutdown stops every listener.
func (r *Running) Shutdown(ctx context.Context) {
	for _, s := range r.servers {
		_ = s.Shutdown(ctx)
	}
}

// AdminHandler serves GET /hostile (the State) and POST /hostile/reset.
func (r *Running) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hostile", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(r.State())
	})
	mux.HandleFunc("POST /hostile/reset", func(w http.ResponseWriter, _ *http.Request) {
		r.Reset()
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}
