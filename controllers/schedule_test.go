package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors"
)

func TestDue(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 15, 0, 0, 0, time.UTC)
	end := t0.Add(12 * time.Minute) // a sync from 15:00 to 15:12
	ready := func(status metav1.ConditionStatus, reason string, gen int64) metav1.Condition {
		return metav1.Condition{Type: erpv1.ReadyCondition, Status: status, Reason: reason, ObservedGeneration: gen}
	}
	synced := func(mut ...func(o *erpv1.ErpSync)) *erpv1.ErpSync {
		o := &erpv1.ErpSync{
			ObjectMeta: metav1.ObjectMeta{Generation: 1},
			Spec:       erpv1.ErpSyncSpec{Interval: metav1.Duration{Duration: 15 * time.Minute}},
			Status: erpv1.ErpSyncStatus{
				Phase: erpv1.PhaseSucceeded, LastSyncStart: mtime(t0), LastSyncEnd: mtime(end),
				Conditions: []metav1.Condition{ready(metav1.ConditionTrue, "Succeeded", 1)}, CredentialsVersion: "7",
			},
		}
		for _, m := range mut {
			m(o)
		}
		return o
	}
	failed := func(reason connectors.ErrorKind) func(o *erpv1.ErpSync) {
		return func(o *erpv1.ErpSync) {
			o.Status.Phase = erpv1.PhaseFailed
			o.Status.Conditions = []metav1.Condition{ready(metav1.ConditionFalse, string(reason), 1)}
			o.Spec.RetryInterval = &metav1.Duration{Duration: 2 * time.Minute}
		}
	}
	cases := []struct {
		name    string
		obj     *erpv1.ErpSync
		secret  string
		now     time.Time
		trigger Trigger
		dueAt   time.Time
		full    bool
	}{
		{name: "new object syncs at once", obj: &erpv1.ErpSync{}, now: t0, trigger: TriggerInitial},
		{name: "due exactly interval after the end: 15:00-15:12 means 15:27", obj: synced(), secret: "7", now: end.Add(15 * time.Minute), trigger: TriggerSchedule},
		{name: "a nanosecond before is not due", obj: synced(), secret: "7", now: end.Add(15*time.Minute - 1), dueAt: end.Add(15 * time.Minute)},
		{name: "not measured from the start", obj: synced(), secret: "7", now: t0.Add(15 * time.Minute), dueAt: t0.Add(27 * time.Minute)},
		{name: "suspended never due", obj: synced(func(o *erpv1.ErpSync) { o.Spec.Suspend = true }), now: end.Add(time.Hour)},
		{name: "interrupted sync resumes", obj: synced(func(o *erpv1.ErpSync) { o.Status.Phase = erpv1.PhaseSyncing }), now: end, trigger: TriggerResume},
		{name: "spec change is due at once", obj: synced(func(o *erpv1.ErpSync) { o.Generation = 2 }), secret: "7", now: end, trigger: TriggerGeneration},
		{name: "new requestedAt", obj: synced(func(o *erpv1.ErpSync) { o.Annotations = map[string]string{erpv1.RequestedAtAnnotation: "a"} }), secret: "7", now: end, trigger: TriggerRequested},
		{name: "handled requestedAt", obj: synced(func(o *erpv1.ErpSync) {
			o.Annotations = map[string]string{erpv1.RequestedAtAnnotation: "a"}
			o.Status.LastHandledReconcileAt = "a"
		}), secret: "7", now: end, dueAt: end.Add(15 * time.Minute)},
		{name: "new fullResyncAt", obj: synced(func(o *erpv1.ErpSync) { o.Annotations = map[string]string{erpv1.FullResyncAtAnnotation: "f"} }), secret: "7", now: end, trigger: TriggerFullResync, full: true},
		{name: "first sync with a pending fullResyncAt is full", obj: &erpv1.ErpSync{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{erpv1.FullResyncAtAnnotation: "f"}}}, now: t0, trigger: TriggerInitial, full: true},
		{name: "failure retries after retryInterval", obj: synced(failed(connectors.KindERPUnavailable)), secret: "7", now: end.Add(time.Minute), dueAt: end.Add(2 * time.Minute)},
		{name: "failure retry due", obj: synced(failed(connectors.KindERPUnavailable)), secret: "7", now: end.Add(2 * time.Minute), trigger: TriggerSchedule},
		{name: "credentials failure retries when the Secret changes", obj: synced(failed(connectors.KindAuthenticationFailed)), secret: "8", now: end, trigger: TriggerCredentials},
		{name: "credentials failure waits while the Secret is unchanged", obj: synced(failed(connectors.KindAuthenticationFailed)), secret: "7", now: end, dueAt: end.Add(2 * time.Minute)},
		{name: "other failures ignore Secret changes", obj: synced(failed(connectors.KindERPUnavailable)), secret: "8", now: end, dueAt: end.Add(2 * time.Minute)},
		{name: "quota exhausted waits for the reset", obj: synced(failed(connectors.KindQuotaExhausted), func(o *erpv1.ErpSync) {
			o.Status.NextSyncAt = mtime(end.Add(9 * time.Hour))
		}), secret: "7", now: end.Add(time.Hour), dueAt: end.Add(9 * time.Hour)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := Due(tc.obj, tc.secret, tc.now)
			if d.Trigger != tc.trigger || d.Full != tc.full || !d.DueAt.Equal(tc.dueAt) {
				t.Fatalf("Due() = %+v, want trigger %q full %v dueAt %v", d, tc.trigger, tc.full, tc.dueAt)
			}
		})
	}
}
