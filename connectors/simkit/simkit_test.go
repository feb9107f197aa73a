package simkit

import (
	"testing"
	"time"
)

func TestDatasetIsDeterministic(t *testing.T) {
	a := NewDataset(Options{Seed: 7, Products: 50, Customers: 20, Orders: 30})
	b := NewDataset(Options{Seed: 7, Products: 50, Customers: 20, Orders: 30})
	if len(a.Products) != 50 || len(a.Customers) != 20 || len(a.Orders) != 30 {
		t.Fatalf("sizes: %d products %d customers %d orders", len(a.Products), len(a.Customers), len(a.Orders))
	}
	if len(a.Invoices) != 15 || len(a.CreditNotes) != 2 {
		t.Fatalf("invoices %d credit notes %d", len(a.Invoices), len(a.CreditNotes))
	}
	for i := range a.Products {
		pa, pb := a.Products[i], b.Products[i]
		if pa.ID != pb.ID || !pa.Modified.Equal(pb.Modified) || pa.SellPrice != pb.SellPrice || len(pa.Stock) != 3 {
			t.Fatalf("product %d differs or lacks stock: %+v vs %+v", i, pa, pb)
		}
		if !pa.Modified.Before(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
			t.Fatalf("product modified in the future: %v", pa.Modified)
		}
	}
	ids := map[string]bool{}
	for _, p := range a.Products {
		if ids[p.ID] {
			t.Fatalf("duplicate id %s", p.ID)
		}
		ids[p.ID] = true
	}
}

func TestTouchAndModifiedSince(t *testing.T) {
	d := NewDataset(Options{Seed: 1, Products: 100})
	now := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	d.SetClock(func() time.Time { return now })
	touched := d.TouchProducts(5)
	idx := ModifiedSince(d.Products, now.Add(-time.Second), func(p *Product) time.Time { return p.Modified }, func(p *Product) string { return p.ID })
	got := map[string]bool{}
	for _, i := range idx {
		got[d.Products[i].ID] = true
	}
	for _, id := range touched {
		if !got[id] {
			t.Fatalf("touched product %s not returned by ModifiedSince", id)
		}
	}
	if len(idx) != len(got) || len(got) > 5 {
		t.Fatalf("ModifiedSince returned %d, want the (up to 5) touched", len(idx))
	}
	all := ModifiedSince(d.Products, time.Time{}, func(p *Product) time.Time { return p.Modified }, func(p *Product) string { return p.ID })
	for i := 1; i < len(all); i++ {
		if d.Products[all[i]].Modified.Before(d.Products[all[i-1]].Modified) {
			t.Fatal("ModifiedSince is not in ascending modified order")
		}
	}
}

func TestPageOf(t *testing.T) {
	for _, tc := range []struct {
		n, page, size, start, end int
		more                      bool
	}{
		{0, 1, 10, 0, 0, false},
		{25, 1, 10, 0, 10, true},
		{25, 3, 10, 20, 25, false},
		{20, 2, 10, 10, 20, false},
		{20, 5, 10, 20, 20, false},
	} {
		s, e, m := PageOf(tc.n, tc.page, tc.size)
		if s != tc.start || e != tc.end || m != tc.more {
			t.Errorf("PageOf(%d,%d,%d) = %d,%d,%v want %d,%d,%v", tc.n, tc.page, tc.size, s, e, m, tc.start, tc.end, tc.more)
		}
	}
}

func TestLimiterWindows(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewLimiter(func() time.Time { return now }, Window{Name: "second", Limit: 3, Per: time.Second}, Window{Name: "day", Limit: 5, Per: 24 * time.Hour})
	for i := 0; i < 3; i++ {
		if ok, _, _ := l.Allow("k"); !ok {
			t.Fatalf("request %d refused", i)
		}
	}
	ok, w, ra := l.Allow("k")
	if ok || w != "second" || ra != time.Second {
		t.Fatalf("4th request: ok=%v window=%s retry=%v", ok, w, ra)
	}
	if ok, _, _ := l.Allow("other"); !ok {
		t.Fatal("keys must be metered apart")
	}
	now = now.Add(time.Second)
	l.Allow("k")
	l.Allow("k")
	ok, w, _ = l.Allow("k")
	if ok || w != "day" {
		t.Fatalf("day limit not enforced: ok=%v window=%s", ok, w)
	}
}

func TestClockScales(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewClock(base, 60)
	real := c.start
	c.real = func() time.Time { return real.Add(time.Second) }
	if got := c.Now(); !got.Equal(base.Add(time.Minute)) {
		t.Fatalf("one real second at scale 60 = %v, want a minute", got.Sub(base))
	}
	if c.Real(time.Minute) != time.Second {
		t.Fatalf("Real(1m) = %v", c.Real(time.Minute))
	}
}
