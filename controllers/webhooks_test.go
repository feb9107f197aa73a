package controllers

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

func withWebhooks(o *erpv1.ErpSync) {
	o.Spec.Webhooks = &erpv1.WebhooksSpec{Enabled: true}
}

// deliver adds documents to status.webhooks.pending as the receiver does
// (optimistic concurrency, union).
func (h *harness) deliver(name string, targets ...erpv1.WebhookTarget) {
	h.g.Eventually(func() error {
		o := h.get(name)
		base := o.DeepCopy()
		if o.Status.Webhooks == nil {
			o.Status.Webhooks = &erpv1.WebhookStatus{}
		}
		w := o.Status.Webhooks
		w.Pending = append(w.Pending, targets...)
		w.Accepted += int64(len(targets))
		now := metav1.Now()
		w.LastEventAt = &now
		if w.PendingSince == nil {
			w.PendingSince = &now
		}
		return k8s.Status().Patch(context.Background(), o, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
	}, 10*time.Second).Should(Succeed())
}

func (h *harness) webhookCondition(name string) *metav1.Condition {
	return meta.FindStatusCondition(h.get(name).Status.Conditions, erpv1.WebhooksReadyCondition)
}

func TestWebhooksRegisterAndTargetedSyncsReadOnlyWhatEventsName(t *testing.T) {
	h := newHarness(t)
	g := h.g
	h.webhookURL = "https://hooks.example.com/"
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.startManager()
	created := h.erpsync("acme", withWebhooks)

	// The first sync registers the subscription at the ErpSync's own path
	// and keeps the token the vendor returned in the webhook Secret, owned
	// by the ErpSync.
	first := h.readyWhen("acme", func(o *erpv1.ErpSync) bool { return o.Status.Webhooks.GetSubscription() != nil })
	wantURL := "https://hooks.example.com/webhooks/unleashed/" + string(created.UID)
	g.Expect(first.Status.Webhooks.Path).To(Equal("/webhooks/unleashed/" + string(created.UID)))
	g.Expect(first.Status.Webhooks.Subscription.URL).To(Equal(wantURL))
	g.Expect(first.Status.Webhooks.Subscription.Subscriptions).To(Equal(1))
	cond := meta.FindStatusCondition(first.Status.Conditions, erpv1.WebhooksReadyCondition)
	g.Expect(cond).NotTo(BeNil())
	g.Expect(cond.Status).To(Equal(metav1.ConditionTrue), cond.Message)
	var sec corev1.Secret
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: h.ns, Name: connectors.WebhookSecretName("acme")}, &sec)).To(Succeed())
	g.Expect(sec.Data[connectors.WebhookKeyCredential]).To(HaveLen(64))
	g.Expect(string(sec.Data[connectors.WebhookKeyToken])).To(Equal("tok-1"))
	g.Expect(metav1.IsControlledBy(&sec, first)).To(BeTrue())
	nextAt := first.Status.NextSyncAt.DeepCopy()
	listCalls := len(h.erp.log())

	// Three products change and webhooks name them: one targeted sync
	// reads exactly those, by id, without a list request, and leaves the
	// schedule alone.
	h.erp.touch(3)
	h.deliver("acme", erpv1.WebhookTarget{Entity: "products", ID: "P0000"}, erpv1.WebhookTarget{Entity: "products", ID: "P0001"},
		erpv1.WebhookTarget{Entity: "products", ID: "P0002"}, erpv1.WebhookTarget{Entity: "products", ID: "P0001"})
	var after *erpv1.ErpSync
	g.Eventually(func(g Gomega) {
		after = h.get("acme")
		g.Expect(after.Status.Webhooks.LastTargetedSync).NotTo(BeNil())
		g.Expect(after.Status.Webhooks.Pending).To(BeEmpty())
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
	last := after.Status.Webhooks.LastTargetedSync
	g.Expect(last.Error).To(BeEmpty())
	g.Expect(last.Targets).To(Equal(int64(3)), "a duplicate is read once")
	g.Expect(last.Upserted).To(Equal(int64(3)))
	g.Expect(last.APICalls).To(Equal(int64(1)))
	g.Expect(after.Status.Webhooks.PendingSince).To(BeNil())
	g.Expect(after.Status.Webhooks.TargetedSyncs).To(Equal(int64(1)))
	g.Expect(h.erp.log()).To(HaveLen(listCalls), "no list request")
	g.Expect(after.Status.NextSyncAt.Equal(nextAt)).To(BeTrue(), "the poll's schedule did not move")
	rec, ok := h.sink.Get(model.Key{Company: "ACME-acme", Vendor: "unleashed", Kind: model.KindProduct, VendorID: "P0001"})
	g.Expect(ok).To(BeTrue())
	g.Expect(rec.Data.(*model.Product).Name).To(Equal("Product P0001 rev 1"))

	// A delete event for a product the ERP no longer has: a tombstone
	// learned from the webhook. An update event for a product that is gone
	// deletes nothing.
	gone := h.erp.remove(2)
	h.deliver("acme", erpv1.WebhookTarget{Entity: "products", ID: gone[0], Deleted: true}, erpv1.WebhookTarget{Entity: "products", ID: gone[1]})
	g.Eventually(func() int64 { return h.get("acme").Status.Webhooks.TargetedSyncs }, 20*time.Second, 50*time.Millisecond).Should(Equal(int64(2)))
	ts, ok := h.sink.Tombstone(model.Key{Company: "ACME-acme", Vendor: "unleashed", Kind: model.KindProduct, VendorID: gone[0]})
	g.Expect(ok).To(BeTrue())
	g.Expect(ts.Via).To(Equal(model.DeletedByWebhook))
	_, ok = h.sink.Tombstone(model.Key{Company: "ACME-acme", Vendor: "unleashed", Kind: model.KindProduct, VendorID: gone[1]})
	g.Expect(ok).To(BeFalse(), "an update event never deletes")
	g.Expect(h.get("acme").Status.Webhooks.LastTargetedSync.Deleted).To(Equal(int64(1)))

	// The vendor disables the subscription: the next check (an hour on)
	// switches it back on and says so; one that stays disabled makes
	// WebhooksReady False.
	h.erp.set(func(f *fakeERP) { f.hooks.disabled = true })
	h.clock.advance(61 * time.Minute)
	h.update("acme", func(o *erpv1.ErpSync) { o.Annotations = map[string]string{erpv1.RequestedAtAnnotation: "1"} })
	re := h.readyWhen("acme", func(o *erpv1.ErpSync) bool { return o.Status.LastHandledReconcileAt == "1" })
	g.Expect(re.Status.Webhooks.Subscription.Reenabled).To(Equal(int64(1)))
	g.Expect(meta.IsStatusConditionTrue(re.Status.Conditions, erpv1.WebhooksReadyCondition)).To(BeTrue())
	g.Eventually(func() []string {
		var out []string
		for _, e := range h.events("acme") {
			out = append(out, e.Reason)
		}
		return out
	}, 10*time.Second, 50*time.Millisecond).Should(ContainElement("WebhooksReenabled"))

	h.erp.set(func(f *fakeERP) { f.hooks.disabled, f.hooks.stuck = true, true })
	h.clock.advance(61 * time.Minute)
	h.update("acme", func(o *erpv1.ErpSync) { o.Annotations[erpv1.RequestedAtAnnotation] = "2" })
	h.readyWhen("acme", func(o *erpv1.ErpSync) bool { return o.Status.LastHandledReconcileAt == "2" })
	cond = h.webhookCondition("acme")
	g.Expect(cond.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(cond.Reason).To(Equal(erpv1.ReasonWebhooksDisabled))
	g.Expect(meta.IsStatusConditionTrue(h.get("acme").Status.Conditions, erpv1.ReadyCondition)).To(BeTrue(), "polling goes on: still Ready")

	// Webhooks off: the subscription is removed, the Secret deleted and
	// the status and condition go.
	h.update("acme", func(o *erpv1.ErpSync) { o.Spec.Webhooks = nil })
	g.Eventually(func(g Gomega) {
		o := h.get("acme")
		g.Expect(o.Status.Webhooks).To(BeNil())
		g.Expect(meta.FindStatusCondition(o.Status.Conditions, erpv1.WebhooksReadyCondition)).To(BeNil())
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
	h.erp.set(func(f *fakeERP) { g.Expect(f.hooks.removed).To(ContainElement(wantURL)) })
	err := k8s.Get(context.Background(), client.ObjectKey{Namespace: h.ns, Name: connectors.WebhookSecretName("acme")}, &sec)
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the webhook Secret is deleted: %v", err)
}

func TestWebhookOverflowRunsOneIncrementalSync(t *testing.T) {
	h := newHarness(t)
	g := h.g
	h.webhookURL = "https://hooks.example.com"
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.startManager()
	h.erpsync("acme", withWebhooks)
	first := h.ready("acme")
	ends := first.Status.LastSyncEnd

	h.erp.touch(5)
	h.g.Eventually(func() error {
		o := h.get("acme")
		base := o.DeepCopy()
		o.Status.Webhooks.Overflow = []string{"products"}
		return k8s.Status().Patch(context.Background(), o, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
	}, 10*time.Second).Should(Succeed())
	h.readyWhen("acme", func(o *erpv1.ErpSync) bool {
		return !o.Status.LastSyncEnd.Equal(ends) || o.Status.LastSync.Upserted == 5
	})
	g.Eventually(func() []string { return h.get("acme").Status.Webhooks.Overflow }, 10*time.Second, 50*time.Millisecond).Should(BeEmpty())
	second := h.get("acme")
	g.Expect(second.Status.LastSync.Mode).To(Equal(erpv1.SyncModeIncremental))
	g.Expect(second.Status.LastSync.Upserted).To(Equal(int64(5)))
	g.Expect(meta.FindStatusCondition(second.Status.Conditions, erpv1.ReconcilingCondition)).To(BeNil(), "a routine sync")
}

func TestWebhooksWithoutPublicURLSaySo(t *testing.T) {
	h := newHarness(t)
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.startManager()
	h.erpsync("acme", withWebhooks)
	o := h.readyWhen("acme", func(o *erpv1.ErpSync) bool {
		return meta.FindStatusCondition(o.Status.Conditions, erpv1.WebhooksReadyCondition) != nil
	})
	c := meta.FindStatusCondition(o.Status.Conditions, erpv1.WebhooksReadyCondition)
	h.g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
	h.g.Expect(c.Reason).To(Equal(erpv1.ReasonWebhooksNoURL))
	h.erp.set(func(f *fakeERP) { h.g.Expect(f.hooks.ensures).To(Equal(0)) })
}

func TestSilentWebhooksAreReported(t *testing.T) {
	h := newHarness(t)
	g := h.g
	h.webhookURL = "https://hooks.example.com"
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.startManager()
	h.erpsync("acme", withWebhooks)
	h.readyWhen("acme", func(o *erpv1.ErpSync) bool {
		return meta.IsStatusConditionTrue(o.Status.Conditions, erpv1.WebhooksReadyCondition)
	})
	poll := func(token string) *erpv1.ErpSync {
		h.update("acme", func(o *erpv1.ErpSync) {
			if o.Annotations == nil {
				o.Annotations = map[string]string{}
			}
			o.Annotations[erpv1.RequestedAtAnnotation] = token
		})
		return h.readyWhen("acme", func(o *erpv1.ErpSync) bool { return o.Status.LastHandledReconcileAt == token })
	}
	// A poll that finds nothing new says nothing; customers are not
	// announced, so their changes do not count either.
	o := poll("1")
	g.Expect(o.Status.Webhooks.UnannouncedPolls).To(BeZero())
	// Two polls in a row find product changes with no delivery: Silent.
	h.erp.touch(2)
	o = poll("2")
	g.Expect(o.Status.Webhooks.UnannouncedPolls).To(Equal(int32(1)))
	g.Expect(h.webhookCondition("acme").Status).To(Equal(metav1.ConditionTrue), "one poll is not enough")
	h.erp.touch(2)
	poll("3")
	c := h.webhookCondition("acme")
	g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(c.Reason).To(Equal(erpv1.ReasonWebhooksSilent))
	g.Expect(meta.IsStatusConditionTrue(h.get("acme").Status.Conditions, erpv1.ReadyCondition)).To(BeTrue())
	// A delivery arrives (and is read); the next poll clears it.
	h.erp.touch(1)
	h.deliver("acme", erpv1.WebhookTarget{Entity: "products", ID: "P0000"})
	g.Eventually(func() int64 { return h.get("acme").Status.Webhooks.TargetedSyncs }, 20*time.Second, 50*time.Millisecond).Should(Equal(int64(1)))
	poll("4")
	c = h.webhookCondition("acme")
	g.Expect(c.Status).To(Equal(metav1.ConditionTrue), c.Message)
	g.Expect(h.get("acme").Status.Webhooks.UnannouncedPolls).To(BeZero())
}
