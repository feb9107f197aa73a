package simkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Webhooks in the simulators: the dataset reports every change it makes
// (Subscribe), a vendor's simulator turns each change into its own signed
// payload, and a Deliverer sends it to the subscribed URL with the vendor's
// retry and disable rules. The change feed and the delivery loop live here
// once; a vendor's simulator keeps only its payload shape, signature and
// subscription API.

// ChangeOp is what a change did to a record.
type ChangeOp string

// The dataset's change operations.
const (
	// ChangeCreated: a new record.
	ChangeCreated ChangeOp = "created"
	// ChangeUpdated: an edit (a child added or removed is an edit of its
	// parent).
	ChangeUpdated ChangeOp = "updated"
	// ChangeDeleted: the vendor's deleted marker was set (a soft delete
	// the vendor still serves).
	ChangeDeleted ChangeOp = "deleted"
	// ChangeRemoved: the record is gone (a hard delete).
	ChangeRemoved ChangeOp = "removed"
)

// Change is one change of one record of the dataset.
type Change struct {
	// Kind is the record's kind, as the admin methods name it (AdminProducts…).
	Kind string
	// ID is the record's dataset id (Meta.ID); Seq its sequence number.
	ID  string
	Seq int
	Op  ChangeOp
	// At is the dataset's stamp of the change.
	At time.Time
}

// ChangeFunc receives the dataset's changes. It runs with the dataset
// locked: it must not block or call the dataset (queue the change and read
// the record later, with View).
type ChangeFunc func(Change)

// Subscribe adds fn to the functions told of every change; the returned
// function removes it.
func (d *Dataset) Subscribe(fn ChangeFunc) (cancel func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.subs == nil {
		d.subs = map[int]ChangeFunc{}
	}
	d.subSeq++
	id := d.subSeq
	d.subs[id] = fn
	return func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		delete(d.subs, id)
	}
}

// Notify tells the subscribers of a change made through Update (the
// dataset's own methods notify by themselves). Call it inside Update. The
// change carries the record's sequence number when the record is there
// (a created or changed one; a removed one is gone, so its Seq is 0).
func (d *Dataset) Notify(kind, id string, op ChangeOp) {
	seq := 0
	if t, err := d.table(kind); err == nil {
		if i := t.find(id); i >= 0 {
			seq = t.meta(i).Seq
		}
	}
	d.emit(kind, id, seq, op)
}

// emit tells the subscribers of one change; d.mu is held.
func (d *Dataset) emit(kind, id string, seq int, op ChangeOp) {
	if len(d.subs) == 0 {
		return
	}
	c := Change{Kind: kind, ID: id, Seq: seq, Op: op, At: d.Stamp()}
	for _, fn := range d.subs {
		fn(c)
	}
}

// emitAll tells the subscribers of one change to each of ids (seqs[i]
// is ids[i]'s sequence number).
func (d *Dataset) emitAll(kind string, ids []string, seqs []int, op ChangeOp) {
	for i, id := range ids {
		seq := 0
		if i < len(seqs) {
			seq = seqs[i]
		}
		d.emit(kind, id, seq, op)
	}
}

// DeliveryPolicy is a vendor's delivery and retry rule.
type DeliveryPolicy struct {
	// Timeout is how long the vendor waits for the receiver's reply.
	Timeout time.Duration
	// Retries are the waits before each repeat of a failed delivery (on
	// the vendor's clock); len(Retries)+1 attempts in all.
	Retries []time.Duration
	// DisableAfter, when positive, disables the subscription after that
	// many deliveries in a row failed every attempt (Cin7 Core: one; Xero
	// after a day of retries). A disabled subscription delivers nothing
	// until it is switched back on.
	DisableAfter int
	// OK reports whether a reply is a success (default: any 2xx).
	OK func(status int) bool
}

// Delivery is one webhook request.
type Delivery struct {
	URL    string
	Header http.Header
	Body   []byte
}

