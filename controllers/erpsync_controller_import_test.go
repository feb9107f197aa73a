package controllers

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// eventsWith returns the messages of the events of an object with reason.
func (h *harness) eventsWith(name, reason string) []string {
	var out []string
	for _, e := range h.events(name) {
		if e.Reason == reason {
			out = append(out, e.Type+": "+e.Message)
		}
	}
	return out
}

// gauge reads a per-entity gauge of this test's object.
func gauge(g Gomega, metric, ns, name, entity string) (float64, bool) {
	mfs, err := crmetrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	for _, mf := range mfs {
		if mf.GetName() != metric {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["namespace"] == ns && l["name"] == name && l["entity"] == entity {
				return m.GetGauge().GetValue(), true
			}
		}
	}
	return 0, false
}

func entityStatus(o *erpv1.ErpSync, k model.Kind) *erpv1.EntityStatus {
	for i := range o.Status.Entities {
		if o.Status.Entities[i].Name == string(k) {
			return &o.Status.Entities[i]
		}
	}
	return nil
}

func TestSourceChangeDropsTheWatermarksAndImportsInFull(t *testing.T) {
	h := newHarness(t)
	g := h.g
	h.secret("creds", map[string]string{"apiKey": "k", "apiId": "account-1", "refreshToken": "r1"})
	h.startManager()
	h.erpsync("acme")
	first := h.ready("acme")

	// The first sync records the fingerprint, and says nothing of it.
	g.Expect(first.Status.Source).NotTo(BeNil())
	g.Expect(first.Status.Source.Type).To(Equal(erpv1.ConnectorUnleashed))
	g.Expect(first.Status.Source.CredentialsRef).To(Equal("creds"))
	g.Expect(first.Status.Source.CredentialsIdentity).NotTo(BeEmpty())
	g.Expect(first.Status.Source.CredentialsIdentity).NotTo(ContainSubstring("account-1"), "a hash, never the value")
	g.Expect(first.Status.Source.Tenant).To(BeEmpty())
	g.Expect(meta.FindStatusCondition(first.Status.Conditions, erpv1.ReadyCondition).Message).NotTo(ContainSubstring("source"))
	g.Expect(h.eventsWith("acme", "SourceChanged")).To(BeEmpty())

	// Rotating credentials (a new API key, a new refresh token) is not a
	// change of source: the next sync is incremental.
	var sec corev1.Secret
	g.Expect(k8s.Get(t.Context(), clientKey(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "creds"}}), &sec)).To(Succeed())
	sec.Data["apiKey"], sec.Data["refreshToken"] = []byte("k2"), []byte("r2")
	g.Expect(k8s.Update(t.Context(), &sec)).To(Succeed())
	calls := len(h.erp.log())
	h.update("acme", func(o *erpv1.ErpSync) { o.Annotations = map[string]string{erpv1.RequestedAtAnnotation: "1"} })
	second := h.readyWhen("acme", func(o *erpv1.ErpSync) bool { return o.Status.LastHandledReconcileAt == "1" })
	g.Expect(second.Status.LastSync.Mode).To(Equal(erpv1.SyncModeIncremental))
	g.Expect(second.Status.Source).To(Equal(first.Status.Source))
	for _, req := range h.erp.log()[calls:] {
		g.Expect(req.Since.IsZero()).To(BeFalse(), "a rotation keeps the watermarks: %+v", req)
	}

	// Another tenant is another ERP: every entity is read in full, and the
	// Ready message and an event say why.
	calls = len(h.erp.log())
	h.update("acme", func(o *erpv1.ErpSync) { o.Spec.Connector.TenantID = "tenant-2" })
	third := h.readyWhen("acme", func(o *erpv1.ErpSync) bool { return o.Status.ObservedGeneration == o.Generation && o.Generation > 1 })
	g.Expect(third.Status.LastSync.Mode).To(Equal(erpv1.SyncModeFull))
	g.Expect(third.Status.Source.Tenant).NotTo(BeEmpty())
	g.Expect(third.Status.Source.Tenant).NotTo(ContainSubstring("tenant-2"))
	g.Expect(third.Status.Import).To(BeNil(), "the import completed")
	g.Expect(meta.FindStatusCondition(third.Status.Conditions, erpv1.ReadyCondition).Message).To(ContainSubstring("because the source changed (tenantId)"))
	log := h.erp.log()[calls:]
	g.Expect(log).To(HaveLen(4), "1 customer page + 3 product pages")
	for _, req := range log {
		g.Expect(req.Since.IsZero()).To(BeTrue(), "the new source is imported in full: %+v", req)
	}
	g.Eventually(func() []string { return h.eventsWith("acme", "SourceChanged") }, 10*time.Second).
		Should(ContainElement("Normal: the source changed (tenantId); running a full import"))

	// Another account in the same Secret is another ERP too.
	g.Expect(k8s.Get(t.Context(), clientKey(&sec), &sec)).To(Succeed())
	sec.Data["apiId"] = []byte("account-2")
	g.Expect(k8s.Update(t.Context(), &sec)).To(Succeed())
	calls = len(h.erp.log())
	h.update("acme", func(o *erpv1.ErpSync) { o.Annotations[erpv1.RequestedAtAnnotation] = "2" })
	fourth := h.readyWhen("acme", func(o *erpv1.ErpSync) bool { return o.Status.LastHandledReconcileAt == "2" })
	g.Expect(fourth.Status.LastSync.Mode).To(Equal(erpv1.SyncModeFull))
	g.Expect(fourth.Status.Source.CredentialsIdentity).NotTo(Equal(third.Status.Source.CredentialsIdentity))
	for _, req := range h.erp.log()[calls:] {
		g.Expect(req.Since.IsZero()).To(BeTrue(), "the new account is imported in full: %+v", req)
	}
}

