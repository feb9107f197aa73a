package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
)

// tracker follows every ErpSync's status as the watch delivers it and
// derives the benchmark's figures: when all were first Ready, the
// lateness of each sync start (status.lastSyncStart minus the due time the
// previous attempt set: its lastSyncEnd plus the interval, or plus the
// retry delay after a failure) and the attempts that ended.
//
// Status times are metav1.Time, which the API server keeps to the second:
// lateness is known to within a second either way.
type tracker struct {
	interval, retry time.Duration

	mu         sync.Mutex
	objs       map[string]*syncState
	ready      int
	allReadyAt time.Time
	want       int
	samples    []lateness
	ends       []time.Time // lastSyncEnd of every attempt that ended
}

// syncState is what the tracker remembers of one ErpSync.
type syncState struct {
	start, end time.Time
	failures   int64
	ready      bool
	// reason is the Ready condition's reason as last seen ("" while the
	// condition is absent: the first sync has not ended).
	reason string
}

// lateness is one sync start: when it was due and how late it started.
type lateness struct {
	due  time.Time
	late time.Duration
	// overdue marks a sync that was due but had not started when the
	// run ended: its lateness is at least late.
	overdue bool
}

func newTracker(want int, interval, retry time.Duration) *tracker {
	return &tracker{interval: interval, retry: retry, want: want, objs: map[string]*syncState{}}
}

// retryDelay mirrors controllers.RetryDelay: retry × 2^(n-1) for the n-th
// failure in a row, at most an hour or the interval if longer.
func (t *tracker) retryDelay(failures int64) time.Duration {
	d := t.retry
	limit := max(time.Hour, t.interval, d)
	for n := failures; n > 1 && d < limit; n-- {
		d *= 2
	}
	return min(d, limit)
}

// due returns when the sync after an attempt that ended at end, leaving
// failures consecutive failures, is due.
func (t *tracker) due(end time.Time, failures int64) time.Time {
	if failures == 0 {
		return end.Add(t.interval)
	}
	return end.Add(t.retryDelay(failures))
}

// observe takes one state of an ErpSync (key: namespace/name), observed
// at now.
func (t *tracker) observe(key string, st *erpv1.ErpSyncStatus, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.objs[key]
	if s == nil {
		s = &syncState{}
		t.objs[key] = s
	}
	// A new start first, against the previous end: one state may carry
	// both a new start and a new end (a short sync seen only at its end).
	if st.LastSyncStart != nil && !st.LastSyncStart.Time.Equal(s.start) {
		start := st.LastSyncStart.Time
		if !s.end.IsZero() && !s.end.Before(s.start) && start.After(s.start) {
			due := t.due(s.end, s.failures)
			t.samples = append(t.samples, lateness{due: due, late: start.Sub(due)})
		}
		s.start = start
	}
	if st.LastSyncEnd != nil && !st.LastSyncEnd.Time.Equal(s.end) {
		s.end = st.LastSyncEnd.Time
		s.failures = st.ConsecutiveFailures
		t.ends = append(t.ends, s.end)
	}
	s.reason = ""
	if c := meta.FindStatusCondition(st.Conditions, erpv1.ReadyCondition); c != nil {
		s.reason = c.Reason
	}
	// Ready once is enough: the initial sync is done. (Ready may turn
	// False later, after a failed sync; that is lateness's business.)
	if !s.ready && meta.IsStatusConditionTrue(st.Conditions, erpv1.ReadyCondition) {
		s.ready = true
		t.ready++
	}
	if t.allReadyAt.IsZero() && t.ready >= t.want {
		t.allReadyAt = now
	}
}

// readyCount returns how many ErpSyncs have been Ready and when the last
// of them first was (zero: not yet).
func (t *tracker) readyCount() (int, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ready, t.allReadyAt
}

// endsBetween counts the attempts that ended in [from, to).
func (t *tracker) endsBetween(from, to time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, e := range t.ends {
		if !e.Before(from) && e.Before(to) {
			n++
		}
	}
	return n
}

// latenessSince returns the lateness of every sync due in [from, to):
// those that started, and those still waiting at to (overdue, counted with
// their lateness so far), so that a manager that falls behind is not
// measured only by the syncs it did start.
func (t *tracker) latenessSince(from, to time.Time) []lateness {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []lateness
	for _, l := range t.samples {
		if !l.due.Before(from) && l.due.Before(to) {
			out = append(out, l)
		}
	}
	for _, s := range t.objs {
		if s.end.IsZero() || s.end.Before(s.start) {
			continue // never ended, or running
		}
		due := t.due(s.end, s.failures)
		if !due.Before(from) && due.Before(to) {
			out = append(out, lateness{due: due, late: to.Sub(due), overdue: true})
		}
	}
	return out
}

