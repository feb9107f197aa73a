package receiver

import (
	"context"
	"fmt"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors"
)

// Field indexes of ErpSyncs with spec.webhooks.enabled, registered by
// IndexFields on the cache the CacheDirectory reads.
const (
	// IndexRoute: metadata.uid.
	IndexRoute = "erpsync.io/webhook-route"
	// IndexTenant: "<spec.connector.type>/<spec.connector.tenantId>"
	// (normalised), for ErpSyncs with a tenantId.
	IndexTenant = "erpsync.io/webhook-tenant"
	// IndexType: spec.connector.type.
	IndexType = "erpsync.io/webhook-type"
)

// IndexFields registers the indexes the CacheDirectory needs on indexer
// (mgr.GetFieldIndexer(), before the manager starts).
func IndexFields(ctx context.Context, indexer client.FieldIndexer) error {
	for name, f := range map[string]func(*erpv1.ErpSync) string{
		IndexRoute: func(e *erpv1.ErpSync) string { return string(e.UID) },
		IndexTenant: func(e *erpv1.ErpSync) string {
			t := NormalizeTenant(e.Spec.Connector.TenantID)
			if t == "" {
				return ""
			}
			return tenantKey(string(e.Spec.Connector.Type), t)
		},
		IndexType: func(e *erpv1.ErpSync) string { return string(e.Spec.Connector.Type) },
	} {
		err := indexer.IndexField(ctx, &erpv1.ErpSync{}, name, func(o client.Object) []string {
			e, ok := o.(*erpv1.ErpSync)
			if !ok || !webhooksOn(e) {
				return nil
			}
			if v := f(e); v != "" {
				return []string{v}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("indexing ErpSyncs by %s: %w", name, err)
		}
	}
	return nil
}

func tenantKey(typ, tenant string) string { return typ + "/" + tenant }

func webhooksOn(e *erpv1.ErpSync) bool {
	return e.Spec.Webhooks != nil && e.Spec.Webhooks.Enabled && e.DeletionTimestamp == nil
}

// SubscriberOf describes an ErpSync for the receiver.
func SubscriberOf(e *erpv1.ErpSync) Subscriber {
	d := erpv1.DefaultWebhookDebounce
	if e.Spec.Webhooks != nil && e.Spec.Webhooks.Debounce != nil {
		// The CRD bounds it; a bad value from elsewhere is clamped.
		d = min(max(e.Spec.Webhooks.Debounce.Duration, 100*time.Millisecond), time.Minute)
	}
	return Subscriber{
		Key:               types.NamespacedName{Namespace: e.Namespace, Name: e.Name},
		UID:               e.UID,
		Type:              string(e.Spec.Connector.Type),
		Tenant:            NormalizeTenant(e.Spec.Connector.TenantID),
		Debounce:          d,
		CredentialsSecret: e.Spec.Connector.CredentialsRef.Name,
	}
}

// CacheDirectory is a Directory on an informer cache with the indexes of
// IndexFields (the manager's cache).
type CacheDirectory struct {
	Reader client.Reader
}

var _ Directory = CacheDirectory{}

func (d CacheDirectory) list(ctx context.Context, index, value string) ([]Subscriber, error) {
	var l erpv1.ErpSyncList
	// The receiver only reads the objects: no copies.
	if err := d.Reader.List(ctx, &l, client.MatchingFields{index: value}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing ErpSyncs by %s: %w", index, err)
	}
	out := make([]Subscriber, 0, len(l.Items))
	for i := range l.Items {
		if webhooksOn(&l.Items[i]) {
			out = append(out, SubscriberOf(&l.Items[i]))
		}
	}
	return out, nil
}

// ByRoute implements Directory.
func (d CacheDirectory) ByRoute(ctx context.Context, vendor, route string) (Subscriber, bool, error) {
	subs, err := d.list(ctx, IndexRoute, route)
	if err != nil {
		return Subscriber{}, false, err
	}
	for _, s := range subs {
		if s.Type == vendor {
			return s, true, nil
		}
	}
	return Subscriber{}, false, nil
}

// ByTenant implements Directory.
func (d CacheDirectory) ByTenant(ctx context.Context, vendor, tenant string) ([]Subscriber, error) {
	return d.list(ctx, IndexTenant, tenantKey(vendor, NormalizeTenant(tenant)))
}

// AllOf implements Directory.
func (d CacheDirectory) AllOf(ctx context.Context, vendor string) ([]Subscriber, error) {
	return d.list(ctx, IndexType, vendor)
}

// SecretKeySource reads an ErpSync's keys from the API server (the
// manager's APIReader: Secrets are not cached). The credentials Secret
// must carry the label erpsync.io/credentials=true, as for a sync;
// without it there are no keys.
type SecretKeySource struct {
	Reader client.Reader
}

var _ KeySource = SecretKeySource{}

// Keys implements KeySource.
func (k SecretKeySource) Keys(ctx context.Context, s Subscriber) (map[string][]byte, error) {
	var cred corev1.Secret
	key := types.NamespacedName{Namespace: s.Key.Namespace, Name: s.CredentialsSecret}
	if err := k.Reader.Get(ctx, key, &cred); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("credentials Secret %s: %w", key, ErrNoKeys)
		}
		return nil, fmt.Errorf("reading credentials Secret %s: %w", key, err)
	}
	if cred.Labels[erpv1.CredentialsLabel] != erpv1.CredentialsLabelValue {
		return nil, fmt.Errorf("credentials Secret %s is not labelled %s=%s: %w", key, erpv1.CredentialsLabel, erpv1.CredentialsLabelValue, ErrNoKeys)
	}
	out := maps.Clone(cred.Data)
	if out == nil {
		out = map[string][]byte{}
	}
	var hook corev1.Secret
	hookKey := types.NamespacedName{Namespace: s.Key.Namespace, Name: connectors.WebhookSecretName(s.Key.Name)}
	switch err := k.Reader.Get(ctx, hookKey, &hook); {
	case apierrors.IsNotFound(err):
		// Not made yet (the vendor has not been subscribed).
	case err != nil:
		return nil, fmt.Errorf("reading webhook Secret %s: %w", hookKey, err)
	default:
		maps.Copy(out, hook.Data)
	}
	return out, nil
}

