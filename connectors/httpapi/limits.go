package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
)

// Window is a rate limit: at most Limit calls in any span of Per. Windows are
// enforced as sliding windows (a log of the last Limit send times), which
// never exceeds a vendor's fixed or sliding window of the same size.
type Window struct {
	// Name identifies the window in a vendor's throttling answer, for
	// example "minute" or "appminute" in Xero's X-Rate-Limit-Problem header.
	Name  string
	Limit int
	Per   time.Duration
	// Split marks a limit of the whole application, across its
	// credentials and every replica of the manager (Xero's 10,000 calls a
	// minute): each replica enforces its share of it (see
	// Registry.SetReplicaShare). Other windows are enforced whole by every
	// replica.
	Split bool
}

// Period is the span over which a Quota counts calls.
type Period string

const (
	// Daily quotas reset at 00:00 UTC.
	Daily Period = "day"
	// Monthly quotas reset at 00:00 UTC on the 1st of the month.
	Monthly Period = "month"
)

// Quota is a call budget per period, counted per Limit key and persisted in a
// QuotaStore so that it survives a restart. When it runs out, calls fail with
// connectors.KindQuotaExhausted and RetryAt set to the reset, without being
// sent.
type Quota struct {
	// Name identifies the quota in a vendor's throttling answer (Xero's
	// X-Rate-Limit-Problem: day) and in the store.
	Name string
	// Limit is the number of calls allowed per period. Zero or less counts
	// calls without enforcing a limit (the vendor's blocking answer, mapped
	// through Options.ProblemHeader or Options.Classify, still stops calls).
	Limit  int64
	Period Period
}

// Limit is one metered scope of a vendor: the limits the vendor applies to one
// credential, tenant or application. Every Client whose Options name the
// same Key (in the same Registry) shares one limiter, one concurrency cap and
// one quota counter.
type Limit struct {
	// Key identifies the scope process-wide. Build it with Key(); never put a
	// secret in it in clear.
	Key string
	// Windows are the rate limits of the scope.
	Windows []Window
	// Concurrency caps the calls in flight; 0 means no cap.
	Concurrency int
	// Quotas are the daily or monthly budgets of the scope.
	Quotas []Quota
}

// Key builds a limiter key from a vendor name and the parts that identify a
// metered scope (a credential id, a tenant id). The parts are hashed, so even
// a secret passed by mistake never shows in keys, logs or stores.
func Key(vendor string, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return vendor + ":" + hex.EncodeToString(h.Sum(nil)[:12])
}

func (l Limit) validate() error {
	if l.Key == "" {
		return fmt.Errorf("limit without a key")
	}
	for _, w := range l.Windows {
		if w.Limit <= 0 || w.Per <= 0 {
			return fmt.Errorf("limit %s: window %q needs a positive limit and span", l.Key, w.Name)
		}
	}
	if l.Concurrency < 0 {
		return fmt.Errorf("limit %s: negative concurrency", l.Key)
	}
	for _, q := range l.Quotas {
		if q.Name == "" || (q.Period != Daily && q.Period != Monthly) {
			return fmt.Errorf("limit %s: quota needs a name and a period of %q or %q", l.Key, Daily, Monthly)
		}
	}
	return nil
}

// Registry holds the process's limiters by key. SharedRegistry is the one
// every Client uses unless its Options name another; tests use their own.
type Registry struct {
	mu       sync.Mutex
	store    QuotaStore
	limiters map[string]*limiter
	// now is the wall clock of idle times (tests replace it); lastPrune
	// is when limiter last dropped idle limiters.
	now       func() time.Time
	lastPrune time.Time
	// share is the part of every Split window this replica enforces.
	share float64
}

// LimiterIdleTTL is how long a limiter unused by any request stays in its
// Registry: longer than any pause or block a vendor can set (MaxBlock) and
// than any sync, so that a limiter is never dropped under a Client still
// using it. What it counted is in the QuotaStore; a later Client loads it
// again.
const LimiterIdleTTL = MaxBlock + time.Hour

// pruneEvery bounds how often creating a limiter looks for idle ones.
const pruneEvery = 10 * time.Minute

