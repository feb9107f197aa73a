package controllers

import (
	"context"
	"errors"
	"slices"
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// StopCause says why a running sync was asked to stop.
type StopCause string

// The stop causes.
const (
	StopSuspended StopCause = "suspended"
	StopDeleted   StopCause = "deleted"
	StopShutdown  StopCause = "shutdown"
	// StopMoved: the ErpSync's shard moved to another replica, which
	// resumes the sync from its checkpoints; the stopped sync writes no
	// status.
	StopMoved StopCause = "moved"
)

// runTracker knows which syncs run in this process and can stop them. The
// concurrency design: Reconcile never performs ERP or CRM I/O; it decides
// whether a sync is due and, if so, starts it in a goroutine registered here,
// then returns. The workqueue therefore stays free to notice a suspend or a
// deletion of an ErpSync whose sync is running (and to serve every other
// ErpSync), and cancels the sync through its context; the engine stops at the
// next page boundary, with its checkpoint saved.
//
// Slots are for work, not for waiting. A sync in progress (started, not
// ended) holds a work slot while it works (reads a page, maps it, writes
// it) and gives it back while it waits on a vendor's limit (syncSlot, via
// connectors.WithWorkSlot); at most `global` work slots are held at once
// (--concurrent-syncs: what costs memory and CPU). At most `inProgress`
// syncs are in progress at once (--max-syncs-in-progress: goroutines and
// their state), and at most `perNamespace` of one namespace
// (--max-syncs-per-namespace), so that one tenant cannot take every slot,
// working or waiting. A freed work slot goes first to a sync coming back
// from a wait (the oldest such), so that a sync that gave its slot back is
// never starved by new ones; then to the waiting new sync whose namespace
// has the fewest syncs in progress (the longest waiting among those), so
// other namespaces go first. A new sync waiting for its turn holds nothing.
type runTracker struct {
	mu   sync.Mutex
	runs map[types.NamespacedName]*trackedRun

	global, perNamespace, maxInProgress int
	// active counts the work slots held, in all and per namespace.
	active      int
	activePerNS map[string]int
	// progress counts the syncs in progress, in all and per namespace.
	progress      int
	progressPerNS map[string]int
	// waiting is the queue of syncs waiting for a work slot, oldest first.
	waiting []*slotWaiter
}

// slotWaiter is one sync waiting for a work slot; granted is closed when
// it has one. returning is set for a sync in progress coming back from a
// wait (it needs a work slot only).
type slotWaiter struct {
	ns        string
	returning bool
	granted   chan struct{}
	done      bool
}

type trackedRun struct {
	cancel context.CancelCauseFunc
	done   chan struct{}
}

// newRunTracker returns a tracker allowing concurrent work slots at once,
// inProgress syncs in progress (at least concurrent; < 1: 16 per work
// slot) and perNamespace of one namespace in progress (< 1: no cap beyond
// inProgress).
func newRunTracker(concurrent, perNamespace, inProgress int) *runTracker {
	concurrent = max(concurrent, 1)
	if inProgress < 1 {
		inProgress = DefaultSyncsInProgressPerSlot * concurrent
	}
	inProgress = max(inProgress, concurrent)
	if perNamespace < 1 || perNamespace > inProgress {
		perNamespace = inProgress
	}
	return &runTracker{runs: map[types.NamespacedName]*trackedRun{}, global: concurrent, perNamespace: perNamespace, maxInProgress: inProgress,
		activePerNS: map[string]int{}, progressPerNS: map[string]int{}}
}

// DefaultSyncsInProgressPerSlot sizes --max-syncs-in-progress when it is
// not set: this many syncs in progress per work slot. A waiting sync costs
// a goroutine and its pass's state, not a page.
const DefaultSyncsInProgressPerSlot = 16

// start registers a run for key and returns its context; false if one is
// already registered.
func (t *runTracker) start(parent context.Context, key types.NamespacedName) (context.Context, func(), bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.runs[key]; ok {
		return nil, nil, false
	}
	ctx, cancel := context.WithCancelCause(parent)
	r := &trackedRun{cancel: cancel, done: make(chan struct{})}
	t.runs[key] = r
	finish := func() {
		t.mu.Lock()
		delete(t.runs, key)
		t.mu.Unlock()
		cancel(nil)
		close(r.done)
	}
	return ctx, finish, true
}

// running reports whether a sync of key runs in this process.
func (t *runTracker) running(key types.NamespacedName) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.runs[key]
	return ok
}

// stop asks the sync of key, if any, to stop, and returns a channel closed
// when it has (nil when none runs).
func (t *runTracker) stop(key types.NamespacedName, cause StopCause) <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.runs[key]
	if !ok {
		return nil
	}
	r.cancel(stopError{cause})
	return r.done
}

// acquire starts a sync in namespace ns: it waits for its turn (a place
// in progress and a work slot) and returns true holding both; false if
// ctx ends first (then it holds nothing).
func (t *runTracker) acquire(ctx context.Context, ns string) bool {
	return t.wait(ctx, &slotWaiter{ns: ns, granted: make(chan struct{})})
}

