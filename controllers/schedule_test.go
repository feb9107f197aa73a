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
	importing := func(o *erpv1.ErpSync) {
		o.Status.Import = &erpv1.ImportStatus{StartedAt: metav1.NewTime(t0.Add(-time.Hour)), Syncs: 3}
	}
	annotate := func(kv ...string) func(o *erpv1.ErpSync) {
		return func(o *erpv1.ErpSync) {
			o.Annotations = map[string]string{}
			for i := 0; i+1 < len(kv); i += 2 {
				o.Annotations[kv[i]] = kv[i+1]
			}
		}
	}
	syncing := func(o *erpv1.ErpSync) { o.Status.Phase = erpv1.PhaseSyncing }
	cases := []struct {
		name    string
		obj     *erpv1.ErpSync
		secret  string
		now     time.Time
		trigger Trigger
		dueAt   time.Time
		full    bool
		// reqToken and fullToken are the tokens the sync honours; skip its
		// SkipCompletedSince.
		reqToken, fullToken string
		skip                time.Time
	}{
		{name: "new object syncs at once", obj: &erpv1.ErpSync{}, now: t0, trigger: TriggerInitial},
		{name: "due exactly interval after the end: 15:00-15:12 means 15:27", obj: synced(), secret: "7", now: end.Add(15 * time.Minute), trigger: TriggerSchedule},
		{name: "a nanosecond before is not due", obj: synced(), secret: "7", now: end.Add(15*time.Minute - 1), dueAt: end.Add(15 * time.Minute)},
		{name: "not measured from the start", obj: synced(), secret: "7", now: t0.Add(15 * time.Minute), dueAt: t0.Add(27 * time.Minute)},
		{name: "suspended never due", obj: synced(func(o *erpv1.ErpSync) { o.Spec.Suspend = true }), now: end.Add(time.Hour)},
		{name: "interrupted sync resumes, skipping what it finished", obj: synced(syncing), now: end, trigger: TriggerResume, skip: t0},
		{name: "interrupted import resumes, skipping what the import finished", obj: synced(syncing, importing), now: end, trigger: TriggerResume, skip: t0.Add(-time.Hour)},
		{name: "a full resync requested before a restart runs instead of the resume, and only it marks the token",
			obj: synced(syncing, annotate(erpv1.FullResyncAtAnnotation, "f")), now: end, trigger: TriggerFullResync, full: true, fullToken: "f"},
		{name: "a full resync requested before a restart honours a pending requestedAt too",
			obj: synced(syncing, annotate(erpv1.FullResyncAtAnnotation, "f", erpv1.RequestedAtAnnotation, "r")), now: end, trigger: TriggerFullResync, full: true, fullToken: "f", reqToken: "r"},
		{name: "a handled fullResyncAt does not replace the resume",
			obj: synced(syncing, annotate(erpv1.FullResyncAtAnnotation, "f"), func(o *erpv1.ErpSync) { o.Status.LastHandledFullResyncAt = "f" }), now: end, trigger: TriggerResume, skip: t0},
		{name: "a sync requested before a restart runs instead of the resume, reading finished entities again",
			obj: synced(syncing, annotate(erpv1.RequestedAtAnnotation, "r")), now: end, trigger: TriggerRequested, reqToken: "r"},
		{name: "credentials that could not be written are retried by their deadline, before retryInterval",
			obj: synced(failed(connectors.KindCredentialsWriteFailed), func(o *erpv1.ErpSync) {
				o.Spec.RetryInterval = &metav1.Duration{Duration: time.Hour}
				o.Status.NextSyncAt = mtime(end.Add(time.Minute))
			}), secret: "7", now: end.Add(30 * time.Second), dueAt: end.Add(time.Minute)},
		{name: "a vendor's reset earlier than retryInterval does not bring a retry forward",
			obj: synced(failed(connectors.KindQuotaExhausted), func(o *erpv1.ErpSync) {
				o.Status.NextSyncAt = mtime(end.Add(time.Minute))
			}), secret: "7", now: end.Add(time.Minute), dueAt: end.Add(2 * time.Minute)},
		{name: "retry of a failed import skips what the import finished", obj: synced(failed(connectors.KindERPUnavailable), importing), secret: "7", now: end.Add(2 * time.Minute), trigger: TriggerSchedule, skip: t0.Add(-time.Hour)},
		{name: "a spec change after a failure reads everything", obj: synced(failed(connectors.KindERPUnavailable), func(o *erpv1.ErpSync) { o.Generation = 2 }), secret: "7", now: end, trigger: TriggerGeneration},
		{name: "a requested sync after a failure reads everything", obj: synced(failed(connectors.KindERPUnavailable), annotate(erpv1.RequestedAtAnnotation, "r")), secret: "7", now: end, trigger: TriggerRequested, reqToken: "r"},
		{name: "spec change is due at once", obj: synced(func(o *erpv1.ErpSync) { o.Generation = 2 }), secret: "7", now: end, trigger: TriggerGeneration},
		{name: "new requestedAt", obj: synced(func(o *erpv1.ErpSync) { o.Annotations = map[string]string{erpv1.RequestedAtAnnotation: "a"} }), secret: "7", now: end, trigger: TriggerRequested, reqToken: "a"},
		{name: "handled requestedAt", obj: synced(func(o *erpv1.ErpSync) {
			o.Annotations = map[string]string{erpv1.RequestedAtAnnotation: "a"}
			o.Status.LastHandledReconcileAt = "a"
		}), secret: "7", now: end, dueAt: end.Add(15 * time.Minute)},
		{name: "new fullResyncAt", obj: synced(func(o *erpv1.ErpSync) { o.Annotations = map[string]string{erpv1.FullResyncAtAnnotation: "f"} }), secret: "7", now: end, trigger: TriggerFullResync, full: true, fullToken: "f"},
		{name: "first sync with a pending fullResyncAt is full", obj: &erpv1.ErpSync{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{erpv1.FullResyncAtAnnotation: "f"}}}, now: t0, trigger: TriggerInitial, full: true, fullToken: "f"},
		{name: "failure retries after retryInterval", obj: synced(failed(connectors.KindERPUnavailable)), secret: "7", now: end.Add(time.Minute), dueAt: end.Add(2 * time.Minute)},
		{name: "failure retry due; it skips what the failed sync finished", obj: synced(failed(connectors.KindERPUnavailable)), secret: "7", now: end.Add(2 * time.Minute), trigger: TriggerSchedule, skip: t0},
		{name: "credentials failure retries when the Secret changes, skipping what the failed sync finished", obj: synced(failed(connectors.KindAuthenticationFailed)), secret: "8", now: end, trigger: TriggerCredentials, skip: t0},
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
			if d.RequestToken != tc.reqToken || d.FullResyncToken != tc.fullToken {
				t.Errorf("Due() honours requestedAt %q fullResyncAt %q, want %q %q", d.RequestToken, d.FullResyncToken, tc.reqToken, tc.fullToken)
			}
			if !d.SkipCompletedSince.Equal(tc.skip) {
				t.Errorf("Due() skips entities completed since %v, want %v", d.SkipCompletedSince, tc.skip)
			}
		})
	}
}

