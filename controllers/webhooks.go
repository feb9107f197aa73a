package controllers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/internal/engine"
	"github.com/erpsync/erpsync-operator/internal/metrics"
)

// Webhooks, the controller's side. The receiver (internal/receiver, in
// every replica) verifies deliveries and adds the documents they name to
// status.webhooks.pending; the replica that syncs the ErpSync sees the
// change, takes the pending documents off the status (optimistic
// concurrency, so that none the receiver adds meanwhile is lost) and reads
// them in a targeted sync: engine.Targeted, with the same connector, sink,
// limiters and slots as every sync. Routine syncs keep the vendor's
// subscriptions registered and report their health in the WebhooksReady
// condition.

// +kubebuilder:rbac:groups="",resources=secrets,verbs=create;delete
// The webhook Secret is owned by its ErpSync (blockOwnerDeletion).
// +kubebuilder:rbac:groups=erpsync.io,resources=erpsyncs/finalizers,verbs=update

// webhookCheckEvery is how often a sync lists the vendor's subscriptions
// (to notice one the vendor disabled); a failed check is repeated sooner.
const (
	webhookCheckEvery      = time.Hour
	webhookRecheckAfterErr = 5 * time.Minute
)

// targetedSyncTimeout bounds one targeted sync.
const targetedSyncTimeout = 5 * time.Minute

// receiverPath is the path under the manager's public webhook URL that the
// vendor of typ delivers obj's events to: one path per vendor for vendors
// that route by tenant, else one per ErpSync (its UID, unguessable).
func receiverPath(typ string, codec connectors.WebhookCodec, uid types.UID) string {
	if codec.Routing() == connectors.RouteByTenant {
		return "/webhooks/" + typ
	}
	return "/webhooks/" + typ + "/" + string(uid)
}

// hasWebhookWork reports whether obj has events waiting for a sync.
func hasWebhookWork(obj *erpv1.ErpSync) bool {
	w := obj.Status.Webhooks
	return obj.WebhooksEnabled() && w != nil && (len(w.Pending) > 0 || len(w.Overflow) > 0)
}

// webhookWork passes status updates that bring webhook events.
type webhookWork struct{ predicate.Funcs }

func (webhookWork) Update(e event.UpdateEvent) bool {
	n, ok := e.ObjectNew.(*erpv1.ErpSync)
	if !ok || !hasWebhookWork(n) {
		return false
	}
	o, ok := e.ObjectOld.(*erpv1.ErpSync)
	if !ok || o.Status.Webhooks == nil {
		return true
	}
	ow, nw := o.Status.Webhooks, n.Status.Webhooks
	return len(ow.Pending) != len(nw.Pending) || len(ow.Overflow) != len(nw.Overflow) || ow.Accepted != nw.Accepted ||
		!ow.PendingSince.Equal(nw.PendingSince)
}

func (webhookWork) Create(event.CreateEvent) bool   { return false }
func (webhookWork) Delete(event.DeleteEvent) bool   { return false }
func (webhookWork) Generic(event.GenericEvent) bool { return false }

// startWebhookWork starts what obj's pending events need: an incremental
// sync when they overflowed, else a targeted sync. It returns false when
// nothing was started (no work, or the first import has not finished: it
// reads those documents anyway).
func (r *ErpSyncReconciler) startWebhookWork(obj *erpv1.ErpSync) bool {
	if !hasWebhookWork(obj) || obj.Status.LastSuccessfulSyncEnd == nil {
		return false
	}
	if len(obj.Status.Webhooks.Overflow) > 0 {
		r.startSync(obj, Decision{Trigger: TriggerWebhookOverflow})
		return true
	}
	logger := log.FromContext(r.baseCtx).WithValues("erpsync", client.ObjectKeyFromObject(obj), "trigger", "webhook")
	r.inBackground(obj, logger, func(ctx context.Context) {
		t := &targetedRun{r: r, obj: obj, log: logger}
		t.run(ctx)
	})
	return true
}

