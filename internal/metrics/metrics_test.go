package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

func TestRegisteredOnControllerRuntime(t *testing.T) {
	SetSuspended("ns", "registered", false)
	ObserveSync("katana", "full", "Succeeded", time.Second)
	AddRecords("katana", "products", OpUpserted, 1)
	ObserveUpstreamRequest("katana", "list", 200, time.Millisecond)
	ObserveRateLimitWait("katana", time.Second)
	SetLastSuccess("ns", "registered", "katana", time.Unix(1, 0))
	SetCondition("ns", "registered", "Ready", "True")
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
	if err := testutil.CollectAndCompare(syncsTotal, strings.NewReader(`
# HELP erpsync_syncs_total Sync runs, by connector, mode (incremental/full) and result.
# TYPE erpsync_syncs_total counter
erpsync_syncs_total{connector="katana",mode="full",result="Succeeded"} 1
`)); err != nil {
		t.Error(err)
	}
}

func TestCounters(t *testing.T) {
	ObserveSync("xero", "incremental", "RateLimited", 90*time.Second)
	ObserveSync("xero", "incremental", "RateLimited", 30*time.Second)
	if got := testutil.ToFloat64(syncsTotal.WithLabelValues("xero", "incremental", "RateLimited")); got != 2 {
		t.Errorf("syncs_total = %v", got)
	}
	AddRecords("xero", "invoices", OpSkipped, 5)
	AddRecords("xero", "invoices", OpSkipped, 0)
	if got := testutil.ToFloat64(recordsTotal.WithLabelValues("xero", "invoices", OpSkipped)); got != 5 {
		t.Errorf("records_total = %v", got)
	}
	var o HTTPObserver
	o.ObserveRequest("xero", "list_invoices", 0, time.Second)
	o.ObserveRequest("xero", "list_invoices", 429, time.Second)
	if got := testutil.ToFloat64(upstreamRequests.WithLabelValues("xero", "list_invoices", "error")); got != 1 {
		t.Errorf("upstream error requests = %v", got)
	}
	if got := testutil.ToFloat64(upstreamRequests.WithLabelValues("xero", "list_invoices", "429")); got != 1 {
		t.Errorf("upstream 429 requests = %v", got)
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
		SetCondition("ns", "one-hot", "Ready", tc.status)
		for s, want := range tc.want {
			if got := testutil.ToFloat64(condition.WithLabelValues("ns", "one-hot", "Ready", s)); got != want {
				t.Errorf("after %s: status %s = %v, want %v", tc.status, s, got, want)
			}
		}
	}
}

func TestDeleteObject(t *testing.T) {
	SetSuspended("ns", "gone", true)
	SetSuspended("ns", "stays", false)
	SetCondition("ns", "gone", "Ready", "True")
	SetLastSuccess("ns", "gone", "katana", time.Unix(1700000000, 0))
	if got := testutil.ToFloat64(lastSuccess.WithLabelValues("ns", "gone", "katana")); got != 1700000000 {
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
