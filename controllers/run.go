package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
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
	logger := log.FromContext(r.baseCtx).WithValues("erpsync", client.ObjectKeyFromObject(obj), "trigger", d.Trigger, "full", d.Full)
	r.inBackground(obj, logger, func(ctx context.Context) {
		s := &syncRun{r: r, obj: obj, decision: d, log: logger, persisted: obj.DeepCopy()}
		s.run(ctx)
	})
}

// inBackground runs work for obj in a goroutine registered with the
// tracker (one at a time per ErpSync), holding one of the manager's sync
// slots; Reconcile is woken when it ends, to schedule what comes next.
func (r *ErpSyncReconciler) inBackground(obj *erpv1.ErpSync, logger logr.Logger, work func(ctx context.Context)) {
	key := types.NamespacedName{Namespace: obj.Namespace, Name: obj.Name}
	parent, leave, ok := r.enterShard(key)
	if !ok {
		return // the shard moved since Reconcile looked
	}
	ctx, finish, ok := r.tracker.start(parent, key)
	if !ok {
		leave()
		return
	}
	go func() {
		logger.V(1).Info("work started")
		defer func() {
			finish()
			logger.V(1).Info("work ended")
			leave()
			// Wake Reconcile to schedule the next sync.
			select {
			case r.runDone <- event.GenericEvent{Object: obj}:
			case <-r.baseCtx.Done():
			}
		}()
		slot := &syncSlot{t: r.tracker, ns: key.Namespace}
		if slot.Acquire(ctx) != nil {
			return
		}
		defer slot.End()
		// The sync gives its work slot back while it waits on a vendor's
		// limit and takes one again, before any new sync, when the wait
		// ends; it keeps its place in its namespace's share meanwhile.
		work(logr.NewContext(connectors.WithWorkSlot(ctx, slot), logger))
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
	// importBase is the import under way as this sync found it (its counts
	// before this sync); nil when no import runs.
	importBase *erpv1.ImportStatus
	// skipCompletedSince and full are the engine's settings for this sync:
	// the decision's, unless a source change forces a full import.
	skipCompletedSince time.Time
	full               bool
	// setAsideBefore is the number of documents set aside when the sync
	// started.
	setAsideBefore int64
	// prevStart is when the sync before this one started (nil: none).
	prevStart *metav1.Time
	// carried are the unfinished entities of an import of some entities
	// that this sync's entity resync took over (see fullEntities).
	carried []string
	// quotaCredentials collects the quotas the sync's requests count
	// against (see quota_credentials.go).
	quotaCredentials *quotaCredentialSet
}

func (s *syncRun) run(ctx context.Context) {
	r, obj := s.r, s.obj
	start := r.Clock.Now()
	wasReady := isReady(obj)
	firstSync := obj.Status.LastSuccessfulSyncEnd == nil
	s.prevStart = obj.Status.LastSyncStart.DeepCopy()
	s.setAsideBefore = reportOf(toEngineState(obj.Status.Entities)).setAside

	// Run start: record the request tokens this sync honours (handled even
	// if it fails; a token it does not honour, or that arrives during the
	// sync, gets a later one). A full resync forgets the watermarks and
	// checkpoints in the same write, so that its token is never recorded
	// without them being gone.
	s.reconciling = s.decision.Trigger != TriggerSchedule && s.decision.Trigger != TriggerCredentials && s.decision.Trigger != TriggerWebhookOverflow
	if s.decision.Trigger == TriggerResume {
		s.reconciling = hasCondition(obj, erpv1.ReconcilingCondition)
	}
	s.full, s.skipCompletedSince = s.decision.Full, s.decision.SkipCompletedSince
	err := s.patchStatus(ctx, func(o *erpv1.ErpSync) {
		o.Status.Phase = erpv1.PhaseSyncing
		if s.decision.Trigger != TriggerResume || o.Status.LastSyncStart == nil {
			o.Status.LastSyncStart = mtime(start)
		}
		o.Status.NextSyncAt = nil
		o.Status.Progress = &erpv1.SyncProgress{}
		if v := s.decision.RequestToken; v != "" {
			o.Status.LastHandledReconcileAt = v
		}
		if v := s.decision.FullResyncToken; v != "" {
			o.Status.LastHandledFullResyncAt = v
		}
		if v := s.decision.EntityResyncToken; v != "" {
			o.Status.LastHandledFullResyncEntitiesAt = v
			// Accepted once checked against the connector (see
			// fullEntities); a sync that reads every entity in full
			// accepts them now.
			o.Status.LastHandledFullResyncEntities = nil
			if s.decision.Trigger != TriggerEntityResync {
				o.Status.LastHandledFullResyncEntities = s.decision.EntityResync
			}
		}
		s.recordReconcileTokens(o)
		if w := o.Status.Webhooks; w != nil {
			// This sync reads every change made before it started,
			// those the overflowing webhooks announced included.
			w.Overflow = nil
		}
		switch {
		case s.decision.Trigger == TriggerFullResync:
			// Also when it replaces an interrupted sync or an unfinished
			// import: the pages those read predate the request.
			o.Status.Entities = forgetPositions(o.Status.Entities)
			o.Status.Import = &erpv1.ImportStatus{StartedAt: metav1.NewTime(start.UTC()), Reason: importReasonFullResync}
		case s.decision.Trigger == TriggerEntityResync && s.decision.EntityResyncInvalid == "":
			// The import of these entities is recorded with the token,
			// so a sync interrupted before it forgot their watermarks
			// still reads them in full (see fullEntities). An unfinished
			// import of other entities carries over into it.
			s.carried = unfinishedImportEntities(o)
			names := mergeNames(s.carried, s.decision.EntityResync)
			o.Status.Import = &erpv1.ImportStatus{StartedAt: metav1.NewTime(start.UTC()), Entities: names,
				Reason: fmt.Sprintf(importReasonEntities, strings.Join(names, ", "))}
		case o.Status.Import == nil && o.Status.LastSuccessfulSyncEnd == nil:
			o.Status.Import = &erpv1.ImportStatus{StartedAt: metav1.NewTime(start.UTC()), Reason: importReasonFirst}
		}
		if o.Status.Import != nil {
			o.Status.Import.Syncs++
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
	if imp := obj.Status.Import; imp != nil {
		s.importBase = imp.DeepCopy()
	}
	if why := s.decision.EntityResyncInvalid; why != "" && s.decision.Trigger != TriggerEntityResync {
		// A whole resync or a first sync reads every entity in full: it
		// honours the request anyway, and says what was wrong with it.
		r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, erpv1.ReasonInvalidConf, "Sync", "%s; this sync reads every entity in full anyway", why)
	}

	res, runErr := s.execute(s.trackQuotaCredentials(ctx))
	end := r.Clock.Now()

	if cause, stopped := stopCauseOf(ctx); stopped && (runErr != nil || cause == StopMoved) {
		s.stopped(cause, res, start, end)
		return
	}
	if r.baseCtx.Err() != nil {
		// The manager is shutting down: leave phase Syncing so that the next
		// leader resumes from the checkpoint already saved.
		return
	}
	mode := erpv1.SyncModeIncremental
	if res.Full || obj.Status.Import != nil {
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

	// The claim was checked before the sync started; check it again, from
	// the cache as it is now, before anything is read or built.
	if owner, err := r.companyOwner(ctx, obj); err != nil {
		return res, err
	} else if owner != obj.Namespace {
		return res, connectors.Errorf(kindCompanyClaimed, "%s", claimedMessage(obj.Spec.CompanyID, owner))
	}
	if why := s.decision.EntityResyncInvalid; why != "" && s.decision.Trigger == TriggerEntityResync {
		// Refused before anything is read: no watermark is forgotten.
		return res, entityResyncRefused(why)
	}

	secretKey := types.NamespacedName{Namespace: obj.Namespace, Name: obj.Spec.Connector.CredentialsRef.Name}
	secret, err := readSecret(ctx, r.APIReader, secretKey)
	if err != nil {
		obj.Status.CredentialsVersion = ""
		return res, err
	}
	obj.Status.CredentialsVersion = secret.ResourceVersion

	// A new source: the watermarks and checkpoints describe another ERP.
	// Drop them and import in full; the first sync that records a
	// fingerprint only records it.
	src := sourceOf(obj, secret.Data)
	if changes := sourceChanges(obj.Status.Source, src); len(changes) > 0 {
		reason := sourceChangeReason(changes)
		msg := reason + "; running a full import"
		now := r.Clock.Now()
		state, res.State = nil, nil
		s.full, s.skipCompletedSince = true, time.Time{}
		s.reconciling = true
		err := s.patchStatus(ctx, func(o *erpv1.ErpSync) {
			o.Status.Source = src
			o.Status.Entities = nil
			o.Status.Import = &erpv1.ImportStatus{StartedAt: metav1.NewTime(now.UTC()), Reason: reason, Syncs: 1}
			setCondition(o, erpv1.ReconcilingCondition, metav1.ConditionTrue, erpv1.ReasonProgressing, msg)
			setCondition(o, erpv1.ReadyCondition, metav1.ConditionUnknown, erpv1.ReasonProgressing, msg)
		})
		s.importBase = obj.Status.Import.DeepCopy()
		if err != nil {
			return res, err
		}
		s.log.Info("the source changed: dropped the watermarks and checkpoints; running a full import", "changed", changes)
		r.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, "SourceChanged", "Sync", "%s", msg)
	} else {
		obj.Status.Source = src
	}

	conn, entities, err := r.connectorFor(ctx, obj, secret, s.log)
	if err != nil {
		return res, err
	}
	typ := string(obj.Spec.Connector.Type)
	fullEntities, err := s.fullEntities(ctx, conn, entities)
	if err != nil {
		return res, err
	}
	s.tendWebhooks(ctx, conn, secret.Data, streamsOf(conn, entities))

	d, bound := r.syncBound(obj)
	runCtx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	state, approve := s.heldDecisions(state)
	res, err = engine.Execute(runCtx, engine.Run{
		Company:        obj.Spec.CompanyID,
		Vendor:         typ,
		MaxDeleteShare: obj.GetMaxDeleteShare(),
		ApproveHeld:    approve,
		// Resuming an interrupted sync, or retrying a failed one: the
		// entities it had finished are not read again.
		SkipCompletedSince: s.skipCompletedSince,
		Connector:          conn,
		Sink:               r.Sink,
		Entities:           entities,
		Full:               s.full,
		FullEntities:       fullEntities,
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
				s.countImport(o, p.Calls, p.Records, -1)
			})
		},
	})
	if err == nil {
		res, err = s.maybeReconcile(runCtx, conn, entities, res, approve)
	}
	if err != nil && ctx.Err() == nil && errors.Is(runCtx.Err(), context.DeadlineExceeded) {
		err = &syncTimedOut{bound: bound, err: err}
	}
	return res, err
}