func TestRetryDelayBacksOffOverConsecutiveFailures(t *testing.T) {
	obj := func(interval, retry time.Duration, failures int64) *erpv1.ErpSync {
		o := &erpv1.ErpSync{Spec: erpv1.ErpSyncSpec{Interval: metav1.Duration{Duration: interval}}}
		if retry > 0 {
			o.Spec.RetryInterval = &metav1.Duration{Duration: retry}
		}
		o.Status.ConsecutiveFailures = failures
		return o
	}
	cases := []struct {
		name     string
		interval time.Duration
		retry    time.Duration
		failures int64
		want     time.Duration
	}{
		{"no failure counted yet: the retry interval", 15 * time.Minute, 2 * time.Minute, 0, 2 * time.Minute},
		{"first failure: the retry interval", 15 * time.Minute, 2 * time.Minute, 1, 2 * time.Minute},
		{"second: doubled", 15 * time.Minute, 2 * time.Minute, 2, 4 * time.Minute},
		{"third: four times", 15 * time.Minute, 2 * time.Minute, 3, 8 * time.Minute},
		{"sixth: capped at 1h", 15 * time.Minute, 2 * time.Minute, 6, time.Hour},
		{"a very long run of failures stays capped", 15 * time.Minute, 2 * time.Minute, 1 << 40, time.Hour},
		{"an interval longer than 1h caps instead", 6 * time.Hour, 30 * time.Minute, 10, 6 * time.Hour},
		{"a retry interval above 1h is not shortened", 6 * time.Hour, 6 * time.Hour, 1, 6 * time.Hour},
		{"the retry interval defaults to the interval", 15 * time.Minute, 0, 2, 30 * time.Minute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := RetryDelay(obj(tc.interval, tc.retry, tc.failures)); got != tc.want {
				t.Errorf("RetryDelay() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDueBacksOffAndAClaimThatHoldsSyncsAtOnce(t *testing.T) {
	end := time.Date(2026, 11, 26, 15, 12, 0, 0, time.UTC)
	failedN := func(n int64, reason string) *erpv1.ErpSync {
		return &erpv1.ErpSync{
			ObjectMeta: metav1.ObjectMeta{Generation: 1},
			Spec: erpv1.ErpSyncSpec{Interval: metav1.Duration{Duration: 15 * time.Minute},
				RetryInterval: &metav1.Duration{Duration: time.Minute}},
			Status: erpv1.ErpSyncStatus{
				Phase: erpv1.PhaseFailed, LastSyncStart: mtime(end.Add(-time.Minute)), LastSyncEnd: mtime(end), ConsecutiveFailures: n,
				Conditions: []metav1.Condition{{Type: erpv1.ReadyCondition, Status: metav1.ConditionFalse, Reason: reason, ObservedGeneration: 1}},
			},
		}
	}
	cases := []struct {
		name    string
		obj     *erpv1.ErpSync
		now     time.Time
		trigger Trigger
		dueAt   time.Time
	}{
		{"after one failure: retryInterval", failedN(1, "ERPUnavailable"), end, TriggerNone, end.Add(time.Minute)},
		{"after three in a row: four times", failedN(3, "ERPUnavailable"), end.Add(3 * time.Minute), TriggerNone, end.Add(4 * time.Minute)},
		{"after three in a row, due at four times", failedN(3, "ERPUnavailable"), end.Add(4 * time.Minute), TriggerSchedule, time.Time{}},
		{"a refused claim that now holds syncs at once", failedN(0, erpv1.ReasonCompanyClaimed), end, TriggerClaim, time.Time{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := Due(tc.obj, "", tc.now)
			if d.Trigger != tc.trigger || !d.DueAt.Equal(tc.dueAt) {
				t.Errorf("Due() = %+v, want trigger %q dueAt %v", d, tc.trigger, tc.dueAt)
			}
		})
	}
}
