package controllers

import (
	"context"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
)

// TestSlotsAreSharedFairlyBetweenNamespaces: a namespace never runs more
// than its cap, its waiting syncs hold no slot, and a freed slot goes to
// the namespace running the fewest.
func TestSlotsAreSharedFairlyBetweenNamespaces(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr := newRunTracker(3, 2, 0)

	got := make(chan string, 16)
	take := func(ns string) {
		go func() {
			if tr.acquire(ctx, ns) {
				got <- ns
			}
		}()
	}
	expect := func(want string) {
		t.Helper()
		select {
		case ns := <-got:
			if ns != want {
				t.Fatalf("slot went to %q, want %q", ns, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no slot granted, want one for %q", want)
		}
	}
	expectNone := func() {
		t.Helper()
		select {
		case ns := <-got:
			t.Fatalf("slot granted to %q, want none", ns)
		case <-time.After(100 * time.Millisecond):
		}
	}

	// Tenant a asks for four slots: it gets its cap, two.
	for range 4 {
		take("a")
	}
	expect("a")
	expect("a")
	expectNone()
	if all, a := tr.slots("a"); all != 2 || a != 2 {
		t.Fatalf("slots: %d in all, %d of a; want 2 and 2 (a's waiting syncs hold none)", all, a)
	}
	// Tenant b gets the third slot although a asked first.
	take("b")
	expect("b")
	// Everything is taken: c waits.
	take("c")
	expectNone()
	// A slot freed by a goes to c (running none), not to a's older waiters.
	tr.release("a")
	expect("c")
	// The next goes to a: b and c run one each, a runs one and waits.
	tr.release("b")
	expect("a")
	if all, a := tr.slots("a"); all != 3 || a != 2 {
		t.Fatalf("slots: %d in all, %d of a; want 3 and 2", all, a)
	}
}

func TestAWaiterThatGivesUpHoldsNoSlot(t *testing.T) {
	tr := newRunTracker(1, 1, 0)
	if !tr.acquire(context.Background(), "a") {
		t.Fatal("first acquire failed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan bool)
	go func() { done <- tr.acquire(ctx, "b") }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	if <-done {
		t.Fatal("a cancelled acquire reported a slot")
	}
	tr.release("a")
	if all, _ := tr.slots("b"); all != 0 {
		t.Fatalf("%d slots held after the only holder released and the waiter gave up, want 0", all)
	}
	if !tr.acquire(context.Background(), "c") {
		t.Fatal("the freed slot cannot be taken")
	}
}

func TestCapsAreConsistent(t *testing.T) {
	for _, tc := range []struct {
		concurrent, perNS, inProgress        int
		wantGlobal, wantPerNS, wantInProgess int
	}{
		{2, 5, 0, 2, 5, 2 * DefaultSyncsInProgressPerSlot},
		{2, 5, 3, 2, 3, 3},   // the namespace cap is at most the in-progress one
		{4, 0, 0, 4, 64, 64}, // unset: no namespace cap beyond it
		{8, 2, 3, 8, 2, 8},   // in progress is at least the work slots
		{0, 0, 0, 1, 16, 16},
	} {
		tr := newRunTracker(tc.concurrent, tc.perNS, tc.inProgress)
		if tr.global != tc.wantGlobal || tr.perNamespace != tc.wantPerNS || tr.maxInProgress != tc.wantInProgess {
			t.Errorf("newRunTracker(%d, %d, %d): global %d, per namespace %d, in progress %d; want %d, %d, %d", tc.concurrent, tc.perNS, tc.inProgress,
				tr.global, tr.perNamespace, tr.maxInProgress, tc.wantGlobal, tc.wantPerNS, tc.wantInProgess)
		}
	}
}

// A sync waiting on a vendor's limit gives its slot back: another
// company's sync runs meanwhile, and the waiting one takes a slot again
// (through the fair queue) before it works on.
func TestALongVendorWaitGivesTheSlotBack(t *testing.T) {
	tr := newRunTracker(1, 1, 0)
	a := &syncSlot{t: tr, ns: "a"}
	if err := a.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	actx := connectors.WithWorkSlot(context.Background(), a)

	// A short wait keeps the slot.
	connectors.BeforeWait(actx, connectors.MinSlotReleaseWait/2)
	if all, _ := tr.slots("a"); all != 1 {
		t.Fatalf("a short wait gave the slot back: %d held", all)
	}
	// A long one gives it to the next sync.
	b := &syncSlot{t: tr, ns: "b"}
	got := make(chan error, 1)
	go func() { got <- b.Acquire(context.Background()) }()
	connectors.BeforeWait(actx, 30*time.Second)
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the slot was not given to the other sync during the wait")
	}
	// The waiting sync comes back: it waits for a slot before it works on.
	resumed := make(chan error, 1)
	go func() { resumed <- connectors.ResumeWork(actx) }()
	select {
	case err := <-resumed:
		t.Fatalf("resumed work without a slot (err %v)", err)
	case <-time.After(100 * time.Millisecond):
	}
	b.Release()
	if err := <-resumed; err != nil {
		t.Fatal(err)
	}
	if all, inA := tr.slots("a"); all != 1 || inA != 1 {
		t.Fatalf("after resuming: %d held, %d by a", all, inA)
	}
	// A resume whose sync is stopped fails and holds nothing.
	connectors.BeforeWait(actx, time.Minute)
	c := &syncSlot{t: tr, ns: "c"}
	if err := c.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	stopped, cancel := context.WithCancel(actx)
	cancel()
	if err := connectors.ResumeWork(stopped); err == nil {
		t.Fatal("resumed a stopped sync")
	}
	a.Release() // not held: a no-op
	if all, inA := tr.slots("a"); all != 1 || inA != 0 {
		t.Fatalf("after a stopped resume: %d held, %d by a", all, inA)
	}
}

// The hostile tenant's case: a sync that gave its work slot back during a
// long wait keeps its place in its namespace's share, so its namespace's
// other syncs cannot take its place; and a freed work slot goes to it
// before any new sync, so that syncs holding their slots for minutes
// cannot starve it.
func TestAReturningSyncGoesFirst(t *testing.T) {
	tr := newRunTracker(2, 2, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := func(ns string) *syncSlot {
		t.Helper()
		s := &syncSlot{t: tr, ns: ns}
		if err := s.Acquire(ctx); err != nil {
			t.Fatal(err)
		}
		return s
	}
	granted := func(s *syncSlot) <-chan error {
		c := make(chan error, 1)
		go func() { c <- s.Acquire(ctx) }()
		return c
	}
	pending := func(what string, c <-chan error) {
		t.Helper()
		select {
		case err := <-c:
			t.Fatalf("%s got a slot (err %v), want it to wait", what, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	got := func(what string, c <-chan error) {
		t.Helper()
		select {
		case err := <-c:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s got no slot", what)
		}
	}

	x := start("hostile") // its token is refused: it backs off
	x.Release()
	slow := start("hostile") // holds its slot for minutes
	third := &syncSlot{t: tr, ns: "hostile"}
	thirdGot := granted(third)
	pending("the hostile namespace's third sync (x keeps its place)", thirdGot)
	if all, inNS := tr.inProgress("hostile"); all != 2 || inNS != 2 {
		t.Fatalf("in progress %d, of hostile %d; want 2 and 2", all, inNS)
	}
	other := start("other") // the free work slot serves another tenant
	newer := &syncSlot{t: tr, ns: "newer"}
	newerGot := granted(newer)
	pending("a new sync while every work slot is held", newerGot)
	xBack := granted(x)
	pending("x while every work slot is held", xBack)
	other.End()
	got("x, before the older new sync", xBack)
	pending("the new sync", newerGot)
	x.End()
	got("the new sync once x ended", newerGot)
	pending("the hostile namespace's third sync while slow works", thirdGot)
	slow.End()
	newer.End()
	got("the hostile namespace's third sync", thirdGot)
	third.End()
	if all, _ := tr.slots(""); all != 0 {
		t.Fatalf("%d work slots held at the end", all)
	}
	if all, _ := tr.inProgress(""); all != 0 {
		t.Fatalf("%d syncs in progress at the end", all)
	}
}

// At most maxInProgress syncs are in progress: a new sync waits while that
// many wait on vendors, although work slots are free.
func TestSyncsInProgressAreBounded(t *testing.T) {
	tr := newRunTracker(1, 0, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var waiting []*syncSlot
	for _, ns := range []string{"a", "b"} {
		s := &syncSlot{t: tr, ns: ns}
		if err := s.Acquire(ctx); err != nil {
			t.Fatal(err)
		}
		s.Release()
		waiting = append(waiting, s)
	}
	c := &syncSlot{t: tr, ns: "c"}
	done := make(chan error, 1)
	go func() { done <- c.Acquire(ctx) }()
	select {
	case err := <-done:
		t.Fatalf("a third sync started (err %v) with two in progress, the cap", err)
	case <-time.After(100 * time.Millisecond):
	}
	waiting[0].End()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	c.End()
	waiting[1].End()
	if all, _ := tr.inProgress(""); all != 0 {
		t.Fatalf("%d in progress at the end", all)
	}
}
