package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// change is one record changed in erpsim and when its new version reached
// the CRM.
type change struct {
	vendor string
	// kind is the dataset kind (simkit.Admin*), id its dataset id.
	kind, id string
	// keys are the values the record's CRM row may hold in its natural
	// key column (crmKeys); the first is the dataset's key.
	keys []string
	// before is the CRM row's modified time before the change.
	before time.Time
	// at is when the change was made: just before erpsim's admin API was
	// asked to make it (wall clock).
	at time.Time
	// synced is the sink's synced_at of the new version (zero until it
	// arrived).
	synced time.Time
}

// arrived reports whether a CRM row written at synced with modified time
// modified is this change's new version.
func (c *change) arrived(modified, synced time.Time) bool {
	return modified.After(c.before) && !synced.Before(c.at)
}

// latency is the time from the change to its row in the sink.
func (c *change) latency() time.Duration { return c.synced.Sub(c.at) }

// percentile returns the p-th percentile (0 < p <= 100) of ds by the
// nearest-rank method: the smallest value at least p percent of the values
// do not exceed. ds need not be sorted; it is not changed.
func percentile(ds []time.Duration, p float64) (time.Duration, error) {
	if len(ds) == 0 {
		return 0, fmt.Errorf("no values")
	}
	if p <= 0 || p > 100 || math.IsNaN(p) {
		return 0, fmt.Errorf("percentile %v out of (0, 100]", p)
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[max(rank, 1)-1], nil
}

// vendorResult is one vendor's figures.
type vendorResult struct {
	vendor   string
	changes  int
	arrived  int
	p50, p95 time.Duration
	max      time.Duration
	// requests the vendor's API served during the change phase, and the
	// limit refusals it counted (429, 503, quota).
	requests, refused int64
	// targetedSyncs counted by the ErpSync over the phase; polled reports
	// a routine sync in it (the figures would not be the webhooks' alone).
	targetedSyncs int64
	polled        bool
	// span is from the start of the phase to the last arrival.
	span time.Duration
}

// requestsPerMinute is the vendor's request rate over span (what a vendor
// limit of so many calls a minute meets).
func (r vendorResult) requestsPerMinute() float64 {
	if r.span <= 0 {
		return 0
	}
	return float64(r.requests) / r.span.Minutes()
}

// summarise computes a vendor's latencies from its changes.
func summarise(vendor string, cs []*change) (vendorResult, error) {
	r := vendorResult{vendor: vendor, changes: len(cs)}
	var ls []time.Duration
	for _, c := range cs {
		if c.synced.IsZero() {
			continue
		}
		r.arrived++
		ls = append(ls, c.latency())
	}
	if len(ls) == 0 {
		return r, fmt.Errorf("%s: none of %d changes arrived", vendor, len(cs))
	}
	var err error
	if r.p50, err = percentile(ls, 50); err != nil {
		return r, err
	}
	if r.p95, err = percentile(ls, 95); err != nil {
		return r, err
	}
	r.max = slices.Max(ls)
	return r, nil
}

// callsPerEvent is the vendor API requests per change.
func (r vendorResult) callsPerEvent() float64 {
	if r.changes == 0 {
		return 0
	}
	return float64(r.requests) / float64(r.changes)
}

// schedule returns when each of n changes of vendor number v (of nv) is
// made, as offsets from the start of the phase: evenly over spread, the
// vendors interleaved.
func schedule(n, v, nv int, spread time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	if n == 0 || nv <= 0 {
		return out
	}
	step := spread / time.Duration(n)
	for i := range out {
		out[i] = time.Duration(i)*step + time.Duration(v)*step/time.Duration(nv)
	}
	return out
}
