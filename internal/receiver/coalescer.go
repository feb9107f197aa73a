package receiver

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/internal/metrics"
)

// Batch is what one debounce window gathered for one ErpSync: the
// documents its events named (deduplicated by entity and id, Deleted
// ORed, at most MaxPendingWebhookTargets) and the entities whose further
// events did not fit (Overflow), with the counts for its status.
type Batch struct {
	Subscriber Subscriber
	// Targets are the documents to read, in the order first named.
	Targets []erpv1.WebhookTarget
	// Overflow lists entities whose events did not fit in Targets, sorted.
	Overflow []string
	// FirstReceived and LastReceived are when the first and the last
	// authentic delivery of the batch arrived; zero when it holds none
	// (only rejections).
	FirstReceived, LastReceived time.Time
	// Accepted counts the events of authentic deliveries; Rejected the
	// deliveries refused.
	Accepted, Rejected int64
}

// Dispatcher hands a batch to the controller (StatusDispatcher: the
// ErpSync's status.webhooks). It must honour ctx.
type Dispatcher interface {
	Dispatch(ctx context.Context, b Batch) error
}

// coalescerConfig tunes a coalescer.
type coalescerConfig struct {
	// maxTargets bounds each ErpSync's pending targets.
	maxTargets int
	// timeout bounds one Dispatch call.
	timeout time.Duration
	// attempts is how often a batch is tried before it is dropped.
	attempts int
	// backoff is the wait before the first retry; it doubles.
	backoff time.Duration
	// concurrency bounds the dispatches running at once, over all
	// ErpSyncs.
	concurrency int
	now         func() time.Time
	log         logr.Logger
}

// coalescer gathers events per ErpSync over its debounce window and hands
// each window to the Dispatcher as one Batch: at most one dispatch per
// ErpSync per window and at most one in flight per ErpSync. The window
// opens with the first event after the ErpSync's last dispatch started, so
// however many events arrive, an ErpSync sees at most one dispatch per
// debounce (plus retries of failed ones, bounded).
type coalescer struct {
	cfg  coalescerConfig
	disp Dispatcher

	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{}
	wg     sync.WaitGroup

	mu     sync.Mutex
	states map[types.UID]*pending
	closed bool
}

// pending is one ErpSync's window.
type pending struct {
	sub                Subscriber
	targets            *targetSet
	first, last        time.Time
	accepted, rejected int64
	// timer is armed for the end of the window (or a retry).
	timer    *time.Timer
	inFlight bool
	// attempts counts failed dispatches of the batch being retried.
	attempts int
	retryAt  time.Time
	// windowOpenedAt is when the window's first entry arrived.
	windowOpenedAt time.Time
}

func newCoalescer(disp Dispatcher, cfg coalescerConfig) *coalescer {
	ctx, cancel := context.WithCancel(context.Background())
	return &coalescer{cfg: cfg, disp: disp, ctx: ctx, cancel: cancel,
		sem: make(chan struct{}, max(1, cfg.concurrency)), states: map[types.UID]*pending{}}
}

func (p *pending) empty() bool {
	return p.targets.empty() && p.accepted == 0 && p.rejected == 0 && p.last.IsZero()
}

// add records one delivery's outcome for sub: targets of an authentic
// delivery received at at (authentic), or rejected refused deliveries.
func (c *coalescer) add(sub Subscriber, targets []erpv1.WebhookTarget, authentic bool, rejected int64, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	p := c.states[sub.UID]
	if p == nil {
		p = &pending{targets: newTargetSet(c.cfg.maxTargets)}
		c.states[sub.UID] = p
	}
	p.sub = sub
	if p.empty() {
		p.windowOpenedAt = c.cfg.now()
	}
	if authentic {
		if p.first.IsZero() || at.Before(p.first) {
			p.first = at
		}
		if at.After(p.last) {
			p.last = at
		}
		p.accepted += int64(len(targets))
	}
	p.rejected += rejected
	for _, t := range targets {
		p.targets.add(t)
	}
	c.scheduleLocked(sub.UID, p)
}

// addPoll records an authentic delivery the codec could not decode: it
// counts as rejected, and the entities go to Overflow, so that the next
// sync polls them: whatever the vendor announced is read that way.
func (c *coalescer) addPoll(sub Subscriber, entities []string, at time.Time) {
	c.add(sub, nil, false, 1, at)
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.states[sub.UID]; p != nil && !c.closed {
		p.targets.addOverflow(entities...)
	}
}

// scheduleLocked arms the ErpSync's timer for the end of its window (or
// its retry), unless a dispatch is in flight (its end schedules) or one is
// armed already.
func (c *coalescer) scheduleLocked(uid types.UID, p *pending) {
	if p.inFlight || p.timer != nil || p.empty() {
		return
	}
	due := p.windowOpenedAt.Add(p.sub.Debounce)
	if p.retryAt.After(due) {
		due = p.retryAt
	}
	wait := max(due.Sub(c.cfg.now()), 0)
	p.timer = time.AfterFunc(wait, func() { c.fire(uid) })
}

