package main

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
)

func status(start, end time.Time, failures int64, ready bool) *erpv1.ErpSyncStatus {
	st := &erpv1.ErpSyncStatus{ConsecutiveFailures: failures}
	if !start.IsZero() {
		st.LastSyncStart = &metav1.Time{Time: start}
	}
	if !end.IsZero() {
		st.LastSyncEnd = &metav1.Time{Time: end}
	}
	if ready {
		st.Conditions = []metav1.Condition{{Type: erpv1.ReadyCondition, Status: metav1.ConditionTrue}}
	}
	return st
}

func TestTrackerLateness(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	type step struct {
		start, end int // seconds after t0; -1: unset
		failures   int64
		ready      bool
	}
	for _, tc := range []struct {
		name    string
		steps   []step
		from    int
		to      int
		want    []time.Duration
		overdue int
	}{
		{"on time, then 3 s late", []step{{0, -1, 0, false}, {0, 10, 0, true}, {70, 10, 0, true}, {70, 75, 0, true}, {138, 75, 0, true}},
			0, 200, []time.Duration{0, 3 * time.Second}, 0},
		{"the first sync has no due time", []step{{5, -1, 0, false}, {5, 20, 0, true}}, 0, 70, nil, 0},
		{"start and end seen together count the start", []step{{0, 10, 0, true}, {72, 80, 0, true}}, 0, 130, []time.Duration{2 * time.Second}, 0},
		{"after two failures the retry delay doubles", []step{{0, 10, 2, false}, {130, 10, 2, false}}, 0, 200, []time.Duration{0}, 0},
		{"due but not started: overdue so far", []step{{0, 10, 0, true}}, 0, 100, []time.Duration{30 * time.Second}, 1},
		{"running: not overdue", []step{{0, 10, 0, true}, {70, 10, 0, true}}, 0, 100, []time.Duration{0}, 0},
		{"outside the window", []step{{0, 10, 0, true}, {70, 80, 0, true}}, 100, 130, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTracker(1, time.Minute, time.Minute)
			for _, s := range tc.steps {
				var start, end time.Time
				if s.start >= 0 {
					start = at(s.start)
				}
				if s.end >= 0 {
					end = at(s.end)
				}
				tr.observe("ns/a", status(start, end, s.failures, s.ready), end)
			}
			got := tr.latenessSince(at(tc.from), at(tc.to))
			if len(got) != len(tc.want) {
				t.Fatalf("got %d samples %+v, want %v", len(got), got, tc.want)
			}
			overdue := 0
			for i, l := range got {
				if l.late != tc.want[i] {
					t.Errorf("sample %d: late %s, want %s", i, l.late, tc.want[i])
				}
				if l.overdue {
					overdue++
				}
			}
			if overdue != tc.overdue {
				t.Errorf("%d overdue, want %d", overdue, tc.overdue)
			}
		})
	}
}

func TestTrackerReadyAndEnds(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	tr := newTracker(2, time.Minute, time.Minute)
	tr.observe("ns/a", status(t0, t0.Add(5*time.Second), 0, true), t0.Add(6*time.Second))
	if n, at := tr.readyCount(); n != 1 || !at.IsZero() {
		t.Fatalf("after one Ready: %d, %v", n, at)
	}
	// Ready turning False does not undo "has been Ready".
	tr.observe("ns/a", status(t0.Add(65*time.Second), t0.Add(66*time.Second), 1, false), t0.Add(67*time.Second))
	tr.observe("ns/b", status(t0, t0.Add(9*time.Second), 0, true), t0.Add(10*time.Second))
	n, at := tr.readyCount()
	if n != 2 || !at.Equal(t0.Add(10*time.Second)) {
		t.Errorf("readyCount = %d, %v; want 2 at +10s", n, at)
	}
	// The same state seen twice is one attempt.
	tr.observe("ns/b", status(t0, t0.Add(9*time.Second), 0, true), t0.Add(11*time.Second))
	if got := tr.endsBetween(t0, t0.Add(time.Minute)); got != 2 {
		t.Errorf("ends in the first minute: %d, want 2", got)
	}
	if got := tr.endsBetween(t0, t0.Add(2*time.Minute)); got != 3 {
		t.Errorf("ends in two minutes: %d, want 3", got)
	}
}