// DeliveryStats counts what a Deliverer did.
type DeliveryStats struct {
	Delivered, Failed, Attempts, Dropped atomic.Int64
}

// Deliverer sends one subscription's deliveries in order, one at a time,
// repeating a failed one per its policy. Build it with NewDeliverer and
// stop it with Close.
type Deliverer struct {
	client *http.Client
	policy DeliveryPolicy
	// sleep waits d of vendor time (a compressed Clock sleeps less real
	// time); it returns early with an error when ctx ends.
	sleep func(ctx context.Context, d time.Duration) error

	mu    sync.Mutex
	queue []func() Delivery
	// inflight is 1 while the loop holds a delivery taken off the queue
	// (building, sending or waiting to repeat it).
	inflight int
	wake     chan struct{}
	failRun  int
	disabled atomic.Bool
	onChange func(disabled bool)
	stats    DeliveryStats

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// MaxQueuedDeliveries bounds a Deliverer's queue: a receiver that is down
// while thousands of changes happen costs the simulator bounded memory
// (later deliveries are dropped and counted, as a vendor that gives up).
const MaxQueuedDeliveries = 10000

// NewDeliverer starts a delivery loop. sleep waits vendor time; nil means
// real time. onChange, when set, is told when the subscription is disabled
// by its failures (true) or enabled again (false).
func NewDeliverer(client *http.Client, p DeliveryPolicy, sleep func(ctx context.Context, d time.Duration) error, onChange func(disabled bool)) *Deliverer {
	if client == nil {
		client = &http.Client{}
	}
	if p.Timeout <= 0 {
		p.Timeout = 10 * time.Second
	}
	if p.OK == nil {
		p.OK = func(s int) bool { return s >= 200 && s < 300 }
	}
	if sleep == nil {
		sleep = realSleep
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Deliverer{client: client, policy: p, sleep: sleep, onChange: onChange, wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel, done: make(chan struct{})}
	go d.loop()
	return d
}

func realSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Enqueue queues a delivery. build runs on the delivery goroutine just
// before the first attempt (so it may read the dataset with View and sign
// the body); the same Delivery is repeated on retries. A disabled
// subscription, a full queue and a closed Deliverer drop it.
func (d *Deliverer) Enqueue(build func() Delivery) {
	if d.disabled.Load() {
		d.stats.Dropped.Add(1)
		return
	}
	d.mu.Lock()
	// Checked under the lock the stopping loop drops the queue with, so
	// nothing is queued after it: that would stay pending for ever.
	if len(d.queue) >= MaxQueuedDeliveries || d.ctx.Err() != nil {
		d.mu.Unlock()
		d.stats.Dropped.Add(1)
		return
	}
	d.queue = append(d.queue, build)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Disabled reports whether repeated failures disabled the subscription.
func (d *Deliverer) Disabled() bool { return d.disabled.Load() }

// SetDisabled switches the subscription off or back on (the vendor's API
// or UI); switching it on starts a fresh failure count. Switching it off
// drops the queued deliveries (counted in Dropped).
func (d *Deliverer) SetDisabled(off bool) {
	d.mu.Lock()
	d.failRun = 0
	if off {
		d.dropQueued()
	}
	changed := d.disabled.Swap(off) != off
	d.mu.Unlock()
	if changed && d.onChange != nil {
		d.onChange(off)
	}
}

// dropQueued empties the queue, counting what it held as dropped; d.mu is
// held.
func (d *Deliverer) dropQueued() {
	d.stats.Dropped.Add(int64(len(d.queue)))
	d.queue = nil
}

// Stats returns the delivery counters. Every enqueued delivery ends in
// exactly one of Delivered, Failed and Dropped; until then it is Pending.
func (d *Deliverer) Stats() *DeliveryStats { return &d.stats }

// Policy returns the delivery policy in force (defaults filled in).
func (d *Deliverer) Policy() DeliveryPolicy { return d.policy }

// Pending returns the number of deliveries not finished yet: those queued
// and the one in flight (being built, sent, waiting to be repeated, or
// telling onChange that its failure disabled the subscription). A test
// waits for it to be 0 to know every enqueued delivery was made and its
// consequences told.
func (d *Deliverer) Pending() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.queue) + d.inflight
}

// Close stops the loop; queued deliveries are dropped (counted in
// Dropped, as is one cut off in flight). Close may be called more than
// once.
func (d *Deliverer) Close() {
	d.cancel()
	<-d.done
}

func (d *Deliverer) loop() {
	defer close(d.done)
	defer func() {
		d.mu.Lock()
		d.stats.Dropped.Add(int64(d.inflight))
		d.inflight = 0
		d.dropQueued()
		d.mu.Unlock()
	}()
	for {
		d.mu.Lock()
		var next func() Delivery
		if len(d.queue) > 0 && d.ctx.Err() == nil {
			next = d.queue[0]
			d.queue[0] = nil
			d.queue = d.queue[1:]
			d.inflight = 1
		}
		d.mu.Unlock()
		if next == nil {
			select {
			case <-d.wake:
				continue
			case <-d.ctx.Done():
				return
			}
		}
		if d.disabled.Load() {
			d.finish(outcomeDropped)
			d.idle()
			continue
		}
		if !d.deliver(next()) {
			if d.ctx.Err() != nil {
				return
			}
			if d.finish(outcomeFailed) && d.onChange != nil {
				// Before the delivery stops counting as pending: once
				// Pending reads 0, the vendor's side has been told.
				d.onChange(true)
			}
			d.idle()
			continue
		}
		d.finish(outcomeDelivered)
		d.idle()
	}
}

// idle marks the loop as holding no delivery.
func (d *Deliverer) idle() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.inflight = 0
}