// SharedRegistry is the process-wide registry. Its quota store is in memory
// until the manager calls SetQuotaStore at start-up.
var SharedRegistry = NewRegistry(nil)

// NewRegistry returns an empty registry counting quotas in store (nil: a
// fresh in-memory store).
func NewRegistry(store QuotaStore) *Registry {
	if store == nil {
		store = NewMemoryQuotaStore()
	}
	return &Registry{store: store, limiters: map[string]*limiter{}, now: time.Now, share: 1}
}

// SetReplicaShare sets the part (0 < share <= 1) of every Split window this
// replica enforces: 1/replicas when the manager runs several, so that
// together they never pass the application's limit (each enforces
// max(1, floor(limit*share)) calls per span, used or not by the others).
// Like SetQuotaStore, call it before the first request: limiters already
// created keep their windows. A share outside (0, 1] is ignored.
func (r *Registry) SetReplicaShare(share float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if share > 0 && share <= 1 {
		r.share = share
	}
}

// splitLimit is the part of a window's limit a replica with the given share
// enforces.
func splitLimit(limit int, share float64) int {
	if share <= 0 || share >= 1 {
		return limit
	}
	return max(1, int(math.Floor(float64(limit)*share)))
}

// Prune drops the limiters no request used for LimiterIdleTTL that hold no
// concurrency slot, and returns how many it dropped. The registry also
// prunes by itself, at most every ten minutes, when it creates a limiter.
func (r *Registry) Prune() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pruneLocked(r.now())
}

func (r *Registry) pruneLocked(now time.Time) int {
	r.lastPrune = now
	n := 0
	for k, l := range r.limiters {
		if now.Sub(time.Unix(0, l.lastUsed.Load())) < LimiterIdleTTL || len(l.sem) > 0 {
			continue
		}
		delete(r.limiters, k)
		if l.qobs != nil {
			l.qobs.ForgetCredential(l.connector, l.credential)
		}
		n++
	}
	return n
}

// SetQuotaStore replaces the store in which quotas are counted. Limiters
// already created keep the store they loaded from, so call it before the
// first request.
func (r *Registry) SetQuotaStore(s QuotaStore) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s != nil {
		r.store = s
	}
}

// QuotaUsage returns a copy of the quota counters of a key, as last counted
// in this process, or nil when the key has no limiter yet.
func (r *Registry) QuotaUsage(key string) map[string]QuotaUsage {
	r.mu.Lock()
	l := r.limiters[key]
	r.mu.Unlock()
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return cloneUsage(l.usage)
}

// limiter returns the limiter of spec.Key, creating it on first use. The
// windows and concurrency cap of the first spec win for the life of the
// process; quota limits follow the latest spec (a plan change). trusted is
// whether what the vendor says (its quota blocks) may be persisted: only
// for a vendor's default host. Keys carry the host, so one key has one
// answer. connector and obs are the creating Client's: when obs is a
// QuotaObserver, the limiter reports its quotas to it (the first Client
// with one wins).
func (r *Registry) limiter(spec Limit, trusted bool, connector string, obs Observer) *limiter {
	qobs, _ := obs.(QuotaObserver)
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if now.Sub(r.lastPrune) >= pruneEvery {
		r.pruneLocked(now)
	}
	if l, ok := r.limiters[spec.Key]; ok {
		l.touch(now)
		l.mu.Lock()
		l.quotas = slices.Clone(spec.Quotas)
		l.trusted = l.trusted && trusted
		if l.qobs == nil && qobs != nil {
			l.qobs, l.connector = qobs, connector
		}
		l.mu.Unlock()
		return l
	}
	l := &limiter{key: spec.Key, store: r.store, quotas: slices.Clone(spec.Quotas), trusted: trusted, wall: r.now,
		credential: CredentialID(spec.Key), connector: connector, qobs: qobs}
	if rs, ok := r.store.(QuotaReserver); ok {
		l.shared = rs
	}
	l.touch(now)
	for _, w := range spec.Windows {
		if w.Split {
			w.Limit = splitLimit(w.Limit, r.share)
		}
		l.windows = append(l.windows, &window{Window: w})
	}
	if spec.Concurrency > 0 {
		l.sem = make(chan struct{}, spec.Concurrency)
	}
	r.limiters[spec.Key] = l
	return l
}

