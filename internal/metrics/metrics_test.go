package metrics

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/erpsync/erpsync-operator/internal/metrics/metricstest"
)

// The collectors are the process's own, shared by every test and every
// -count repetition: the tests compare growth, not absolute values.

func TestRegisteredOnControllerRuntime(t *testing.T) {
	katana := syncsTotal.WithLabelValues("katana", "full", "Succeeded")
	before := testutil.ToFloat64(katana)
	SetSuspended("ns", "registered", false)
	ObserveSync("katana", "full", "Succeeded", time.Second)
	AddRecords("katana", "products", OpUpserted, 1)
	ObserveUpstreamRequest("katana", "list", 200, time.Millisecond)
	ObserveRateLimitWait("katana", time.Second)
	SetLastSuccess("ns", "registered", "katana", time.Unix(1, 0))
	SetConditions("ns", "registered", []Condition{{Type: "Ready", Status: "True"}})
	mfs, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		got[mf.GetName()] = true
	}
	for _, name := range []string{
		"erpsync_sync_duration_seconds", "erpsync_syncs_total", "erpsync_records_total",
		"erpsync_upstream_requests_total", "erpsync_upstream_request_duration_seconds",
		"erpsync_rate_limit_wait_seconds", "erpsync_last_success_timestamp_seconds",
		"erpsync_condition", "erpsync_suspended",
	} {
		if !got[name] {
			t.Errorf("%s is not registered", name)
		}
	}
	if got := testutil.ToFloat64(katana) - before; got != 1 {
		t.Errorf(`erpsync_syncs_total{connector="katana",mode="full",result="Succeeded"} grew by %v, want 1`, got)
	}
}