// targetedRun is one targeted sync of one ErpSync.
type targetedRun struct {
	r   *ErpSyncReconciler
	obj *erpv1.ErpSync
	log logr.Logger
}

func (t *targetedRun) run(ctx context.Context) {
	r := t.r
	start := r.Clock.Now()
	targets, since, err := t.takePending(ctx)
	if err != nil {
		if !apierrors.IsNotFound(err) {
			t.log.Error(err, "taking pending webhook events")
		}
		return
	}
	if len(targets) == 0 {
		return
	}
	obj := t.obj
	typ := string(obj.Spec.Connector.Type)
	res, runErr := t.read(ctx, targets)
	end := r.Clock.Now()
	if cause, _ := stopCauseOf(ctx); r.baseCtx.Err() != nil || cause == StopMoved {
		return // shutting down or moved: the poll reads what this sync did not
	}
	metrics.ObserveSync(typ, "targeted", resultLabel(runErr), end.Sub(start))
	lag := end.Sub(start)
	if since != nil {
		lag = end.Sub(since.Time)
	}
	last := &erpv1.TargetedSyncStatus{Time: metav1.NewTime(end.UTC()), Targets: int64(res.Targets), Upserted: res.Upserted, Deleted: res.Deleted,
		APICalls: res.Calls, LagMillis: lag.Milliseconds()}
	if runErr != nil {
		reason, msg, _ := r.failure(runErr, obj)
		last.Error = truncate(reason+": "+msg, 300)
	}
	base := obj.DeepCopy()
	if obj.Status.Webhooks == nil {
		obj.Status.Webhooks = &erpv1.WebhookStatus{}
	}
	obj.Status.Webhooks.TargetedSyncs++
	obj.Status.Webhooks.LastTargetedSync = last
	if c := findCondition(obj, erpv1.WebhooksReadyCondition); c != nil && c.Reason == erpv1.ReasonWebhooksAwaiting {
		// The first deliveries arrived (a vendor whose subscription is
		// made outside the API): say so now, not at the next poll.
		setCondition(obj, erpv1.WebhooksReadyCondition, metav1.ConditionTrue, erpv1.ReasonWebhooksActive, "deliveries arrive; the first were read by a targeted sync")
	}
	if err := r.Status().Patch(r.baseCtx, obj, client.MergeFrom(base), client.FieldOwner(fieldOwner)); err != nil {
		if !apierrors.IsNotFound(err) {
			t.log.Error(err, "recording targeted sync")
		}
	} else {
		exportConditions(obj)
	}
	if runErr != nil {
		reason, msg, _ := r.failure(runErr, obj)
		t.log.Info("targeted sync failed; the next poll reads its documents", "reason", reason, "targets", len(targets), "error", logDetail(runErr))
		r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, "TargetedSyncFailed", "Sync", "a sync of %d documents named by webhooks failed (%s: %s); the next poll reads them", len(targets), reason, msg)
		return
	}
	t.log.V(1).Info("targeted sync done", "targets", res.Targets, "upserted", res.Upserted, "deleted", res.Deleted, "calls", res.Calls, "lag", lag)
}

// takePending removes the pending documents from the status and returns
// them, with when the oldest arrived. The write is guarded by the object's
// resource version: the receiver's concurrent additions are never lost.
// Taking them before reading them means a failed read leaves them to the
// next poll (and reconciliation), never to a retry loop.
func (t *targetedRun) takePending(ctx context.Context) ([]erpv1.WebhookTarget, *metav1.Time, error) {
	r := t.r
	var targets []erpv1.WebhookTarget
	var since *metav1.Time
	key := client.ObjectKeyFromObject(t.obj)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cur erpv1.ErpSync
		if err := r.APIReader.Get(ctx, key, &cur); err != nil {
			return err
		}
		t.obj = &cur
		targets, since = nil, nil
		w := cur.Status.Webhooks
		if !cur.WebhooksEnabled() || w == nil || len(w.Pending) == 0 {
			return nil
		}
		targets, since = slices.Clone(w.Pending), w.PendingSince.DeepCopy()
		base := cur.DeepCopy()
		w.Pending, w.PendingSince = nil, nil
		return r.Status().Patch(ctx, &cur, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}), client.FieldOwner(fieldOwner))
	})
	if err != nil {
		return nil, nil, fmt.Errorf("taking pending webhook events: %w", err)
	}
	return targets, since, nil
}

