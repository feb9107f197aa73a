// Package receiver is the manager's webhook receiver: an HTTP server, on its
// own port, that takes vendors' change notifications, authenticates them
// with the ErpSync's keys, and gathers their events per ErpSync over its
// debounce window into one batch written to the ErpSync's
// status.webhooks.pending, which the controller turns into one targeted
// sync. It never syncs in the request: a delivery is answered as soon as
// its events are queued.
//
// Routes: POST /webhooks/<type>/<route> for vendors subscribed per ErpSync
// (the route is the ErpSync's UID), POST /webhooks/<type> for vendors that
// route by tenant (Xero). Checks run cheapest first: a token bucket per
// source address before the body is read, the body capped, then routing,
// then the signature (constant time, in the vendor's codec).
//
// It runs in every manager replica (not only the leader): any replica
// behind the Service may take a delivery, and the status write (with
// optimistic concurrency) is where they meet.
package receiver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/internal/metrics"
)

// PathPrefix is where the receiver's routes start.
const PathPrefix = "/webhooks/"

// Path returns the receiver path of an ErpSync for a vendor that routes
// by path (route = the ErpSync's UID), or of a vendor that routes by
// tenant (route empty). The public URL is the manager's
// --webhook-public-url followed by it.
func Path(vendor, route string) string {
	if route == "" {
		return PathPrefix + vendor
	}
	return PathPrefix + vendor + "/" + route
}

// Subscriber is an ErpSync with webhooks on, as the receiver needs it.
type Subscriber struct {
	Key types.NamespacedName
	UID types.UID
	// Type is the connector type (the vendor of the path).
	Type string
	// Tenant is spec.connector.tenantId, normalised (NormalizeTenant).
	Tenant string
	// Debounce is spec.webhooks.debounce (or its default).
	Debounce time.Duration
	// CredentialsSecret names the credentials Secret (same namespace).
	CredentialsSecret string
}

// Directory finds the ErpSyncs with webhooks on. Implementations must be
// cheap (a cache lookup): they run for every delivery.
type Directory interface {
	// ByRoute returns the ErpSync of vendor whose route (UID) is route.
	ByRoute(ctx context.Context, vendor, route string) (Subscriber, bool, error)
	// ByTenant returns the ErpSyncs of vendor whose tenant is tenant
	// (normalised).
	ByTenant(ctx context.Context, vendor, tenant string) ([]Subscriber, error)
	// AllOf returns every ErpSync of vendor.
	AllOf(ctx context.Context, vendor string) ([]Subscriber, error)
}

// Codecs gives the webhook codec of a connector type
// (*connectors.Registry).
type Codecs interface {
	Webhooks(typ string) (connectors.WebhookCodec, bool)
}

// NormalizeTenant is how tenants are compared: trimmed and lower-cased
// (Xero's tenant ids are UUIDs, whose case carries no meaning).
func NormalizeTenant(t string) string { return strings.ToLower(strings.TrimSpace(t)) }

// Defaults of Options.
const (
	DefaultAddr          = ":8090"
	DefaultMaxBodyBytes  = 1 << 20
	DefaultRatePerIP     = 20.0
	DefaultBurstFactor   = 5
	DefaultTrackedIPs    = 10000
	DefaultKeyTTL        = 30 * time.Second
	DefaultKeyRefresh    = 5 * time.Second
	DefaultCachedKeys    = 10000
	DefaultRequestBudget = 4 * time.Second
)