// resume takes a work slot again for a sync in progress that gave its
// slot back (pause), before any new sync; false if ctx ends first (then it
// holds no work slot, and is still in progress).
func (t *runTracker) resume(ctx context.Context, ns string) bool {
	return t.wait(ctx, &slotWaiter{ns: ns, returning: true, granted: make(chan struct{})})
}

func (t *runTracker) wait(ctx context.Context, w *slotWaiter) bool {
	t.mu.Lock()
	t.waiting = append(t.waiting, w)
	t.dispatchLocked()
	t.mu.Unlock()
	select {
	case <-w.granted:
		return true
	case <-ctx.Done():
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if w.done {
		// Granted while we gave up: hand it on.
		if w.returning {
			t.pauseLocked(w.ns)
		} else {
			t.endLocked(w.ns, true)
		}
		return false
	}
	t.waiting = slices.DeleteFunc(t.waiting, func(x *slotWaiter) bool { return x == w })
	return false
}

// pause gives back the work slot of a sync in progress in namespace ns.
func (t *runTracker) pause(ns string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pauseLocked(ns)
}

// release ends a sync in namespace ns that holds its work slot.
func (t *runTracker) release(ns string) { t.end(ns, true) }

// end ends a sync in namespace ns; working says whether it holds its work
// slot.
func (t *runTracker) end(ns string, working bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.endLocked(ns, working)
}

func (t *runTracker) pauseLocked(ns string) {
	t.active--
	if t.activePerNS[ns]--; t.activePerNS[ns] <= 0 {
		delete(t.activePerNS, ns)
	}
	t.dispatchLocked()
}

func (t *runTracker) endLocked(ns string, working bool) {
	t.progress--
	if t.progressPerNS[ns]--; t.progressPerNS[ns] <= 0 {
		delete(t.progressPerNS, ns)
	}
	if working {
		t.pauseLocked(ns)
		return
	}
	t.dispatchLocked()
}

// dispatchLocked grants free work slots to waiting syncs: first to the
// oldest returning one; then to the new sync whose namespace has the
// fewest syncs in progress and is below its cap, the oldest such first,
// while fewer than maxInProgress are in progress.
func (t *runTracker) dispatchLocked() {
	for t.active < t.global {
		best := slices.IndexFunc(t.waiting, func(w *slotWaiter) bool { return w.returning })
		if best < 0 && t.progress < t.maxInProgress {
			for i, w := range t.waiting {
				n := t.progressPerNS[w.ns]
				if n >= t.perNamespace {
					continue
				}
				if best < 0 || n < t.progressPerNS[t.waiting[best].ns] {
					best = i
				}
			}
		}
		if best < 0 {
			return
		}
		w := t.waiting[best]
		t.waiting = slices.Delete(t.waiting, best, best+1)
		if !w.returning {
			t.progress++
			t.progressPerNS[w.ns]++
		}
		t.active++
		t.activePerNS[w.ns]++
		w.done = true
		close(w.granted)
	}
}

// slots reports the work slots held, in all and by namespace ns (for
// tests and metrics).
func (t *runTracker) slots(ns string) (all, inNamespace int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.active, t.activePerNS[ns]
}

// inProgress reports the syncs in progress, in all and of namespace ns.
func (t *runTracker) inProgress(ns string) (all, inNamespace int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.progress, t.progressPerNS[ns]
}

// stopError is the cancellation cause of a stopped sync.
type stopError struct{ cause StopCause }

func (e stopError) Error() string { return "sync stopped: ErpSync " + string(e.cause) }

// stopCauseOf returns why ctx was stopped, if it was stopped by the tracker.
func stopCauseOf(ctx context.Context) (StopCause, bool) {
	var se stopError
	if errors.As(context.Cause(ctx), &se) {
		return se.cause, true
	}
	return "", false
}

// syncSlot is one sync's place as a connectors.WorkSlot: Acquire starts
// the sync (a place in progress and a work slot) or, after a Release,
// takes a work slot again before any new sync; Release gives the work slot
// back while the sync waits on a vendor's limit, keeping its place in
// progress; End ends the sync. A sync's slot is used by its own goroutine
// only.
type syncSlot struct {
	t       *runTracker
	ns      string
	mu      sync.Mutex
	started bool
	held    bool
}

// Release gives the work slot back, if held.
func (s *syncSlot) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held {
		s.held = false
		s.t.pause(s.ns)
	}
}

// Acquire takes a work slot, if none is held, waiting for one.
func (s *syncSlot) Acquire(ctx context.Context) error {
	s.mu.Lock()
	held, started := s.held, s.started
	s.mu.Unlock()
	if held {
		return nil
	}
	var ok bool
	if started {
		ok = s.t.resume(ctx, s.ns)
	} else {
		ok = s.t.acquire(ctx, s.ns)
	}
	if !ok {
		if err := context.Cause(ctx); err != nil {
			return err
		}
		return context.Canceled
	}
	s.mu.Lock()
	s.started, s.held = true, true
	s.mu.Unlock()
	return nil
}

// End ends the sync: it gives back its place in progress and its work
// slot, if held.
func (s *syncSlot) End() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		s.t.end(s.ns, s.held)
		s.started, s.held = false, false
	}
}
