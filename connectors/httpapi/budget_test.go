package httpapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowReader yields its body in small reads, sleeping between them, so
// that concurrent reads overlap.
type slowReader struct {
	r *bytes.Reader
}

func (s *slowReader) Read(p []byte) (int, error) {
	time.Sleep(50 * time.Microsecond)
	return s.r.Read(p[:min(len(p), 32<<10)])
}

func TestBodyBudgetBoundsConcurrentReads(t *testing.T) {
	const limit = 2 << 20
	const bodySize = 700 << 10
	const maxBody = 1 << 20
	for _, known := range []bool{false, true} {
		b := newBudget(limit)
		var peak atomic.Int64
		stop := make(chan struct{})
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if u := b.inUse(); u > peak.Load() {
					peak.Store(u)
				}
				time.Sleep(20 * time.Microsecond)
			}
		}()
		var wg sync.WaitGroup
		errs := make(chan error, 32)
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				length := int64(-1)
				if known {
					length = bodySize
				}
				body := bytes.Repeat([]byte("x"), bodySize)
				got, err := b.read(context.Background(), &slowReader{bytes.NewReader(body)}, length, maxBody)
				if err == nil && len(got) != bodySize {
					err = errors.New("short body")
				}
				errs <- err
			}()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("the readers deadlocked")
		}
		close(stop)
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		// The oldest read may overrun the budget by at most one body's cap.
		if p := peak.Load(); p > limit+maxBody+1 {
			t.Errorf("known length %v: peak %d bytes in flight, budget %d (+%d for the oldest read)", known, p, limit, maxBody)
		}
		if u := b.inUse(); u != 0 {
			t.Errorf("known length %v: %d bytes still taken after every read ended", known, u)
		}
	}
}

func TestBodyBudgetWaitHonoursContext(t *testing.T) {
	b := newBudget(1 << 20)
	first := b.start()
	if err := first.grow(context.Background(), 1<<20); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := b.read(ctx, bytes.NewReader(make([]byte, 10)), 10, 1<<20)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the context's deadline while the budget is taken", err)
	}
	first.done()
	if u := b.inUse(); u != 0 {
		t.Fatalf("%d bytes taken after every read ended", u)
	}
	if got, err := b.read(context.Background(), bytes.NewReader(make([]byte, 10)), 10, 1<<20); err != nil || len(got) != 10 {
		t.Fatalf("after release: %d bytes, %v", len(got), err)
	}
}

func TestReadBodyCaps(t *testing.T) {
	b := newBudget(0) // unbounded
	for _, tc := range []struct {
		size, length, limit int64
		tooLarge            bool
	}{
		{size: 10, length: 10, limit: 10},
		{size: 11, length: 11, limit: 10, tooLarge: true},
		{size: 11, length: 5, limit: 10, tooLarge: true}, // longer than it said
		{size: 3 << 20, length: -1, limit: 4 << 20},
		{size: 3<<20 + 1, length: -1, limit: 3 << 20, tooLarge: true},
		{size: 0, length: -1, limit: 10},
	} {
		got, err := b.read(context.Background(), io.LimitReader(bytes.NewReader(bytes.Repeat([]byte("y"), int(tc.size))), tc.size), tc.length, tc.limit)
		if tc.tooLarge {
			if !errors.Is(err, errTooLarge) {
				t.Errorf("%+v: err %v, want errTooLarge", tc, err)
			}
			continue
		}
		if err != nil || int64(len(got)) != tc.size {
			t.Errorf("%+v: %d bytes, %v", tc, len(got), err)
		}
	}
}
