package kubectlplugin

import (
	"bytes"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	erpsyncv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
)

var now = time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC)

func at(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(d)); return &t }

func cond(typ string, s metav1.ConditionStatus, reason string) metav1.Condition {
	return metav1.Condition{Type: typ, Status: s, Reason: reason, Message: reason + " message"}
}

// erpsync builds an ErpSync of namespace ns and name, 15m interval,
// created a day ago, with the given conditions and last success.
func erpsync(ns, name string, lastSuccess *metav1.Time, conds ...metav1.Condition) *erpsyncv1.ErpSync {
	return &erpsyncv1.ErpSync{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: *at(-24 * time.Hour)},
		Spec: erpsyncv1.ErpSyncSpec{CompanyID: strings.ToUpper(name), Interval: metav1.Duration{Duration: 15 * time.Minute},
			Connector: erpsyncv1.ConnectorSpec{Type: erpsyncv1.ConnectorXero, CredentialsRef: erpsyncv1.LocalSecretReference{Name: "creds"}}},
		Status: erpsyncv1.ErpSyncStatus{Conditions: conds, LastSuccessfulSyncEnd: lastSuccess},
	}
}

func TestAttention(t *testing.T) {
	ready := cond("Ready", metav1.ConditionTrue, "Succeeded")
	suspended := erpsync("a", "paused", at(-5*time.Hour), ready)
	suspended.Spec.Suspend = true
	held := erpsync("a", "held", at(-time.Minute), ready)
	held.Status.Entities = []erpsyncv1.EntityStatus{{Name: "products", HeldDeletion: &erpsyncv1.HeldDeletion{Kind: "product", Records: 30, Live: 100, Via: "absent"}}}
	newborn := erpsync("a", "newborn", nil)
	newborn.CreationTimestamp = *at(-time.Minute)
	for _, tc := range []struct {
		name string
		o    *erpsyncv1.ErpSync
		want Attention
		why  string
	}{
		{"ready and recent", erpsync("a", "ok", at(-10*time.Minute), ready), AttentionOK, ""},
		{"ready false", erpsync("a", "down", at(-10*time.Minute), cond("Ready", metav1.ConditionFalse, "ERPUnavailable")), AttentionNotReady, "Ready=False: ERPUnavailable"},
		{"stalled wins over ready", erpsync("a", "stalled", nil, ready, cond("Stalled", metav1.ConditionTrue, "InvalidConfig")), AttentionNotReady, "stalled: InvalidConfig"},
		{"no verdict yet", newborn, AttentionNotReady, "no verdict yet"},
		{"stale: three intervals without success", erpsync("a", "stale", at(-46*time.Minute), ready), AttentionStale, "last success 46m ago (> 3 intervals)"},
		{"just within three intervals", erpsync("a", "fresh", at(-44*time.Minute), ready), AttentionOK, ""},
		{"suspended is never stale", suspended, AttentionOK, "suspended"},
		{"held deletions are named", held, AttentionOK, "deletions held: products"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Summarize(tc.o, now)
			if s.Attention != tc.want || s.Why != tc.why {
				t.Fatalf("attention %s %q, want %s %q", s.Attention, s.Why, tc.want, tc.why)
			}
		})
	}
}

