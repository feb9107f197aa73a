// Package metrics defines the operator's Prometheus metrics (named as in
// operator-conventions.md §9) and registers them on controller-runtime's
// registry, which the manager serves on its metrics endpoint.
//
// Per-object labels (namespace, name) appear on gauges only: counters and
// histograms are labelled by connector, mode, entity and operation, so their
// series count does not grow with the number of ErpSyncs. DeleteObject drops
// an object's series when it is deleted.
package metrics

import (
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Record operations, the values of the records_total "operation" label.
const (
	OpUpserted = "upserted"
	OpSkipped  = "skipped"
	OpFailed   = "failed"
	// OpDeleted counts records marked deleted by inference (gone from a
	// full read, from a parent, or from the vendor's id listing).
	OpDeleted = "deleted"
)

// Drift findings, the values of the reconcile_drift_total "finding" label.
const (
	// DriftMissing: a live CRM record the vendor no longer lists.
	DriftMissing = "missing"
	// DriftAbsent: a listed document the CRM lacked or held deleted.
	DriftAbsent = "absent"
	// DriftVersion: a listed document whose CRM version differed.
	DriftVersion = "version"
)

var (
	syncDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "erpsync_sync_duration_seconds",
		Help:    "Duration of one sync run, by connector, mode (incremental/full) and result.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 13), // 1s .. ~68m
	}, []string{"connector", "mode", "result"})

	syncsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "erpsync_syncs_total",
		Help: "Sync runs, by connector, mode (incremental/full) and result.",
	}, []string{"connector", "mode", "result"})

	recordsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "erpsync_records_total",
		Help: "Records handled, by connector, entity and operation (upserted/skipped/failed).",
	}, []string{"connector", "entity", "operation"})

	upstreamRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "erpsync_upstream_requests_total",
		Help: "HTTP requests sent to ERP APIs, retries included, by connector, operation and status code (\"error\" when no response arrived).",
	}, []string{"connector", "operation", "code"})

	upstreamDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "erpsync_upstream_request_duration_seconds",
		Help:    "Duration of HTTP requests to ERP APIs, by connector, operation and status code.",
		Buckets: prometheus.ExponentialBuckets(0.025, 2, 13), // 25ms .. ~100s
	}, []string{"connector", "operation", "code"})

	rateLimitWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "erpsync_rate_limit_wait_seconds",
		Help:    "Time a request waited for a vendor rate limit, concurrency cap or Retry-After before being sent, by connector.",
		Buckets: prometheus.ExponentialBuckets(0.01, 4, 10), // 10ms .. ~44m
	}, []string{"connector"})

	lastSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "erpsync_last_success_timestamp_seconds",
		Help: "Unix time of the end of the last successful sync of an ErpSync.",
	}, []string{"namespace", "name", "connector"})

	condition = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "erpsync_condition",
		Help: "The status of an ErpSync's condition, one-hot over True/False/Unknown.",
	}, []string{"namespace", "name", "type", "status"})

	suspended = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "erpsync_suspended",
		Help: "1 while an ErpSync is suspended, else 0.",
	}, []string{"namespace", "name"})

	setAside = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "erpsync_set_aside_records",
		Help: "Vendor documents of an ErpSync's entity that the connector could not map, set aside (kept with their reason and raw document) after the entity's last completed pass; no series while none are.",
	}, []string{"namespace", "name", "entity"})

	reconcileDrift = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "erpsync_reconcile_drift_total",
		Help: "Differences reconciliation found between the vendor's id listing and the CRM, by connector, entity and finding (missing: live in the CRM, gone from the ERP; absent: in the ERP, not live in the CRM; version: another version).",
	}, []string{"connector", "entity", "finding"})

	heldDeletions = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "erpsync_held_deletions",
		Help: "Records an ErpSync's entity would mark deleted that the mass-deletion guard holds until a person approves or discards them; no series while none are held.",
	}, []string{"namespace", "name", "entity"})

	incomplete = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "erpsync_entity_incomplete",
		Help: "1 while an ErpSync's entity's last pass read fewer distinct records than the vendor reported (its watermark was kept); no series otherwise.",
	}, []string{"namespace", "name", "entity"})
)

// Collectors lists every metric of the package.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{syncDuration, syncsTotal, recordsTotal, upstreamRequests, upstreamDuration, rateLimitWait, lastSuccess, condition, suspended, setAside, incomplete, reconcileDrift, heldDeletions, quotaUsed, quotaLimit, quotaReset}
}

func init() {
	crmetrics.Registry.MustRegister(Collectors()...)
}

// AddDrift counts reconciliation findings.
func AddDrift(connector, entity, finding string, n int64) {
	if n > 0 {
		reconcileDrift.WithLabelValues(connector, entity, finding).Add(float64(n))
	}
}

// SetHeldDeletions sets the held-deletion gauge of an ErpSync's entity;
// the series exists only while deletions are held (n > 0).
func SetHeldDeletions(namespace, name, entity string, n int64) {
	if n <= 0 {
		heldDeletions.DeleteLabelValues(namespace, name, entity)
		return
	}
	heldDeletions.WithLabelValues(namespace, name, entity).Set(float64(n))
}

