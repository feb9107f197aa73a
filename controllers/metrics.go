package controllers

import (
	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/internal/metrics"
)

// exportConditions makes erpsync_condition equal obj's conditions, after
// each write of them: a condition that went (Stalled, Reconciling) loses
// its series.
func exportConditions(obj *erpv1.ErpSync) {
	metrics.SetConditions(obj.Namespace, obj.Name, conditionMetrics(obj))
}

// exportIfNew exports obj's gauges from its status when this process has
// not exported them yet: after a start, a leader change, or when obj's
// shard came to this replica. Without it the last success, the conditions
// and the per-entity gauges would be missing until obj's next sync ends
// (up to an interval: a staleness alert or panel would miss obj meanwhile).
func exportIfNew(obj *erpv1.ErpSync) {
	var held map[string]int64
	for _, e := range obj.Status.Entities {
		if h := e.HeldDeletion; h != nil && h.Records > 0 {
			if held == nil {
				held = map[string]int64{}
			}
			held[e.Name] = h.Records
		}
	}
	metrics.SetObjectIfNew(obj.Namespace, obj.Name, metrics.ObjectStatus{
		Connector:     string(obj.Spec.Connector.Type),
		LastSuccess:   tval(obj.Status.LastSuccessfulSyncEnd),
		Conditions:    conditionMetrics(obj),
		Entities:      entityMetrics(obj.Status.Entities),
		HeldDeletions: held,
	})
}

func conditionMetrics(obj *erpv1.ErpSync) []metrics.Condition {
	out := make([]metrics.Condition, 0, len(obj.Status.Conditions))
	for _, c := range obj.Status.Conditions {
		out = append(out, metrics.Condition{Type: c.Type, Status: string(c.Status)})
	}
	return out
}
