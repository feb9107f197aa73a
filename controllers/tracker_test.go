package controllers

import (
	"context"
	"testing"
	"time"
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
