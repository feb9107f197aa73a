package simkit

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Base is what every vendor simulator embeds: the vendor's clock (with an
// optional skew from ours), the Date header, the fault queue, the request
// statistics, the rate limiter and the list knobs that the connector
// scenario suite turns (unstable order, clock skew). A fault or knob written
// here reaches every vendor; a vendor's simulator keeps only what is truly
// its own (documents, envelopes, filters, error bodies).
type Base struct {
	now    func() time.Time
	skew   atomic.Int64 // nanoseconds added to now
	faults Faults
	stats  Stats

	// unstable, when set, serves every list request in a fresh order (a
	// documented behaviour of some vendors, a fault for the others).
	unstable atomic.Bool
	// share, when between 1 and 99, serves only that percentage of every
	// list (the head of it), totals included where the simulator counts
	// after Order: a vendor that lies, the fault reconciliation's
	// mass-deletion guard must catch.
	share   atomic.Int32
	mu      sync.Mutex
	rng     *rand.Rand
	corrupt []corruption
}

// Init sets the base's clock: now is the simulator's own clock (a
// compressible Clock, or a test's fake clock).
func (b *Base) Init(now func() time.Time) {
	b.now = now
	b.rng = rand.New(rand.NewPCG(1, 2))
}

// Now returns the vendor's clock: the simulator's clock plus the skew.
func (b *Base) Now() time.Time {
	if b.now == nil {
		return time.Now().UTC()
	}
	return b.now().Add(time.Duration(b.skew.Load())).UTC()
}

// SetSkew makes the vendor's clock run d ahead of (negative: behind) the
// simulator's clock, which is the client's: records are stamped, filters
// compared and Date headers written on the skewed clock.
func (b *Base) SetSkew(d time.Duration) { b.skew.Store(int64(d)) }

// SetUnstable makes every list request come back in a fresh order.
func (b *Base) SetUnstable(on bool) { b.unstable.Store(on) }

// SetListShare makes every list serve only its first pct percent (0 or 100:
// whole lists). It is a lying vendor: documents vanish from lists without
// being deleted.
func (b *Base) SetListShare(pct int) { b.share.Store(int32(pct)) }

// Unstable reports whether lists are served in a fresh order per request.
func (b *Base) Unstable() bool { return b.unstable.Load() }

// Faults returns the fault queue.
func (b *Base) Faults() *Faults { return &b.faults }

// Stats returns the request counters.
func (b *Base) Stats() *Stats { return &b.stats }

// SetDate writes the HTTP Date header from the vendor's clock.
func (b *Base) SetDate(w http.ResponseWriter) {
	w.Header().Set("Date", b.Now().Format(http.TimeFormat))
}

// ApplyFault serves the next injected fault that applies to r, counting it;
// it reports whether the request was answered.
func (b *Base) ApplyFault(w http.ResponseWriter, r *http.Request) bool {
	return b.faults.Apply(w, r, &b.stats.Faults)
}

// Order puts the indexes of a list in the order the vendor serves them:
// as given (the caller sorted them the vendor's way) or, when the base is
// unstable, in a fresh random order for this request.
func (b *Base) Order(idx []int) []int {
	if pct := b.share.Load(); pct > 0 && pct < 100 && len(idx) > 1 {
		idx = idx[:max(1, len(idx)*int(pct)/100)]
	}
	if !b.unstable.Load() || len(idx) < 2 {
		return idx
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.rng == nil {
		b.rng = rand.New(rand.NewPCG(1, 2))
	}
	b.rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
	return idx
}

// Sorted returns the indexes of items that keep accepts, ordered by the
// vendor's list order: by key, then by id. It is the one place a simulator
// decides its ordering, so that ordering faults apply to every vendor.
func Sorted[T any](items []T, keep func(T) bool, less func(a, b T) bool) []int {
	idx := make([]int, 0, len(items))
	for i, it := range items {
		if keep == nil || keep(it) {
			idx = append(idx, i)
		}
	}
	if less != nil {
		sort.SliceStable(idx, func(a, b int) bool { return less(items[idx[a]], items[idx[b]]) })
	}
	return idx
}

// List returns the indexes of one page of a list in the vendor's order:
// the items keep accepts, sorted by less, served in a fresh order when b is
// unstable, and cut to the 1-based page of size items (size < 1: one page
// of everything). total is the length of the filtered list and more says
// whether another page follows. b may be nil (a stable list).
func List[T any](b *Base, items []T, keep func(T) bool, less func(a, b T) bool, page, size int) (idx []int, total int, more bool) {
	all := Sorted(items, keep, less)
	if b != nil {
		all = b.Order(all)
	}
	if size < 1 {
		size = max(1, len(all))
	}
	start, end, more := PageOf(len(all), page, size)
	return all[start:end], len(all), more
}

// After drops from idx (indexes into items, in ByModified order) every
// item at or before the key (modified, id): the rest of a keyset list that
// restarts from the last record a client saw.
func After[T any](items []T, idx []int, meta func(T) Meta, modified time.Time, id string) []int {
	out := idx[:0:0]
	for _, i := range idx {
		m := meta(items[i])
		if m.Modified.After(modified) || (m.Modified.Equal(modified) && m.ID > id) {
			out = append(out, i)
		}
	}
	return out
}

// ByModified orders by modified time, then id: the order of a vendor's
// "order by modified ascending".
func ByModified[T any](meta func(T) Meta) func(a, b T) bool {
	return func(a, b T) bool {
		ma, mb := meta(a), meta(b)
		if !ma.Modified.Equal(mb.Modified) {
			return ma.Modified.Before(mb.Modified)
		}
		return ma.ID < mb.ID
	}
}

// BySeq orders by creation sequence: the order of a vendor that lists by
// its numeric id or creation time.
func BySeq[T any](meta func(T) Meta) func(a, b T) bool {
	return func(a, b T) bool { return meta(a).Seq < meta(b).Seq }
}

// Money renders a decimal amount as a JSON number.
func Money(dec string) json.Number {
	if dec == "" {
		return "0"
	}
	return json.Number(dec)
}

// MSDate renders the Microsoft JSON date /Date(ms)/ (Unleashed, Xero).
func MSDate(t time.Time) string { return fmt.Sprintf("/Date(%d)/", t.UnixMilli()) }

// MSDateZone renders /Date(ms+0000)/ (Xero's UTC form).
func MSDateZone(t time.Time) string { return fmt.Sprintf("/Date(%d+0000)/", t.UnixMilli()) }

// Stamp rounds a time to a vendor's precision (time.Second for vendors
// that keep seconds, time.Millisecond for those that keep milliseconds).
func Stamp(t time.Time, precision time.Duration) time.Time {
	return t.UTC().Truncate(precision)
}

// ShuffleKey is a stable pseudo-random key for an id, for vendors whose
// lists come in an order unrelated to id or time.
func ShuffleKey(id string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return h.Sum32()
}