// streamsOf names the streams a sync of conn reads: entities, or every
// stream when it is empty (as the engine reads it).
func streamsOf(conn connectors.Connector, entities []model.Kind) []model.Kind {
	if len(entities) > 0 {
		return entities
	}
	all := conn.Entities()
	out := make([]model.Kind, 0, len(all))
	for _, e := range all {
		out = append(out, e.Name)
	}
	return out
}

// connectorFor builds obj's connector from its credentials Secret, and
// returns the entity streams spec.connector.entities names (nil: all).
func (r *ErpSyncReconciler) connectorFor(ctx context.Context, obj *erpv1.ErpSync, secret *corev1.Secret, logger logr.Logger) (connectors.Connector, []model.Kind, error) {
	typ := string(obj.Spec.Connector.Type)
	secretKey := types.NamespacedName{Namespace: obj.Namespace, Name: obj.Spec.Connector.CredentialsRef.Name}
	conn, err := r.Registry.New(ctx, connectors.Config{
		Type:            typ,
		CompanyID:       obj.Spec.CompanyID,
		BaseURL:         obj.Spec.Connector.BaseURL,
		TenantID:        obj.Spec.Connector.TenantID,
		Credentials:     secret.Data,
		CredentialStore: &secretStore{key: secretKey, reader: r.APIReader, writer: r.Client},
		HTTPClient:      r.Egress.Client(r.Registry.DefaultHosts(typ)),
		Egress:          r.Egress,
		Log:             logger,
	})
	if err != nil {
		return nil, nil, err
	}
	entities := make([]model.Kind, 0, len(obj.Spec.Connector.Entities))
	for _, e := range obj.Spec.Connector.Entities {
		if !connectors.HasEntity(conn, e) {
			return nil, nil, connectors.Errorf(connectors.KindInvalidConfig, "entity %q is not offered by the %s connector (offered: %s)", e, obj.Spec.Connector.Type, entityNames(conn))
		}
		entities = append(entities, model.Kind(e))
	}
	return conn, entities, nil
}