// fire ends an ErpSync's window: its batch is dispatched.
func (c *coalescer) fire(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.states[uid]
	if p == nil {
		return
	}
	p.timer = nil
	if p.inFlight || c.closed {
		return
	}
	if p.empty() {
		delete(c.states, uid)
		return
	}
	c.startLocked(p)
}

// takeLocked empties the window into a batch.
func (p *pending) takeLocked() Batch {
	b := Batch{Subscriber: p.sub, Targets: p.targets.items, Overflow: p.targets.overflowList(),
		FirstReceived: p.first, LastReceived: p.last, Accepted: p.accepted, Rejected: p.rejected}
	p.targets = newTargetSet(p.targets.limit)
	p.first, p.last = time.Time{}, time.Time{}
	p.accepted, p.rejected = 0, 0
	return b
}

// putBackLocked merges a batch that failed into the window.
func (p *pending) putBackLocked(b Batch) {
	merged := newTargetSet(p.targets.limit)
	for _, t := range b.Targets {
		merged.add(t)
	}
	merged.addOverflow(b.Overflow...)
	for _, t := range p.targets.items {
		merged.add(t)
	}
	merged.addOverflow(p.targets.overflowList()...)
	p.targets = merged
	if !b.FirstReceived.IsZero() && (p.first.IsZero() || b.FirstReceived.Before(p.first)) {
		p.first = b.FirstReceived
	}
	if b.LastReceived.After(p.last) {
		p.last = b.LastReceived
	}
	p.accepted += b.Accepted
	p.rejected += b.Rejected
}

func (c *coalescer) startLocked(p *pending) {
	b := p.takeLocked()
	p.inFlight = true
	c.wg.Add(1)
	go c.dispatch(p, b)
}

func (c *coalescer) dispatch(p *pending, b Batch) {
	defer c.wg.Done()
	err := c.call(b)
	c.mu.Lock()
	defer c.mu.Unlock()
	p.inFlight = false
	uid := b.Subscriber.UID
	vendor := b.Subscriber.Type
	now := c.cfg.now()
	if err != nil {
		p.attempts++
		log := c.cfg.log.WithValues("erpsync", b.Subscriber.Key.String(), "attempt", p.attempts)
		if p.attempts >= c.cfg.attempts || c.closed || c.ctx.Err() != nil {
			log.Error(err, "dropping a webhook batch after failed status writes; the interval poll reads what it named",
				"targets", len(b.Targets), "overflow", len(b.Overflow))
			metrics.AddWebhookDispatchFailure(vendor, metrics.DispatchDropped)
			p.attempts = 0
			p.retryAt = time.Time{}
		} else {
			wait := c.cfg.backoff << (p.attempts - 1)
			log.V(1).Info("writing a webhook batch failed; retrying", "in", wait, "error", truncate(err.Error(), 300))
			metrics.AddWebhookDispatchFailure(vendor, metrics.DispatchRetried)
			wasEmpty := p.empty()
			p.putBackLocked(b)
			if wasEmpty {
				p.windowOpenedAt = now
			}
			p.retryAt = now.Add(wait)
		}
	} else {
		p.attempts = 0
		p.retryAt = time.Time{}
		if !b.FirstReceived.IsZero() {
			metrics.ObserveWebhookDispatch(vendor, now.Sub(b.FirstReceived))
		}
	}
	if c.closed {
		// Shutting down: what arrived during this dispatch goes now.
		if !p.empty() {
			c.startLocked(p)
		}
		return
	}
	if p.empty() {
		if c.states[uid] == p {
			delete(c.states, uid)
		}
		return
	}
	c.scheduleLocked(uid, p)
}

// call runs one Dispatch, bounded by the timeout and the concurrency cap.
func (c *coalescer) call(b Batch) error {
	select {
	case c.sem <- struct{}{}:
	case <-c.ctx.Done():
		return c.ctx.Err()
	}
	defer func() { <-c.sem }()
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.timeout)
	defer cancel()
	if err := c.disp.Dispatch(ctx, b); err != nil {
		return err
	}
	return nil
}

// close stops accepting events, dispatches every open window at once and
// waits for the dispatches until ctx ends (then cancels them).
func (c *coalescer) close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	for _, p := range c.states {
		if p.timer != nil {
			p.timer.Stop()
			p.timer = nil
		}
		if !p.inFlight && !p.empty() {
			c.startLocked(p)
		}
	}
	c.mu.Unlock()
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.New("webhook batches were still being written at shutdown; the interval poll reads what they named")
	}
	c.cancel()
	<-done
	return err
}
