package controllers

import (
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/internal/engine"
)

// setCondition sets a condition stamped with the object's generation.
func setCondition(obj *erpv1.ErpSync, typ string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&obj.Status.Conditions, metav1.Condition{
		Type:               typ,
		Status:             status,
		Reason:             reason,
		Message:            truncate(msg, maxConditionMessageLen),
		ObservedGeneration: obj.Generation,
	})
}

// removeCondition deletes a condition (Reconciling and Stalled exist only
// while True).
func removeCondition(obj *erpv1.ErpSync, typ string) {
	meta.RemoveStatusCondition(&obj.Status.Conditions, typ)
}

func mtime(t time.Time) *metav1.Time {
	if t.IsZero() {
		return nil
	}
	mt := metav1.NewTime(t.UTC())
	return &mt
}

func tval(t *metav1.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.Time
}

// Bounds of the CRD on vendor text in status.entities.
const (
	maxStatusIDLen   = 128
	maxIncompleteLen = 512
)

// toEngineState turns status.entities into the engine's state.
func toEngineState(in []erpv1.EntityStatus) []engine.EntityState {
	out := make([]engine.EntityState, 0, len(in))
	for _, e := range in {
		s := engine.EntityState{
			Name:               model.Kind(e.Name),
			Watermark:          tval(e.Watermark),
			LastRunRecords:     e.LastRunRecords,
			LastCompleted:      tval(e.LastCompleted),
			LastRunCalls:       e.LastRunCalls,
			LastRunIncremental: e.LastRunMode == erpv1.SyncModeIncremental,
			SetAside:           e.SetAside,
			SetAsideIDs:        slices.Clone(e.SetAsideIDs),
			SetAsideSince:      tval(e.SetAsideSince),
			Incomplete:         e.Incomplete,
		}
		if h := e.HeldDeletion; h != nil {
			s.Held = &engine.HeldDeletion{Kind: model.Kind(h.Kind), Candidates: h.Records, Live: h.Live, Via: model.DeletionSource(h.Via), At: h.Since.Time}
		}
		if d := e.Deletions; d != nil {
			s.Deletions = &engine.DeletionReport{At: d.Time.Time, Deleted: d.Deleted, Skipped: d.Skipped}
		}
		if r := e.Reconcile; r != nil {
			s.Reconcile = &engine.ReconcileReport{At: r.Time.Time, Listed: r.Listed, Live: r.Live, Missing: r.Missing, Deleted: r.Deleted,
				Absent: r.Absent, Drifted: r.Drifted, Repaired: r.Repaired, Calls: r.APICalls, Note: r.Message, Postponed: r.Postponed}
		}
		if cp := e.Checkpoint; cp != nil {
			s.Resume = &engine.Checkpoint{
				Since:     tval(cp.Since),
				StartedAt: tval(cp.StartedAt),
				Page:      cp.Page,
				Cursor:    cp.Cursor,
				Repeats:   cp.Repeats,
				Distinct:  cp.Distinct,
				Records:   cp.Records,
				Total:     cp.Total,
			}
		}
		out = append(out, s)
	}
	return out
}

// fromEngineState turns the engine's state into status.entities.
func fromEngineState(in []engine.EntityState) []erpv1.EntityStatus {
	out := make([]erpv1.EntityStatus, 0, len(in))
	for _, s := range in {
		e := erpv1.EntityStatus{
			Name:           string(s.Name),
			Watermark:      mtime(s.Watermark),
			LastRunRecords: s.LastRunRecords,
			LastCompleted:  mtime(s.LastCompleted),
			LastRunCalls:   s.LastRunCalls,
			SetAside:       s.SetAside,
			SetAsideSince:  mtime(s.SetAsideSince),
			Incomplete:     shown(s.Incomplete, maxIncompleteLen),
		}
		for _, id := range s.SetAsideIDs {
			if len(e.SetAsideIDs) == engine.MaxSetAsideIDs {
				break
			}
			e.SetAsideIDs = append(e.SetAsideIDs, shown(id, maxStatusIDLen))
		}
		if !s.LastCompleted.IsZero() {
			e.LastRunMode = erpv1.SyncModeFull
			if s.LastRunIncremental {
				e.LastRunMode = erpv1.SyncModeIncremental
			}
		}
		if h := s.Held; h != nil {
			e.HeldDeletion = &erpv1.HeldDeletion{Kind: string(h.Kind), Records: h.Candidates, Live: h.Live, Via: string(h.Via), Since: metav1.NewTime(h.At.UTC().Truncate(time.Second))}
		}
		if d := s.Deletions; d != nil && (d.Deleted > 0 || d.Skipped != "") {
			e.Deletions = &erpv1.EntityDeletions{Time: metav1.NewTime(d.At.UTC().Truncate(time.Second)), Deleted: d.Deleted, Skipped: shown(d.Skipped, maxIncompleteLen)}
		}
		if r := s.Reconcile; r != nil {
			e.Reconcile = &erpv1.EntityReconcile{Time: metav1.NewTime(r.At.UTC().Truncate(time.Second)), Listed: r.Listed, Live: r.Live, Missing: r.Missing,
				Deleted: r.Deleted, Absent: r.Absent, Drifted: r.Drifted, Repaired: r.Repaired, APICalls: r.Calls, Postponed: r.Postponed, Message: shown(r.Note, maxIncompleteLen)}
		}
		if cp := s.Resume; cp != nil {
			e.Checkpoint = &erpv1.EntityCheckpoint{
				Since:     mtime(cp.Since),
				StartedAt: mtime(cp.StartedAt),
				Page:      cp.Page,
				Cursor:    cp.Cursor,
				Repeats:   cp.Repeats,
				Distinct:  cp.Distinct,
				Records:   cp.Records,
				Total:     cp.Total,
			}
		}
		out = append(out, e)
	}
	return out
}
