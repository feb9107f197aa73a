package controllers

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/internal/engine"
	"github.com/erpsync/erpsync-operator/internal/metrics"
)

// Reconciliation runs inside a sync, after its routine pass succeeded, with
// the same connector, limits and slot: the first sync at or after
// status.reconciliation.nextAt, or the one that carries an
// erpsync.io/reconcileNowAt request or an approval of deletions held after
// a reconciliation. Its progress is checkpointed per entity, so a sync that
// dies in the middle of one resumes it.

// recordReconcileTokens records, in the sync's start write, the
// reconciliation requests this sync honours.
func (s *syncRun) recordReconcileTokens(o *erpv1.ErpSync) {
	if v := s.decision.ReconcileToken; v != "" {
		o.Status.LastHandledReconcileNowAt = v
	}
	if v := s.decision.ApproveToken; v != "" {
		o.Status.LastHandledApproveDeletionsAt = v
	}
	if v := s.decision.DiscardToken; v != "" {
		o.Status.LastHandledDiscardDeletionsAt = v
	}
}

// heldDecisions applies a person's decision on held deletions to the state
// a sync starts from: a discard forgets them (the next pass decides afresh);
// an approval names the entities whose held deletion the next pass may
// apply. A discard wins over an approval given at the same time.
func (s *syncRun) heldDecisions(state []engine.EntityState) ([]engine.EntityState, []model.Kind) {
	var approve []model.Kind
	for i := range state {
		h := state[i].Held
		if h == nil {
			continue
		}
		switch {
		case s.decision.DiscardToken != "":
			s.log.Info("held deletions discarded on request", "entity", state[i].Name, "records", h.Candidates)
			state[i].Held = nil
		case s.decision.ApproveToken != "":
			s.log.Info("held deletions approved on request", "entity", state[i].Name, "records", h.Candidates)
			approve = append(approve, state[i].Name)
		}
	}
	return state, approve
}

// maybeReconcile runs a reconciliation when one is due, and keeps the
// reconciliation schedule and the DeletionsHeld condition in s.obj (written
// by the sync's final status patch: no extra write when nothing runs).
func (s *syncRun) maybeReconcile(ctx context.Context, conn connectors.Connector, entities []model.Kind, res engine.Result, approve []model.Kind) (engine.Result, error) {
	r, obj := s.r, s.obj
	now := r.Clock.Now()
	defer func() { s.heldCondition(res.State) }()
	if obj.Status.Reconciliation == nil {
		obj.Status.Reconciliation = &erpv1.ReconciliationStatus{}
	}
	rs := obj.Status.Reconciliation
	why := s.reconcileDue(now, approve, res.State)
	if why == "" {
		if rs.NextAt == nil {
			rs.NextAt = mtime(firstReconcileAt(obj, now))
		}
		return res, nil
	}
	if _, ok := conn.(connectors.IDLister); !ok {
		rs.NextAt = mtime(nextReconcileAt(obj, now))
		rs.Message = "this connector cannot list the vendor's ids: only deletions the vendor marks, children gone from a parent and records gone from entities read in full reach the CRM"
		return res, nil
	}
	started := now
	var skip time.Time
	if rs.InProgress && rs.StartedAt != nil {
		started, skip = rs.StartedAt.Time, rs.StartedAt.Time
	}
	budget := int64(0)
	if q, ok := conn.(connectors.QuotaReporter); ok {
		if left, limit, ok := q.QuotaLeft(); ok {
			budget = max(1, left-int64(obj.GetQuotaReserveShare()*float64(limit)))
		}
	}
	if err := s.patchStatus(ctx, func(o *erpv1.ErpSync) {
		o.Status.Reconciliation.StartedAt = mtime(started)
		o.Status.Reconciliation.InProgress = true
	}); err != nil {
		return res, err
	}
	s.log.Info("reconciling the CRM with the vendor's id listings", "reason", why, "budget", budget, "resume", !skip.IsZero())
	rres, err := engine.Reconcile(ctx, engine.Run{
		Company:        obj.Spec.CompanyID,
		Vendor:         string(obj.Spec.Connector.Type),
		Connector:      conn,
		Sink:           r.Sink,
		Entities:       entities,
		State:          res.State,
		BatchSize:      r.Options.BatchSize,
		MaxDeleteShare: obj.GetMaxDeleteShare(),
		ApproveHeld:    approve,
		Now:            r.Clock.Now,
		Log:            s.log,
		Checkpoint: func(ctx context.Context, st []engine.EntityState, p engine.Progress) error {
			return s.patchStatus(ctx, func(o *erpv1.ErpSync) {
				o.Status.Entities = fromEngineState(st)
			})
		},
	}, engine.ReconcileOptions{Budget: budget, SkipReconciledSince: skip})
	res.State = rres.State
	res.Calls += rres.Calls
	res.Upserted += rres.Upserted
	res.Skipped += rres.Skipped
	res.Deleted += rres.Deleted
	res.Held = append(res.Held, rres.Held...)
	if err != nil {
		return res, err
	}
	if ret := obj.Spec.Reconcile; ret != nil && ret.TombstoneRetention != nil && ret.TombstoneRetention.Duration > 0 {
		n, err := r.Sink.Purge(ctx, obj.Spec.CompanyID, string(obj.Spec.Connector.Type), now.Add(-ret.TombstoneRetention.Duration))
		if err != nil {
			return res, connectors.Wrap(connectors.KindCRMWriteFailed, err, "purging tombstones past their retention failed")
		}
		if n > 0 {
			s.log.Info("purged tombstones past their retention", "records", n)
		}
	}
	end := r.Clock.Now()
	// The status patches above replaced obj's status with the server's.
	if obj.Status.Reconciliation == nil {
		obj.Status.Reconciliation = &erpv1.ReconciliationStatus{}
	}
	rs = obj.Status.Reconciliation
	rs.InProgress = false
	rs.LastCompleted = mtime(end)
	rs.NextAt = mtime(nextReconcileAt(obj, started))
	rs.Message = shown(reconcileSummary(rres.State, started), maxIncompleteLen)
	r.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, "Reconciled", "Reconcile", "%s", rs.Message)
	return res, nil
}

