package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
)

// companyIndex indexes ErpSyncs by spec.companyId, across namespaces.
const companyIndex = ".spec.companyId"

// Company claims. Every record an ErpSync writes carries its companyId, and
// the CRM keeps the newest version of each record: an ErpSync that writes
// another company's id could overwrite that company's rows. So a companyId
// belongs to one namespace. An ErpSync of that company in any other
// namespace never syncs: Ready=False and Stalled=True with the reason
// CompanyClaimed, naming the owning namespace and nothing else; no Secret
// is read and no connector is built.
//
// With a claim namespace configured (UseClaimNamespace; the manager's own
// namespace in a deployment), ownership is a durable claim record there:
// see claim_record.go. The API server decides every race (create-if-absent,
// updates and deletes under the record's resourceVersion), so two ErpSyncs
// created in the same second, or seen by different shards, never both own
// the company, and the claim survives restarts.
//
// Without one (local runs), ownership is decided from the cache: the
// namespace of the oldest ErpSync that names the company (one that has
// synced first, then by creationTimestamp, then UID, among the ErpSyncs
// this manager watches that are not being deleted). Two ErpSyncs created
// in the same second before either synced are then ordered by UID, and
// managers that watch different namespaces may disagree.
//
// Within the owning namespace several ErpSyncs may name the company (one
// company may run two ERPs, or split its entities): a namespace is one
// tenant, and it can overwrite only its own company's rows.
//
// When the owning namespace's last ErpSync of the company is deleted, the
// claim passes to an ErpSync of another namespace. The CRM keeps no record
// of who wrote a company's rows, so the operator cannot do better; a
// platform team that wants ownership pinned labels each namespace with the
// companies it may claim and enforces it with the ValidatingAdmissionPolicy
// in config/.

// companyOwner returns the namespace that owns obj's companyId: the one in
// its durable claim record (claiming it for obj's namespace when there is
// none), or without a claim namespace the one of the oldest ErpSync naming
// it in the cache.
func (r *ErpSyncReconciler) companyOwner(ctx context.Context, obj *erpv1.ErpSync) (string, error) {
	if ns := r.claimNamespace(); ns != "" {
		return r.claimedOwner(ctx, ns, obj)
	}
	oldest, err := r.oldestClaimant(ctx, obj, false)
	if err != nil {
		return "", err
	}
	return oldest.Namespace, nil
}

// oldestClaimant returns the oldest ErpSync of obj's company in the cache,
// not being deleted, obj included; with syncedOnly, among those that have
// synced (nil when none has).
func (r *ErpSyncReconciler) oldestClaimant(ctx context.Context, obj *erpv1.ErpSync, syncedOnly bool) (*erpv1.ErpSync, error) {
	var list erpv1.ErpSyncList
	if err := r.List(ctx, &list, client.MatchingFields{companyIndex: obj.Spec.CompanyID}); err != nil {
		return nil, fmt.Errorf("listing the ErpSyncs of company %q: %w", shown(obj.Spec.CompanyID, 128), err)
	}
	var oldest *erpv1.ErpSync
	consider := func(o *erpv1.ErpSync) {
		if o.Spec.CompanyID != obj.Spec.CompanyID || !o.DeletionTimestamp.IsZero() || (syncedOnly && o.Status.LastSyncStart == nil) {
			return
		}
		if oldest == nil || olderThan(o, oldest) {
			oldest = o
		}
	}
	consider(obj)
	for i := range list.Items {
		consider(&list.Items[i])
	}
	return oldest, nil
}

// olderThan orders the claims of a company: an ErpSync that has synced
// (only an owner ever starts a sync) before one that has not, so that an
// ErpSync created in the same second as the owner cannot take the company
// over once the owner has started; then by creation timestamp (whole
// seconds), then by UID, so that every manager agrees on the order.
func olderThan(a, b *erpv1.ErpSync) bool {
	if sa, sb := a.Status.LastSyncStart != nil, b.Status.LastSyncStart != nil; sa != sb {
		return sa
	}
	ta, tb := a.CreationTimestamp.Time, b.CreationTimestamp.Time
	if !ta.Equal(tb) {
		return ta.Before(tb)
	}
	return strings.Compare(string(a.UID), string(b.UID)) < 0
}

// claimedMessage is the condition message of a refused claim: the owning
// namespace only.
func claimedMessage(company, owner string) string {
	return fmt.Sprintf("company %q is claimed by another namespace (%q); this ErpSync does not sync while that claim stands", shown(company, 128), owner)
}

// markClaimed records that obj's company is claimed by owner's namespace:
// Ready=False and Stalled=True (CompanyClaimed), nothing scheduled.
func (r *ErpSyncReconciler) markClaimed(ctx context.Context, obj *erpv1.ErpSync, owner string) error {
	msg := claimedMessage(obj.Spec.CompanyID, owner)
	ready := meta.FindStatusCondition(obj.Status.Conditions, erpv1.ReadyCondition)
	if ready != nil && ready.Reason == erpv1.ReasonCompanyClaimed && ready.Message == msg && ready.ObservedGeneration == obj.Generation &&
		meta.IsStatusConditionTrue(obj.Status.Conditions, erpv1.StalledCondition) && obj.Status.NextSyncAt == nil {
		return nil
	}
	patch := client.MergeFrom(obj.DeepCopy())
	obj.Status.Phase = erpv1.PhaseFailed
	obj.Status.NextSyncAt = nil
	obj.Status.Progress = nil
	obj.Status.ObservedGeneration = obj.Generation
	removeCondition(obj, erpv1.ReconcilingCondition)
	setCondition(obj, erpv1.ReadyCondition, metav1.ConditionFalse, erpv1.ReasonCompanyClaimed, msg)
	setCondition(obj, erpv1.StalledCondition, metav1.ConditionTrue, erpv1.ReasonCompanyClaimed, msg)
	if err := r.Status().Patch(ctx, obj, patch, client.FieldOwner(fieldOwner)); err != nil {
		return fmt.Errorf("recording the refused company claim: %w", err)
	}
	exportConditions(obj)
	log.FromContext(ctx).Info("company claimed by another namespace: not syncing", "company", shown(obj.Spec.CompanyID, 128), "owner", owner)
	r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, erpv1.ReasonCompanyClaimed, "Claim", "%s", msg)
	return nil
}

// sameCompany maps a deleted ErpSync to the ErpSyncs of its company in
// other namespaces, so that the claim passes at once.
func (r *ErpSyncReconciler) sameCompany(ctx context.Context, o client.Object) []reconcile.Request {
	e, ok := o.(*erpv1.ErpSync)
	if !ok {
		return nil
	}
	var list erpv1.ErpSyncList
	if err := r.List(ctx, &list, client.MatchingFields{companyIndex: e.Spec.CompanyID}); err != nil {
		log.FromContext(ctx).Error(err, "listing the ErpSyncs of a deleted ErpSync's company")
		return nil
	}
	var out []reconcile.Request
	for _, x := range list.Items {
		if x.Namespace != e.Namespace || x.Name != e.Name {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: x.Namespace, Name: x.Name}})
		}
	}
	return out
}

// deletedOnly passes only deletions.
var deletedOnly = predicate.Funcs{
	CreateFunc: func(event.CreateEvent) bool { return false },
	UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectNew != nil && !e.ObjectNew.GetDeletionTimestamp().IsZero()
	},
	DeleteFunc:  func(event.DeleteEvent) bool { return true },
	GenericFunc: func(event.GenericEvent) bool { return false },
}