// read builds the connector and reads the targets.
func (t *targetedRun) read(ctx context.Context, targets []erpv1.WebhookTarget) (engine.TargetedResult, error) {
	r, obj := t.r, t.obj
	if owner, err := r.companyOwner(ctx, obj); err != nil {
		return engine.TargetedResult{}, err
	} else if owner != obj.Namespace {
		return engine.TargetedResult{}, connectors.Errorf(kindCompanyClaimed, "%s", claimedMessage(obj.Spec.CompanyID, owner))
	}
	secret, err := readSecret(ctx, r.APIReader, types.NamespacedName{Namespace: obj.Namespace, Name: obj.Spec.Connector.CredentialsRef.Name})
	if err != nil {
		return engine.TargetedResult{}, err
	}
	if changes := sourceChanges(obj.Status.Source, sourceOf(obj, secret.Data)); len(changes) > 0 {
		// A new source: the next routine sync imports it in full.
		return engine.TargetedResult{}, connectors.Errorf(connectors.KindInvalidConfig, "the source changed (%s); the next sync imports it in full", sourceChangeReason(changes))
	}
	conn, entities, err := r.connectorFor(ctx, obj, secret, t.log)
	if err != nil {
		return engine.TargetedResult{}, err
	}
	in := make([]engine.Target, 0, len(targets))
	for _, x := range targets {
		in = append(in, engine.Target{Entity: model.Kind(x.Entity), ID: x.ID, Deleted: x.Deleted})
	}
	runCtx, cancel := context.WithTimeout(ctx, min(targetedSyncTimeout, r.Options.MaxSyncDuration))
	defer cancel()
	run := engine.Run{
		Company:   obj.Spec.CompanyID,
		Vendor:    string(obj.Spec.Connector.Type),
		Connector: conn,
		Sink:      r.Sink,
		Entities:  entities,
		BatchSize: r.Options.BatchSize,
		Overlap:   r.Options.Overlap,
		Now:       r.Clock.Now,
		Log:       t.log,
		// Each entity's last pass's calls: a burst is read by a pass
		// when that costs fewer calls than reads by id.
		State: toEngineState(obj.Status.Entities),
	}
	return engine.Targeted(runCtx, run, in)
}

