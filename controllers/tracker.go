package controllers

import (
	"context"
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
)

// runTracker knows which syncs run in this process and can stop them. The
// concurrency design: Reconcile never performs ERP or CRM I/O; it decides
// whether a sync is due and, if so, starts it in a goroutine registered here,
// then returns. The workqueue therefore stays free to notice a suspend or a
// deletion of an ErpSync whose sync is running (and to serve every other
// ErpSync), and cancels the sync through its context; the engine stops at the
// next page boundary, with its checkpoint saved. A semaphore bounds the
// number of syncs running at once (--concurrent-syncs).
type runTracker struct {
	mu   sync.Mutex
	runs map[types.NamespacedName]*trackedRun
	sem  chan struct{}
}

type trackedRun struct {
	cancel context.CancelCauseFunc
	done   chan struct{}
}

func newRunTracker(concurrent int) *runTracker {
	if concurrent < 1 {
		concurrent = 1
	}
	return &runTracker{runs: map[types.NamespacedName]*trackedRun{}, sem: make(chan struct{}, concurrent)}
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

// acquire takes a sync slot, waiting for one; false if ctx ends first.
func (t *runTracker) acquire(ctx context.Context) bool {
	select {
	case t.sem <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (t *runTracker) release() { <-t.sem }

// stopError is the cancellation cause of a stopped sync.
type stopError struct{ cause StopCause }

func (e stopError) Error() string { return "sync stopped: ErpSync " + string(e.cause) }

// stopCauseOf returns why ctx was stopped, if it was stopped by the tracker.
func stopCauseOf(ctx context.Context) (StopCause, bool) {
	if se, ok := context.Cause(ctx).(stopError); ok {
		return se.cause, true
	}
	return "", false
}