// reconcileDue says why a reconciliation runs now, or "" when none does.
func (s *syncRun) reconcileDue(now time.Time, approve []model.Kind, state []engine.EntityState) string {
	obj := s.obj
	rs := obj.Status.Reconciliation
	switch {
	case s.decision.ReconcileToken != "":
		return "requested"
	case len(approve) > 0 && heldBy(state, model.DeletedByReconciliation):
		return "deletions held by a reconciliation were approved"
	case rs != nil && rs.InProgress:
		return "resuming an interrupted reconciliation"
	case obj.Spec.Reconcile != nil && obj.Spec.Reconcile.Disabled:
		return ""
	case obj.Status.LastSuccessfulSyncEnd == nil || (obj.Status.Import != nil && len(obj.Status.Import.Entities) == 0):
		// The import that just ended read everything (an import of some
		// entities leaves the schedule to the others).
		return ""
	case rs == nil || rs.NextAt == nil:
		return ""
	case !now.Before(rs.NextAt.Time):
		return "scheduled"
	}
	return ""
}

func heldBy(state []engine.EntityState, via model.DeletionSource) bool {
	for _, s := range state {
		if s.Held != nil && s.Held.Via == via {
			return true
		}
	}
	return false
}

// nextReconcileAt is when the reconciliation after one started at from is
// due: interval later or, with spec.reconcile.timeOfDay, at the first such
// time of day (UTC) at least interval less an hour after it.
func nextReconcileAt(obj *erpv1.ErpSync, from time.Time) time.Time {
	interval := obj.GetReconcileInterval()
	if tod := reconcileTimeOfDay(obj); tod >= 0 {
		return atTimeOfDay(from.Add(max(0, interval-time.Hour)), tod)
	}
	return from.Add(interval)
}