func TestFullResyncRequestedBeforeARestartRuns(t *testing.T) {
	h := newHarness(t)
	g := h.g
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.startManager()
	h.erpsync("acme")
	h.ready("acme")

	// A requested incremental sync hangs on its first product page...
	h.erp.touch(3)
	h.erp.set(func(f *fakeERP) { f.block, f.blockFromPage = make(chan struct{}), 1 })
	calls := len(h.erp.log())
	h.update("acme", func(o *erpv1.ErpSync) { o.Annotations = map[string]string{erpv1.RequestedAtAnnotation: "r1"} })
	g.Eventually(func() bool {
		for _, req := range h.erp.log()[calls:] {
			if req.Entity == model.KindProduct {
				return true
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond).Should(BeTrue())
	// ...the manager goes away, and a full resync is requested meanwhile.
	h.stopManager()
	g.Expect(h.get("acme").Status.Phase).To(Equal(erpv1.PhaseSyncing))
	h.update("acme", func(o *erpv1.ErpSync) { o.Annotations[erpv1.FullResyncAtAnnotation] = "f1" })
	close(h.erp.block)
	calls = len(h.erp.log())
	h.startManager()

	// The full resync runs (instead of the resume), and only it records
	// its token.
	o := h.readyWhen("acme", func(o *erpv1.ErpSync) bool { return o.Status.LastHandledFullResyncAt == "f1" })
	g.Expect(o.Status.LastSync.Mode).To(Equal(erpv1.SyncModeFull))
	g.Expect(o.Status.LastHandledReconcileAt).To(Equal("r1"))
	log := h.erp.log()[calls:]
	g.Expect(log).To(HaveLen(4), "1 customer page + 3 product pages")
	for _, req := range log {
		g.Expect(req.Since.IsZero()).To(BeTrue(), "a full resync ignores watermarks: %+v", req)
	}
	// Nothing is left pending.
	calls = len(h.erp.log())
	g.Consistently(func() int { return len(h.erp.log()) }, 2*time.Second, 100*time.Millisecond).Should(Equal(calls))
}

func TestRetryOfAFailedImportSkipsFinishedEntitiesAndReportsTheWholeImport(t *testing.T) {
	h := newHarness(t)
	g := h.g
	h.secret("creds", map[string]string{"apiKey": "k"})
	// The first import fails on products page 3, once.
	h.erp.set(func(f *fakeERP) { f.failProductsFrom, f.failTimes = 3, 1 })
	h.startManager()
	h.erpsync("acme", func(o *erpv1.ErpSync) { o.Spec.RetryInterval = &metav1.Duration{Duration: 30 * time.Second} })

	var failedAt int
	g.Eventually(func(g Gomega) {
		o := h.get("acme")
		g.Expect(o.Status.Phase).To(Equal(erpv1.PhaseFailed))
		// The import under way counts what the failed sync did: customers
		// 1 page, products pages 1-2 and the failed page 3.
		g.Expect(o.Status.Import).NotTo(BeNil())
		g.Expect(o.Status.Import.Syncs).To(Equal(int64(1)))
		g.Expect(o.Status.ConsecutiveFailures).To(Equal(int64(1)))
		g.Expect(o.Status.Import.APICalls).To(Equal(int64(4)))
		g.Expect(o.Status.Import.Records).To(Equal(int64(21)))
		failedAt = len(h.erp.log())
	}, 10*time.Second, 20*time.Millisecond).Should(Succeed())
	// Let the retry interval pass, and wake the controller.
	h.clock.advance(31 * time.Second)
	h.patchSecret("creds", map[string]string{"apiKey": "k", "poke": "1"})

	o := h.ready("acme")
	// The retry read neither customers (finished in the failed sync) nor
	// the product pages it had written.
	retry := h.erp.log()[failedAt:]
	g.Expect(retry).NotTo(BeEmpty())
	for _, req := range retry {
		g.Expect(req.Entity).To(Equal(model.KindProduct), "customers finished in the failed sync: not read again")
		g.Expect(req.Page).To(BeNumerically(">=", 3))
	}
	g.Expect(o.Status.ConsecutiveFailures).To(BeZero(), "a success resets the back-off")
	// lastSync describes the whole import, not the retry's part of it.
	g.Expect(o.Status.Import).To(BeNil())
	g.Expect(o.Status.LastSync.Mode).To(Equal(erpv1.SyncModeFull))
	g.Expect(o.Status.LastSync.APICalls).To(Equal(h.erp.calls.Load()))
	g.Expect(o.Status.LastSync.Records).To(Equal(int64(26)))
	g.Expect(o.Status.LastSync.Upserted).To(Equal(int64(26)))
	g.Expect(o.Status.LastSync.Syncs).To(Equal(int64(2)))
	g.Expect(meta.FindStatusCondition(o.Status.Conditions, erpv1.ReadyCondition).Message).
		To(HavePrefix("full import read 26 records (26 new or changed) with 5 API calls in "))
	g.Expect(h.sink.Len()).To(Equal(26))
}

func TestFirstImportIsNotCutByTheRoutineTimeout(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 15, 0, 0, 0, time.UTC)
	explicit := &metav1.Duration{Duration: 10 * time.Minute}
	cases := []struct {
		name string
		obj  erpv1.ErpSync
		want time.Duration
	}{
		{name: "first import: no bound", want: 0},
		{name: "first import: an explicit timeout", obj: erpv1.ErpSync{Spec: erpv1.ErpSyncSpec{Timeout: explicit}}, want: 10 * time.Minute},
		{name: "an import under way (full resync, source change): no bound", obj: erpv1.ErpSync{Status: erpv1.ErpSyncStatus{
			LastSuccessfulSyncEnd: mtime(t0), Import: &erpv1.ImportStatus{StartedAt: metav1.NewTime(t0)}}}, want: 0},
		{name: "routine sync: the interval", obj: erpv1.ErpSync{Spec: erpv1.ErpSyncSpec{Interval: metav1.Duration{Duration: 15 * time.Minute}},
			Status: erpv1.ErpSyncStatus{LastSuccessfulSyncEnd: mtime(t0)}}, want: 15 * time.Minute},
		{name: "routine sync: the default interval", obj: erpv1.ErpSync{Status: erpv1.ErpSyncStatus{LastSuccessfulSyncEnd: mtime(t0)}}, want: erpv1.DefaultInterval},
		{name: "routine sync: an explicit timeout", obj: erpv1.ErpSync{Spec: erpv1.ErpSyncSpec{Timeout: explicit},
			Status: erpv1.ErpSyncStatus{LastSuccessfulSyncEnd: mtime(t0)}}, want: 10 * time.Minute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := syncTimeout(&tc.obj); got != tc.want {
				t.Fatalf("syncTimeout() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSetAsideAndIncompletePassesAreReported(t *testing.T) {
	h := newHarness(t)
	g := h.g
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.erp.set(func(f *fakeERP) { f.setAside = map[string]bool{"P0003": true, "P0017": true} })
	h.startManager()
	h.erpsync("acme")
	o := h.ready("acme")

	// Two products set aside: the rest landed, the run succeeded, and
	// status, Ready, an event and a gauge say so.
	g.Expect(h.sink.Len()).To(Equal(24))
	p := entityStatus(o, model.KindProduct)
	g.Expect(p).NotTo(BeNil())
	g.Expect(p.SetAside).To(Equal(int64(2)))
	g.Expect(p.SetAsideIDs).To(ConsistOf("P0003", "P0017"))
	g.Expect(p.SetAsideSince).NotTo(BeNil())
	g.Expect(o.Status.LastSync.SetAside).To(Equal(int64(2)))
	ready := meta.FindStatusCondition(o.Status.Conditions, erpv1.ReadyCondition)
	g.Expect(ready.Reason).To(Equal(erpv1.ReasonSucceeded))
	g.Expect(ready.Message).To(HaveSuffix("; 2 records set aside (products: 2), see status.entities"))
	g.Eventually(func(g Gomega) {
		evs := h.eventsWith("acme", "RecordsSetAside")
		g.Expect(evs).NotTo(BeEmpty())
		g.Expect(evs[0]).To(HavePrefix("Warning: 2 documents the connector could not map are set aside"))
		g.Expect(evs[0]).To(ContainSubstring("products: 2 (P0003, P0017)"))
	}, 10*time.Second).Should(Succeed())
	v, ok := gauge(g, "erpsync_set_aside_records", h.ns, "acme", string(model.KindProduct))
	g.Expect(ok).To(BeTrue())
	g.Expect(v).To(Equal(2.0))

	// Now they map, but the vendor's count claims 5 products more than its
	// list holds: every pass reads short, the watermark is kept, and Ready
	// says so with its own reason.
	h.erp.set(func(f *fakeERP) { f.setAside, f.overstate = nil, 5 })
	h.update("acme", func(o *erpv1.ErpSync) { o.Annotations = map[string]string{erpv1.FullResyncAtAnnotation: "f1"} })
	o = h.readyWhen("acme", func(o *erpv1.ErpSync) bool { return o.Status.LastHandledFullResyncAt == "f1" })
	g.Expect(h.sink.Len()).To(Equal(26))
	p = entityStatus(o, model.KindProduct)
	g.Expect(p.SetAside).To(BeZero())
	g.Expect(p.Incomplete).To(ContainSubstring("25 distinct documents of the 30"))
	g.Expect(entityStatus(o, model.KindCustomer).Incomplete).To(BeEmpty())
	g.Expect(o.Status.LastSync.Incomplete).To(Equal([]string{string(model.KindProduct)}))
	ready = meta.FindStatusCondition(o.Status.Conditions, erpv1.ReadyCondition)
	g.Expect(ready.Status).To(Equal(metav1.ConditionTrue))
	g.Expect(ready.Reason).To(Equal(erpv1.ReasonIncomplete))
	g.Expect(ready.Message).To(ContainSubstring("; incomplete: products read fewer distinct records than the vendor reported"))
	g.Eventually(func() []string { return h.eventsWith("acme", "IncompletePass") }, 10*time.Second).
		Should(ContainElement(And(HavePrefix("Warning: "), ContainSubstring("products: the pass read 25 distinct documents of the 30"))))
	v, _ = gauge(g, "erpsync_entity_incomplete", h.ns, "acme", string(model.KindProduct))
	g.Expect(v).To(Equal(1.0))
	v, _ = gauge(g, "erpsync_set_aside_records", h.ns, "acme", string(model.KindProduct))
	g.Expect(v).To(Equal(0.0))
}

func TestRestartResumesAKeysetPassAtItsCursor(t *testing.T) {
	h := newHarness(t)
	g := h.g
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.erp.set(func(f *fakeERP) { f.keyset, f.block, f.blockFromPage = true, make(chan struct{}), 2 })
	h.startManager()
	h.erpsync("acme")
	h.waitCheckpoint("acme", model.KindProduct, 1)
	cp := entityStatus(h.get("acme"), model.KindProduct).Checkpoint
	g.Expect(cp.Cursor).To(Equal("after:P0009"))
	g.Expect(cp.Distinct).To(Equal(int64(10)))
	h.stopManager()

	calls := len(h.erp.log())
	close(h.erp.block)
	h.startManager()
	h.ready("acme")
	var products []connectors.PageRequest
	for _, req := range h.erp.log()[calls:] {
		if req.Entity == model.KindProduct {
			products = append(products, req)
		}
	}
	g.Expect(products).NotTo(BeEmpty())
	g.Expect(products[0].Page).To(Equal(2))
	g.Expect(products[0].Cursor).To(Equal("after:P0009"), "the pass continues at the checkpointed cursor")
	g.Expect(h.sink.Len()).To(Equal(26))
}