func TestSortSummaries(t *testing.T) {
	ready := cond("Ready", metav1.ConditionTrue, "Succeeded")
	down := cond("Ready", metav1.ConditionFalse, "AuthenticationFailed")
	objs := []*erpsyncv1.ErpSync{
		erpsync("b", "ok2", at(-time.Minute), ready),
		erpsync("a", "ok1", at(-2*time.Minute), ready),
		erpsync("a", "stale-recent", at(-50*time.Minute), ready),
		erpsync("z", "down-old", at(-3*time.Hour), down),
		erpsync("a", "stale-old", at(-5*time.Hour), ready),
		erpsync("a", "down-never", nil, down),
		erpsync("c", "ok0", at(-2*time.Minute), ready),
	}
	var s []Summary
	for _, o := range objs {
		s = append(s, Summarize(o, now))
	}
	SortSummaries(s)
	var got []string
	for _, x := range s {
		got = append(got, x.Namespace+"/"+x.Name)
	}
	want := []string{"a/down-never", "z/down-old", "a/stale-old", "a/stale-recent", "a/ok1", "c/ok0", "b/ok2"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("order\n got %v\nwant %v", got, want)
	}

	var buf bytes.Buffer
	if err := RenderSummaries(&buf, s, true, now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1+len(want) {
		t.Fatalf("want a header and %d rows:\n%s", len(want), buf.String())
	}
	for _, col := range []string{"NAMESPACE", "NAME", "COMPANY", "READY", "LAST SUCCESS", "NEXT SYNC", "ATTENTION"} {
		if !strings.Contains(lines[0], col) {
			t.Errorf("header lacks %s: %q", col, lines[0])
		}
	}
	if f := strings.Fields(lines[1]); f[0] != "a" || f[1] != "down-never" || !strings.Contains(lines[1], "NotReady: Ready=False: AuthenticationFailed") {
		t.Errorf("first row %q", lines[1])
	}
	if !strings.Contains(lines[3], "5h ago") || !strings.Contains(lines[3], "Stale") {
		t.Errorf("third row %q", lines[3])
	}
	buf.Reset()
	if err := RenderSummaries(&buf, s[:1], false, now); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "NAMESPACE") {
		t.Errorf("a one-namespace listing shows the namespace:\n%s", buf.String())
	}
}

// fullStatus is an ErpSync whose status has every part status shows.
func fullStatus() *erpsyncv1.ErpSync {
	o := erpsync("acme", "acme-xero", at(-3*time.Minute), cond("Ready", metav1.ConditionTrue, "Succeeded"),
		cond("WebhooksReady", metav1.ConditionTrue, "Active"))
	st := &o.Status
	st.Phase = erpsyncv1.PhaseSyncing
	st.LastSyncEnd = at(-3 * time.Minute)
	st.NextSyncAt = at(12 * time.Minute)
	st.LastSync = &erpsyncv1.SyncSummary{Mode: erpsyncv1.SyncModeIncremental, Records: 42, Upserted: 5, APICalls: 9, Duration: metav1.Duration{Duration: 1500 * time.Millisecond}}
	st.Progress = &erpsyncv1.SyncProgress{Entity: "customers", Records: 17, APICalls: 3}
	st.Entities = []erpsyncv1.EntityStatus{
		{Name: "products", LastRunMode: erpsyncv1.SyncModeIncremental, LastRunRecords: 120, LastRunCalls: 4,
			Watermark: at(-4 * time.Minute), LastCompleted: at(-3 * time.Minute),
			Reconcile: &erpsyncv1.EntityReconcile{Time: *at(-time.Hour), Listed: 120, Live: 121, Missing: 1, Deleted: 1, Drifted: 2, Repaired: 2, APICalls: 3},
			Deletions: &erpsyncv1.EntityDeletions{Time: *at(-2 * time.Hour), Deleted: 4}},
		{Name: "customers", LastRunMode: erpsyncv1.SyncModeFull, LastRunRecords: 30, LastRunCalls: 2,
			Checkpoint: &erpsyncv1.EntityCheckpoint{Page: 3, Records: 17, Total: 30}, SetAside: 1},
	}
	st.Webhooks = &erpsyncv1.WebhookStatus{LastEventAt: at(-30 * time.Second), Accepted: 12, Rejected: 1,
		LastTargetedSync: &erpsyncv1.TargetedSyncStatus{Time: *at(-20 * time.Second), Targets: 2, Upserted: 2, APICalls: 2, LagMillis: 2300}}
	return o
}

