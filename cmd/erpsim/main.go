// Command erpsim serves the simulators of all five ERP vendors on local
// ports, each with a seeded dataset of the chosen size, and prints for each
// the base URL and the credentials that work. It is what `make demo` and the
// end-to-end tests run, and what a user runs to try the operator without ERP
// accounts.
//
//	erpsim --products 500 --changes-per-minute 6
//
// With --companies N each vendor serves N companies instead of one, company
// k under the path /companies/k of the vendor's listener, each with its own
// dataset (seed+k), deterministic credentials of its own and its own rate
// limits and quotas (see companies.go); the state file and GET /vendors list
// them under "companies". It is what the scale benchmark (test/scale) runs.
//
// An admin API (--admin-addr) lets scripts and tests change records and read
// what each simulator served: GET /vendors, GET /vendors/{vendor}/stats,
// POST /vendors/{vendor}/touch?products=N&customers=N&orders=N,
// POST /vendors/{vendor}/stats/reset; and, per vendor, every record of its
// dataset by kind and dataset id: list, read, change or mark deleted
// (PATCH), hard-delete (DELETE), remove a child (a customer's contact, a
// product's special price or stock row), and the list share that makes the
// vendor's lists lie (see admin.go for the routes and bodies).
//
// Webhooks (webhooks.go): every simulator but Cin7 Omni's delivers signed
// events of every change to the receivers subscribed to it. Katana,
// Unleashed and Cin7 Core are subscribed through their APIs, by the
// operator (plain-http loopback receivers are allowed here); Xero's app
// webhook is set through the admin API, which plays Xero's developer
// portal: PUT /vendors/xero/webhook {"url": ...}, then
// POST /vendors/xero/webhook/intent (the key is in Xero's credentials as
// webhookKey). GET /vendors/{vendor}/webhooks lists the subscriptions with
// their delivery counters.
//
// With --quota-spent N the credentials of the vendors with a daily quota
// (Cin7 Omni, Xero) start the day with N calls of it spent (quota.go); the
// stats count the answers that refused a call for the quota (quotaRefused).
//
// With --hostile it also serves what a hostile tenant would run (package
// internal/hostile): an Unleashed-shaped API over a forged copy of the
// dataset (the same ids, modified in year 9999, deleted) and answers that
// attack the caller (a huge Retry-After, redirects to a private address or
// to plain http, an endless body, a trickling answer), each under its own
// path, with an "internal service" on another loopback address for the
// redirects to aim at. The admin API adds GET /hostile (the URLs and what
// each attack received) and POST /hostile/reset. Never enabled by default.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/internal/hostile"
)

func main() {
	var (
		listen      = flag.String("listen", "127.0.0.1", "Address the simulators listen on.")
		basePort    = flag.Int("base-port", 0, "First port: vendors get base-port, base-port+1, ... in the order unleashed, cin7omni, cin7core, xero, katana (0: any free ports).")
		adminAddr   = flag.String("admin-addr", "127.0.0.1:0", "Address of the admin API.")
		products    = flag.Int("products", 200, "Products per vendor (each with stock in every warehouse and special prices).")
		customers   = flag.Int("customers", 50, "Customers per vendor.")
		orders      = flag.Int("orders", 100, "Sales orders per vendor (invoices for half, credit notes for a tenth of those).")
		warehouses  = flag.Int("warehouses", 3, "Warehouses per vendor.")
		seed        = flag.Uint64("seed", 1, "Dataset seed: equal seeds give equal datasets.")
		changes     = flag.Float64("changes-per-minute", 0, "Products, customers and orders changed per minute in each vendor, so incremental syncs have work.")
		timeScale   = flag.Float64("time-scale", 1, "Run the vendors' rate-limit windows this many times faster than real time.")
		stateFile   = flag.String("state-file", "", "Write the vendors' URLs and credentials as JSON to this file once serving.")
		onlyVendors = flag.String("vendors", "", "Comma-separated subset of vendors to serve (default all).")
		quotaSpent  = flag.Int("quota-spent", 0, "Calls of each credential's daily quota (Cin7 Omni, Xero: 5,000) spent before erpsim started: the simulators serve the rest of the day's quota, then refuse as the vendor does (tests of quotas).")
		companies   = flag.Int("companies", 0, "Serve this many companies per vendor, company k under /companies/k with its own dataset, credentials and limits (0: one company at the root, as before).")
		hostileOn   = flag.Bool("hostile", false, "Also serve a hostile tenant's Unleashed-shaped API that attacks its caller (tests of tenant isolation only).")
		hostileInt  = flag.String("hostile-internal-host", "127.0.0.2", "With --hostile: the host of the internal service the hostile redirects aim at (must not be in the manager's egress allow-list).")
		hostilePln  = flag.String("hostile-plain-host", "127.0.0.3", "With --hostile: the host of the plain-http target of the hostile redirect-http attack.")
		hugeBytes   = flag.Int64("hostile-huge-bytes", hostile.DefaultHugeBytes, "With --hostile: size of the endless body of the huge attack.")
		slowFor     = flag.Duration("hostile-slow-for", hostile.DefaultSlowFor, "With --hostile: how long the slow attack trickles its answer.")
	)
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	fleet, err := start(ctx, config{
		listen: *listen, basePort: *basePort, adminAddr: *adminAddr, timeScale: *timeScale, quotaSpent: *quotaSpent,
		dataset: simkit.Options{Seed: *seed, Products: *products, Customers: *customers, Orders: *orders, Warehouses: *warehouses},
		vendors: splitList(*onlyVendors), companies: *companies,
	})
	if err == nil && *hostileOn {
		err = fleet.startHostile(hostile.StartConfig{Listen: *listen, InternalListen: *hostileInt, PlainListen: *hostilePln,
			Options: hostile.Options{Dataset: simkit.Options{Seed: *seed, Products: *products, Customers: *customers, Orders: *orders, Warehouses: *warehouses},
				HugeBytes: *hugeBytes, SlowFor: *slowFor}})
	}
	if err != nil {
		log.Error("starting the simulators", "error", err)
		os.Exit(1)
	}
	fleet.print(os.Stdout)
	if *stateFile != "" {
		if err := fleet.writeState(*stateFile); err != nil {
			log.Error("writing the state file", "error", err)
			os.Exit(1)
		}
	}
	if *changes > 0 {
		go fleet.trickle(ctx, *changes, log)
	}
	<-ctx.Done()
	fleet.shutdown()
}

