package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
)

// Durable company claims.
//
// The claim of a company is a coordination.k8s.io Lease in the claim
// namespace (the manager's own), named from a hash of the companyId (any
// string is safe and the name reveals nothing), labelled ClaimLabel, whose
// spec.holderIdentity is the owning namespace and whose ClaimOwnerUIDAnnotation
// is the UID of the owning ErpSync that last confirmed it. It holds nothing
// else: no companyId, no tenant data. It has no lease duration: a claim
// does not expire, it is released.
//
// Every rule leaves the decision to the API server:
//   - no record: the ErpSync claims it with a create, which only one
//     creator wins (AlreadyExists sends the others to read the winner's);
//   - the record names the ErpSync's namespace: the ErpSync confirms it
//     with an update under the record's resourceVersion (renewTime, owner
//     UID) before it may sync; a conflict or a vanished record is read again;
//   - the record names another namespace: if that namespace still has an
//     ErpSync of the company that is not being deleted (read from the API
//     server, not the cache), the claim is refused; otherwise the record is
//     released, deleted with a precondition on its UID and resourceVersion,
//     and claimed again by create.
//
// So an owner never starts a sync on a claim that was released meanwhile:
// a release deletes the version of the record it read, and every owner
// reconcile replaces that version before it syncs; if the owner's update
// came first the delete fails, and the releaser reads again and sees the
// owner's ErpSync (created before its update); if the delete came first
// the owner's update fails and it claims again by create, which only one
// namespace wins.
//
// A tenant cannot forge or remove a record: tenants may write only their
// own namespace, and the records live in the manager's (config/rbac grants
// the manager, and only it, Leases there).
//
// Existing installations migrate on the first reconcile of each company:
// with no record, an ErpSync that has already synced keeps its company (the
// record is written for the oldest synced ErpSync of the company in the
// cache, by the old rule); when none has synced, the first to claim wins.

// ClaimLabel marks the Leases that are company claims.
const ClaimLabel = "erpsync.io/company-claim"

// ClaimOwnerUIDAnnotation holds the UID of the owning ErpSync that last
// confirmed a company claim.
const ClaimOwnerUIDAnnotation = "erpsync.io/owner-uid"

// claimAttempts bounds the read-decide-write rounds of one reconcile; the
// rounds repeat only when another writer changed the record meanwhile.
const claimAttempts = 5

// The claims live in the manager's own namespace: a namespaced Role.
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=system,resources=leases,verbs=get;create;update;delete

// claimRecheck is how often a refused claim is checked again.
const claimRecheck = 10 * time.Minute

func (r *ErpSyncReconciler) claimNamespace() string { return r.ClaimNamespace }

// ClaimName is the name of the Lease that holds the claim of company: a
// hash, so that any companyId gives a valid name that reveals nothing.
func ClaimName(company string) string {
	sum := sha256.Sum256([]byte(company))
	return "company-claim-" + hex.EncodeToString(sum[:20])
}

// errClaimChanged asks for another round: the record changed under us.
var errClaimChanged = errors.New("the company claim changed meanwhile")

// claimedOwner returns the namespace that owns obj's company according to
// its claim record in namespace ns, creating, confirming or releasing the
// record as the rules above say.
func (r *ErpSyncReconciler) claimedOwner(ctx context.Context, ns string, obj *erpv1.ErpSync) (string, error) {
	key := types.NamespacedName{Namespace: ns, Name: ClaimName(obj.Spec.CompanyID)}
	for range claimAttempts {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		owner, err := r.claimRound(ctx, key, obj)
		if errors.Is(err, errClaimChanged) {
			continue
		}
		return owner, err
	}
	return "", fmt.Errorf("claiming company %q: the claim record kept changing (%d attempts); retrying later", shown(obj.Spec.CompanyID, 128), claimAttempts)
}