// ObserveSync records one finished run: its duration and count, by
// connector, mode ("incremental" or "full") and result.
func ObserveSync(connector, mode, result string, d time.Duration) {
	syncDuration.WithLabelValues(connector, mode, result).Observe(d.Seconds())
	syncsTotal.WithLabelValues(connector, mode, result).Inc()
}

// AddRecords counts n records of an entity by operation (OpUpserted,
// OpSkipped, OpFailed).
func AddRecords(connector, entity, operation string, n int) {
	if n <= 0 {
		return
	}
	recordsTotal.WithLabelValues(connector, entity, operation).Add(float64(n))
}

// ObserveUpstreamRequest records one HTTP attempt to an ERP; code 0 means no
// response arrived.
func ObserveUpstreamRequest(connector, operation string, code int, d time.Duration) {
	c := "error"
	if code > 0 {
		c = strconv.Itoa(code)
	}
	upstreamRequests.WithLabelValues(connector, operation, c).Inc()
	upstreamDuration.WithLabelValues(connector, operation, c).Observe(d.Seconds())
}

// ObserveRateLimitWait records time spent waiting before a request.
func ObserveRateLimitWait(connector string, d time.Duration) {
	rateLimitWait.WithLabelValues(connector).Observe(d.Seconds())
}

// Condition is one status condition as erpsync_condition shows it.
type Condition struct {
	Type string
	// Status is "True", "False" or "Unknown"; anything else counts as
	// Unknown.
	Status string
}

// ObjectStatus is what an ErpSync's status records of its gauges, for a
// process that has not exported them yet.
type ObjectStatus struct {
	Connector string
	// LastSuccess is the end of the last successful sync; zero: none yet.
	LastSuccess time.Time
	Conditions  []Condition
	Entities    []EntityReport
	// HeldDeletions counts the held deletions by entity.
	HeldDeletions map[string]int64
}

// objectSeries is what series of one ErpSync this process exports, beyond
// erpsync_suspended: the condition types of its erpsync_condition series
// and the connector of its erpsync_last_success_timestamp_seconds series
// ("" while it has none).
type objectSeries struct {
	conditions []string
	connector  string
}

// exported remembers, per ErpSync this process exports series of, the
// series it exports, so that an update replaces the object's own series
// and DeleteObject deletes them by their labels, with no scan over every
// ErpSync's series. An ErpSync is listed from its first export (see
// SetObjectIfNew) until DeleteObject.
var exported = struct {
	sync.Mutex
	m map[[2]string]*objectSeries
}{m: map[[2]string]*objectSeries{}}

// seriesOf returns the object's entry, created when missing; the caller
// holds exported's lock.
func seriesOf(namespace, name string) *objectSeries {
	key := [2]string{namespace, name}
	o := exported.m[key]
	if o == nil {
		o = &objectSeries{}
		exported.m[key] = o
	}
	return o
}

// SetLastSuccess sets the end of an ErpSync's last successful run. A series
// under another connector (the ErpSync's connector changed) is deleted.
func SetLastSuccess(namespace, name, connector string, t time.Time) {
	exported.Lock()
	defer exported.Unlock()
	setLastSuccess(seriesOf(namespace, name), namespace, name, connector, t)
}

func setLastSuccess(o *objectSeries, namespace, name, connector string, t time.Time) {
	if o.connector != "" && o.connector != connector {
		lastSuccess.DeleteLabelValues(namespace, name, o.connector)
	}
	o.connector = connector
	lastSuccess.WithLabelValues(namespace, name, connector).Set(float64(t.UnixNano()) / 1e9)
}

// conditionStatuses are the one-hot values of erpsync_condition.
var conditionStatuses = []string{"True", "False", "Unknown"}

// SetConditions makes an ErpSync's erpsync_condition series equal its
// conditions: per condition type, the series of its status is 1 and the
// other two 0; the series of a type no longer among them (Stalled and
// Reconciling exist only while True) are deleted, so that an alert on
// them ends when the condition goes.
func SetConditions(namespace, name string, conds []Condition) {
	exported.Lock()
	defer exported.Unlock()
	setConditions(seriesOf(namespace, name), namespace, name, conds)
}

func setConditions(o *objectSeries, namespace, name string, conds []Condition) {
	types := make([]string, 0, len(conds))
	for _, c := range conds {
		setOneHot(namespace, name, c.Type, c.Status)
		types = append(types, c.Type)
	}
	for _, t := range o.conditions {
		if !slices.Contains(types, t) {
			for _, s := range conditionStatuses {
				condition.DeleteLabelValues(namespace, name, t, s)
			}
		}
	}
	o.conditions = types
}

// setOneHot sets the series of one condition type: status's 1, the others 0.
func setOneHot(namespace, name, condType, status string) {
	if !slices.Contains(conditionStatuses, status) {
		status = "Unknown"
	}
	for _, s := range conditionStatuses {
		v := 0.0
		if s == status {
			v = 1
		}
		condition.WithLabelValues(namespace, name, condType, s).Set(v)
	}
}