type config struct {
	listen    string
	basePort  int
	adminAddr string
	timeScale float64
	// quotaSpent is --quota-spent (quota.go).
	quotaSpent int
	dataset    simkit.Options
	vendors    []string
	// companies > 0 serves that many companies per vendor (companies.go).
	companies int
}

// fleet is the running simulators and the admin API.
type fleet struct {
	vendors  []*runningVendor
	admin    *http.Server
	adminURL string
	// hostile is set by startHostile; the admin API reads it under mu.
	mu      sync.Mutex
	hostile *hostile.Running
}

// startHostile starts the hostile tenant's servers.
func (f *fleet) startHostile(c hostile.StartConfig) error {
	run, err := hostile.Start(c)
	if err != nil {
		f.shutdown()
		return err
	}
	f.mu.Lock()
	f.hostile = run
	f.mu.Unlock()
	return nil
}

func (f *fleet) hostileRun() *hostile.Running {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hostile
}

type runningVendor struct {
	vendor
	srv     *http.Server
	rootURL string
	// share is the list share last set through the admin API (0: whole
	// lists).
	share atomic.Int32
	// companies, with --companies, are the simulators of companies 1..N
	// (companies[0] is sim: the admin API's record routes act on company
	// 1).
	companies []simulator
	// quotaRefused counts the answers that refused a call for a daily or
	// monthly quota (vendors with a daily quota only; see quota.go).
	quotaRefused atomic.Int64
}

func start(ctx context.Context, c config) (*fleet, error) {
	if c.companies < 0 {
		return nil, fmt.Errorf("--companies %d: want 0 (one company) or more", c.companies)
	}
	if err := checkQuotaSpent(c.quotaSpent, c.vendors); err != nil {
		return nil, err
	}
	sc := simConfig{timeScale: c.timeScale, quotaSpent: c.quotaSpent}
	f := &fleet{}
	for i, name := range vendorNames {
		if len(c.vendors) > 0 && !slices.Contains(c.vendors, name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			f.shutdown()
			return nil, err
		}
		var (
			v       vendor
			handler http.Handler
			sims    []simulator
		)
		if c.companies == 0 {
			v = newVendor(name, c.dataset, sc, 0)
			handler = v.sim
		} else {
			for k := 1; k <= c.companies; k++ {
				cv := newVendor(name, c.dataset, sc, k)
				if k == 1 {
					v = cv
				}
				sims = append(sims, cv.sim)
			}
			handler = companiesHandler(sims)
		}
		addr := net.JoinHostPort(c.listen, "0")
		if c.basePort > 0 {
			addr = net.JoinHostPort(c.listen, strconv.Itoa(c.basePort+i))
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			f.shutdown()
			return nil, fmt.Errorf("listening for %s on %s: %w", v.name, addr, err)
		}
		rv := &runningVendor{vendor: v, rootURL: "http://" + ln.Addr().String(), companies: sims}
		if _, ok := dailyQuotas[name]; ok {
			handler = countQuotaRefusals(handler, &rv.quotaRefused)
		}
		rv.srv = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = rv.srv.Serve(ln) }()
		f.vendors = append(f.vendors, rv)
	}
	ln, err := net.Listen("tcp", c.adminAddr)
	if err != nil {
		f.shutdown()
		return nil, fmt.Errorf("listening for the admin API on %s: %w", c.adminAddr, err)
	}
	f.admin = &http.Server{Handler: f.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
	f.adminURL = "http://" + ln.Addr().String()
	go func() { _ = f.admin.Serve(ln) }()
	return f, nil
}