// Why a full import runs, as status.import.reason says.
const (
	importReasonFirst      = "first import"
	importReasonFullResync = "a full resync was requested"
	importReasonEntities   = "a full resync of %s was requested"
)

// entityResyncRefused is the message of a refused entity resync, around
// why it was refused.
func entityResyncRefused(why string) error {
	return &refusedRequest{connectors.Errorf(connectors.KindInvalidConfig,
		"full resync of entities refused, nothing was read and no watermark forgotten: %s; correct %s and set a new %s",
		why, erpv1.FullResyncEntitiesAnnotation, erpv1.FullResyncEntitiesAtAnnotation)}
}

// fullEntities returns the entities this sync reads in full for an
// import of some entities (status.import.entities): those the import has
// not finished, that is, not completed a pass after the import started
// (status times have second precision, so a pass completed in the
// import's first second is read again: once too often, never too
// seldom). A name the sync's streams lack refuses the request that named
// it: it is taken out of the import, and the sync fails with
// InvalidConfig before anything is read. nil when the sync reads every
// entity in full anyway, or no such import runs.
func (s *syncRun) fullEntities(ctx context.Context, conn connectors.Connector, entities []model.Kind) ([]model.Kind, error) {
	imp := s.obj.Status.Import
	if s.full || imp == nil || len(imp.Entities) == 0 {
		if d := s.decision; s.full && d.EntityResyncToken != "" && d.EntityResyncInvalid == "" && len(s.obj.Status.LastHandledFullResyncEntities) == 0 {
			// A source change turned the sync into a full import: it
			// honours the request.
			if err := s.patchStatus(ctx, func(o *erpv1.ErpSync) { o.Status.LastHandledFullResyncEntities = d.EntityResync }); err != nil {
				return nil, err
			}
		}
		return nil, nil
	}
	streams := streamsOf(conn, entities)
	var known, unknown []string
	for _, e := range imp.Entities {
		if slices.Contains(streams, model.Kind(e)) {
			known = append(known, e)
		} else {
			unknown = append(unknown, e)
		}
	}
	if len(unknown) > 0 {
		requested := s.decision.Trigger == TriggerEntityResync && slices.ContainsFunc(unknown, func(e string) bool { return slices.Contains(s.decision.EntityResync, e) })
		if requested {
			// Refuse this request; keep what an earlier import left.
			known = slices.DeleteFunc(slices.Clone(s.carried), func(e string) bool { return !slices.Contains(streams, model.Kind(e)) })
		}
		if err := s.patchStatus(ctx, func(o *erpv1.ErpSync) {
			if len(known) == 0 {
				o.Status.Import = nil
				return
			}
			o.Status.Import.Entities = known
			o.Status.Import.Reason = fmt.Sprintf(importReasonEntities, strings.Join(known, ", "))
		}); err != nil {
			return nil, err
		}
		if s.obj.Status.Import == nil {
			s.importBase = nil
		}
		if requested {
			var names []string
			for _, st := range streams {
				names = append(names, string(st))
			}
			return nil, entityResyncRefused(fmt.Sprintf("%s names %s, which this ErpSync does not sync (it syncs: %s)",
				erpv1.FullResyncEntitiesAnnotation, quoted(unknown), strings.Join(names, ", ")))
		}
		s.log.Info("an entity of the unfinished import is no longer synced; dropped from it", "entities", unknown)
	}
	if len(s.obj.Status.LastHandledFullResyncEntities) == 0 {
		// Accepted: say so (kubectl erpsync resync --entity --wait reads
		// it), before anything is read.
		if err := s.patchStatus(ctx, func(o *erpv1.ErpSync) { o.Status.LastHandledFullResyncEntities = slices.Clone(known) }); err != nil {
			return nil, err
		}
	}
	var out []model.Kind
	for _, e := range unfinished(imp, s.obj.Status.Entities, known) {
		out = append(out, model.Kind(e))
	}
	return out, nil
}