// SetObjectIfNew exports an ErpSync's gauges from its status when this
// process exports none of its series yet: after a start, a leader change,
// or when its shard came to this replica (the replica it left deleted its
// series). It reports whether it did; an ErpSync already exported keeps
// the series its syncs set, which are newer than a cached status may be.
func SetObjectIfNew(namespace, name string, st ObjectStatus) bool {
	exported.Lock()
	key := [2]string{namespace, name}
	if exported.m[key] != nil {
		exported.Unlock()
		return false
	}
	o := seriesOf(namespace, name)
	setConditions(o, namespace, name, st.Conditions)
	if !st.LastSuccess.IsZero() {
		setLastSuccess(o, namespace, name, st.Connector, st.LastSuccess)
	}
	exported.Unlock()
	SetEntityReport(namespace, name, st.Entities)
	for entity, n := range st.HeldDeletions {
		SetHeldDeletions(namespace, name, entity, n)
	}
	return true
}

// SetSuspended sets whether an ErpSync is suspended.
func SetSuspended(namespace, name string, isSuspended bool) {
	v := 0.0
	if isSuspended {
		v = 1
	}
	suspended.WithLabelValues(namespace, name).Set(v)
}

// EntityReport is what SetEntityReport shows of one entity.
type EntityReport struct {
	Entity     string
	SetAside   int64
	Incomplete bool
}

// reported remembers the entities each ErpSync's per-entity series were
// last reported for, so that a report replaces its own series without
// scanning every ErpSync's (a scan per sync is quadratic in ErpSyncs).
var reported = struct {
	sync.Mutex
	m map[[2]string][]string
}{m: map[[2]string][]string{}}

// SetEntityReport replaces an ErpSync's per-entity series with entities:
// the documents set aside and whether the last pass was incomplete. The
// series are sparse: one exists only while its value is not zero (a
// thousand quiet ErpSyncs of fourteen entities would otherwise keep 28,000
// zeros); entities no longer listed, after a source change for instance,
// lose theirs.
func SetEntityReport(namespace, name string, entities []EntityReport) {
	key := [2]string{namespace, name}
	reported.Lock()
	defer reported.Unlock()
	listed := make(map[string]bool, len(entities))
	var keep []string
	for _, e := range entities {
		listed[e.Entity] = true
		sparse(setAside, float64(e.SetAside), namespace, name, e.Entity)
		v := 0.0
		if e.Incomplete {
			v = 1
		}
		sparse(incomplete, v, namespace, name, e.Entity)
		if e.SetAside != 0 || e.Incomplete {
			keep = append(keep, e.Entity)
		}
	}
	for _, entity := range reported.m[key] {
		if !listed[entity] {
			setAside.DeleteLabelValues(namespace, name, entity)
			incomplete.DeleteLabelValues(namespace, name, entity)
		}
	}
	if len(keep) == 0 {
		delete(reported.m, key)
		return
	}
	reported.m[key] = keep
}

// sparse sets a gauge series to v, or deletes it when v is zero.
func sparse(g *prometheus.GaugeVec, v float64, labels ...string) {
	if v == 0 {
		g.DeleteLabelValues(labels...)
		return
	}
	g.WithLabelValues(labels...).Set(v)
}

// DeleteObject drops every series of an ErpSync: it was deleted, or this
// replica no longer syncs it (its shard moved). The dense series (one or
// more per ErpSync) are deleted by their labels; the sparse per-entity
// ones, few, by a partial match.
func DeleteObject(namespace, name string) {
	key := [2]string{namespace, name}
	reported.Lock()
	delete(reported.m, key)
	reported.Unlock()
	exported.Lock()
	if o := exported.m[key]; o != nil {
		for _, t := range o.conditions {
			for _, s := range conditionStatuses {
				condition.DeleteLabelValues(namespace, name, t, s)
			}
		}
		if o.connector != "" {
			lastSuccess.DeleteLabelValues(namespace, name, o.connector)
		}
		delete(exported.m, key)
	}
	exported.Unlock()
	suspended.DeleteLabelValues(namespace, name)
	l := prometheus.Labels{"namespace": namespace, "name": name}
	setAside.DeletePartialMatch(l)
	incomplete.DeletePartialMatch(l)
	heldDeletions.DeletePartialMatch(l)
}

// HTTPObserver feeds connectors/httpapi's measurements into these metrics;
// httpapi uses it by default.
type HTTPObserver struct{}

// ObserveRequest implements httpapi.Observer.
func (HTTPObserver) ObserveRequest(connector, operation string, code int, d time.Duration) {
	ObserveUpstreamRequest(connector, operation, code, d)
}

// ObserveRateLimitWait implements httpapi.Observer.
func (HTTPObserver) ObserveRateLimitWait(connector string, d time.Duration) {
	ObserveRateLimitWait(connector, d)
}