func TestPercentile(t *testing.T) {
	s := func(n ...int) []time.Duration {
		out := make([]time.Duration, len(n))
		for i, v := range n {
			out[i] = time.Duration(v) * time.Second
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, tc := range []struct {
		name string
		ds   []time.Duration
		p    float64
		want time.Duration
	}{
		{"none", nil, 50, 0},
		{"one", s(7), 99, 7 * time.Second},
		{"median of unsorted", s(5, 1, 3), 50, 3 * time.Second},
		{"p99 of 1..100", s(hundred...), 99, 99 * time.Second},
		{"p50 of 1..100", s(hundred...), 50, 50 * time.Second},
		{"p100", s(2, 9, 4), 100, 9 * time.Second},
	} {
		if got := percentile(tc.ds, tc.p); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestCountWrites(t *testing.T) {
	log := strings.Join([]string{
		`{"stage":"ResponseComplete","verb":"patch","user":{"username":"erpsync-manager"},"objectRef":{"resource":"erpsyncs","subresource":"status"},"stageTimestamp":"2025-01-01T12:00:01.000000Z"}`,
		`{"stage":"ResponseComplete","verb":"update","user":{"username":"erpsync-manager"},"objectRef":{"resource":"erpsyncs","subresource":"status"},"stageTimestamp":"2025-01-01T12:00:02.000000Z"}`,
		`{"stage":"ResponseComplete","verb":"create","user":{"username":"erpsync-manager"},"objectRef":{"resource":"events"},"stageTimestamp":"2025-01-01T12:00:03.000000Z"}`,
		`{"stage":"ResponseComplete","verb":"update","user":{"username":"erpsync-manager"},"objectRef":{"resource":"leases"},"stageTimestamp":"2025-01-01T12:00:03.500000Z"}`,
		// Another user, another stage, a read, outside the window: not counted.
		`{"stage":"ResponseComplete","verb":"create","user":{"username":"admin"},"objectRef":{"resource":"erpsyncs"},"stageTimestamp":"2025-01-01T12:00:04.000000Z"}`,
		`{"stage":"ResponseStarted","verb":"patch","user":{"username":"erpsync-manager"},"objectRef":{"resource":"erpsyncs","subresource":"status"},"stageTimestamp":"2025-01-01T12:00:04.000000Z"}`,
		`{"stage":"ResponseComplete","verb":"get","user":{"username":"erpsync-manager"},"objectRef":{"resource":"erpsyncs"},"stageTimestamp":"2025-01-01T12:00:04.000000Z"}`,
		`{"stage":"ResponseComplete","verb":"patch","user":{"username":"erpsync-manager"},"objectRef":{"resource":"erpsyncs","subresource":"status"},"stageTimestamp":"2025-01-01T12:00:10.000000Z"}`,
		`{"stage":"ResponseComplete","verb":"create","user":{"username":"erpsync-manager"},"stageTimestamp":"2025-01-01T12:00:05.000000Z"}`,
	}, "\n")
	from := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	got, err := countWrites(strings.NewReader(log), "erpsync-manager", from, from.Add(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if want := "erpsyncs/status=2 events=1 leases=1"; got.String() != want {
		t.Errorf("counts %s, want %s", got, want)
	}
	if got.syncWrites() != 3 {
		t.Errorf("sync writes %d, want 3", got.syncWrites())
	}
	if _, err := countWrites(strings.NewReader("{not json\n"), "u", from, from); err == nil {
		t.Error("a broken audit line was not an error")
	}
}

func TestProcParsing(t *testing.T) {
	status := "Name:\tmanager\nVmPeak:\t 2000000 kB\nVmHWM:\t  153600 kB\nVmRSS:\t  100000 kB\n"
	if got, err := procStatusKiB(status, "VmHWM"); err != nil || got != 153600 {
		t.Errorf("VmHWM = %d, %v; want 153600", got, err)
	}
	if _, err := procStatusKiB(status, "VmSwap"); err == nil {
		t.Error("a missing field was not an error")
	}
	if _, err := procStatusKiB("VmHWM:\t12 MB\n", "VmHWM"); err == nil {
		t.Error("a field in another unit was not an error")
	}
	// The command may hold spaces and parentheses.
	stat := "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 12 0 100 2000000 3000 18446744073709551615"
	if got, err := procCPUTicks(stat); err != nil || got != 325 {
		t.Errorf("ticks = %d, %v; want 325", got, err)
	}
	if _, err := procCPUTicks("4242 (x) S 1 2"); err == nil {
		t.Error("a short stat was not an error")
	}
}

func TestTrackerOverdue(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	tr := newTracker(4, time.Minute, time.Minute)
	tr.observe("a", status(at(0), at(10), 0, true), at(10))      // due at 70
	tr.observe("b", status(at(0), at(30), 0, true), at(30))      // due at 90
	tr.observe("c", status(at(80), at(10), 0, true), at(80))     // running
	tr.observe("d", status(at(0), at(5), 1, false), at(5))       // retry due at 65
	tr.observe("e", status(at(0), time.Time{}, 0, false), at(0)) // never ended
	for _, tc := range []struct {
		now, want int
	}{
		{60, 0},  // nothing due yet
		{72, 1},  // d is 7 s late; a is 2 s late, within the slack
		{80, 2},  // a and d
		{100, 3}, // a, b and d; c runs, e never ended
	} {
		if got := tr.overdueAt(at(tc.now), 5*time.Second); got != tc.want {
			t.Errorf("overdue at %d s = %d, want %d", tc.now, got, tc.want)
		}
	}
}

func TestTrackerNeverReady(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	tr := newTracker(4, time.Minute, time.Minute)
	tr.observe("a", status(t0, t0, 0, true), t0)
	failed := status(t0, t0, 1, false)
	failed.Conditions = []metav1.Condition{{Type: erpv1.ReadyCondition, Status: metav1.ConditionFalse, Reason: "RateLimited"}}
	tr.observe("b", failed, t0)
	tr.observe("c", status(t0, time.Time{}, 0, false), t0)
	got := tr.neverReady()
	if len(got) != 2 || got["RateLimited"] != 1 || got["none"] != 2 {
		t.Errorf("never Ready %v, want RateLimited:1 none:2 (one running, one never seen)", got)
	}
}