// Options configure a Receiver; zero values take the defaults.
type Options struct {
	// Addr is the listen address (":8090").
	Addr string
	// MaxBodyBytes caps a delivery's body (1 MiB); a larger one gets 413.
	MaxBodyBytes int64
	// RatePerIP is the deliveries per second one source address may send
	// (20), with bursts of BurstPerIP (5x the rate).
	RatePerIP  float64
	BurstPerIP int
	// TrackedIPs bounds the addresses with a bucket (10,000).
	TrackedIPs int
	// TrustedProxies are the addresses of the Ingress or Gateway in front
	// of the receiver: for requests from them the source address is taken
	// from X-Forwarded-For. Empty: the peer's address.
	TrustedProxies []netip.Prefix
	// KeyTTL is how long an ErpSync's keys are used once read (30s);
	// KeyRefresh the least time between two reads of them (5s); CachedKeys
	// bounds the ErpSyncs whose keys are held (10,000).
	KeyTTL     time.Duration
	KeyRefresh time.Duration
	CachedKeys int
	// RequestBudget bounds the work on one delivery (reading keys, the
	// directory): Xero wants an answer within 5 seconds.
	RequestBudget time.Duration
	// DispatchTimeout bounds one status write (30s); DispatchAttempts is how
	// often a batch is tried before it is dropped (5), DispatchBackoff the
	// first wait between tries (1s, doubling); DispatchConcurrency bounds
	// the status writes at once (8).
	DispatchTimeout     time.Duration
	DispatchAttempts    int
	DispatchBackoff     time.Duration
	DispatchConcurrency int
	// MaxPendingTargets bounds an ErpSync's batch
	// (erpv1.MaxPendingWebhookTargets).
	MaxPendingTargets int
	// ShutdownTimeout bounds the last dispatches at shutdown (5s).
	ShutdownTimeout time.Duration
	// Now is the clock (time.Now).
	Now func() time.Time
	Log logr.Logger
}