type outcome int

const (
	outcomeDelivered outcome = iota
	outcomeFailed
	outcomeDropped
)

// finish counts the outcome of the delivery in flight (idle then ends
// it). A delivery ends the run of failures; a failure extends it and, when
// the run reaches the policy's DisableAfter, disables the subscription and
// drops its queue: finish then reports that it switched the subscription
// off.
func (d *Deliverer) finish(o outcome) (disabled bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch o {
	case outcomeDelivered:
		d.stats.Delivered.Add(1)
		d.failRun = 0
	case outcomeDropped:
		d.stats.Dropped.Add(1)
	case outcomeFailed:
		d.stats.Failed.Add(1)
		d.failRun++
		if d.policy.DisableAfter > 0 && d.failRun >= d.policy.DisableAfter {
			d.dropQueued()
			return !d.disabled.Swap(true)
		}
	}
	return false
}

// deliver makes every attempt of one delivery; true once one succeeded.
func (d *Deliverer) deliver(del Delivery) bool {
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if attempt > len(d.policy.Retries) {
				return false
			}
			if d.sleep(d.ctx, d.policy.Retries[attempt-1]) != nil {
				return false
			}
		}
		d.stats.Attempts.Add(1)
		if err := d.attempt(del); err == nil {
			return true
		}
		if d.ctx.Err() != nil {
			return false
		}
	}
}

var errDeliveryRefused = errors.New("delivery refused")

func (d *Deliverer) attempt(del Delivery) error {
	ctx, cancel := context.WithTimeout(d.ctx, d.policy.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, del.URL, bytes.NewReader(del.Body))
	if err != nil {
		return fmt.Errorf("building delivery: %w", err)
	}
	for k, v := range del.Header {
		req.Header[k] = v
	}
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return fmt.Errorf("delivering: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	_ = resp.Body.Close()
	if !d.policy.OK(resp.StatusCode) {
		return fmt.Errorf("%w: status %d", errDeliveryRefused, resp.StatusCode)
	}
	return nil
}
