// Package controllers holds the ErpSync controller: it decides when a sync
// is due, runs it through the sync engine in the background, and reports it
// in status, conditions, events and metrics. It knows connectors only through
// the connectors.Registry and the CRM only through sinks.Sink.
package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/egress"
	"github.com/erpsync/erpsync-operator/internal/metrics"
	"github.com/erpsync/erpsync-operator/sinks"
)

// fieldOwner is the field manager of every write the controller makes.
const fieldOwner = "erpsync-controller"

// credentialsIndex indexes ErpSyncs by the name of their credentials Secret.
const credentialsIndex = ".spec.connector.credentialsRef.name" //nolint:gosec // G101: a field index's name, not a credential

// Defaults of Options.
const (
	DefaultConcurrentSyncs      = 4
	DefaultMaxSyncsPerNamespace = 2
	DefaultMaxSyncDuration      = 6 * time.Hour
)

// Options tune the reconciler; zero values mean the defaults.
type Options struct {
	// ConcurrentSyncs bounds the syncs working at once (default 4): a
	// sync gives its work slot back while it waits on a vendor's limit.
	ConcurrentSyncs int
	// MaxSyncsInProgress bounds the syncs in progress at once, working or
	// waiting on a vendor (default DefaultSyncsInProgressPerSlot per work
	// slot, at least ConcurrentSyncs).
	MaxSyncsInProgress int
	// MaxSyncsPerNamespace bounds the syncs of one namespace in progress
	// at once (default 2, at most MaxSyncsInProgress); a namespace's syncs
	// beyond it wait for their turn without holding anything.
	MaxSyncsPerNamespace int
	// MaxSyncDuration bounds every sync, a full import or one with a
	// longer spec.timeout included (default 6h).
	MaxSyncDuration time.Duration
	// MaxConcurrentReconciles is the number of reconcile workers (default 4).
	// Reconciles are short: syncs run outside them.
	MaxConcurrentReconciles int
	// Overlap, CheckpointEvery and BatchSize tune the engine; zero means
	// the engine's defaults.
	Overlap         time.Duration
	CheckpointEvery time.Duration
	BatchSize       int
}

// ErpSyncReconciler reconciles ErpSync objects.
type ErpSyncReconciler struct {
	// Client reads ErpSyncs from the cache and writes their status.
	client.Client
	// APIReader reads straight from the API server: Secrets (never cached)
	// and an ErpSync just before a sync starts (the cache may lag behind our
	// own last status write).
	APIReader client.Reader
	Recorder  events.EventRecorder
	Registry  *connectors.Registry
	Sink      sinks.Sink
	// Egress is the policy every connector's requests go under; nil means
	// the vendors' own hosts only (egress.New(nil, false)).
	Egress *egress.Policy
	// Clock defaults to the real clock; tests inject a fake one.
	Clock   clock.PassiveClock
	Options Options
	// ClaimNamespace is where durable company claims are kept (Leases in
	// the manager's own namespace, which tenants cannot write); empty
	// decides claims from the cache only (local runs).
	ClaimNamespace string
	// WebhookPublicURL is the base URL vendors reach the manager's webhook
	// receiver at (--webhook-public-url); empty: subscriptions are not
	// registered (the WebhooksReady condition says so).
	WebhookPublicURL string
	// Shards, when set, limits this replica to the ErpSyncs of the shards
	// it holds (--shards); nil: it syncs every ErpSync it watches.
	Shards Sharding

	tracker *runTracker
	// runDone wakes Reconcile when a background sync ends, to schedule the
	// next one.
	runDone chan event.GenericEvent
	// baseCtx is the manager's context: syncs end with it.
	baseCtx context.Context
}

