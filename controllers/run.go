package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/internal/engine"
	"github.com/erpsync/erpsync-operator/internal/metrics"
)

// startSync runs a sync of obj in the background. The goroutine is the only
// writer of obj's status until it ends (Reconcile writes status only when no
// sync of the object runs in this process).
func (r *ErpSyncReconciler) startSync(obj *erpv1.ErpSync, d Decision) {
	key := types.NamespacedName{Namespace: obj.Namespace, Name: obj.Name}
	ctx, finish, ok := r.tracker.start(r.baseCtx, key)
	if !ok {
		return
	}
	logger := log.FromContext(r.baseCtx).WithValues("erpsync", key, "trigger", d.Trigger, "full", d.Full)
	go func() {
		defer func() {
			finish()
			// Wake Reconcile to schedule the next sync.
			select {
			case r.runDone <- event.GenericEvent{Object: obj}:
			case <-r.baseCtx.Done():
			}
		}()
		if !r.tracker.acquire(ctx) {
			return
		}
		defer r.tracker.release()
		s := &syncRun{r: r, obj: obj, decision: d, log: logger, persisted: obj.DeepCopy()}
		s.run(logr.NewContext(ctx, logger))
	}()
}

// syncRun is one sync attempt of one ErpSync.
type syncRun struct {
	r        *ErpSyncReconciler
	obj      *erpv1.ErpSync
	decision Decision
	log      logr.Logger
	// reconciling is set when this sync shows Reconciling=True: a first
	// sync, a spec change or a request; routine syncs do not.
	reconciling bool
	// persisted is the status as last written: the base of every patch, so
	// that each patch carries every change made since.
	persisted *erpv1.ErpSync
}

func (s *syncRun) run(ctx context.Context) {
	r, obj := s.r, s.obj
	start := r.Clock.Now()
	wasReady := isReady(obj)
	firstSync := obj.Status.LastSuccessfulSyncEnd == nil

	// Run start: record the tokens read now (handled even if this sync
	// fails; a token that arrives during the sync gets the next one).
	s.reconciling = s.decision.Trigger != TriggerSchedule && s.decision.Trigger != TriggerCredentials
	if s.decision.Trigger == TriggerResume {
		s.reconciling = hasCondition(obj, erpv1.ReconcilingCondition)
	}
	err := s.patchStatus(ctx, func(o *erpv1.ErpSync) {
		o.Status.Phase = erpv1.PhaseSyncing
		if s.decision.Trigger != TriggerResume || o.Status.LastSyncStart == nil {
			o.Status.LastSyncStart = mtime(start)
		}
		o.Status.NextSyncAt = nil
		o.Status.Progress = &erpv1.SyncProgress{}
		if v := o.Annotations[erpv1.RequestedAtAnnotation]; v != "" {
			o.Status.LastHandledReconcileAt = v
		}
		if v := o.Annotations[erpv1.FullResyncAtAnnotation]; v != "" {
			o.Status.LastHandledFullResyncAt = v
		}
		if s.reconciling {
			setCondition(o, erpv1.ReconcilingCondition, metav1.ConditionTrue, erpv1.ReasonProgressing, fmt.Sprintf("sync in progress (%s)", s.decision.Trigger))
			if s.decision.Trigger == TriggerInitial || s.decision.Trigger == TriggerGeneration {
				setCondition(o, erpv1.ReadyCondition, metav1.ConditionUnknown, erpv1.ReasonProgressing, "sync in progress")
			}
		}
	})
	if err != nil {
		s.log.Error(err, "recording sync start")
		return
	}

	res, runErr := s.execute(ctx)
	end := r.Clock.Now()

	if cause, stopped := stopCauseOf(ctx); stopped && runErr != nil {
		s.stopped(cause, res, start, end)
		return
	}
	if r.baseCtx.Err() != nil {
		// The manager is shutting down: leave phase Syncing so that the next
		// leader resumes from the checkpoint already saved.
		return
	}
	mode := erpv1.SyncModeIncremental
	if res.Full {
		mode = erpv1.SyncModeFull
	}
	metrics.ObserveSync(string(obj.Spec.Connector.Type), string(mode), resultLabel(runErr), end.Sub(start))
	s.finish(res, runErr, mode, start, end, wasReady, firstSync)
}

