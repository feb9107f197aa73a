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
// Slots: at most `global` syncs run at once (--concurrent-syncs), and at
// most `perNamespace` of one namespace (--max-syncs-per-namespace), so that
// one tenant cannot take every slot. A sync waiting because its namespace is
// at its cap holds no slot: whenever a slot frees, it goes to the waiting
// sync whose namespace runs the fewest syncs (the longest waiting among
// those), so other namespaces go first.
type runTracker struct {
	mu   sync.Mutex
	runs map[types.NamespacedName]*trackedRun

	global, perNamespace int
	// active counts the slots held, in all and per namespace.
	active      int
	activePerNS map[string]int
	// waiting is the queue of syncs waiting for a slot, oldest first.
	waiting []*slotWaiter
}

// slotWaiter is one sync waiting for a slot; granted is closed when it has
// one.
type slotWaiter struct {
	ns      string
	granted chan struct{}
	done    bool
}

type trackedRun struct {
	cancel context.CancelCauseFunc
	done   chan struct{}
}

// newRunTracker returns a tracker allowing concurrent syncs at once and
// perNamespace of one namespace (perNamespace < 1: no cap beyond
// concurrent).
func newRunTracker(concurrent, perNamespace int) *runTracker {
	concurrent = max(concurrent, 1)
	if perNamespace < 1 || perNamespace > concurrent {
		perNamespace = concurrent
	}
	return &runTracker{runs: map[types.NamespacedName]*trackedRun{}, global: concurrent, perNamespace: perNamespace, activePerNS: map[string]int{}}
}

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

// acquire takes a sync slot for a sync in namespace ns, waiting for one;
// false if ctx ends first (then it holds none).
func (t *runTracker) acquire(ctx context.Context, ns string) bool {
	w := &slotWaiter{ns: ns, granted: make(chan struct{})}
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
		// Granted while we gave up: hand the slot on.
		t.releaseLocked(ns)
		return false
	}
	t.waiting = slices.DeleteFunc(t.waiting, func(x *slotWaiter) bool { return x == w })
	return false
}

// release frees the slot of a sync in namespace ns.
func (t *runTracker) release(ns string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.releaseLocked(ns)
}

func (t *runTracker) releaseLocked(ns string) {
	t.active--
	if t.activePerNS[ns]--; t.activePerNS[ns] <= 0 {
		delete(t.activePerNS, ns)
	}
	t.dispatchLocked()
}

// dispatchLocked grants free slots to waiting syncs: each to the waiter
// whose namespace holds the fewest slots and is below its cap, the oldest
// such first.
func (t *runTracker) dispatchLocked() {
	for t.active < t.global {
		best := -1
		for i, w := range t.waiting {
			n := t.activePerNS[w.ns]
			if n >= t.perNamespace {
				continue
			}
			if best < 0 || n < t.activePerNS[t.waiting[best].ns] {
				best = i
			}
		}
		if best < 0 {
			return
		}
		w := t.waiting[best]
		t.waiting = slices.Delete(t.waiting, best, best+1)
		t.active++
		t.activePerNS[w.ns]++
		w.done = true
		close(w.granted)
	}
}

// slots reports the slots held, in all and by namespace ns (for tests and
// metrics).
func (t *runTracker) slots(ns string) (all, inNamespace int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.active, t.activePerNS[ns]
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

// syncSlot is one sync's slot as a connectors.WorkSlot: the sync gives it
// back while it waits on a vendor's limit and takes one again (through the
// same fair queue) before it works on.
type syncSlot struct {
	t    *runTracker
	ns   string
	mu   sync.Mutex
	held bool
}

// Release gives the slot back, if held.
func (s *syncSlot) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held {
		s.held = false
		s.t.release(s.ns)
	}
}

// Acquire takes a slot, if none is held, waiting for one. A sync's slot
// is used by its own goroutine only.
func (s *syncSlot) Acquire(ctx context.Context) error {
	s.mu.Lock()
	held := s.held
	s.mu.Unlock()
	if held {
		return nil
	}
	if !s.t.acquire(ctx, s.ns) {
		if err := context.Cause(ctx); err != nil {
			return err
		}
		return context.Canceled
	}
	s.mu.Lock()
	s.held = true
	s.mu.Unlock()
	return nil
}