// +kubebuilder:rbac:groups=erpsync.io,resources=erpsyncs,verbs=get;list;watch
// +kubebuilder:rbac:groups=erpsync.io,resources=erpsyncs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// Xero's refresh tokens rotate: the connector writes the new one back into
// the ErpSync's credentials Secret before it uses the new access token.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// --watch-namespace-selector lists the Namespaces it selects.
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// SetupWithManager registers the controller. Only a generation change or a
// change of one of our request annotations enqueues an ErpSync (labels
// and annotations written by GitOps tools never start a sync); Secrets are
// watched by metadata only and mapped to the ErpSyncs that reference them.
func (r *ErpSyncReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = clock.RealClock{}
	}
	if r.APIReader == nil {
		r.APIReader = mgr.GetAPIReader()
	}
	if r.Options.ConcurrentSyncs <= 0 {
		r.Options.ConcurrentSyncs = DefaultConcurrentSyncs
	}
	if r.Options.MaxSyncsPerNamespace <= 0 {
		r.Options.MaxSyncsPerNamespace = DefaultMaxSyncsPerNamespace
	}
	if r.Options.MaxSyncDuration <= 0 {
		r.Options.MaxSyncDuration = DefaultMaxSyncDuration
	}
	if r.Options.MaxConcurrentReconciles <= 0 {
		r.Options.MaxConcurrentReconciles = 4
	}
	if r.Egress == nil {
		p, err := egress.New(nil, false)
		if err != nil {
			return fmt.Errorf("building the default egress policy: %w", err)
		}
		r.Egress = p
	}
	if _, ok := r.Recorder.(boundedRecorder); !ok {
		r.Recorder = boundedRecorder{r.Recorder}
	}
	r.tracker = newRunTracker(r.Options.ConcurrentSyncs, r.Options.MaxSyncsPerNamespace, r.Options.MaxSyncsInProgress)
	r.runDone = make(chan event.GenericEvent, 1024)
	r.baseCtx = ctx

	if err := mgr.GetFieldIndexer().IndexField(ctx, &erpv1.ErpSync{}, credentialsIndex, func(o client.Object) []string {
		return []string{o.(*erpv1.ErpSync).Spec.Connector.CredentialsRef.Name}
	}); err != nil {
		return fmt.Errorf("indexing ErpSyncs by credentials Secret: %w", err)
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &erpv1.ErpSync{}, companyIndex, func(o client.Object) []string {
		return []string{o.(*erpv1.ErpSync).Spec.CompanyID}
	}); err != nil {
		return fmt.Errorf("indexing ErpSyncs by company: %w", err)
	}

	secretMeta := &metav1.PartialObjectMetadata{}
	secretMeta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))

	b := ctrl.NewControllerManagedBy(mgr)
	if r.Shards != nil {
		b = b.WatchesRawSource(source.Func(r.shardChanges))
	}
	return b.
		For(&erpv1.ErpSync{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{},
			requestAnnotationChanged{},
			webhookWork{},
		))).
		// A deleted ErpSync may pass its company's claim to another.
		Watches(&erpv1.ErpSync{}, handler.EnqueueRequestsFromMapFunc(r.sameCompany), builder.WithPredicates(deletedOnly)).
		WatchesMetadata(secretMeta, handler.EnqueueRequestsFromMapFunc(r.erpSyncsForSecret),
			builder.WithPredicates(resourceVersionChanged{}, credentialsLabelled{})).
		WatchesRawSource(source.Channel(r.runDone, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Options.MaxConcurrentReconciles}).
		Named("erpsync").
		Complete(r)
}

// erpSyncsForSecret maps a Secret to the ErpSyncs in its namespace that
// reference it.
func (r *ErpSyncReconciler) erpSyncsForSecret(ctx context.Context, o client.Object) []reconcile.Request {
	var list erpv1.ErpSyncList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{credentialsIndex: o.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "listing ErpSyncs for Secret", "secret", o.GetName())
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, e := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: e.Namespace, Name: e.Name}})
	}
	return out
}