func TestCounters(t *testing.T) {
	syncs := syncsTotal.WithLabelValues("xero", "incremental", "RateLimited")
	records := recordsTotal.WithLabelValues("xero", "invoices", OpSkipped)
	errs := upstreamRequests.WithLabelValues("xero", "list_invoices", "error")
	throttled := upstreamRequests.WithLabelValues("xero", "list_invoices", "429")
	before := map[string]float64{
		"syncs": testutil.ToFloat64(syncs), "records": testutil.ToFloat64(records),
		"errors": testutil.ToFloat64(errs), "429": testutil.ToFloat64(throttled),
	}
	ObserveSync("xero", "incremental", "RateLimited", 90*time.Second)
	ObserveSync("xero", "incremental", "RateLimited", 30*time.Second)
	AddRecords("xero", "invoices", OpSkipped, 5)
	AddRecords("xero", "invoices", OpSkipped, 0)
	var o HTTPObserver
	o.ObserveRequest("xero", "list_invoices", 0, time.Second)
	o.ObserveRequest("xero", "list_invoices", 429, time.Second)
	for _, tc := range []struct {
		name string
		c    prometheus.Collector
		want float64
	}{
		{"syncs", syncs, 2}, {"records", records, 5}, {"errors", errs, 1}, {"429", throttled, 1},
	} {
		if got := testutil.ToFloat64(tc.c) - before[tc.name]; got != tc.want {
			t.Errorf("%s grew by %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestConditionOneHot(t *testing.T) {
	tests := []struct {
		status string
		want   map[string]float64
	}{
		{"True", map[string]float64{"True": 1, "False": 0, "Unknown": 0}},
		{"False", map[string]float64{"True": 0, "False": 1, "Unknown": 0}},
		{"Unknown", map[string]float64{"True": 0, "False": 0, "Unknown": 1}},
		{"bogus", map[string]float64{"True": 0, "False": 0, "Unknown": 1}},
	}
	for _, tc := range tests {
		SetConditions("ns", "one-hot", []Condition{{Type: "Ready", Status: tc.status}})
		got := objectSeriesValues(t, "ns", "one-hot")
		for s, want := range tc.want {
			if v, ok := got["erpsync_condition{Ready,"+s+"}"]; !ok || v != want {
				t.Errorf("after %s: status %s = %v (present %v), want %v", tc.status, s, v, ok, want)
			}
		}
	}
}

// objectSeriesValues gathers the registry's series of one ErpSync.
func objectSeriesValues(t *testing.T, ns, name string) map[string]float64 {
	t.Helper()
	out, err := metricstest.ObjectSeries(crmetrics.Registry, ns, name)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSetConditionsReplacesTheObjectsSeries(t *testing.T) {
	// Another object's series are left alone throughout.
	SetConditions("ns", "neighbour", []Condition{{Type: "Stalled", Status: "True"}})
	steps := []struct {
		name  string
		conds []Condition
		want  map[string]float64
	}{
		{"first sync in flight", []Condition{{"Ready", "Unknown"}, {"Reconciling", "True"}}, map[string]float64{
			"erpsync_condition{Ready,True}": 0, "erpsync_condition{Ready,False}": 0, "erpsync_condition{Ready,Unknown}": 1,
			"erpsync_condition{Reconciling,True}": 1, "erpsync_condition{Reconciling,False}": 0, "erpsync_condition{Reconciling,Unknown}": 0,
		}},
		{"stalled: Reconciling goes, Stalled comes", []Condition{{"Ready", "False"}, {"Stalled", "True"}}, map[string]float64{
			"erpsync_condition{Ready,True}": 0, "erpsync_condition{Ready,False}": 1, "erpsync_condition{Ready,Unknown}": 0,
			"erpsync_condition{Stalled,True}": 1, "erpsync_condition{Stalled,False}": 0, "erpsync_condition{Stalled,Unknown}": 0,
		}},
		{"fixed: Stalled goes", []Condition{{"Ready", "True"}}, map[string]float64{
			"erpsync_condition{Ready,True}": 1, "erpsync_condition{Ready,False}": 0, "erpsync_condition{Ready,Unknown}": 0,
		}},
		{"none at all", nil, map[string]float64{}},
	}
	for _, step := range steps {
		SetConditions("ns", "replaced", step.conds)
		got := objectSeriesValues(t, "ns", "replaced")
		if !maps.Equal(got, step.want) {
			t.Errorf("%s: series\n%v\nwant\n%v", step.name, got, step.want)
		}
	}
	if got := objectSeriesValues(t, "ns", "neighbour")["erpsync_condition{Stalled,True}"]; got != 1 {
		t.Errorf("the other object's Stalled=True series = %v, want 1", got)
	}
	DeleteObject("ns", "neighbour")
	DeleteObject("ns", "replaced")
}

func TestSetLastSuccessFollowsTheConnector(t *testing.T) {
	SetLastSuccess("ns", "moved", "xero", time.Unix(1700000000, 0))
	SetLastSuccess("ns", "moved", "katana", time.Unix(1700000600, 500e6))
	want := map[string]float64{"erpsync_last_success_timestamp_seconds{katana}": 1700000600.5}
	if got := objectSeriesValues(t, "ns", "moved"); !maps.Equal(got, want) {
		t.Errorf("series %v, want %v", got, want)
	}
	DeleteObject("ns", "moved")
	if got := objectSeriesValues(t, "ns", "moved"); len(got) != 0 {
		t.Errorf("series after DeleteObject: %v", got)
	}
}

func TestSetObjectIfNewExportsTheStatusOnce(t *testing.T) {
	st := ObjectStatus{
		Connector:     "xero",
		LastSuccess:   time.Unix(1700000000, 0),
		Conditions:    []Condition{{"Ready", "False"}, {"Stalled", "True"}},
		Entities:      []EntityReport{{Entity: "invoices", SetAside: 2}, {Entity: "products"}},
		HeldDeletions: map[string]int64{"customers": 40, "products": 0},
	}
	fromStatus := map[string]float64{
		"erpsync_last_success_timestamp_seconds{xero}": 1700000000,
		"erpsync_condition{Ready,True}":                0, "erpsync_condition{Ready,False}": 1, "erpsync_condition{Ready,Unknown}": 0,
		"erpsync_condition{Stalled,True}": 1, "erpsync_condition{Stalled,False}": 0, "erpsync_condition{Stalled,Unknown}": 0,
		"erpsync_set_aside_records{invoices}": 2,
		"erpsync_held_deletions{customers}":   40,
	}
	newer := map[string]float64{
		"erpsync_last_success_timestamp_seconds{xero}": 1700000900,
		"erpsync_condition{Ready,True}":                1, "erpsync_condition{Ready,False}": 0, "erpsync_condition{Ready,Unknown}": 0,
		"erpsync_set_aside_records{invoices}": 2,
		"erpsync_held_deletions{customers}":   40,
	}
	steps := []struct {
		name   string
		do     func() bool
		wantOK bool
		want   map[string]float64
	}{
		{"first sight: the status", func() bool { return SetObjectIfNew("ns", "seen", st) }, true, fromStatus},
		{"a sync ends", func() bool {
			SetConditions("ns", "seen", []Condition{{"Ready", "True"}})
			SetLastSuccess("ns", "seen", "xero", time.Unix(1700000900, 0))
			return true
		}, true, newer},
		{"seen again: a cached status changes nothing", func() bool { return SetObjectIfNew("ns", "seen", st) }, false, newer},
		{"the shard moves away", func() bool { DeleteObject("ns", "seen"); return true }, true, map[string]float64{}},
		{"the shard comes back: the status again", func() bool { return SetObjectIfNew("ns", "seen", st) }, true, fromStatus},
		{"no success yet: no timestamp", func() bool {
			DeleteObject("ns", "seen")
			return SetObjectIfNew("ns", "seen", ObjectStatus{Connector: "xero", Conditions: []Condition{{"Ready", "Unknown"}}})
		}, true, map[string]float64{"erpsync_condition{Ready,True}": 0, "erpsync_condition{Ready,False}": 0, "erpsync_condition{Ready,Unknown}": 1}},
	}
	for _, step := range steps {
		if ok := step.do(); ok != step.wantOK {
			t.Errorf("%s: returned %v, want %v", step.name, ok, step.wantOK)
		}
		if got := objectSeriesValues(t, "ns", "seen"); !maps.Equal(got, step.want) {
			t.Errorf("%s: series\n%v\nwant\n%v", step.name, got, step.want)
		}
	}
	DeleteObject("ns", "seen")
}

func TestDeleteObject(t *testing.T) {
	SetSuspended("ns", "gone", true)
	SetSuspended("ns", "stays", false)
	SetConditions("ns", "gone", []Condition{{Type: "Ready", Status: "True"}, {Type: "Stalled", Status: "True"}})
	SetHeldDeletions("ns", "gone", "products", 3)
	SetEntityReport("ns", "gone", []EntityReport{{Entity: "products", SetAside: 1, Incomplete: true}})
	SetLastSuccess("ns", "gone", "katana", time.Unix(1700000000, 0))
	if got := objectSeriesValues(t, "ns", "gone")["erpsync_last_success_timestamp_seconds{katana}"]; got != 1700000000 {
		t.Errorf("last success = %v", got)
	}
	if got := testutil.ToFloat64(suspended.WithLabelValues("ns", "gone")); got != 1 {
		t.Errorf("suspended = %v", got)
	}
	before := testutil.CollectAndCount(suspended)
	DeleteObject("ns", "gone")
	if got := testutil.CollectAndCount(suspended); got != before-1 {
		t.Errorf("suspended series %d, want %d", got, before-1)
	}
	mfs, _ := crmetrics.Registry.Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "name" && l.GetValue() == "gone" {
					t.Errorf("%s still has a series for the deleted object", mf.GetName())
				}
			}
		}
	}
}

func TestSetEntityReportReplacesTheObjectsSeries(t *testing.T) {
	SetEntityReport("ns", "report", []EntityReport{{Entity: "stock_levels", SetAside: 2}})
	SetEntityReport("ns", "report", []EntityReport{
		{Entity: "invoices", SetAside: 3},
		{Entity: "stock_levels", Incomplete: true},
	})
	SetEntityReport("ns", "other", []EntityReport{{Entity: "invoices", SetAside: 7}})
	if got := testutil.ToFloat64(setAside.WithLabelValues("ns", "report", "invoices")); got != 3 {
		t.Errorf("set aside invoices = %v, want 3", got)
	}
	if got := testutil.ToFloat64(incomplete.WithLabelValues("ns", "report", "stock_levels")); got != 1 {
		t.Errorf("incomplete stock_levels = %v, want 1", got)
	}
	// The next report names only products: the other entities' series go,
	// the other object's stay.
	SetEntityReport("ns", "report", []EntityReport{{Entity: "products", SetAside: 1}})
	mfs, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "erpsync_set_aside_records" && mf.GetName() != "erpsync_entity_incomplete" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			seen[mf.GetName()+"/"+l["name"]+"/"+l["entity"]] = m.GetGauge().GetValue()
		}
	}
	// Zeros have no series.
	want := map[string]float64{
		"erpsync_set_aside_records/report/products": 1,
		"erpsync_set_aside_records/other/invoices":  7,
	}
	for k, v := range want {
		if got, ok := seen[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	for k := range seen {
		if _, ok := want[k]; !ok && (strings.Contains(k, "/report/") || strings.Contains(k, "/other/")) {
			t.Errorf("unexpected series %s", k)
		}
	}
	DeleteObject("ns", "other")
	if got := testutil.CollectAndCount(setAside); got < 1 {
		t.Errorf("set aside series %d after deleting another object", got)
	}
}

// Held deletions have a series only while some are held.
func TestHeldDeletionsAreSparse(t *testing.T) {
	before := testutil.CollectAndCount(heldDeletions)
	SetHeldDeletions("ns", "held", "products", 0)
	if got := testutil.CollectAndCount(heldDeletions); got != before {
		t.Fatalf("a zero made a series: %d, want %d", got, before)
	}
	SetHeldDeletions("ns", "held", "products", 12)
	if got := testutil.ToFloat64(heldDeletions.WithLabelValues("ns", "held", "products")); got != 12 {
		t.Fatalf("held = %v, want 12", got)
	}
	SetHeldDeletions("ns", "held", "products", 0)
	if got := testutil.CollectAndCount(heldDeletions); got != before {
		t.Fatalf("the series stayed after the deletions were decided: %d, want %d", got, before)
	}
}