// claimRound is one read-decide-write round of claimedOwner; it returns
// errClaimChanged when the record changed under it.
func (r *ErpSyncReconciler) claimRound(ctx context.Context, key types.NamespacedName, obj *erpv1.ErpSync) (string, error) {
	logger := log.FromContext(ctx)
	var lease coordinationv1.Lease
	err := r.APIReader.Get(ctx, key, &lease)
	if apierrors.IsNotFound(err) {
		return r.createClaim(ctx, key, obj)
	}
	if err != nil {
		return "", fmt.Errorf("reading the claim of company %q: %w", shown(obj.Spec.CompanyID, 128), err)
	}
	holder := ""
	if lease.Spec.HolderIdentity != nil {
		holder = *lease.Spec.HolderIdentity
	}
	if holder == obj.Namespace && lease.Annotations[ClaimOwnerUIDAnnotation] == string(obj.UID) {
		// Confirmed by this very ErpSync before: a releaser that read
		// this version listed the namespace live and saw it, so it does
		// not release. No write.
		return holder, nil
	}
	if holder == obj.Namespace {
		// Confirm: replace the version a releaser may have read (one that
		// listed the namespace before this ErpSync existed).
		now := metav1.NewMicroTime(r.Clock.Now())
		lease.Spec.RenewTime = &now
		if lease.Annotations == nil {
			lease.Annotations = map[string]string{}
		}
		lease.Annotations[ClaimOwnerUIDAnnotation] = string(obj.UID)
		if err := r.Update(ctx, &lease, client.FieldOwner(fieldOwner)); err != nil {
			if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
				return "", errClaimChanged
			}
			return "", fmt.Errorf("confirming the claim of company %q: %w", shown(obj.Spec.CompanyID, 128), err)
		}
		return holder, nil
	}
	if holder != "" {
		held, err := r.namespaceHoldsCompany(ctx, holder, obj.Spec.CompanyID)
		if err != nil {
			if apierrors.IsForbidden(err) {
				// Never take a company on a view we may not have: the
				// holder keeps it.
				logger.Info("cannot list the ErpSyncs of the namespace holding a company claim: the claim stands", "owner", holder)
				return holder, nil
			}
			return "", fmt.Errorf("checking the claim of company %q: %w", shown(obj.Spec.CompanyID, 128), err)
		}
		if held {
			return holder, nil
		}
	}
	// The holder has no ErpSync of the company left (or the record names
	// no one): release this version of the record, then claim again.
	uid, rv := lease.UID, lease.ResourceVersion
	if err := r.Delete(ctx, &lease, client.Preconditions{UID: &uid, ResourceVersion: &rv}); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return "", errClaimChanged
		}
		return "", fmt.Errorf("releasing the claim of company %q: %w", shown(obj.Spec.CompanyID, 128), err)
	}
	logger.Info("released a company claim whose namespace has no ErpSync of it left", "company", shown(obj.Spec.CompanyID, 128), "previousOwner", holder)
	return "", errClaimChanged
}

// createClaim writes the claim record of obj's company: for the namespace
// of the oldest ErpSync of the company that has synced (migration from the
// cache rule), else for obj's namespace. The API server admits one create.
func (r *ErpSyncReconciler) createClaim(ctx context.Context, key types.NamespacedName, obj *erpv1.ErpSync) (string, error) {
	owner, err := r.oldestClaimant(ctx, obj, true)
	if err != nil {
		return "", err
	}
	if owner == nil {
		owner = obj
	}
	holder := owner.Namespace
	now := metav1.NewMicroTime(r.Clock.Now())
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   key.Namespace,
			Name:        key.Name,
			Labels:      map[string]string{ClaimLabel: "true", "app.kubernetes.io/managed-by": "erpsync-operator"},
			Annotations: map[string]string{ClaimOwnerUIDAnnotation: string(owner.UID)},
		},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, AcquireTime: &now, RenewTime: &now},
	}
	if err := r.Create(ctx, lease, client.FieldOwner(fieldOwner)); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return "", errClaimChanged
		}
		return "", fmt.Errorf("claiming company %q: %w", shown(obj.Spec.CompanyID, 128), err)
	}
	log.FromContext(ctx).Info("company claimed", "company", shown(obj.Spec.CompanyID, 128), "owner", holder, "migrated", owner != obj)
	return holder, nil
}

// namespaceHoldsCompany reports whether namespace ns has an ErpSync of
// company that is not being deleted, read from the API server (the cache
// may lag, and may not watch ns at all), a page at a time.
func (r *ErpSyncReconciler) namespaceHoldsCompany(ctx context.Context, ns, company string) (bool, error) {
	opts := []client.ListOption{client.InNamespace(ns), client.Limit(500)}
	for {
		var list erpv1.ErpSyncList
		if err := r.APIReader.List(ctx, &list, opts...); err != nil {
			return false, fmt.Errorf("listing the ErpSyncs of namespace %q: %w", ns, err)
		}
		for i := range list.Items {
			if o := &list.Items[i]; o.Spec.CompanyID == company && o.DeletionTimestamp.IsZero() {
				return true, nil
			}
		}
		if list.Continue == "" {
			return false, nil
		}
		opts = []client.ListOption{client.InNamespace(ns), client.Limit(500), client.Continue(list.Continue)}
	}
}