func (o *Options) defaults() {
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.RatePerIP <= 0 {
		o.RatePerIP = DefaultRatePerIP
	}
	if o.BurstPerIP <= 0 {
		o.BurstPerIP = max(1, int(o.RatePerIP*DefaultBurstFactor))
	}
	if o.TrackedIPs <= 0 {
		o.TrackedIPs = DefaultTrackedIPs
	}
	if o.KeyTTL <= 0 {
		o.KeyTTL = DefaultKeyTTL
	}
	if o.KeyRefresh <= 0 {
		o.KeyRefresh = DefaultKeyRefresh
	}
	if o.CachedKeys <= 0 {
		o.CachedKeys = DefaultCachedKeys
	}
	if o.RequestBudget <= 0 {
		o.RequestBudget = DefaultRequestBudget
	}
	if o.DispatchTimeout <= 0 {
		o.DispatchTimeout = 30 * time.Second
	}
	if o.DispatchAttempts <= 0 {
		o.DispatchAttempts = 5
	}
	if o.DispatchBackoff <= 0 {
		o.DispatchBackoff = time.Second
	}
	if o.DispatchConcurrency <= 0 {
		o.DispatchConcurrency = 8
	}
	if o.MaxPendingTargets <= 0 {
		o.MaxPendingTargets = erpv1.MaxPendingWebhookTargets
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Receiver is the webhook receiver, a controller-runtime Runnable that
// runs in every replica.
type Receiver struct {
	opts    Options
	codecs  Codecs
	dir     Directory
	keys    *keyCache
	co      *coalescer
	limiter *ipLimiter
	log     logr.Logger
}

// New builds a Receiver.
func New(codecs Codecs, dir Directory, keySource KeySource, disp Dispatcher, opts Options) *Receiver {
	opts.defaults()
	log := opts.Log
	return &Receiver{
		opts:   opts,
		codecs: codecs,
		dir:    dir,
		keys: newKeyCache(keySource, keyCacheConfig{ttl: opts.KeyTTL, refreshEvery: opts.KeyRefresh,
			size: opts.CachedKeys, now: opts.Now}),
		co: newCoalescer(disp, coalescerConfig{maxTargets: opts.MaxPendingTargets, timeout: opts.DispatchTimeout,
			attempts: opts.DispatchAttempts, backoff: opts.DispatchBackoff, concurrency: opts.DispatchConcurrency,
			now: opts.Now, log: log}),
		limiter: newIPLimiter(opts.RatePerIP, opts.BurstPerIP, opts.TrackedIPs, opts.Now),
		log:     log,
	}
}

// NeedLeaderElection is false: every replica receives.
func (r *Receiver) NeedLeaderElection() bool { return false }

// Start serves on opts.Addr until ctx ends, then writes the open batches
// (within ShutdownTimeout).
func (r *Receiver) Start(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", r.opts.Addr)
	if err != nil {
		return fmt.Errorf("webhook receiver: listening on %s: %w", r.opts.Addr, err)
	}
	return r.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends (Start's body; tests pass their own
// listener).
func (r *Receiver) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           r.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	r.log.Info("webhook receiver listening", "address", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	sweep := time.NewTicker(r.opts.KeyTTL)
	defer sweep.Stop()
	var serveErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			serveErr = err
			break loop
		case <-sweep.C:
			r.keys.sweep()
		}
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		r.log.Error(err, "stopping the webhook receiver")
	}
	if err := r.Close(shutdown); err != nil {
		r.log.Error(err, "stopping the webhook receiver")
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("webhook receiver: %w", serveErr)
	}
	return nil
}

// Close writes the open batches and stops the dispatches when ctx ends.
// Deliveries after Close are answered but not dispatched.
func (r *Receiver) Close(ctx context.Context) error {
	return r.co.close(ctx)
}

// Handler returns the receiver's HTTP handler.
func (r *Receiver) Handler() http.Handler { return http.HandlerFunc(r.serve) }

// answer replies with an empty body (Xero requires one) and counts it.
func answer(w http.ResponseWriter, vendor string, code int, result string) {
	metrics.AddWebhookDelivery(vendor, result)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(code)
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	// The bucket first: a flood costs a map lookup a request.
	vendor, route, pathOK := splitPath(req.URL.Path)
	codec, known := connectors.WebhookCodec(nil), false
	if pathOK {
		codec, known = r.codecs.Webhooks(vendor)
	}
	label := metrics.WebhookVendorOther
	if known {
		label = vendor
	}
	if ok, wait := r.limiter.allow(clientAddr(req, r.opts.TrustedProxies)); !ok {
		w.Header().Set("Retry-After", retryAfter(wait))
		answer(w, label, http.StatusTooManyRequests, metrics.WebhookThrottled)
		return
	}
	if !known {
		answer(w, label, http.StatusNotFound, metrics.WebhookNotFound)
		return
	}
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		answer(w, label, http.StatusMethodNotAllowed, metrics.WebhookNotFound)
		return
	}
	byTenant := codec.Routing() == connectors.RouteByTenant
	if byTenant != (route == "") {
		answer(w, label, http.StatusNotFound, metrics.WebhookNotFound)
		return
	}
	if req.ContentLength > r.opts.MaxBodyBytes {
		answer(w, label, http.StatusRequestEntityTooLarge, metrics.WebhookTooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, r.opts.MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			answer(w, label, http.StatusRequestEntityTooLarge, metrics.WebhookTooLarge)
			return
		}
		// The client went away or sent too slowly.
		answer(w, label, http.StatusBadRequest, metrics.WebhookMalformed)
		return
	}
	now := r.opts.Now()
	ctx, cancel := context.WithTimeout(req.Context(), r.opts.RequestBudget)
	defer cancel()
	log := r.log.WithValues("vendor", vendor)
	if byTenant {
		r.serveByTenant(ctx, w, req.Header, body, vendor, codec, now, log)
		return
	}
	r.serveByPath(ctx, w, req.Header, body, vendor, route, codec, now, log)
}

func (r *Receiver) serveByPath(ctx context.Context, w http.ResponseWriter, h http.Header, body []byte, vendor, route string,
	codec connectors.WebhookCodec, now time.Time, log logr.Logger) {
	sub, ok, err := r.dir.ByRoute(ctx, vendor, route)
	if err != nil {
		log.Error(err, "finding the ErpSync of a webhook delivery")
		answer(w, vendor, http.StatusServiceUnavailable, metrics.WebhookUnavailable)
		return
	}
	if !ok || sub.Type != vendor {
		// Acknowledged, so that the vendor does not disable a
		// subscription that will be removed or re-made anyway.
		log.V(1).Info("webhook delivery for no ErpSync with webhooks on; ignored")
		answer(w, vendor, http.StatusOK, metrics.WebhookUnknown)
		return
	}
	log = log.WithValues("erpsync", sub.Key.String())
	verified, err := r.verify(ctx, codec, h, body, now, []Subscriber{sub}, log)
	if err != nil {
		log.Error(err, "reading the webhook keys")
		answer(w, vendor, http.StatusServiceUnavailable, metrics.WebhookUnavailable)
		return
	}
	if !verified[sub.UID] {
		log.V(1).Info("webhook delivery not authenticated; refused")
		r.co.add(sub, nil, false, 1, now)
		answer(w, vendor, http.StatusUnauthorized, metrics.WebhookRejected)
		return
	}
	events, err := codec.Parse(h, body)
	if err != nil {
		// Authentic but not understood (the vendor changed its payload,
		// or a new shape): acknowledged, so that the vendor does not
		// retry it and then disable the subscription (Cin7 Core does so
		// silently), counted as rejected, and the announced streams are
		// polled at once instead.
		log.Info("authentic webhook delivery that does not decode; polling instead", "error", truncate(err.Error(), 200))
		r.co.addPoll(sub, announced(codec), now)
		answer(w, vendor, http.StatusOK, metrics.WebhookMalformed)
		return
	}
	r.co.add(sub, targetsOf(events), true, 0, now)
	metrics.AddWebhookEvents(vendor, len(events))
	answer(w, vendor, http.StatusOK, metrics.WebhookAccepted)
}

// announced names the streams a codec's events name (every stream, "*",
// when it does not say).
func announced(codec connectors.WebhookCodec) []string {
	cov, ok := codec.(connectors.WebhookCoverage)
	if !ok || len(cov.Announces()) == 0 {
		return []string{"*"}
	}
	out := make([]string, 0, len(cov.Announces()))
	for _, k := range cov.Announces() {
		out = append(out, string(k))
	}
	return out
}

func (r *Receiver) serveByTenant(ctx context.Context, w http.ResponseWriter, h http.Header, body []byte, vendor string,
	codec connectors.WebhookCodec, now time.Time, log logr.Logger) {
	// The body is parsed before it is authenticated (its tenants say
	// whose keys to check with): the codec treats it as hostile.
	events, err := codec.Parse(h, body)
	if err != nil {
		log.V(1).Info("webhook delivery that does not decode; refused", "error", truncate(err.Error(), 200))
		answer(w, vendor, http.StatusBadRequest, metrics.WebhookMalformed)
		return
	}
	if len(events) == 0 {
		r.serveIntent(ctx, w, h, body, vendor, codec, now, log)
		return
	}
	// The candidates: the ErpSyncs of each tenant the events name.
	byTenant := map[string][]connectors.WebhookEvent{}
	var tenants []string
	for _, e := range events {
		t := NormalizeTenant(e.Tenant)
		if _, seen := byTenant[t]; !seen {
			tenants = append(tenants, t)
		}
		byTenant[t] = append(byTenant[t], e)
	}
	var candidates []Subscriber
	subsOf := map[string][]Subscriber{}
	seen := map[types.UID]bool{}
	ignored := 0
	for _, t := range tenants {
		var subs []Subscriber
		if t != "" {
			subs, err = r.dir.ByTenant(ctx, vendor, t)
			if err != nil {
				log.Error(err, "finding the ErpSyncs of a webhook delivery")
				answer(w, vendor, http.StatusServiceUnavailable, metrics.WebhookUnavailable)
				return
			}
		}
		subs = onlyType(subs, vendor)
		if len(subs) == 0 {
			ignored += len(byTenant[t])
			continue
		}
		subsOf[t] = subs
		for _, s := range subs {
			if !seen[s.UID] {
				seen[s.UID] = true
				candidates = append(candidates, s)
			}
		}
	}
	if len(candidates) == 0 {
		log.V(1).Info("webhook delivery for no tenant of an ErpSync with webhooks on; ignored", "events", len(events))
		metrics.AddWebhookIgnoredEvents(vendor, ignored)
		answer(w, vendor, http.StatusOK, metrics.WebhookUnknown)
		return
	}
	verified, err := r.verify(ctx, codec, h, body, now, candidates, log)
	if err != nil {
		log.Error(err, "reading the webhook keys")
		answer(w, vendor, http.StatusServiceUnavailable, metrics.WebhookUnavailable)
		return
	}
	if len(verified) == 0 {
		// Nobody's key signed it: refused, and counted against each
		// ErpSync it claimed to be for.
		for _, s := range candidates {
			r.co.add(s, nil, false, 1, now)
		}
		answer(w, vendor, http.StatusUnauthorized, metrics.WebhookRejected)
		return
	}
	// Each ErpSync gets only the events of its own tenant, and only when
	// its own key signed the delivery.
	accepted := 0
	for _, t := range tenants {
		subs := subsOf[t]
		if len(subs) == 0 {
			continue
		}
		got := false
		for _, s := range subs {
			if verified[s.UID] {
				r.co.add(s, targetsOf(byTenant[t]), true, 0, now)
				got = true
			}
		}
		if got {
			accepted += len(byTenant[t])
		} else {
			ignored += len(byTenant[t])
		}
	}
	metrics.AddWebhookEvents(vendor, accepted)
	metrics.AddWebhookIgnoredEvents(vendor, ignored)
	answer(w, vendor, http.StatusOK, metrics.WebhookAccepted)
}

// serveIntent answers a delivery that names no event (Xero's
// intent-to-receive): 200 when the key of any ErpSync of the vendor signed
// it, else 401. The ErpSyncs whose key signed it note an authentic
// delivery (status.webhooks.lastEventAt).
func (r *Receiver) serveIntent(ctx context.Context, w http.ResponseWriter, h http.Header, body []byte, vendor string,
	codec connectors.WebhookCodec, now time.Time, log logr.Logger) {
	subs, err := r.dir.AllOf(ctx, vendor)
	if err != nil {
		log.Error(err, "listing the ErpSyncs of a webhook delivery")
		answer(w, vendor, http.StatusServiceUnavailable, metrics.WebhookUnavailable)
		return
	}
	verified, err := r.verify(ctx, codec, h, body, now, onlyType(subs, vendor), log)
	if err != nil {
		log.Error(err, "reading the webhook keys")
		answer(w, vendor, http.StatusServiceUnavailable, metrics.WebhookUnavailable)
		return
	}
	if len(verified) == 0 {
		answer(w, vendor, http.StatusUnauthorized, metrics.WebhookRejected)
		return
	}
	for _, s := range subs {
		if verified[s.UID] {
			r.co.add(s, nil, true, 0, now)
		}
	}
	answer(w, vendor, http.StatusOK, metrics.WebhookAccepted)
}

// verify checks the delivery with the keys of each subscriber, each
// distinct key set once, and returns those whose keys authenticated it.
// A failure with cached keys re-reads them once (a key may have rotated),
// at most once per KeyRefresh per ErpSync. err is set only when keys could
// not be read (the vendor should retry).
func (r *Receiver) verify(ctx context.Context, codec connectors.WebhookCodec, h http.Header, body []byte, now time.Time,
	subs []Subscriber, log logr.Logger) (map[types.UID]bool, error) {
	tried := map[string]bool{}
	check := func(k keys) bool {
		if k.none {
			return false
		}
		if ok, seen := tried[k.fp]; seen {
			return ok
		}
		err := codec.Verify(h, body, k.data, now)
		if err != nil && !errors.Is(err, connectors.ErrWebhookSignature) {
			// The keys lack what the vendor signs with: a configuration
			// problem, said without the keys.
			log.V(1).Info("the ErpSync's keys cannot check this vendor's deliveries", "error", truncate(err.Error(), 200))
		}
		tried[k.fp] = err == nil
		return err == nil
	}
	out := map[types.UID]bool{}
	for _, s := range subs {
		k, cached, err := r.keys.get(ctx, s)
		if err != nil {
			return nil, err
		}
		ok := check(k)
		if !ok && cached {
			k2, reread, err := r.keys.refresh(ctx, s)
			if err != nil {
				return nil, err
			}
			if reread {
				ok = check(k2)
			}
		}
		if ok {
			out[s.UID] = true
		}
	}
	return out, nil
}

// splitPath splits /webhooks/<vendor>[/<route>].
func splitPath(p string) (vendor, route string, ok bool) {
	rest, found := strings.CutPrefix(p, PathPrefix)
	if !found {
		return "", "", false
	}
	vendor, route, _ = strings.Cut(rest, "/")
	if vendor == "" || len(vendor) > 32 || len(route) > 128 || strings.Contains(route, "/") {
		return "", "", false
	}
	if strings.HasSuffix(rest, "/") {
		return "", "", false
	}
	return vendor, route, true
}

func onlyType(subs []Subscriber, vendor string) []Subscriber {
	out := subs[:0:0]
	for _, s := range subs {
		if s.Type == vendor {
			out = append(out, s)
		}
	}
	return out
}

func targetsOf(events []connectors.WebhookEvent) []erpv1.WebhookTarget {
	out := make([]erpv1.WebhookTarget, 0, len(events))
	for _, e := range events {
		out = append(out, erpv1.WebhookTarget{Entity: string(e.Entity), ID: e.ID, Deleted: e.Deleted})
	}
	return out
}

// truncate bounds vendor or codec text in logs.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