// limiter enforces one Limit. Its fields after mu are guarded by mu.
type limiter struct {
	key   string
	store QuotaStore
	sem   chan struct{}
	// credential is CredentialID(key): how metrics and status name it.
	credential string
	// lastUsed is the wall time (UnixNano) of the latest request or
	// Client of the limiter, for Registry.Prune; wall reads it.
	lastUsed atomic.Int64
	wall     func() time.Time

	// shared is the store as a QuotaReserver, when it is one: the quotas
	// are then spent out of reservations (see QuotaReserver).
	shared QuotaReserver

	loadMu    sync.Mutex // serialises the first load from the store
	saveMu    sync.Mutex // serialises saves, so the last save is the newest
	reserveMu sync.Mutex // one reservation of the limiter at a time
	// saveFailing is set while saves fail, so that a store outage is
	// logged once rather than on every call. Guarded by saveMu.
	saveFailing bool

	mu sync.Mutex
	// qobs receives the quotas after every change (nil: nobody);
	// connector names the vendor in what it receives.
	qobs        QuotaObserver
	connector   string
	windows     []*window
	quotas      []Quota
	pausedUntil time.Time
	loaded      bool
	usage       map[string]QuotaUsage
	// trusted is false for a host that is not one of the vendor's own:
	// its quota blocks stay in memory (saves drop them, loads ignore
	// them), so a hostile server's answer cannot outlive the process.
	trusted bool
}

// window is a ring of the last Limit send times.
// window is a ring of the send times of the last Limit calls. The ring
// grows as calls are made, up to Limit: a credential that makes twenty
// calls a day under a window of 5,000 keeps twenty times, not 5,000 (at
// 10,000 credentials, the difference is about a gigabyte).
type window struct {
	Window
	times []time.Time
	next  int
	n     int
}

// freeAt is the earliest time one more call fits in the window.
func (w *window) freeAt() time.Time {
	if w.n < w.Limit {
		return time.Time{}
	}
	return w.times[w.next].Add(w.Per)
}

func (w *window) record(t time.Time) {
	if len(w.times) < w.Limit {
		// Not full yet: the ring is the prefix, and next is its length.
		w.times = append(w.times, t)
		w.n = len(w.times)
		w.next = w.n % w.Limit
		return
	}
	w.times[w.next] = t
	w.next = (w.next + 1) % w.Limit
	if w.n < w.Limit {
		w.n++
	}
}

// restamp moves the newest send recorded at old to at (later than old),
// keeping the ring in time order: a call counted when it was admitted but
// sent later (its counters written to the store first, or a connection
// dialled) then counts from when it left. Moving a send later only ever
// delays the calls after it, never lets one through early. A send no
// longer in the ring (Limit newer sends overwrote it) is left alone.
func (w *window) restamp(old, at time.Time) {
	if !at.After(old) {
		return
	}
	idx := func(i int) int { return (w.next - w.n + i + 2*w.Limit) % w.Limit }
	i := w.n - 1
	for i >= 0 && !w.times[idx(i)].Equal(old) {
		i--
	}
	if i < 0 {
		return
	}
	for ; i+1 < w.n && w.times[idx(i+1)].Before(at); i++ {
		w.times[idx(i)] = w.times[idx(i+1)]
	}
	w.times[idx(i)] = at
}

// restamp moves the send this process recorded at old in every window of
// the limiter to at (see window.restamp).
func (l *limiter) restamp(old, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, w := range l.windows {
		w.restamp(old, at)
	}
}

// usageName is the name under which the window is kept in the store.
func (w *window) usageName() string {
	return WindowUsagePrefix + w.Name + "@" + w.Per.String()
}

// latest returns the newest send time of the ring, and false when the ring
// is empty.
func (w *window) latest() (time.Time, bool) {
	if w.n == 0 {
		return time.Time{}, false
	}
	return w.times[(w.next-1+w.Limit)%w.Limit], true
}