func (f *fleet) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, v := range f.vendors {
		_ = v.srv.Shutdown(ctx)
		for _, sim := range v.sims() {
			closeWebhooks(sim)
		}
	}
	if f.admin != nil {
		_ = f.admin.Shutdown(ctx)
	}
	if h := f.hostileRun(); h != nil {
		h.Shutdown(ctx)
	}
}

// VendorState is what erpsim publishes of one vendor. With --companies,
// BaseURL and Credentials are company 1's, Requests, Throttled and ByPath
// are summed over the companies, and Companies lists every company (in
// the state file and GET /vendors).
type VendorState struct {
	Vendor      string            `json:"vendor"`
	BaseURL     string            `json:"baseURL"`
	Credentials map[string]string `json:"credentials"`
	Expected    map[string]int    `json:"expected"`
	Requests    int64             `json:"requests"`
	// Served counts the answers 2xx.
	Served    int64 `json:"served"`
	Throttled int64 `json:"throttled"`
	// QuotaRefused counts the refusals for a daily or monthly quota (a
	// part of Throttled; vendors with a daily quota only).
	QuotaRefused int64            `json:"quotaRefused"`
	ByPath       map[string]int64 `json:"byPath,omitempty"`
	Companies    []CompanyState   `json:"companies,omitempty"`
	// Webhooks sums the deliveries of the vendor's subscriptions (absent
	// for a vendor that sends no webhooks; see webhooks.go).
	Webhooks *WebhookTotals `json:"webhooks,omitempty"`
}

// State is the JSON of the state file and of GET /vendors.
type State struct {
	AdminURL string        `json:"adminURL"`
	Vendors  []VendorState `json:"vendors"`
	// Hostile is set with --hostile.
	Hostile *hostile.State `json:"hostile,omitempty"`
}

func (f *fleet) state() State {
	s := State{AdminURL: f.adminURL}
	for _, v := range f.vendors {
		s.Vendors = append(s.Vendors, v.state(true))
	}
	if h := f.hostileRun(); h != nil {
		hs := h.State()
		s.Hostile = &hs
	}
	return s
}

// sims returns the vendor's simulators: one, or one per company.
func (v *runningVendor) sims() []simulator {
	if len(v.companies) > 0 {
		return v.companies
	}
	return []simulator{v.sim}
}

// companyState returns where company k (0: erpsim's single company at the
// root) is served and the credentials that work there.
func (v *runningVendor) companyState(sim simulator, k int) CompanyState {
	root := v.rootURL
	if k > 0 {
		root = companyRoot(v.rootURL, k)
	}
	creds := sim.Credentials()
	if v.extraCredentials != nil {
		creds = maps.Clone(creds)
		maps.Copy(creds, v.extraCredentials(root))
	}
	return CompanyState{Company: k, BaseURL: v.apiRoot(root), Credentials: creds}
}

// state returns what erpsim publishes of the vendor; withCompanies lists
// every company too (Xero's credentials of each mint a refresh token).
func (v *runningVendor) state(withCompanies bool) VendorState {
	exp := map[string]int{}
	for k, n := range v.sim.Expected() {
		exp[string(k)] = n
	}
	first := 0
	if len(v.companies) > 0 {
		first = 1
	}
	cs := v.companyState(v.sim, first)
	out := VendorState{Vendor: v.name, BaseURL: cs.BaseURL, Credentials: cs.Credentials, Expected: exp, Webhooks: webhookTotals(v.sims()),
		QuotaRefused: v.quotaRefused.Load()}
	for i, sim := range v.sims() {
		st := sim.Stats()
		out.Requests += st.Requests.Load()
		out.Served += st.Served.Load()
		out.Throttled += st.Throttled.Load()
		for p, n := range st.ByPath() {
			if out.ByPath == nil {
				out.ByPath = map[string]int64{}
			}
			out.ByPath[p] += n
		}
		if withCompanies && len(v.companies) > 0 {
			if i == 0 {
				out.Companies = append(out.Companies, cs)
			} else {
				out.Companies = append(out.Companies, v.companyState(sim, i+1))
			}
		}
	}
	return out
}

