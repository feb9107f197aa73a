package quotastore

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/httpapi"
)

// entry is one counter of a ConfigMap's usage.json: a quota's count in its
// period, or a rate window's recent calls. For a quota, Used is the calls
// every process reported spent, only ever raised by increments, and Held
// the calls each process (by its ID) reserved and has not reported spent
// nor returned. What a quota has left is its limit minus Used minus every
// Held: a process spends only calls it holds. Older versions wrote the
// same JSON without Held.
type entry struct {
	httpapi.QuotaUsage
	Held map[string]int64 `json:"held,omitempty"`
}

// heldAll is the calls every process holds.
func (e entry) heldAll() int64 {
	var n int64
	for _, h := range e.Held {
		n += max(0, h)
	}
	return n
}

// others is the calls every process but me holds (a crashed one's
// included).
func (e entry) others(me string) int64 { return e.heldAll() - max(0, e.Held[me]) }

// settleQuota applies one write of process me to a quota's stored counter
// e, for the period starting at period: spent calls (spent since the last
// write) are added to Used, and me's reservation becomes own (the calls it
// reserved and has not yet reported in Used). A counter of an older period
// (or none) starts afresh, every process's reservations dropped, a vendor
// block kept; ok is false, e unchanged, when e counts a newer period than
// me (its clock is behind).
//
// Used is only ever raised, and only me's own term of the reservations is
// set: a write repeated (its answer lost) can only count more calls, never
// fewer.
func settleQuota(e entry, me string, period time.Time, spent, own int64) (entry, bool) {
	switch {
	case e.PeriodStart.After(period):
		return e, false
	case e.PeriodStart.Before(period):
		e = entry{QuotaUsage: httpapi.QuotaUsage{PeriodStart: period, BlockedUntil: e.BlockedUntil}}
	}
	e.Used += max(0, spent)
	held := make(map[string]int64, len(e.Held)+1)
	for id, n := range e.Held {
		if n > 0 && id != me {
			held[id] = n
		}
	}
	if own > 0 {
		held[me] = own
	}
	e.Held = held
	if len(held) == 0 {
		e.Held = nil
	}
	return e, true
}

// grantQuota reserves for me, which holds own calls of the quota already,
// a block of the calls of e no process has claimed (see
// httpapi.ReservationSize), and returns e with me's term raised and the
// calls granted.
func grantQuota(e entry, me string, own, limit int64) (entry, int64) {
	free := limit - e.Used - e.heldAll()
	g := httpapi.ReservationSize(limit, free)
	if g <= 0 {
		return e, 0
	}
	held := make(map[string]int64, len(e.Held)+1)
	for id, n := range e.Held {
		held[id] = n
	}
	held[me] = own + g
	e.Held = held
	return e, g
}

// keyState is what this process knows of one key's quotas between writes.
// io serialises the key's writes; the rest is guarded by the store's mu.
type keyState struct {
	io     sync.Mutex
	quotas map[string]*quotaState
	// active is set when a call was spent or calls were reserved since
	// the last FlushAll: only an idle key returns its reserved calls.
	active bool
	// lastActive is when a FlushAll last found the key active: a key
	// idle for KeepIdle returns its reserved calls (its ErpSyncs moved to
	// another replica, or went).
	lastActive time.Time
	// inConfigMap is set when the ConfigMap may hold a reservation of
	// this process that a write must still set right.
	inConfigMap bool
	// unsure is set when the last write failed: what the ConfigMap holds
	// is unknown, and the next flush writes.
	unsure bool
}

// quotaState is one quota of a key in this process.
type quotaState struct {
	period time.Time
	// limit is the quota's limit as last claimed (0: not enforced).
	limit int64
	// held is the calls this process reserved and has not spent;
	// unflushed the calls it spent that no write has taken yet; inflight
	// those a write is carrying.
	held, unflushed, inflight int64
	// used, others and blocked are the ConfigMap's Used, the other
	// processes' reservations and its vendor block, as last read.
	used, others int64
	blocked      time.Time
	// stale is set when the ConfigMap counts a newer period than ours.
	stale bool
}

// view is what this process may not send of the quota: every process's
// reported calls, the others' reservations, and its own calls not yet
// written.
func (q *quotaState) view(name string, limit int64) httpapi.QuotaView {
	v := httpapi.QuotaView{Name: name, PeriodStart: q.period, Used: q.used + q.others + q.unflushed + q.inflight, Held: q.held, BlockedUntil: q.blocked}
	if q.stale && limit > 0 {
		v.Used, v.Held = max(v.Used, limit), 0
	}
	return v
}