// neverReady counts the ErpSyncs that have not been Ready yet, by the
// reason of their Ready condition ("none": the first sync has not ended).
func (t *tracker) neverReady() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]int{}
	for _, s := range t.objs {
		if s.ready {
			continue
		}
		r := s.reason
		if r == "" {
			r = "none"
		}
		out[r]++
	}
	if n := t.want - len(t.objs); n > 0 {
		out["none"] += n // never seen by the watch
	}
	return out
}

// overdueAt counts the ErpSyncs that are not running and whose next sync
// was due more than slack before now: the backlog a manager that fell
// behind (say, after a long import) still has to catch up.
func (t *tracker) overdueAt(now time.Time, slack time.Duration) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, s := range t.objs {
		if s.end.IsZero() || s.end.Before(s.start) {
			continue // never ended, or running
		}
		if t.due(s.end, s.failures).Add(slack).Before(now) {
			n++
		}
	}
	return n
}

// percentile returns the p-th percentile (0 < p <= 100, nearest rank) of
// ds; 0 for none.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(float64(len(s))*p/100+0.999999) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

// auditEvent is the part of an API server audit event the benchmark reads.
type auditEvent struct {
	Stage string `json:"stage"`
	Verb  string `json:"verb"`
	User  struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	StageTimestamp metav1.MicroTime `json:"stageTimestamp"`
}

// writeCounts counts the writes one user made, by resource[/subresource].
type writeCounts map[string]int

// countWrites reads an audit log (one JSON event a line) and counts the
// completed create, update, patch and delete requests of user whose stage
// time is in [from, to).
func countWrites(r io.Reader, user string, from, to time.Time) (writeCounts, error) {
	out := writeCounts{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var ev auditEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return nil, fmt.Errorf("parsing an audit event: %w", err)
		}
		if ev.Stage != "ResponseComplete" || ev.User.Username != user || ev.ObjectRef == nil {
			continue
		}
		switch ev.Verb {
		case "create", "update", "patch", "delete":
		default:
			continue
		}
		if ts := ev.StageTimestamp.Time; ts.Before(from) || !ts.Before(to) {
			continue
		}
		key := ev.ObjectRef.Resource
		if ev.ObjectRef.Subresource != "" {
			key += "/" + ev.ObjectRef.Subresource
		}
		out[key]++
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the audit log: %w", err)
	}
	return out, nil
}

// syncWrites is the writes that the benchmark charges to syncs: the
// ErpSyncs' status (and object) writes and the Events.
func (w writeCounts) syncWrites() int {
	return w["erpsyncs/status"] + w["erpsyncs"] + w["events"]
}

// String lists the counts in a stable order.
func (w writeCounts) String() string {
	keys := make([]string, 0, len(w))
	for k := range w {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%d", k, w[k])
	}
	return b.String()
}

// procStatusKiB returns a field of /proc/<pid>/status in KiB (VmHWM: the
// peak resident set).
func procStatusKiB(status, field string) (int64, error) {
	for _, line := range strings.Split(status, "\n") {
		rest, ok := strings.CutPrefix(line, field+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("unexpected %s line %q", field, line)
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, fmt.Errorf("no %s in the process status", field)
}

// procCPUTicks returns utime+stime of /proc/<pid>/stat, in clock ticks.
func procCPUTicks(stat string) (int64, error) {
	// The command name (field 2) may hold spaces and parentheses: the
	// fields that follow start after the last ')'.
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected stat %q", stat)
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state): utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("stat has %d fields after the command", len(f))
	}
	u, err := strconv.ParseInt(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("utime: %w", err)
	}
	s, err := strconv.ParseInt(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stime: %w", err)
	}
	return u + s, nil
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports but alpha and ia64.
const clockTicks = 100

// procSample reads a process's peak RSS (MiB) and CPU time so far.
func procSample(pid int) (peakMiB float64, cpu time.Duration, err error) {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	hwm, err := procStatusKiB(string(st), "VmHWM")
	if err != nil {
		return 0, 0, err
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	ticks, err := procCPUTicks(string(stat))
	if err != nil {
		return 0, 0, err
	}
	return float64(hwm) / 1024, time.Duration(ticks) * time.Second / clockTicks, nil
}