// tendWebhooks, run by every routine sync before it reads, keeps
// status.webhooks and the WebhooksReady condition true to spec.webhooks:
// it registers the vendor's subscriptions where the vendor's API manages
// them (at most every webhookCheckEvery), switches back on those the
// vendor disabled, and removes them when webhooks are turned off. Nothing
// here fails the sync: problems are shown in the condition and an event.
func (s *syncRun) tendWebhooks(ctx context.Context, conn connectors.Connector, creds map[string][]byte, entities []model.Kind) {
	r, obj := s.r, s.obj
	typ := string(obj.Spec.Connector.Type)
	codec, hasCodec := r.Registry.Webhooks(typ)
	reg, isReg := conn.(connectors.WebhookRegistrar)
	if !obj.WebhooksEnabled() {
		if obj.Status.Webhooks == nil && !hasCondition(obj, erpv1.WebhooksReadyCondition) {
			return
		}
		if sub := obj.Status.Webhooks.GetSubscription(); isReg && sub != nil && sub.URL != "" {
			if _, err := reg.RemoveWebhooks(ctx, sub.URL); err != nil {
				s.log.Info("could not remove the vendor's webhook subscriptions", "error", logDetail(err))
			}
		}
		s.deleteWebhookSecret(ctx)
		s.patchQuietly(ctx, "turning webhooks off", func(o *erpv1.ErpSync) {
			o.Status.Webhooks = nil
			removeCondition(o, erpv1.WebhooksReadyCondition)
		})
		return
	}
	if !hasCodec {
		s.setWebhooksCondition(ctx, metav1.ConditionFalse, erpv1.ReasonWebhooksUnsupported,
			fmt.Sprintf("the %s connector's vendor sends no webhooks: this ErpSync is polled every %s only", typ, obj.GetInterval()), nil)
		return
	}
	path := receiverPath(typ, codec, obj.UID)
	if !isReg {
		// The subscription is made outside the API (Xero's developer
		// portal): deliveries show it works.
		status, reason, msg := metav1.ConditionUnknown, erpv1.ReasonWebhooksAwaiting,
			fmt.Sprintf("no delivery has arrived yet: subscribe %s in the vendor's developer portal (see the README)", r.publicURL(path))
		if codec.Routing() == connectors.RouteByTenant && obj.Spec.Connector.TenantID == "" {
			status, reason, msg = metav1.ConditionFalse, erpv1.ReasonWebhooksRegistering,
				"deliveries are routed by the vendor's tenant id: set spec.connector.tenantId"
		} else if typ == string(erpv1.ConnectorXero) && len(creds[connectors.WebhookKeyXero]) == 0 {
			status, reason, msg = metav1.ConditionFalse, erpv1.ReasonWebhooksRegistering,
				fmt.Sprintf("the credentials Secret has no key %q (the Xero app's webhook key): deliveries cannot be verified", connectors.WebhookKeyXero)
		} else if w := obj.Status.Webhooks; w != nil && w.LastEventAt != nil {
			status, reason, msg = metav1.ConditionTrue, erpv1.ReasonWebhooksActive, "deliveries arrive; the last at "+w.LastEventAt.UTC().Format(time.RFC3339)
		}
		s.setWebhooksCondition(ctx, status, reason, msg, func(w *erpv1.WebhookStatus) { w.Path = path })
		return
	}
	if r.WebhookPublicURL == "" {
		s.setWebhooksCondition(ctx, metav1.ConditionFalse, erpv1.ReasonWebhooksNoURL,
			"the manager has no --webhook-public-url, so the vendor cannot be told where to deliver", func(w *erpv1.WebhookStatus) { w.Path = path })
		return
	}
	url := r.publicURL(path)
	now := r.Clock.Now()
	sub := obj.Status.Webhooks.GetSubscription()
	if sub != nil && sub.URL == url {
		age := now.Sub(sub.CheckedAt.Time)
		if (sub.Message == "" && age < webhookCheckEvery) || (sub.Message != "" && age < webhookRecheckAfterErr) {
			return
		}
	}
	next := &erpv1.WebhookSubscriptionStatus{CheckedAt: metav1.NewTime(now.UTC()), URL: url}
	if sub != nil {
		next.Reenabled = sub.Reenabled
	}
	fail := func(msg string) {
		next.Message = truncate(msg, 300)
		s.setWebhooksCondition(ctx, metav1.ConditionFalse, erpv1.ReasonWebhooksRegistering, next.Message, func(w *erpv1.WebhookStatus) {
			w.Path, w.Subscription = path, next
		})
		r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, "WebhookRegistrationFailed", "Sync", "%s", next.Message)
	}
	keys, err := s.webhookSecret(ctx)
	if err != nil {
		fail("cannot keep the webhook Secret: " + err.Error())
		return
	}
	merged := maps.Clone(creds)
	maps.Copy(merged, keys)
	got, err := reg.EnsureWebhooks(ctx, connectors.WebhookTarget{URL: url, Keys: merged, Entities: entities})
	if err != nil {
		reason, msg, _ := r.failure(err, obj)
		fail(fmt.Sprintf("registering the vendor's webhooks failed (%s): %s", reason, msg))
		return
	}
	if len(got.Keys) > 0 {
		if err := s.storeWebhookKeys(ctx, got.Keys); err != nil {
			// The vendor signs with a token we could not keep: the
			// next check replaces the subscription.
			fail("could not store the webhook token the vendor returned: " + err.Error())
			return
		}
	}
	if sub != nil && sub.URL != "" && sub.URL != url {
		if _, err := reg.RemoveWebhooks(ctx, sub.URL); err != nil {
			s.log.Info("could not remove the subscriptions to the old webhook URL", "error", logDetail(err))
		}
	}
	next.Subscriptions, next.Disabled = got.Subscriptions, got.Disabled
	next.Reenabled += int64(got.Reenabled)
	if got.Reenabled > 0 {
		r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, "WebhooksReenabled", "Sync",
			"the vendor had disabled %d webhook subscription(s); switched back on (deliveries may have failed: the poll read their changes)", got.Reenabled)
	}
	status, reason, msg := metav1.ConditionTrue, erpv1.ReasonWebhooksActive, fmt.Sprintf("%d subscription(s) deliver to %s", got.Subscriptions, url)
	switch {
	case got.Subscriptions == 0:
		status, reason, msg = metav1.ConditionFalse, erpv1.ReasonWebhooksRegistering,
			fmt.Sprintf("the vendor shows no subscription delivering to %s (none of the synced streams has events?)", url)
	case len(got.Disabled) > 0:
		status, reason, msg = metav1.ConditionFalse, erpv1.ReasonWebhooksDisabled,
			fmt.Sprintf("the vendor disabled the subscription(s) for %s and they could not be switched back on; polling continues", strings.Join(got.Disabled, ", "))
	}
	s.setWebhooksCondition(ctx, status, reason, msg, func(w *erpv1.WebhookStatus) { w.Path, w.Subscription = path, next })
}