// keep reports whether this process keeps its reserved calls of the quota
// while it does not spend them: while at least a quarter of the limit is
// claimed by no process, as last read, so that the others always find
// calls to reserve (and while the key is in use: see KeepIdle). Keeping them saves two writes a sync (the return and
// the next reservation) at the cost of a crash: a crashed process's
// reservation counts as spent until the period ends, and a kept one is at
// most a fiftieth of the limit (httpapi.ReservationSize).
func (q *quotaState) keep() bool {
	if q.limit <= 0 || q.stale {
		return false
	}
	free := q.limit - q.used - q.others - q.held - q.unflushed - q.inflight
	return free >= q.limit/4
}

// busy reports whether the key has anything a write must still carry.
func (ks *keyState) busy() bool {
	if ks.inConfigMap {
		return true
	}
	for _, q := range ks.quotas {
		if q.held > 0 || q.unflushed > 0 || q.inflight > 0 {
			return true
		}
	}
	return false
}

// quotaLocked returns the state of the claim's quota, started afresh when
// the claim is in a newer period.
func (ks *keyState) quotaLocked(c httpapi.QuotaClaim) *quotaState {
	q := ks.quotas[c.Name]
	if q == nil || c.PeriodStart.After(q.period) {
		q = &quotaState{period: c.PeriodStart}
		if ks.quotas == nil {
			ks.quotas = map[string]*quotaState{}
		}
		ks.quotas[c.Name] = q
	}
	q.limit = c.Limit
	return q
}

// keyLocked returns the state of key, creating it. s.mu must be held.
// States are kept for the life of the store (a few hundred bytes a
// credential): a request waiting on a key's io must find the same state.
func (s *ConfigMapStore) keyLocked(key string) *keyState {
	if s.keys == nil {
		s.keys = map[string]*keyState{}
	}
	ks := s.keys[key]
	if ks == nil {
		ks = &keyState{}
		s.keys[key] = ks
	}
	return ks
}

// holderID is the name of this process in the ConfigMaps' reservations.
func (s *ConfigMapStore) holderID() string {
	s.idOnce.Do(func() {
		s.id = s.ID
		if s.id == "" {
			host, _ := os.Hostname()
			host = strings.Trim(notDNS.ReplaceAllString(strings.ToLower(host), "-"), "-")
			if len(host) > 40 {
				host = host[:40]
			}
			b := make([]byte, 4)
			_, _ = rand.Read(b)
			s.id = strings.TrimPrefix(host+"-"+hex.EncodeToString(b), "-")
		}
	})
	return s.id
}

// View implements httpapi.QuotaReserver.
func (s *ConfigMapStore) View(key string, claims []httpapi.QuotaClaim) ([]httpapi.QuotaView, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ks := s.keys[key]
	holds := true
	var views []httpapi.QuotaView
	for _, c := range claims {
		var q *quotaState
		if ks != nil {
			q = ks.quotas[c.Name]
		}
		if q == nil {
			holds = holds && c.Limit <= 0
			continue
		}
		views = append(views, q.view(c.Name, c.Limit))
		if c.Limit > 0 && (!q.period.Equal(c.PeriodStart) || q.stale || q.held < 1) {
			holds = false
		}
	}
	return views, holds
}

// Spend implements httpapi.QuotaReserver.
func (s *ConfigMapStore) Spend(key string, claims []httpapi.QuotaClaim) ([]httpapi.QuotaView, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ks := s.keyLocked(key)
	qs := make([]*quotaState, len(claims))
	for i, c := range claims {
		q := ks.quotaLocked(c)
		if c.Limit > 0 && (!q.period.Equal(c.PeriodStart) || q.stale || q.held < 1) {
			return nil, false
		}
		qs[i] = q
	}
	views := make([]httpapi.QuotaView, len(claims))
	for i, c := range claims {
		q := qs[i]
		if q.period.Equal(c.PeriodStart) && !q.stale {
			if c.Limit > 0 {
				q.held--
			}
			q.unflushed++
		}
		views[i] = q.view(c.Name, c.Limit)
	}
	ks.active = true
	return views, true
}