// Reconcile decides whether a sync is due. It starts a due sync in the
// background and otherwise requeues for when the next one is due. It never
// talks to the ERP or the CRM itself.
func (r *ErpSyncReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	logger := log.FromContext(ctx)

	var obj erpv1.ErpSync
	if err := r.Get(ctx, req.NamespacedName, &obj); err != nil {
		if apierrors.IsNotFound(err) {
			// Deleted: stop its sync at the next safe point, forget its series.
			r.tracker.stop(req.NamespacedName, StopDeleted)
			metrics.DeleteObject(req.Namespace, req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !obj.DeletionTimestamp.IsZero() {
		r.tracker.stop(req.NamespacedName, StopDeleted)
		return ctrl.Result{}, nil
	}
	leave, ok := r.holdShard(req.NamespacedName)
	if !ok {
		// Another replica's shard: it decides and writes; a shard gained
		// later reconciles all its ErpSyncs.
		return ctrl.Result{}, nil
	}
	defer leave()
	metrics.SetSuspended(obj.Namespace, obj.Name, obj.Spec.Suspend)
	exportIfNew(&obj)

	if obj.Spec.Suspend {
		if done := r.tracker.stop(req.NamespacedName, StopSuspended); done != nil {
			logger.Info("stopping the running sync: suspended")
			return ctrl.Result{}, nil // the sync's end wakes us again
		}
		return ctrl.Result{}, r.markSuspended(ctx, &obj)
	}
	if r.tracker.running(req.NamespacedName) {
		return ctrl.Result{}, nil
	}
	// A company belongs to one namespace: refuse before anything is read.
	owner, err := r.companyOwner(ctx, &obj)
	if err != nil {
		return ctrl.Result{}, err
	}
	if owner != obj.Namespace {
		// A manager that does not watch the owner's namespace (another
		// shard, --watch-namespaces) never sees the owner go: ask again
		// now and then.
		return ctrl.Result{RequeueAfter: claimRecheck}, r.markClaimed(ctx, &obj, owner)
	}
	if obj.Status.Phase == erpv1.PhaseSuspended {
		r.Recorder.Eventf(&obj, nil, corev1.EventTypeNormal, "Resumed", "Resume", "sync resumed")
	}

	secretVersion, err := r.secretVersion(ctx, &obj)
	if err != nil {
		return ctrl.Result{}, err
	}
	now := r.Clock.Now()
	d := Due(&obj, secretVersion, now)
	if d.Trigger == TriggerNone && hasWebhookWork(&obj) {
		// Webhook events wait: read them now (the API server's view, as
		// below; a targeted sync changes no schedule).
		var fresh erpv1.ErpSync
		if err := r.APIReader.Get(ctx, req.NamespacedName, &fresh); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
		if d = Due(&fresh, secretVersion, now); d.Trigger == TriggerNone && r.startWebhookWork(&fresh) {
			return ctrl.Result{}, nil
		}
	}
	if d.Trigger == TriggerNone {
		return ctrl.Result{RequeueAfter: d.DueAt.Sub(now)}, r.setNextSyncAt(ctx, &obj, d.DueAt)
	}

	// Confirm against the API server: the cache may not yet show the status
	// our last sync wrote, and a stale view must never start a sync early.
	var fresh erpv1.ErpSync
	if err := r.APIReader.Get(ctx, req.NamespacedName, &fresh); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if d = Due(&fresh, secretVersion, now); d.Trigger == TriggerNone {
		return ctrl.Result{RequeueAfter: d.DueAt.Sub(now)}, nil
	}
	r.startSync(&fresh, d)
	return ctrl.Result{}, nil
}

// secretVersion returns the resource version of the ErpSync's credentials
// Secret from the metadata cache, or "" when it does not exist or lacks the
// credentials label (as the sync sees it: see readSecret).
func (r *ErpSyncReconciler) secretVersion(ctx context.Context, obj *erpv1.ErpSync) (string, error) {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	err := r.Get(ctx, types.NamespacedName{Namespace: obj.Namespace, Name: obj.Spec.Connector.CredentialsRef.Name}, m)
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading credentials Secret metadata: %w", err)
	}
	if !hasCredentialsLabel(m) {
		return "", nil
	}
	return m.ResourceVersion, nil
}

// markSuspended records the suspension: phase Suspended, Ready untouched.
func (r *ErpSyncReconciler) markSuspended(ctx context.Context, obj *erpv1.ErpSync) error {
	if obj.Status.Phase == erpv1.PhaseSuspended && obj.Status.NextSyncAt == nil {
		return nil
	}
	patch := client.MergeFrom(obj.DeepCopy())
	obj.Status.Phase = erpv1.PhaseSuspended
	obj.Status.NextSyncAt = nil
	obj.Status.Progress = nil
	removeCondition(obj, erpv1.ReconcilingCondition)
	if err := r.Status().Patch(ctx, obj, patch, client.FieldOwner(fieldOwner)); err != nil {
		return fmt.Errorf("recording suspension: %w", err)
	}
	exportConditions(obj)
	r.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, "Suspended", "Suspend", "sync suspended")
	return nil
}

// setNextSyncAt shows when the next sync is due, if that changed.
func (r *ErpSyncReconciler) setNextSyncAt(ctx context.Context, obj *erpv1.ErpSync, at time.Time) error {
	if obj.Status.NextSyncAt != nil && obj.Status.NextSyncAt.Time.Equal(at.Truncate(time.Second)) {
		return nil
	}
	patch := client.MergeFrom(obj.DeepCopy())
	obj.Status.NextSyncAt = mtime(at.Truncate(time.Second))
	if err := r.Status().Patch(ctx, obj, patch, client.FieldOwner(fieldOwner)); err != nil {
		return fmt.Errorf("recording next sync time: %w", err)
	}
	return nil
}

// requestAnnotationChanged passes updates that change one of the request
// annotations (and nothing else of metadata).
type requestAnnotationChanged struct{ predicate.Funcs }

func (requestAnnotationChanged) Update(e event.UpdateEvent) bool {
	if e.ObjectOld == nil || e.ObjectNew == nil {
		return false
	}
	o, n := e.ObjectOld.GetAnnotations(), e.ObjectNew.GetAnnotations()
	// erpsync.io/fullResyncEntities alone starts nothing: it is read with
	// a new erpsync.io/fullResyncEntitiesAt.
	for _, k := range []string{erpv1.RequestedAtAnnotation, erpv1.FullResyncAtAnnotation, erpv1.FullResyncEntitiesAtAnnotation, erpv1.ReconcileNowAnnotation,
		erpv1.ApproveDeletionsAnnotation, erpv1.DiscardDeletionsAnnotation} {
		if o[k] != n[k] {
			return true
		}
	}
	return false
}

func (requestAnnotationChanged) Create(event.CreateEvent) bool   { return false }
func (requestAnnotationChanged) Delete(event.DeleteEvent) bool   { return true }
func (requestAnnotationChanged) Generic(event.GenericEvent) bool { return false }

// credentialsLabelled passes events of Secrets that carry the credentials
// label, or carried it before an update (so that removing it is seen).
type credentialsLabelled struct{ predicate.Funcs }

func (credentialsLabelled) Create(e event.CreateEvent) bool { return hasCredentialsLabel(e.Object) }
func (credentialsLabelled) Delete(e event.DeleteEvent) bool { return hasCredentialsLabel(e.Object) }
func (credentialsLabelled) Update(e event.UpdateEvent) bool {
	return hasCredentialsLabel(e.ObjectOld) || hasCredentialsLabel(e.ObjectNew)
}
func (credentialsLabelled) Generic(e event.GenericEvent) bool { return hasCredentialsLabel(e.Object) }

// resourceVersionChanged drops the periodic resync updates of Secrets, whose
// resource version does not change, so they never cause a sync.
type resourceVersionChanged struct{ predicate.Funcs }

func (resourceVersionChanged) Update(e event.UpdateEvent) bool {
	return e.ObjectOld != nil && e.ObjectNew != nil && e.ObjectOld.GetResourceVersion() != e.ObjectNew.GetResourceVersion()
}