// execute builds the connector and runs the engine.
func (s *syncRun) execute(ctx context.Context) (engine.Result, error) {
	r, obj := s.r, s.obj
	state := toEngineState(obj.Status.Entities)
	res := engine.Result{State: state}

	secretKey := types.NamespacedName{Namespace: obj.Namespace, Name: obj.Spec.Connector.CredentialsRef.Name}
	secret, err := readSecret(ctx, r.APIReader, secretKey)
	if err != nil {
		obj.Status.CredentialsVersion = ""
		return res, err
	}
	obj.Status.CredentialsVersion = secret.ResourceVersion

	conn, err := r.Registry.New(ctx, connectors.Config{
		Type:            string(obj.Spec.Connector.Type),
		CompanyID:       obj.Spec.CompanyID,
		BaseURL:         obj.Spec.Connector.BaseURL,
		TenantID:        obj.Spec.Connector.TenantID,
		Credentials:     secret.Data,
		CredentialStore: &secretStore{key: secretKey, reader: r.APIReader, writer: r.Client},
		Log:             s.log,
	})
	if err != nil {
		return res, err
	}
	entities := make([]model.Kind, 0, len(obj.Spec.Connector.Entities))
	for _, e := range obj.Spec.Connector.Entities {
		if !connectors.HasEntity(conn, e) {
			return res, connectors.Errorf(connectors.KindInvalidConfig, "entity %q is not offered by the %s connector (offered: %s)", e, obj.Spec.Connector.Type, entityNames(conn))
		}
		entities = append(entities, model.Kind(e))
	}

	// Resuming an interrupted sync: the entities it had finished are not
	// read again.
	var skipCompletedSince time.Time
	if s.decision.Trigger == TriggerResume && obj.Status.LastSyncStart != nil {
		skipCompletedSince = obj.Status.LastSyncStart.Time
	}
	runCtx, cancel := context.WithTimeout(ctx, obj.GetTimeout())
	defer cancel()
	return engine.Execute(runCtx, engine.Run{
		SkipCompletedSince: skipCompletedSince,
		Connector:          conn,
		Sink:               r.Sink,
		Entities:           entities,
		Full:               s.decision.Full,
		State:              state,
		Overlap:            r.Options.Overlap,
		BatchSize:          r.Options.BatchSize,
		CheckpointEvery:    r.Options.CheckpointEvery,
		Now:                r.Clock.Now,
		Log:                s.log,
		Checkpoint: func(ctx context.Context, st []engine.EntityState, p engine.Progress) error {
			return s.patchStatus(ctx, func(o *erpv1.ErpSync) {
				o.Status.Entities = fromEngineState(st)
				o.Status.Progress = &erpv1.SyncProgress{Entity: string(p.Entity), Records: p.Records, APICalls: p.Calls}
			})
		},
	})
}

// finish records the outcome of a sync that ran to its end.
func (s *syncRun) finish(res engine.Result, runErr error, mode erpv1.SyncMode, start, end time.Time, wasReady, firstSync bool) {
	r, obj := s.r, s.obj
	ctx := r.baseCtx
	records := res.Upserted + res.Skipped
	err := s.patchStatus(ctx, func(o *erpv1.ErpSync) {
		o.Status.Entities = fromEngineState(res.State)
		o.Status.Progress = nil
		o.Status.LastSyncEnd = mtime(end)
		removeCondition(o, erpv1.ReconcilingCondition)
		if runErr == nil {
			o.Status.Phase = erpv1.PhaseSucceeded
			o.Status.LastSuccessfulSyncEnd = mtime(end)
			o.Status.LastSync = &erpv1.SyncSummary{Mode: mode, Records: records, Upserted: res.Upserted, APICalls: res.Calls, Duration: metav1.Duration{Duration: end.Sub(start).Round(time.Millisecond)}}
			o.Status.NextSyncAt = mtime(end.Add(o.GetInterval()).Truncate(time.Second))
			setCondition(o, erpv1.ReadyCondition, metav1.ConditionTrue, erpv1.ReasonSucceeded,
				fmt.Sprintf("%s sync read %d records (%d new or changed) with %d API calls in %s", mode, records, res.Upserted, res.Calls, end.Sub(start).Round(time.Millisecond)))
			removeCondition(o, erpv1.StalledCondition)
			o.Status.ObservedGeneration = o.Generation
			return
		}
		reason, msg := failureReason(runErr)
		o.Status.Phase = erpv1.PhaseFailed
		next := end.Add(o.GetRetryInterval())
		if at := connectors.RetryAtOf(runErr); at.After(next) {
			next = at
		}
		o.Status.NextSyncAt = mtime(next.Truncate(time.Second))
		setCondition(o, erpv1.ReadyCondition, metav1.ConditionFalse, reason, msg)
		if stalled(runErr) {
			setCondition(o, erpv1.StalledCondition, metav1.ConditionTrue, reason, msg)
			o.Status.ObservedGeneration = o.Generation
		} else {
			removeCondition(o, erpv1.StalledCondition)
		}
	})
	if err != nil {
		if apierrors.IsNotFound(err) {
			s.log.Info("ErpSync deleted during its sync")
			return
		}
		s.log.Error(err, "recording sync result")
		return
	}
	for _, c := range obj.Status.Conditions {
		metrics.SetCondition(obj.Namespace, obj.Name, c.Type, string(c.Status))
	}
	if runErr != nil {
		reason, msg := failureReason(runErr)
		s.log.Info("sync failed", "reason", reason, "error", msg)
		r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, reason, "Sync", "%s", msg)
		return
	}
	metrics.SetLastSuccess(obj.Namespace, obj.Name, string(obj.Spec.Connector.Type), end)
	s.log.Info("sync succeeded", "mode", mode, "records", records, "upserted", res.Upserted, "calls", res.Calls, "duration", end.Sub(start))
	// Events only on news: the first success, a recovery, a full resync.
	if firstSync || !wasReady || s.decision.Full {
		r.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, "SyncSucceeded", "Sync",
			"%s sync read %d records (%d new or changed) with %d API calls in %s", mode, records, res.Upserted, res.Calls, end.Sub(start).Round(time.Millisecond))
	}
}

