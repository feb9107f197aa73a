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
	tr := newRunTracker(3, 2)

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
	tr := newRunTracker(1, 1)
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

func TestPerNamespaceCapIsAtMostTheGlobalOne(t *testing.T) {
	if tr := newRunTracker(2, 5); tr.perNamespace != 2 {
		t.Errorf("cap %d, want it lowered to the global 2", tr.perNamespace)
	}
	if tr := newRunTracker(4, 0); tr.perNamespace != 4 {
		t.Errorf("cap %d, want no cap beyond the global 4 when unset", tr.perNamespace)
	}
}

// A sync waiting on a vendor's limit gives its slot back: another
// company's sync runs meanwhile, and the waiting one takes a slot again
// (through the fair queue) before it works on.
func TestALongVendorWaitGivesTheSlotBack(t *testing.T) {
	tr := newRunTracker(1, 1)
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