// unfinishedImportEntities returns the entities of an import of some
// entities under way that it has not finished (see fullEntities).
func unfinishedImportEntities(o *erpv1.ErpSync) []string {
	imp := o.Status.Import
	if imp == nil || len(imp.Entities) == 0 {
		return nil
	}
	return unfinished(imp, o.Status.Entities, imp.Entities)
}

// unfinished returns the names that have not completed a pass after imp
// started (a pass in its first second counts as unfinished).
func unfinished(imp *erpv1.ImportStatus, entities []erpv1.EntityStatus, names []string) []string {
	since := imp.StartedAt.Truncate(time.Second)
	var out []string
	for _, e := range names {
		if st := findEntity(entities, e); st == nil || st.LastCompleted == nil || !st.LastCompleted.After(since) {
			out = append(out, e)
		}
	}
	return out
}

// findEntity returns the status of entity name, or nil.
func findEntity(in []erpv1.EntityStatus, name string) *erpv1.EntityStatus {
	for i := range in {
		if in[i].Name == name {
			return &in[i]
		}
	}
	return nil
}

// mergeNames returns a followed by the names of b it lacks.
func mergeNames(a, b []string) []string {
	out := slices.Clone(a)
	for _, n := range b {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

func quoted(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

// syncTimeout bounds one sync of obj by its spec: a full import
// (status.import set: a first import, a requested full resync, the import
// after a source change) only by an explicit spec.timeout, so that it runs
// to completion however long it takes; a routine sync by the timeout or the
// interval. 0: no bound.
func syncTimeout(obj *erpv1.ErpSync) time.Duration {
	if obj.Status.Import != nil || obj.Status.LastSuccessfulSyncEnd == nil {
		return obj.GetImportTimeout()
	}
	return obj.GetTimeout()
}

// syncBound is the bound on one sync of obj: syncTimeout, within the
// manager's --max-sync-duration (which bounds imports and explicit
// timeouts too, so that no sync holds a slot for ever); and how it reads in
// a message.
func (r *ErpSyncReconciler) syncBound(obj *erpv1.ErpSync) (time.Duration, string) {
	limit := r.Options.MaxSyncDuration
	if d := syncTimeout(obj); d > 0 && d <= limit {
		what := "the interval"
		if obj.Spec.Timeout != nil && obj.Spec.Timeout.Duration > 0 {
			what = "spec.timeout"
		}
		return d, what + " " + d.String()
	}
	return limit, "the manager's maximum sync duration " + limit.String()
}

// forgetPositions drops every entity's watermark and checkpoint (a full
// resync reads every entity from its start), keeping the rest of its state.
func forgetPositions(in []erpv1.EntityStatus) []erpv1.EntityStatus {
	out := make([]erpv1.EntityStatus, len(in))
	for i, e := range in {
		e.Watermark, e.Checkpoint = nil, nil
		out[i] = e
	}
	return out
}

// countImport sets the import's counts to what it had before this sync
// plus this sync's; upserted < 0 leaves that count as it is.
func (s *syncRun) countImport(o *erpv1.ErpSync, calls, records, upserted int64) {
	if o.Status.Import == nil || s.importBase == nil {
		return
	}
	o.Status.Import.APICalls = s.importBase.APICalls + calls
	o.Status.Import.Records = s.importBase.Records + records
	if upserted >= 0 {
		o.Status.Import.Upserted = s.importBase.Upserted + upserted
	}
}

// finish records the outcome of a sync that ran to its end.
func (s *syncRun) finish(res engine.Result, runErr error, mode erpv1.SyncMode, start, end time.Time, wasReady, firstSync bool) {
	r, obj := s.r, s.obj
	ctx := r.baseCtx
	records := res.Upserted + res.Skipped
	report := reportOf(res.State)
	var summary erpv1.SyncSummary
	var readyMsg string
	finishedImport := false
	err := s.patchStatus(ctx, func(o *erpv1.ErpSync) {
		o.Status.Entities = fromEngineState(res.State)
		o.Status.Progress = nil
		o.Status.LastSyncEnd = mtime(end)
		s.recordQuotaCredentials(o)
		removeCondition(o, erpv1.ReconcilingCondition)
		s.countImport(o, res.Calls, records, res.Upserted)
		if runErr == nil {
			summary = erpv1.SyncSummary{Mode: mode, Records: records, Upserted: res.Upserted, APICalls: res.Calls, Duration: metav1.Duration{Duration: end.Sub(start).Round(time.Millisecond)}}
			what := string(mode) + " sync"
			var why string
			if imp := o.Status.Import; imp != nil {
				// This sync finished the import: report the whole of it.
				summary = erpv1.SyncSummary{Mode: erpv1.SyncModeFull, Records: imp.Records, Upserted: imp.Upserted, APICalls: imp.APICalls,
					Duration: metav1.Duration{Duration: end.Sub(imp.StartedAt.Time).Round(time.Millisecond)}}
				what = "full import"
				if imp.Syncs > 1 {
					summary.Syncs = imp.Syncs
				}
				switch {
				case len(imp.Entities) > 0:
					// The others were read incrementally.
					what = "sync with a full resync of " + strings.Join(imp.Entities, ", ")
				case imp.Reason != "" && imp.Reason != importReasonFirst:
					why = "; imported in full because " + imp.Reason
				}
				finishedImport = true
				o.Status.Import = nil
			}
			summary.SetAside = report.setAside
			summary.Incomplete = report.incompleteNames()
			o.Status.Phase = erpv1.PhaseSucceeded
			o.Status.ConsecutiveFailures = 0
			o.Status.LastSuccessfulSyncEnd = mtime(end)
			o.Status.LastSync = summary.DeepCopy()
			o.Status.NextSyncAt = mtime(end.Add(o.GetInterval()).Truncate(time.Second))
			over := ""
			if summary.Syncs > 1 {
				over = fmt.Sprintf(" over %d syncs", summary.Syncs)
			}
			readyMsg = fmt.Sprintf("%s read %d records (%d new or changed) with %d API calls in %s%s%s%s",
				what, summary.Records, summary.Upserted, summary.APICalls, summary.Duration.Duration, over, why, report.readySuffix())
			reason := erpv1.ReasonSucceeded
			if len(report.incomplete) > 0 {
				reason = erpv1.ReasonIncomplete
			}
			setCondition(o, erpv1.ReadyCondition, metav1.ConditionTrue, reason, readyMsg)
			removeCondition(o, erpv1.StalledCondition)
			s.judgeWebhooks(o, res, mode)
			o.Status.ObservedGeneration = o.Generation
			return
		}
		reason, msg, stall := r.failure(runErr, o)
		o.Status.Phase = erpv1.PhaseFailed
		o.Status.ConsecutiveFailures++
		next := end.Add(RetryDelay(o))
		if at := connectors.RetryAtOf(runErr); at.After(next) || (retryBy(runErr) && !at.IsZero() && at.After(end)) {
			// A vendor reset comes later than the retry interval; a
			// deadline to keep credentials working comes earlier.
			next = at
		}
		o.Status.NextSyncAt = mtime(next.Truncate(time.Second))
		setCondition(o, erpv1.ReadyCondition, metav1.ConditionFalse, reason, msg)
		if stall {
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
	// patchStatus exported the conditions.
	metrics.SetEntityReport(obj.Namespace, obj.Name, entityMetrics(obj.Status.Entities))
	if runErr != nil {
		reason, msg, _ := r.failure(runErr, obj)
		s.log.Info("sync failed", "reason", reason, "consecutiveFailures", obj.Status.ConsecutiveFailures, "error", logDetail(runErr))
		r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, reason, "Sync", "%s", msg)
		return
	}
	metrics.SetLastSuccess(obj.Namespace, obj.Name, string(obj.Spec.Connector.Type), end)
	s.log.Info("sync succeeded", "mode", summary.Mode, "records", summary.Records, "upserted", summary.Upserted, "calls", summary.APICalls,
		"duration", summary.Duration.Duration, "syncs", max(summary.Syncs, 1), "setAside", report.setAside, "incomplete", summary.Incomplete)
	// Events only on news: the first success, a recovery, a full resync, an
	// import's end; documents set aside and incomplete passes after every
	// sync that ends with them, as warnings (the recorder folds repeats into
	// one series).
	if firstSync || !wasReady || s.full || finishedImport || summary.Syncs > 1 {
		r.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, "SyncSucceeded", "Sync", "%s", readyMsg)
	}
	if report.setAside > 0 {
		r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, "RecordsSetAside", "Sync", "%s", report.setAsideEvent())
	} else if s.setAsideBefore > 0 {
		s.log.Info("every document set aside before this sync maps now", "before", s.setAsideBefore)
	}
	if len(report.incomplete) > 0 {
		s.log.Info("entities read fewer distinct records than the vendor reported; their watermarks were kept", "entities", report.incompleteNames())
		r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, "IncompletePass", "Sync", "%s", report.incompleteEvent())
	}
}

// entityMetrics is what the per-entity gauges show of status.entities.
func entityMetrics(in []erpv1.EntityStatus) []metrics.EntityReport {
	out := make([]metrics.EntityReport, 0, len(in))
	for _, e := range in {
		out = append(out, metrics.EntityReport{Entity: e.Name, SetAside: e.SetAside, Incomplete: e.Incomplete != ""})
	}
	return out
}

// stopped records a sync that was stopped for a suspension or deletion: its
// checkpoint is kept, Ready is left as it was.
func (s *syncRun) stopped(cause StopCause, res engine.Result, start, end time.Time) {
	if cause == StopDeleted {
		return
	}
	if cause == StopMoved {
		// The new owner writes: it resumes from the checkpoints in status.
		s.log.Info("sync stopped: its shard moved to another replica, which resumes it from its checkpoint", "duration", end.Sub(start))
		return
	}
	err := s.patchStatus(s.r.baseCtx, func(o *erpv1.ErpSync) {
		o.Status.Entities = fromEngineState(res.State)
		o.Status.Progress = nil
		o.Status.LastSyncEnd = mtime(end)
		o.Status.NextSyncAt = nil
		o.Status.Phase = erpv1.PhaseSuspended
		s.countImport(o, res.Calls, res.Upserted+res.Skipped, res.Upserted)
		removeCondition(o, erpv1.ReconcilingCondition)
	})
	if err != nil {
		s.log.Error(err, "recording stopped sync")
		return
	}
	s.log.Info("sync stopped at a page boundary", "cause", cause, "duration", end.Sub(start))
	s.r.Recorder.Eventf(s.obj, nil, corev1.EventTypeNormal, "Suspended", "Suspend", "sync suspended; the running sync stopped at a page boundary and will resume from its checkpoint")
}

// statusWriteError is a failed write of an ErpSync's status: the API
// server's trouble, never the ERP's (see unreachable).
type statusWriteError struct{ err error }

func (e *statusWriteError) Error() string { return "patching ErpSync status: " + e.err.Error() }
func (e *statusWriteError) Unwrap() error { return e.err }

// patchStatus applies mutate to the in-memory object and patches the
// difference into the status subresource.
func (s *syncRun) patchStatus(ctx context.Context, mutate func(*erpv1.ErpSync)) error {
	// A status write holds no page: the sync's work slot serves another
	// sync meanwhile, and the next vendor call takes one again.
	connectors.PauseWork(ctx)
	mutate(s.obj)
	if err := s.r.Status().Patch(ctx, s.obj, client.MergeFrom(s.persisted), client.FieldOwner(fieldOwner)); err != nil {
		return &statusWriteError{err: err}
	}
	s.persisted = s.obj.DeepCopy()
	exportConditions(s.obj)
	return nil
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