// usage summarises the ring for the store: the number of sends within Per
// of the newest one, and the newest one. ok is false when there is nothing
// a restarted process must respect.
func (w *window) usage() (u QuotaUsage, ok bool) {
	last, ok := w.latest()
	if !ok {
		return QuotaUsage{}, false
	}
	// The ring holds its n times oldest first from next-n: find the first
	// one within Per of the newest.
	cut := last.Add(-w.Per)
	first := sort.Search(w.n, func(i int) bool { return w.times[(w.next-w.n+i+w.Limit)%w.Limit].After(cut) })
	return QuotaUsage{Used: int64(w.n - first), Last: last}, true
}

// restore adds n sends at t (clamped to the window's limit) to the ring,
// keeping the ring in time order. Sends a previous process made are assumed
// to have all happened at its latest recorded send, which can only delay
// the next call, never let one through early.
func (w *window) restore(n int64, t time.Time) {
	if n <= 0 {
		return
	}
	n = min(n, int64(w.Limit))
	all := make([]time.Time, 0, w.n+int(n))
	for i := range w.n {
		all = append(all, w.times[(w.next-w.n+i+w.Limit)%w.Limit])
	}
	for range n {
		all = append(all, t)
	}
	slices.SortFunc(all, func(a, b time.Time) int { return a.Compare(b) })
	if len(all) > w.Limit {
		all = all[len(all)-w.Limit:]
	}
	w.times, w.n, w.next = w.times[:0], 0, 0
	for _, x := range all {
		w.record(x)
	}
}

// touch records that the limiter is in use at now.
func (l *limiter) touch(now time.Time) { l.lastUsed.Store(now.UnixNano()) }

// pause holds every call of the limiter until t (a vendor's Retry-After).
func (l *limiter) pause(t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.After(l.pausedUntil) {
		l.pausedUntil = t
	}
}

func (l *limiter) hasWindow(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.ContainsFunc(l.windows, func(w *window) bool { return strings.EqualFold(w.Name, name) })
}

func (l *limiter) hasQuota(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.ContainsFunc(l.quotas, func(q Quota) bool { return strings.EqualFold(q.Name, name) })
}

func (l *limiter) hasQuotas() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.quotas) > 0
}

// markLoaded starts the counters empty, without the store, after reading it
// failed. The calls a previous process made in the current windows are
// unknown, so every window is taken as spent at now: the next call waits a
// full window rather than risk a burst past the vendor's limit.
func (l *limiter) markLoaded(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.loaded {
		return
	}
	l.usage = map[string]QuotaUsage{}
	for _, w := range l.windows {
		w.restore(int64(w.Limit), now)
	}
	l.loaded = true
}