// firstReconcileAt is when the first reconciliation of an ErpSync that has
// none scheduled is due: spread over one interval by a hash of its UID, so
// that thousands of ErpSyncs upgraded or created together do not reconcile
// at once; or the next time of day when one is set.
func firstReconcileAt(obj *erpv1.ErpSync, now time.Time) time.Time {
	interval := obj.GetReconcileInterval()
	if tod := reconcileTimeOfDay(obj); tod >= 0 {
		return atTimeOfDay(now, tod)
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(obj.UID))
	return now.Add(time.Duration(h.Sum64() % uint64(interval))) //nolint:gosec // G115: GetReconcileInterval is > 0, and the remainder < interval fits
}

// reconcileTimeOfDay returns spec.reconcile.timeOfDay as an offset from
// midnight UTC, or -1.
func reconcileTimeOfDay(obj *erpv1.ErpSync) time.Duration {
	if obj.Spec.Reconcile == nil || obj.Spec.Reconcile.TimeOfDay == "" {
		return -1
	}
	t, err := time.Parse("15:04", obj.Spec.Reconcile.TimeOfDay)
	if err != nil {
		return -1
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute
}

// atTimeOfDay returns the first instant at or after t whose UTC time of day
// is tod.
func atTimeOfDay(t time.Time, tod time.Duration) time.Time {
	t = t.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	at := day.Add(tod)
	if at.Before(t) {
		at = at.AddDate(0, 0, 1)
	}
	return at
}

// reconcileSummary sums the reports of the entities reconciled since
// started.
func reconcileSummary(state []engine.EntityState, started time.Time) string {
	var n, deleted, repaired, missing int64
	var held, postponed, distrusted []string
	for _, s := range state {
		rep := s.Reconcile
		if rep == nil || rep.At.Before(started) {
			continue
		}
		n++
		deleted += rep.Deleted
		repaired += rep.Repaired
		missing += rep.Missing
		switch {
		case rep.Postponed:
			postponed = append(postponed, string(s.Name))
		case s.Held != nil && s.Held.Via == model.DeletedByReconciliation:
			held = append(held, string(s.Name))
		case strings.HasPrefix(rep.Note, "deletions not applied"):
			distrusted = append(distrusted, string(s.Name))
		}
	}
	msg := fmt.Sprintf("reconciled %d entities: %d records gone from the ERP, %d marked deleted, %d repaired", n, missing, deleted, repaired)
	if len(held) > 0 {
		msg += "; deletions held by the mass-deletion guard for " + strings.Join(held, ", ")
	}
	if len(distrusted) > 0 {
		msg += "; deletions not applied (listing not trusted) for " + strings.Join(distrusted, ", ")
	}
	if len(postponed) > 0 {
		msg += "; postponed by the quota budget: " + strings.Join(postponed, ", ")
	}
	return msg
}

// heldCondition keeps DeletionsHeld, the held-deletion gauges and a
// Warning event in step with the entities' held deletions.
func (s *syncRun) heldCondition(state []engine.EntityState) {
	obj := s.obj
	var parts []string
	for _, st := range state {
		var n int64
		if h := st.Held; h != nil {
			n = h.Candidates
			pct := 0.0
			if h.Live > 0 {
				pct = 100 * float64(h.Candidates) / float64(h.Live)
			}
			parts = append(parts, fmt.Sprintf("%s: %d of %d %s (%.1f%%, learned by %s)", st.Name, h.Candidates, h.Live, h.Kind, pct, h.Via))
		}
		metrics.SetHeldDeletions(obj.Namespace, obj.Name, string(st.Name), n)
	}
	if len(parts) == 0 {
		removeCondition(obj, erpv1.DeletionsHeldCondition)
		return
	}
	msg := fmt.Sprintf("the mass-deletion guard (at most %.0f%% of an entity) holds deletions: %s; annotate %s or %s to decide",
		100*obj.GetMaxDeleteShare(), strings.Join(parts, "; "), erpv1.ApproveDeletionsAnnotation, erpv1.DiscardDeletionsAnnotation)
	setCondition(obj, erpv1.DeletionsHeldCondition, metav1.ConditionTrue, erpv1.ReasonMassDeletion, shown(msg, maxIncompleteLen*4))
	s.r.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, "DeletionsHeld", "Reconcile", "%s", msg)
}