// StatusDispatcher writes a batch to the ErpSync's status.webhooks, where
// the controller takes the pending documents for a targeted sync. Both
// write with optimistic concurrency, so a batch is never lost between
// them: a conflict re-reads the object and applies the batch again.
type StatusDispatcher struct {
	// Reader reads the ErpSync afresh (the manager's APIReader), so that a
	// retry after a conflict sees the other writer's change.
	Reader client.Reader
	// Client writes the status.
	Client client.Client
	// Backoff between attempts after conflicts (default: 8 steps from
	// 10ms, doubling).
	Backoff *wait.Backoff
}

var _ Dispatcher = (*StatusDispatcher)(nil)

// FieldOwner is the field manager of the receiver's status writes.
const FieldOwner = "erpsync-webhook-receiver"

// Dispatch implements Dispatcher. A batch for an ErpSync that is gone,
// was re-created (another UID) or has webhooks off is dropped (nil).
func (d *StatusDispatcher) Dispatch(ctx context.Context, b Batch) error {
	backoff := wait.Backoff{Steps: 8, Duration: 10 * time.Millisecond, Factor: 2, Jitter: 0.2}
	if d.Backoff != nil {
		backoff = *d.Backoff
	}
	err := retry.RetryOnConflict(backoff, func() error {
		var e erpv1.ErpSync
		if err := d.Reader.Get(ctx, b.Subscriber.Key, &e); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("reading ErpSync %s: %w", b.Subscriber.Key, err)
		}
		if e.UID != b.Subscriber.UID || e.Spec.Webhooks == nil || !e.Spec.Webhooks.Enabled {
			return nil
		}
		base := e.DeepCopy()
		ApplyBatch(&e.Status, b)
		if err := d.Client.Status().Patch(ctx, &e, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}),
			client.FieldOwner(FieldOwner)); err != nil {
			return fmt.Errorf("writing the webhook status of ErpSync %s: %w", b.Subscriber.Key, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("dispatching webhook events: %w", err)
	}
	return nil
}

// ApplyBatch adds a batch to status.webhooks (made if absent): the counts
// added, lastEventAt the later, pending the union deduplicated by entity
// and id (Deleted ORed) and capped at MaxPendingWebhookTargets with the
// excess entities in overflow, pendingSince the earlier. Nothing else of
// the status changes.
func ApplyBatch(st *erpv1.ErpSyncStatus, b Batch) {
	w := st.Webhooks
	if w == nil {
		w = &erpv1.WebhookStatus{}
		st.Webhooks = w
	}
	w.Accepted += b.Accepted
	w.Rejected += b.Rejected
	if !b.LastReceived.IsZero() && (w.LastEventAt == nil || b.LastReceived.After(w.LastEventAt.Time)) {
		t := metav1.NewTime(b.LastReceived)
		w.LastEventAt = &t
	}
	if len(b.Targets) == 0 && len(b.Overflow) == 0 {
		return
	}
	hadPending := len(w.Pending) > 0 || len(w.Overflow) > 0
	set := newTargetSet(erpv1.MaxPendingWebhookTargets)
	for _, t := range w.Pending {
		set.add(t)
	}
	set.addOverflow(w.Overflow...)
	for _, t := range b.Targets {
		set.add(t)
	}
	set.addOverflow(b.Overflow...)
	w.Pending = set.items
	w.Overflow = set.overflowList()
	if !b.FirstReceived.IsZero() && (!hadPending || w.PendingSince == nil || b.FirstReceived.Before(w.PendingSince.Time)) {
		t := metav1.NewTime(b.FirstReceived)
		w.PendingSince = &t
	}
}

// TrimForDirectory is a cache transform that keeps of an ErpSync only what
// a Directory reads (its identity and spec), for a cache of the receiver's
// own (see NewDirectoryCache).
func TrimForDirectory(o any) (any, error) {
	if e, ok := o.(*erpv1.ErpSync); ok {
		e.ManagedFields = nil
		e.Annotations = nil
		e.Status = erpv1.ErpSyncStatus{}
	}
	return o, nil
}

// NewDirectoryCache returns a cache of the ErpSyncs in opts' namespaces for
// the receiver alone, trimmed to what it reads. The manager needs one when
// its own cache holds a shard's ErpSyncs only (--watch-label-selector):
// the vendors deliver to one URL for every shard (Xero: one subscription
// per app), and a delivery for another shard's ErpSync must still reach
// its status, where that shard's controller takes it. Add it to the
// manager (it is a Runnable) and register IndexFields on it.
func NewDirectoryCache(cfg *rest.Config, opts cache.Options) (cache.Cache, error) {
	opts.ByObject = map[client.Object]cache.ByObject{&erpv1.ErpSync{}: {Transform: TrimForDirectory}}
	opts.DefaultTransform = nil
	c, err := cache.New(cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("building the webhook receiver's ErpSync cache: %w", err)
	}
	return c, nil
}