// stopped records a sync that was stopped for a suspension or deletion: its
// checkpoint is kept, Ready is left as it was.
func (s *syncRun) stopped(cause StopCause, res engine.Result, start, end time.Time) {
	if cause == StopDeleted {
		return
	}
	err := s.patchStatus(s.r.baseCtx, func(o *erpv1.ErpSync) {
		o.Status.Entities = fromEngineState(res.State)
		o.Status.Progress = nil
		o.Status.LastSyncEnd = mtime(end)
		o.Status.NextSyncAt = nil
		o.Status.Phase = erpv1.PhaseSuspended
		removeCondition(o, erpv1.ReconcilingCondition)
	})
	if err != nil {
		s.log.Error(err, "recording stopped sync")
		return
	}
	s.log.Info("sync stopped at a page boundary", "cause", cause, "duration", end.Sub(start))
	s.r.Recorder.Eventf(s.obj, nil, corev1.EventTypeNormal, "Suspended", "Suspend", "sync suspended; the running sync stopped at a page boundary and will resume from its checkpoint")
}

// patchStatus applies mutate to the in-memory object and patches the
// difference into the status subresource.
func (s *syncRun) patchStatus(ctx context.Context, mutate func(*erpv1.ErpSync)) error {
	mutate(s.obj)
	if err := s.r.Status().Patch(ctx, s.obj, client.MergeFrom(s.persisted), client.FieldOwner(fieldOwner)); err != nil {
		return fmt.Errorf("patching ErpSync status: %w", err)
	}
	s.persisted = s.obj.DeepCopy()
	return nil
}

// failureReason maps an error to a Ready reason and a message for people.
func failureReason(err error) (string, string) {
	if errors.Is(err, context.DeadlineExceeded) {
		return string(connectors.KindERPUnavailable), "the sync did not finish within its timeout; it resumes from its checkpoint: " + err.Error()
	}
	if k := connectors.KindOf(err); k != "" {
		return string(k), err.Error()
	}
	return erpv1.ReasonSyncFailed, err.Error()
}

// stalled reports whether only a spec change can fix err.
func stalled(err error) bool {
	return connectors.KindOf(err) == connectors.KindInvalidConfig
}

func resultLabel(err error) string {
	if err == nil {
		return "success"
	}
	return "failure"
}

func isReady(obj *erpv1.ErpSync) bool {
	for _, c := range obj.Status.Conditions {
		if c.Type == erpv1.ReadyCondition {
			return c.Status == metav1.ConditionTrue
		}
	}
	return false
}

func hasCondition(obj *erpv1.ErpSync, typ string) bool {
	for _, c := range obj.Status.Conditions {
		if c.Type == typ {
			return true
		}
	}
	return false
}

func entityNames(c connectors.Connector) string {
	out := ""
	for i, e := range c.Entities() {
		if i > 0 {
			out += ", "
		}
		out += string(e.Name)
	}
	return out
}