// silentAfter is how many polls in a row must find unannounced changes
// before WebhooksReady says the webhooks are silent.
const silentAfter = 2

// judgeWebhooks, at the end of a successful routine poll, tells whether
// the vendor's webhooks announce what changes: a poll that wrote new
// versions of documents in the streams the webhooks announce, when no
// delivery arrived since the poll before it started (the whole window
// those changes were made in), counts as unannounced; silentAfter of them
// in a row turn WebhooksReady False (Silent), and a delivery turns it back.
func (s *syncRun) judgeWebhooks(o *erpv1.ErpSync, res engine.Result, mode erpv1.SyncMode) {
	w := o.Status.Webhooks
	if !o.WebhooksEnabled() || w == nil || mode != erpv1.SyncModeIncremental || s.prevStart == nil {
		return
	}
	codec, ok := s.r.Registry.Webhooks(string(o.Spec.Connector.Type))
	cov, ok2 := codec.(connectors.WebhookCoverage)
	if !ok || !ok2 {
		return
	}
	var changed int64
	for _, k := range cov.Announces() {
		changed += res.Changed[k]
	}
	c := findCondition(o, erpv1.WebhooksReadyCondition)
	if c == nil || (c.Status != metav1.ConditionTrue && c.Reason != erpv1.ReasonWebhooksSilent) {
		return // not expected to deliver (yet): nothing to judge
	}
	heard := w.LastEventAt != nil && !w.LastEventAt.Before(s.prevStart)
	if heard {
		w.UnannouncedPolls = 0
	} else if changed > 0 {
		w.UnannouncedPolls++
	}
	if w.UnannouncedPolls >= silentAfter {
		setCondition(o, erpv1.WebhooksReadyCondition, metav1.ConditionFalse, erpv1.ReasonWebhooksSilent,
			fmt.Sprintf("the last %d polls found %s changes no webhook announced (the last delivery: %s); polling continues", w.UnannouncedPolls,
				strings.Join(kindNames(cov.Announces()), "/"), lastEvent(w)))
		return
	}
	if c.Reason == erpv1.ReasonWebhooksSilent && w.UnannouncedPolls == 0 {
		setCondition(o, erpv1.WebhooksReadyCondition, metav1.ConditionTrue, erpv1.ReasonWebhooksActive,
			s.r.withPace(o, erpv1.ReasonWebhooksActive, "deliveries arrive again; the last at "+lastEvent(w)))
	}
}

