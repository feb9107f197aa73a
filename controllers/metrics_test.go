package controllers

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/internal/metrics"
	"github.com/erpsync/erpsync-operator/internal/metrics/metricstest"
)

// objectGauges gathers the series of one ErpSync from the manager's
// registry (keys as metricstest.ObjectSeries makes them).
func objectGauges(g Gomega, ns, name string) map[string]float64 {
	out, err := metricstest.ObjectSeries(crmetrics.Registry, ns, name)
	g.Expect(err).NotTo(HaveOccurred())
	return out
}

// conditionGauges is the erpsync_condition part of objectGauges.
func conditionGauges(g Gomega, ns, name string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range objectGauges(g, ns, name) {
		if strings.HasPrefix(k, "erpsync_condition{") {
			out[k] = v
		}
	}
	return out
}

// readyTrueGauges are the erpsync_condition series of a Ready ErpSync with
// no other condition.
var readyTrueGauges = map[string]float64{
	"erpsync_condition{Ready,True}": 1, "erpsync_condition{Ready,False}": 0, "erpsync_condition{Ready,Unknown}": 0,
}

// A condition that leaves the status leaves the metrics: an alert on
// Stalled=True ends when the spec is fixed.
func TestConditionSeriesFollowTheConditions(t *testing.T) {
	h := newHarness(t)
	g := h.g
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.startManager()
	h.erpsync("acme", func(o *erpv1.ErpSync) { o.Spec.Connector.Entities = []string{"products", "widgets"} })
	h.failsWith("acme", connectors.KindInvalidConfig)
	g.Eventually(func(g Gomega) map[string]float64 { return conditionGauges(g, h.ns, "acme") }, 10*time.Second, 50*time.Millisecond).Should(Equal(map[string]float64{
		"erpsync_condition{Ready,True}": 0, "erpsync_condition{Ready,False}": 1, "erpsync_condition{Ready,Unknown}": 0,
		"erpsync_condition{Stalled,True}": 1, "erpsync_condition{Stalled,False}": 0, "erpsync_condition{Stalled,Unknown}": 0,
	}))

	// Fixed: Stalled goes from the status, and its series with it (and
	// Reconciling's, set while the sync of the new generation ran).
	h.update("acme", func(o *erpv1.ErpSync) { o.Spec.Connector.Entities = []string{"products"} })
	o := h.ready("acme")
	g.Expect(o.Status.Conditions).To(HaveLen(1))
	g.Eventually(func(g Gomega) map[string]float64 { return conditionGauges(g, h.ns, "acme") }, 10*time.Second, 50*time.Millisecond).Should(Equal(readyTrueGauges))

	// Suspended mid-sync: the stopped sync removes Reconciling from the
	// status, and its series goes too.
	h.erp.set(func(f *fakeERP) { f.block, f.blockFromPage = make(chan struct{}), 1 })
	h.update("acme", func(o *erpv1.ErpSync) { o.Spec.Connector.Entities = []string{"products", "customers"} })
	g.Eventually(func(g Gomega) float64 {
		return conditionGauges(g, h.ns, "acme")["erpsync_condition{Reconciling,True}"]
	}, 10*time.Second, 50*time.Millisecond).Should(Equal(1.0), "the sync of a new generation shows Reconciling=True")
	h.update("acme", func(o *erpv1.ErpSync) { o.Spec.Suspend = true })
	g.Eventually(func() erpv1.Phase { return h.get("acme").Status.Phase }, 10*time.Second).Should(Equal(erpv1.PhaseSuspended))
	defer close(h.erp.block)
	g.Expect(h.get("acme").Status.Conditions).NotTo(ContainElement(HaveField("Type", erpv1.ReconcilingCondition)))
	g.Eventually(func(g Gomega) map[string]float64 { return conditionGauges(g, h.ns, "acme") }, 10*time.Second, 50*time.Millisecond).Should(
		Equal(map[string]float64{"erpsync_condition{Ready,True}": 0, "erpsync_condition{Ready,False}": 0, "erpsync_condition{Ready,Unknown}": 1}))
}