func TestRenderStatus(t *testing.T) {
	o := fullStatus()
	limit, left := int64(5000), int64(4893)
	v := &StatusView{Summary: Summarize(o, now), ErpSync: o,
		Quotas:    []QuotaView{{Key: "xero:abc", Credential: "xero-0123abcd", Quota: "day", PeriodStart: now.Truncate(24 * time.Hour), Used: 7, Reserved: 100, Limit: &limit, Left: &left}},
		QuotaNote: "the quota this ErpSync's last sync counted against (status.quotaCredentials)",
		Events:    []EventView{{Time: now.Add(-time.Hour), Type: "Normal", Reason: "SyncSucceeded", Count: 1, Message: "synced 42\nrecords"}},
	}
	var buf bytes.Buffer
	if err := RenderStatus(&buf, v, now); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"ErpSync acme/acme-xero  company ACME-XERO  connector xero",
		"Ready:        True (Succeeded)",
		"Condition:    WebhooksReady=True Active",
		"Last sync:    incremental, 42 records, 5 upserted, 9 API calls, 1.5s (ended 3m ago)",
		"Next sync:    " + now.Add(12*time.Minute).Format(time.RFC3339) + " (in 12m)",
		"Running:      entity customers, 17 records, 3 API calls so far",
		"Reconciliation (drift) per entity:",
		"Deletions:",
		"last event 30s ago, accepted 12, rejected 1",
		"lag 2.3s",
		"xero-0123abcd", "4893", "status.quotaCredentials",
		"SyncSucceeded", "synced 42 records",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	// The entity table: products' pass and customers' checkpoint.
	row := lineWith(out, "  products ")
	for _, want := range []string{"incremental", "120", now.Add(-4 * time.Minute).Format(time.RFC3339)} {
		if !strings.Contains(row, want) {
			t.Errorf("products row %q lacks %q", row, want)
		}
	}
	if row := lineWith(out, "  customers "); !strings.Contains(row, "page 3, 17 records of 30") || !strings.Contains(row, "1 set aside") {
		t.Errorf("customers row %q", row)
	}
	// Drift only for the entity whose status has a reconciliation.
	drift := out[strings.Index(out, "Reconciliation (drift)"):strings.Index(out, "Deletions:")]
	if strings.Contains(drift, "customers") || !strings.Contains(drift, "products") {
		t.Errorf("drift section:\n%s", drift)
	}
}

func TestRenderStatusInventsNothing(t *testing.T) {
	o := erpsync("acme", "quiet", nil)
	o.Status.Entities = []erpsyncv1.EntityStatus{{Name: "products", LastRunRecords: 3}}
	v := &StatusView{Summary: Summarize(o, now), ErpSync: o}
	var buf bytes.Buffer
	if err := RenderStatus(&buf, v, now); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, absent := range []string{"Reconciliation (drift)", "Deletions:", "Webhooks:", "Running:", "Import:"} {
		if strings.Contains(out, absent) {
			t.Errorf("status shows %q the object does not have:\n%s", absent, out)
		}
	}
	if !strings.Contains(out, "Events:\n  none") {
		t.Errorf("no events should say none:\n%s", out)
	}
}

func lineWith(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func TestEvents(t *testing.T) {
	mk := func(reason string, last time.Time, eventTime time.Time, series *corev1.EventSeries) corev1.Event {
		return corev1.Event{Reason: reason, Type: "Normal", LastTimestamp: metav1.NewTime(last), EventTime: metav1.NewMicroTime(eventTime), Series: series}
	}
	list := []corev1.Event{
		mk("Newest", time.Time{}, now.Add(-time.Minute), &corev1.EventSeries{Count: 4, LastObservedTime: metav1.NewMicroTime(now)}),
		mk("Oldest", now.Add(-3*time.Hour), time.Time{}, nil),
		mk("Middle", time.Time{}, now.Add(-time.Hour), nil),
	}
	got := Events(list, 2)
	if len(got) != 2 || got[0].Reason != "Middle" || got[1].Reason != "Newest" {
		t.Fatalf("want the last two, latest last: %+v", got)
	}
	if got[1].Count != 4 || !got[1].Time.Equal(now) {
		t.Errorf("a series reads as its count and last observation: %+v", got[1])
	}
	if all := Events(list, 0); len(all) != 3 || all[0].Reason != "Oldest" {
		t.Errorf("all events: %+v", all)
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		45 * time.Second:             "45s",
		12 * time.Minute:             "12m",
		3*time.Hour + 20*time.Minute: "3h20m",
		2 * time.Hour:                "2h",
		50 * time.Hour:               "2d2h",
		-90 * time.Second:            "1m",
		72 * time.Hour:               "3d",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%s) = %s, want %s", d, got, want)
		}
	}
}