func lastEvent(w *erpv1.WebhookStatus) string {
	if w.LastEventAt == nil {
		return "none yet"
	}
	return w.LastEventAt.UTC().Format(time.RFC3339)
}

func kindNames(ks []model.Kind) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = string(k)
	}
	return out
}

// publicURL is the manager's public webhook URL with path.
func (r *ErpSyncReconciler) publicURL(path string) string {
	base := strings.TrimRight(r.WebhookPublicURL, "/")
	if base == "" {
		return path
	}
	return base + path
}

// setWebhooksCondition sets WebhooksReady and applies edit to
// status.webhooks (created when absent), in one status write when
// anything changed.
func (s *syncRun) setWebhooksCondition(ctx context.Context, status metav1.ConditionStatus, reason, msg string, edit func(w *erpv1.WebhookStatus)) {
	s.patchQuietly(ctx, "recording webhook state", func(o *erpv1.ErpSync) {
		if o.Status.Webhooks == nil {
			o.Status.Webhooks = &erpv1.WebhookStatus{}
		}
		if edit != nil {
			edit(o.Status.Webhooks)
		}
		setCondition(o, erpv1.WebhooksReadyCondition, status, reason, s.r.withPace(o, reason, msg))
	})
}

// withPace adds to an Active message what the vendor's pace allows, for
// a vendor whose codec says it cannot deliver within seconds.
func (r *ErpSyncReconciler) withPace(o *erpv1.ErpSync, reason, msg string) string {
	if reason != erpv1.ReasonWebhooksActive {
		return msg
	}
	codec, ok := r.Registry.Webhooks(string(o.Spec.Connector.Type))
	if !ok {
		return msg
	}
	if p, ok := codec.(connectors.WebhookPace); ok && p.Pace() != "" {
		return msg + "; " + p.Pace()
	}
	return msg
}

// patchQuietly patches the status, logging a failure instead of failing
// the sync (the webhook state is rewritten by the next sync).
func (s *syncRun) patchQuietly(ctx context.Context, what string, mutate func(*erpv1.ErpSync)) {
	before := s.obj.DeepCopy()
	mutate(before)
	if equalStatus(before, s.obj) {
		return
	}
	if err := s.patchStatus(ctx, mutate); err != nil {
		s.log.Error(err, what)
	}
}

// equalStatus compares two objects' webhook status and conditions, the
// parts tendWebhooks writes (conditions ignoring transition times).
func equalStatus(a, b *erpv1.ErpSync) bool {
	if !equalWebhookStatus(a.Status.Webhooks, b.Status.Webhooks) {
		return false
	}
	ca, cb := findCondition(a, erpv1.WebhooksReadyCondition), findCondition(b, erpv1.WebhooksReadyCondition)
	if ca == nil || cb == nil {
		return ca == cb
	}
	return ca.Status == cb.Status && ca.Reason == cb.Reason && ca.Message == cb.Message && ca.ObservedGeneration == cb.ObservedGeneration
}

func equalWebhookStatus(a, b *erpv1.WebhookStatus) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Path == b.Path && equalSubscription(a.Subscription, b.Subscription)
}

func equalSubscription(a, b *erpv1.WebhookSubscriptionStatus) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.CheckedAt.Equal(&b.CheckedAt) && a.URL == b.URL && a.Subscriptions == b.Subscriptions && a.Reenabled == b.Reenabled &&
		slices.Equal(a.Disabled, b.Disabled) && a.Message == b.Message
}