// A new manager exports what the status records at once, without waiting
// for the next sync: a staleness alert or panel sees every company.
func TestARestartedManagerExportsTheStatusBeforeAnySync(t *testing.T) {
	h := newHarness(t)
	g := h.g
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.startManager()
	h.erpsync("acme")
	o := h.ready("acme")
	h.stopManager()
	// A new process starts with no series (this test's process keeps the
	// old manager's registry).
	metrics.DeleteObject(h.ns, "acme")
	g.Expect(objectGauges(g, h.ns, "acme")).To(BeEmpty())

	calls := h.erp.calls.Load()
	h.startManager()
	want := maps.Clone(readyTrueGauges)
	want["erpsync_suspended{}"] = 0
	want["erpsync_last_success_timestamp_seconds{unleashed}"] = float64(o.Status.LastSuccessfulSyncEnd.Unix())
	g.Eventually(func(g Gomega) map[string]float64 { return objectGauges(g, h.ns, "acme") }, 10*time.Second, 50*time.Millisecond).Should(Equal(want))
	// From the status, not from a sync: none was due (interval 1h).
	g.Consistently(func() int64 { return h.erp.calls.Load() }, time.Second, 100*time.Millisecond).Should(Equal(calls))
	g.Expect(h.get("acme").Status.LastSyncEnd).To(Equal(o.Status.LastSyncEnd))
}

// An ErpSync's series follow its shard: the replica it leaves drops them,
// the replica it comes to exports them from the status at once.
func TestAnErpSyncsSeriesMoveWithItsShard(t *testing.T) {
	h := newHarness(t)
	g := h.g
	fs := newFakeShards(3)
	h.shards = fs
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.startManager()
	shard := fs.ShardOf(clientKey(h.erpsync("acme")))
	fs.gain(shard)
	o := h.ready("acme")
	want := maps.Clone(readyTrueGauges)
	want["erpsync_suspended{}"] = 0
	want["erpsync_last_success_timestamp_seconds{unleashed}"] = float64(o.Status.LastSuccessfulSyncEnd.Unix())
	g.Eventually(func(g Gomega) map[string]float64 {
		got := objectGauges(g, h.ns, "acme")
		// The sync's own end, to the nanosecond; status keeps seconds.
		if v, ok := got["erpsync_last_success_timestamp_seconds{unleashed}"]; ok && v-want["erpsync_last_success_timestamp_seconds{unleashed}"] < 1 {
			got["erpsync_last_success_timestamp_seconds{unleashed}"] = want["erpsync_last_success_timestamp_seconds{unleashed}"]
		}
		return got
	}, 10*time.Second, 50*time.Millisecond).Should(Equal(want))

	// The replica that gains the shard reads the status from its cache;
	// wait until the cache has this sync's end (a loaded test machine can
	// lag a second or more; a real move waits for a lease to expire).
	g.Eventually(func(g Gomega) {
		var cached erpv1.ErpSync
		g.Expect(h.reconciler.Get(t.Context(), clientKey(o), &cached)).To(Succeed())
		g.Expect(cached.Status.LastSuccessfulSyncEnd).To(Equal(o.Status.LastSuccessfulSyncEnd))
		g.Expect(cached.Status.Conditions).To(HaveLen(1))
	}, 10*time.Second, 50*time.Millisecond).Should(Succeed())

	// The shard moves to another replica: this one exports nothing of it.
	fs.lose(shard)
	g.Eventually(func(g Gomega) map[string]float64 { return objectGauges(g, h.ns, "acme") }, 10*time.Second, 50*time.Millisecond).Should(BeEmpty())

	// It comes back (as to the replica that gains it): the status's values
	// at once, with no sync (none is due).
	calls := h.erp.calls.Load()
	fs.gain(shard)
	g.Eventually(func(g Gomega) map[string]float64 { return objectGauges(g, h.ns, "acme") }, 10*time.Second, 50*time.Millisecond).Should(Equal(want),
		func() string { return fmt.Sprintf("the status now: %+v", h.get("acme").Status) })
	g.Consistently(func() int64 { return h.erp.calls.Load() }, time.Second, 100*time.Millisecond).Should(Equal(calls))
}