// load reads the quota counters and the windows' recent calls from the
// store once. now is the client's clock, which a restored send time never
// passes (a clock that went back, or a scaled clock of a previous process,
// must not hold calls for longer than one window).
func (l *limiter) load(ctx context.Context, now time.Time) error {
	l.mu.Lock()
	loaded := l.loaded
	l.mu.Unlock()
	if loaded {
		return nil
	}
	l.loadMu.Lock()
	defer l.loadMu.Unlock()
	l.mu.Lock()
	loaded = l.loaded
	l.mu.Unlock()
	if loaded {
		return nil
	}
	u, err := l.store.Load(ctx, l.key)
	if err != nil {
		return fmt.Errorf("loading quota usage: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.usage = map[string]QuotaUsage{}
	saved := map[string]QuotaUsage{}
	for name, v := range u {
		if strings.HasPrefix(name, WindowUsagePrefix) {
			saved[name] = v
			continue
		}
		if !v.BlockedUntil.IsZero() {
			if !l.trusted {
				v.BlockedUntil = time.Time{}
			} else {
				// A block saved by an older version, or from a damaged
				// record, never holds past the bounds of a new one.
				p := periodOfName(name)
				for _, q := range l.quotas {
					if strings.EqualFold(q.Name, name) {
						p = q.Period
					}
				}
				v.BlockedUntil = clampBlock(v.BlockedUntil, now, p)
			}
		}
		l.usage[name] = v
	}
	for _, w := range l.windows {
		for _, name := range []string{w.usageName(), EveryWindow} {
			v, ok := saved[name]
			if !ok || v.Used <= 0 {
				continue
			}
			last := v.Last
			if last.After(now) {
				last = now
			}
			w.restore(v.Used, last)
		}
	}
	l.loaded = true
	l.publishLocked(now)
	return nil
}

// save writes the current counters and window usage to the store. repeated
// is true when the previous save failed too, so that an outage is logged
// once, not on every call (the limiter goes on counting in memory).
func (l *limiter) save(ctx context.Context) (repeated bool, err error) {
	l.saveMu.Lock()
	defer l.saveMu.Unlock()
	l.mu.Lock()
	snap := cloneUsage(l.usage)
	if !l.trusted {
		for n, u := range snap {
			if !u.BlockedUntil.IsZero() {
				u.BlockedUntil = time.Time{}
				snap[n] = u
			}
		}
	}
	for _, w := range l.windows {
		u, ok := w.usage()
		if !ok {
			continue
		}
		name := w.usageName()
		if prev, dup := snap[name]; dup {
			// Two windows of one name and span: keep the stricter.
			u.Used = max(u.Used, prev.Used)
			if prev.Last.After(u.Last) {
				u.Last = prev.Last
			}
		}
		snap[name] = u
	}
	l.mu.Unlock()
	if err := l.store.Save(ctx, l.key, snap); err != nil {
		repeated = l.saveFailing
		l.saveFailing = true
		return repeated, err
	}
	l.saveFailing = false
	return false, nil
}

// sharedBlock reports a vendor block of one of the limiter's quotas that
// its QuotaReserver learned of (another process saved it) after the call
// was admitted: the save of the call's counters may have read it. The call
// is then not sent; it stays counted, which errs on the safe side.
func (l *limiter) sharedBlock(now time.Time) (*quotaError, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.shared == nil || len(l.quotas) == 0 || !l.trusted {
		return nil, false
	}
	views, _ := l.shared.View(l.key, l.claimsLocked(now))
	l.viewLocked(views, now, false)
	for _, q := range l.quotas {
		if u := l.usage[q.Name]; u.BlockedUntil.After(now) {
			return &quotaError{key: l.key, name: q.Name, until: u.BlockedUntil}, true
		}
	}
	return nil, false
}

// quotaBlockLocked returns, for the first quota that is used up or blocked
// at now, its name and when it resets. It rolls counters into the current
// period as a side effect. l.mu must be held.
func (l *limiter) quotaBlockLocked(now time.Time) (name string, until time.Time, blocked bool) {
	for _, q := range l.quotas {
		u := l.rollLocked(q, now)
		if u.BlockedUntil.After(now) {
			return q.Name, u.BlockedUntil, true
		}
		if q.Limit > 0 && u.Used >= q.Limit {
			return q.Name, periodEnd(u.PeriodStart, q.Period), true
		}
	}
	// Blocks the vendor reported for quotas the connector did not declare.
	for n, u := range l.usage {
		if u.BlockedUntil.After(now) {
			return n, u.BlockedUntil, true
		}
	}
	return "", time.Time{}, false
}

// rollLocked returns the usage of q in the period containing now, resetting
// the count when a new period began.
func (l *limiter) rollLocked(q Quota, now time.Time) QuotaUsage {
	ps := periodStart(now, q.Period)
	u := l.usage[q.Name]
	if !u.PeriodStart.Equal(ps) {
		u.PeriodStart = ps
		u.Used = 0
		l.usage[q.Name] = u
	}
	return u
}

// publishLocked reports every quota of the limiter, in its period at now,
// to the limiter's QuotaObserver: a count of an earlier period reads as 0
// in the current one (the count itself rolls at the next call). l.mu must
// be held.
func (l *limiter) publishLocked(now time.Time) {
	if l.qobs == nil {
		return
	}
	for _, q := range l.quotas {
		ps := periodStart(now, q.Period)
		u := l.usage[q.Name]
		used := u.Used
		if !u.PeriodStart.Equal(ps) {
			used = 0
		}
		l.qobs.ObserveQuota(l.connector, l.credential, q.Name, used, q.Limit, periodEnd(ps, q.Period))
	}
}

// countLocked adds one call to every quota. l.mu must be held.
func (l *limiter) countLocked(now time.Time) bool {
	if len(l.quotas) == 0 {
		return false
	}
	for _, q := range l.quotas {
		u := l.rollLocked(q, now)
		u.Used++
		l.usage[q.Name] = u
	}
	return true
}

// claimsLocked names the limiter's quotas in their periods at now, for its
// QuotaReserver. l.mu must be held.
func (l *limiter) claimsLocked(now time.Time) []QuotaClaim {
	out := make([]QuotaClaim, 0, len(l.quotas))
	for _, q := range l.quotas {
		out = append(out, QuotaClaim{Name: q.Name, Period: q.Period, PeriodStart: periodStart(now, q.Period), Limit: q.Limit})
	}
	return out
}

// refreshLocked takes in what the limiter's QuotaReserver knows of its
// quotas (the other processes' spending and vendor blocks, as of the
// store's last read) and reports whether the limiter must reserve calls
// before it may send one. l.mu must be held.
func (l *limiter) refreshLocked(now time.Time) (reserve bool) {
	if l.shared == nil || len(l.quotas) == 0 {
		return false
	}
	views, holds := l.shared.View(l.key, l.claimsLocked(now))
	l.viewLocked(views, now, false)
	return !holds && slices.ContainsFunc(l.quotas, func(q Quota) bool { return q.Limit > 0 })
}

// spendLocked takes one call of every quota from the limiter's
// QuotaReserver (a reserved one for an enforced quota), in place of
// countLocked, and takes in the store's view. It returns false when a
// reserved call is missing (another limiter of the key in this process
// spent it): reserve again. l.mu must be held.
func (l *limiter) spendLocked(now time.Time) bool {
	if len(l.quotas) == 0 {
		return true
	}
	views, ok := l.shared.Spend(l.key, l.claimsLocked(now))
	if ok {
		l.viewLocked(views, now, false)
	}
	return ok
}

// reserve claims calls of the limiter's quotas in its QuotaReserver, unless
// another request of the limiter just did. A reservation that grants
// nothing leaves the quota used up until its period ends, as the vendor's
// own limit would; a store that cannot be written fails the call without
// sending it (sending blind could overrun the quota).
func (l *limiter) reserve(ctx context.Context, now time.Time) error {
	l.reserveMu.Lock()
	defer l.reserveMu.Unlock()
	l.mu.Lock()
	need := l.refreshLocked(now)
	claims := l.claimsLocked(now)
	l.mu.Unlock()
	if !need {
		return nil
	}
	views, err := l.shared.Reserve(ctx, l.key, claims)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return connectors.Wrap(connectors.KindERPUnavailable, err, "reserving calls of the quota failed")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.viewLocked(views, now, true)
	l.publishLocked(now)
	return nil
}

// viewLocked takes in what the QuotaReserver knows of the quotas: the
// calls other processes spent or hold, and their vendor blocks. After a
// reservation, a quota of which this process holds no call is used up for
// it. l.mu must be held.
func (l *limiter) viewLocked(views []QuotaView, now time.Time, reserved bool) {
	for _, v := range views {
		i := slices.IndexFunc(l.quotas, func(q Quota) bool { return q.Name == v.Name })
		if i < 0 {
			continue
		}
		q := l.quotas[i]
		u := l.rollLocked(q, now)
		if v.PeriodStart.Equal(u.PeriodStart) {
			u.Used = max(0, v.Used)
		}
		if reserved && q.Limit > 0 && v.Held <= 0 && u.Used < q.Limit {
			// Nothing granted in our period (the store may already count
			// the next one): nothing to send until the period ends.
			u.Used = q.Limit
		}
		if l.trusted && v.BlockedUntil.After(u.BlockedUntil) {
			u.BlockedUntil = clampBlock(v.BlockedUntil, now, q.Period)
		}
		l.usage[q.Name] = u
	}
}

// block marks the named quota (every declared quota when name is empty)
// exhausted until t, as the vendor said, clamped to the quota's period end
// as of now (see clampBlock). It returns the latest block it set.
func (l *limiter) block(name string, t, now time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var latest time.Time
	if l.usage == nil {
		l.usage = map[string]QuotaUsage{}
	}
	names := []string{name}
	if name == "" {
		names = names[:0]
		for _, q := range l.quotas {
			names = append(names, q.Name)
		}
		if len(names) == 0 {
			names = []string{"vendor"}
		}
	}
	for _, n := range names {
		p := periodOfName(n)
		for _, q := range l.quotas {
			if strings.EqualFold(q.Name, n) {
				n, p = q.Name, q.Period
			}
		}
		until := clampBlock(t, now, p)
		if until.After(latest) {
			latest = until
		}
		u := l.usage[n]
		if until.After(u.BlockedUntil) {
			u.BlockedUntil = until
		}
		l.usage[n] = u
	}
	l.publishLocked(now)
	return latest
}

// Bounds of what a vendor's answer can make us wait.
const (
	// MaxBlock is the longest a daily quota block, a Retry-After or a
	// vendor pause holds calls.
	MaxBlock = 24 * time.Hour
	// MaxMonthlyBlock is the longest a monthly quota block holds calls.
	MaxMonthlyBlock = 31 * 24 * time.Hour
	// MaxWindowPause is the longest a throttling answer about a rate window
	// of a minute or less (or about no named limit) pauses a limiter.
	MaxWindowPause = time.Hour
	// MaxClockSkew is how far a vendor's Date header may be from our clock
	// and still be used to measure a Retry-After date; a farther one is
	// ignored (our clock is used).
	MaxClockSkew = 5 * time.Minute
)

// clampBlock bounds a quota block by our clock: a daily quota's block ends
// within MaxBlock (a vendor counting a rolling 24 hours, like Xero, may
// rightly ask for nearly that); a monthly quota's at the end of the
// calendar month, and within MaxMonthlyBlock.
func clampBlock(t, now time.Time, p Period) time.Time {
	limit := now.Add(MaxBlock)
	if p == Monthly {
		limit = now.Add(MaxMonthlyBlock)
		if end := periodEnd(periodStart(now, p), p); end.Before(limit) {
			limit = end
		}
	}
	if t.After(limit) {
		return limit
	}
	return t
}

// periodOfName guesses the period of a quota the connector did not declare
// from its name: "month..." is monthly, anything else daily (the shorter,
// so the block is the smaller).
func periodOfName(name string) Period {
	if strings.HasPrefix(strings.ToLower(name), "month") {
		return Monthly
	}
	return Daily
}

// maxPause is the longest a throttling answer may pause l: MaxWindowPause,
// or, for a limiter with a window longer than that, the longest window
// (at most MaxBlock).
func (l *limiter) maxPause() time.Duration {
	d := MaxWindowPause
	if l == nil {
		return d
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, w := range l.windows {
		if w.Per > d {
			d = w.Per
		}
	}
	return min(d, MaxBlock)
}

func periodStart(t time.Time, p Period) time.Time {
	t = t.UTC()
	if p == Monthly {
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

func periodEnd(start time.Time, p Period) time.Time {
	if p == Monthly {
		return start.AddDate(0, 1, 0)
	}
	return start.AddDate(0, 0, 1)
}

// lockAll locks the limiters in key order, so that clients sharing some of
// them never deadlock.
func lockAll(ls []*limiter) {
	for _, l := range ls {
		l.mu.Lock()
	}
}

func unlockAll(ls []*limiter) {
	for i := len(ls) - 1; i >= 0; i-- {
		ls[i].mu.Unlock()
	}
}

// quotaError reports a quota block; admit returns it without sending.
type quotaError struct {
	key, name string
	until     time.Time
}

func (e *quotaError) Error() string {
	return fmt.Sprintf("the %s call quota is used up until %s", e.name, e.until.UTC().Format(time.RFC3339))
}

// waitError reports that admitting a call would take longer than the caller
// is willing to wait.
type waitError struct{ until time.Time }

func (e *waitError) Error() string {
	return "the vendor's rate limit holds calls until " + e.until.UTC().Format(time.RFC3339)
}

// admit waits until every limiter (sorted by key) admits one call now, then
// records it in their windows and quotas. It returns how long it waited,
// the limiters whose state changed (those with windows or quotas), which the
// caller saves, and the time the call was recorded at in the windows (which
// the caller moves to when the call really leaves: limiter.restamp). A wait longer than maxWait fails at once with a *waitError;
// a wait of at least connectors.MinHookedWait calls the context's WaitHook
// first. Concurrency slots must already be held.
//
// A limiter whose store is a QuotaReserver spends reserved calls: when the
// windows admit the call but the limiter holds no reserved call, admit
// reserves (outside the locks: it is a write to the store) and looks again.
func admit(ctx context.Context, clock Clock, ls []*limiter, maxWait time.Duration) (waited time.Duration, counted []*limiter, at time.Time, err error) {
	for {
		if err := ctx.Err(); err != nil {
			return waited, nil, time.Time{}, err
		}
		// A call is counted in the windows only when it can be sent at
		// once: a wait may have given the sync's work slot back, and a
		// call counted before a wait for the slot would reach the vendor
		// later than counted, bunched with others (the vendor then
		// refuses what the windows admitted).
		if err := connectors.ResumeWork(ctx); err != nil {
			return waited, nil, time.Time{}, err
		}
		lockAll(ls)
		now := clock.Now()
		var until time.Time
		var short []*limiter
		for _, l := range ls {
			reserve := l.refreshLocked(now)
			if name, t, blocked := l.quotaBlockLocked(now); blocked {
				// What the store merged in, or a period reset, shows.
				l.publishLocked(now)
				unlockAll(ls)
				return waited, nil, time.Time{}, &quotaError{key: l.key, name: name, until: t}
			}
			if reserve {
				short = append(short, l)
			}
			if l.pausedUntil.After(until) {
				until = l.pausedUntil
			}
			for _, w := range l.windows {
				if t := w.freeAt(); t.After(until) {
					until = t
				}
			}
		}
		if !until.After(now) && len(short) > 0 {
			// The windows admit the call: reserve what it needs, then
			// look again (the windows may have filled meanwhile).
			unlockAll(ls)
			for _, l := range short {
				if err := l.reserve(ctx, now); err != nil {
					return waited, nil, time.Time{}, err
				}
			}
			continue
		}
		if !until.After(now) {
			spent := true
			for _, l := range ls {
				if l.shared != nil && !l.spendLocked(now) {
					// Another limiter of the key spent our reserved
					// calls; those spent here count as sent (an
					// over-count, never an overrun). Reserve again.
					spent = false
					break
				}
			}
			if !spent {
				unlockAll(ls)
				continue
			}
			for _, l := range ls {
				for _, w := range l.windows {
					w.record(now)
				}
				if l.shared != nil {
					if len(l.quotas) > 0 || len(l.windows) > 0 {
						counted = append(counted, l)
					}
				} else if l.countLocked(now) || len(l.windows) > 0 {
					counted = append(counted, l)
				}
				l.publishLocked(now)
			}
			unlockAll(ls)
			return waited, counted, now, nil
		}
		unlockAll(ls)
		d := until.Sub(now)
		if d > maxWait {
			return waited, nil, time.Time{}, &waitError{until: until}
		}
		// Let the caller save its work before blocking (no lock is held);
		// the time the hook took is part of the wait.
		connectors.BeforeWait(ctx, d)
		if d = until.Sub(clock.Now()); d > 0 {
			if err := clock.Sleep(ctx, d); err != nil {
				return waited, nil, time.Time{}, err
			}
		}
		waited += clock.Now().Sub(now)
	}
}

// acquireSlots takes one concurrency slot of every capped limiter, in key
// order, and returns a func that gives them back. When a slot is taken it
// calls the context's WaitHook (with MinHookedWait: how long the calls in
// flight take is unknown) and gives the sync's work slot back before
// blocking.
func acquireSlots(ctx context.Context, ls []*limiter) (release func(), err error) {
	var held []*limiter
	release = func() {
		for _, l := range held {
			<-l.sem
		}
	}
	for _, l := range ls {
		if l.sem == nil {
			continue
		}
		select {
		case l.sem <- struct{}{}:
			held = append(held, l)
			continue
		default:
		}
		connectors.BeforeWait(ctx, connectors.MinHookedWait)
		// How long the calls in flight take is unknown, and their
		// syncs may be waiting for a work slot: give ours back (the
		// client takes it again before it sends).
		connectors.PauseWork(ctx)
		select {
		case l.sem <- struct{}{}:
			held = append(held, l)
		case <-ctx.Done():
			release()
			return func() {}, ctx.Err()
		}
	}
	return release, nil
}