func findCondition(o *erpv1.ErpSync, typ string) *metav1.Condition {
	for i := range o.Status.Conditions {
		if o.Status.Conditions[i].Type == typ {
			return &o.Status.Conditions[i]
		}
	}
	return nil
}

// webhookSecret returns the data of obj's webhook Secret, creating it
// (owned by the ErpSync, so that it goes with it) with a fresh random
// credential when it does not exist.
func (s *syncRun) webhookSecret(ctx context.Context) (map[string][]byte, error) {
	r, obj := s.r, s.obj
	key := types.NamespacedName{Namespace: obj.Namespace, Name: connectors.WebhookSecretName(obj.Name)}
	var sec corev1.Secret
	err := r.APIReader.Get(ctx, key, &sec)
	if err == nil {
		if !metav1.IsControlledBy(&sec, obj) {
			return nil, fmt.Errorf("the Secret %q exists and is not this ErpSync's: delete or rename it", key.Name)
		}
		if len(sec.Data[connectors.WebhookKeyCredential]) == 0 {
			if err := s.storeWebhookKeys(ctx, nil); err != nil {
				return nil, err
			}
			return s.webhookSecret(ctx)
		}
		return sec.Data, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("reading the webhook Secret: %w", err)
	}
	cred, err := randomCredential()
	if err != nil {
		return nil, err
	}
	sec = corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "erpsync-operator", "erpsync.io/erpsync": obj.Name}},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{connectors.WebhookKeyCredential: cred},
	}
	if err := controllerutil.SetControllerReference(obj, &sec, r.Scheme()); err != nil {
		return nil, fmt.Errorf("owning the webhook Secret: %w", err)
	}
	if err := r.Create(ctx, &sec, client.FieldOwner(fieldOwner)); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return s.webhookSecret(ctx)
		}
		return nil, fmt.Errorf("creating the webhook Secret: %w", err)
	}
	return sec.Data, nil
}

// storeWebhookKeys merges keys into the webhook Secret (and gives it a
// credential if it has none).
func (s *syncRun) storeWebhookKeys(ctx context.Context, keys map[string][]byte) error {
	r, obj := s.r, s.obj
	key := types.NamespacedName{Namespace: obj.Namespace, Name: connectors.WebhookSecretName(obj.Name)}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var sec corev1.Secret
		if err := r.APIReader.Get(ctx, key, &sec); err != nil {
			return fmt.Errorf("reading the webhook Secret: %w", err)
		}
		if !metav1.IsControlledBy(&sec, obj) {
			return fmt.Errorf("the Secret %q is not this ErpSync's", key.Name)
		}
		if sec.Data == nil {
			sec.Data = map[string][]byte{}
		}
		maps.Copy(sec.Data, keys)
		if len(sec.Data[connectors.WebhookKeyCredential]) == 0 {
			cred, err := randomCredential()
			if err != nil {
				return err
			}
			sec.Data[connectors.WebhookKeyCredential] = cred
		}
		return r.Update(ctx, &sec, client.FieldOwner(fieldOwner))
	})
}

// deleteWebhookSecret deletes obj's webhook Secret, if it is ours.
func (s *syncRun) deleteWebhookSecret(ctx context.Context) {
	r, obj := s.r, s.obj
	var sec corev1.Secret
	key := types.NamespacedName{Namespace: obj.Namespace, Name: connectors.WebhookSecretName(obj.Name)}
	if err := r.APIReader.Get(ctx, key, &sec); err != nil || !metav1.IsControlledBy(&sec, obj) {
		return
	}
	if err := r.Delete(ctx, &sec, client.Preconditions{UID: &sec.UID}); err != nil && !apierrors.IsNotFound(err) {
		s.log.Info("could not delete the webhook Secret", "error", err.Error())
	}
}

// randomCredential is a fresh 256-bit credential, hex-encoded.
func randomCredential() ([]byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generating a webhook credential: %w", err)
	}
	out := make([]byte, hex.EncodedLen(len(b)))
	hex.Encode(out, b)
	return out, nil
}