func (f *fleet) print(w *os.File) {
	fmt.Fprintf(w, "erpsim: admin API %s\n", f.adminURL)
	for _, v := range f.vendors {
		st := v.state(false)
		keys := make([]string, 0, len(st.Credentials))
		for k := range st.Credentials {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(w, "erpsim: %-9s baseURL=%s", v.name, st.BaseURL)
		for _, k := range keys {
			fmt.Fprintf(w, " %s=%s", k, st.Credentials[k])
		}
		if n := len(v.companies); n > 0 {
			fmt.Fprintf(w, " (company 1 of %d; company k at %s/companies/k, credentials in the state file)", n, v.rootURL)
		}
		fmt.Fprintln(w)
	}
	if h := f.hostileRun(); h != nil {
		st := h.State()
		fmt.Fprintf(w, "erpsim: hostile   baseURL=%s/<%s> apiId=%s apiKey=%s internal=%s plain=%s\n",
			st.BaseURL, strings.Join(hostile.Attacks, "|"), st.Credentials["apiId"], st.Credentials["apiKey"], st.InternalURL, st.PlainURL)
	}
}

func (f *fleet) writeState(path string) error {
	b, err := json.MarshalIndent(f.state(), "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// trickle changes a few records a minute in every vendor (in every
// company of it, with --companies).
func (f *fleet) trickle(ctx context.Context, perMinute float64, log *slog.Logger) {
	t := time.NewTicker(time.Duration(float64(time.Minute) / perMinute))
	defer t.Stop()
	n := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, v := range f.vendors {
				for _, sim := range v.sims() {
					ds := sim.Dataset()
					switch n % 3 {
					case 0:
						ds.TouchProducts(1)
					case 1:
						ds.TouchCustomers(1)
					case 2:
						ds.TouchOrders(1)
					}
				}
			}
			n++
			log.Debug("changed a record in every vendor", "changes", n)
		}
	}
}

func (f *fleet) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /vendors", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, f.state())
	})
	mux.HandleFunc("GET /vendors/{vendor}/stats", func(w http.ResponseWriter, r *http.Request) {
		v, err := f.find(r.PathValue("vendor"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		writeJSON(w, v.state(false))
	})
	mux.HandleFunc("POST /vendors/{vendor}/stats/reset", func(w http.ResponseWriter, r *http.Request) {
		v, err := f.find(r.PathValue("vendor"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		for _, sim := range v.sims() {
			sim.Stats().Reset()
		}
		v.quotaRefused.Store(0)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /hostile", func(w http.ResponseWriter, r *http.Request) {
		h := f.hostileRun()
		if h == nil {
			http.Error(w, "erpsim runs without --hostile", http.StatusNotFound)
			return
		}
		h.AdminHandler().ServeHTTP(w, r)
	})
	mux.HandleFunc("POST /hostile/reset", func(w http.ResponseWriter, r *http.Request) {
		h := f.hostileRun()
		if h == nil {
			http.Error(w, "erpsim runs without --hostile", http.StatusNotFound)
			return
		}
		h.AdminHandler().ServeHTTP(w, r)
	})
	mux.HandleFunc("POST /vendors/{vendor}/touch", func(w http.ResponseWriter, r *http.Request) {
		v, err := f.find(r.PathValue("vendor"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		q := r.URL.Query()
		ds := v.sim.Dataset()
		out := map[string][]string{}
		if n, _ := strconv.Atoi(q.Get("products")); n > 0 {
			out["products"] = ds.TouchProducts(n)
		}
		if n, _ := strconv.Atoi(q.Get("customers")); n > 0 {
			out["customers"] = ds.TouchCustomers(n)
		}
		if n, _ := strconv.Atoi(q.Get("orders")); n > 0 {
			out["orders"] = ds.TouchOrders(n)
		}
		writeJSON(w, out)
	})
	f.recordRoutes(mux)
	f.webhookRoutes(mux)
	return mux
}

func (f *fleet) find(name string) (*runningVendor, error) {
	for _, v := range f.vendors {
		if v.name == name {
			return v, nil
		}
	}
	return nil, errors.New("no such vendor: " + name)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
