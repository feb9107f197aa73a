// Command erpsim serves the simulators of all five ERP vendors on local
// ports, each with a seeded dataset of the chosen size, and prints for each
// the base URL and the credentials that work. It is what `make demo` and the
// end-to-end tests run, and what a user runs to try the operator without ERP
// accounts.
//
//	erpsim --products 500 --changes-per-minute 6
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
		listen: *listen, basePort: *basePort, adminAddr: *adminAddr, timeScale: *timeScale,
		dataset: simkit.Options{Seed: *seed, Products: *products, Customers: *customers, Orders: *orders, Warehouses: *warehouses},
		vendors: splitList(*onlyVendors),
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
	dataset   simkit.Options
	vendors   []string
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
}

func start(ctx context.Context, c config) (*fleet, error) {
	f := &fleet{}
	for i, v := range vendors(c.dataset, c.timeScale) {
		if len(c.vendors) > 0 && !slices.Contains(c.vendors, v.name) {
			continue
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
		srv := &http.Server{Handler: v.sim, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		f.vendors = append(f.vendors, &runningVendor{vendor: v, srv: srv, rootURL: "http://" + ln.Addr().String()})
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
	}
	if f.admin != nil {
		_ = f.admin.Shutdown(ctx)
	}
	if h := f.hostileRun(); h != nil {
		h.Shutdown(ctx)
	}
}

// VendorState is what erpsim publishes of one vendor.
type VendorState struct {
	Vendor      string            `json:"vendor"`
	BaseURL     string            `json:"baseURL"`
	Credentials map[string]string `json:"credentials"`
	Expected    map[string]int    `json:"expected"`
	Requests    int64             `json:"requests"`
	Throttled   int64             `json:"throttled"`
	ByPath      map[string]int64  `json:"byPath,omitempty"`
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
		s.Vendors = append(s.Vendors, v.state())
	}
	if h := f.hostileRun(); h != nil {
		hs := h.State()
		s.Hostile = &hs
	}
	return s
}

func (v *runningVendor) state() VendorState {
	exp := map[string]int{}
	for k, n := range v.sim.Expected() {
		exp[string(k)] = n
	}
	st := v.sim.Stats()
	creds := v.sim.Credentials()
	if v.extraCredentials != nil {
		creds = maps.Clone(creds)
		maps.Copy(creds, v.extraCredentials(v.rootURL))
	}
	return VendorState{Vendor: v.name, BaseURL: v.apiRoot(v.rootURL), Credentials: creds, Expected: exp,
		Requests: st.Requests.Load(), Throttled: st.Throttled.Load(), ByPath: st.ByPath()}
}

func (f *fleet) print(w *os.File) {
	fmt.Fprintf(w, "erpsim: admin API %s\n", f.adminURL)
	for _, v := range f.vendors {
		st := v.state()
		keys := make([]string, 0, len(st.Credentials))
		for k := range st.Credentials {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(w, "erpsim: %-9s baseURL=%s", v.name, st.BaseURL)
		for _, k := range keys {
			fmt.Fprintf(w, " %s=%s", k, st.Credentials[k])
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

// trickle changes a few records a minute in every vendor.
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
				ds := v.sim.Dataset()
				switch n % 3 {
				case 0:
					ds.TouchProducts(1)
				case 1:
					ds.TouchCustomers(1)
				case 2:
					ds.TouchOrders(1)
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
		writeJSON(w, v.state())
	})
	mux.HandleFunc("POST /vendors/{vendor}/stats/reset", func(w http.ResponseWriter, r *http.Request) {
		v, err := f.find(r.PathValue("vendor"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		v.sim.Stats().Reset()
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
