package httpapi

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// DefaultBodyBudget is the process-wide budget of response-body bytes being
// read at once (see SetBodyBudget).
const DefaultBodyBudget = 256 << 20

// bodyChunk is the step in which a body's buffer grows, and takes budget.
const bodyChunk = 256 << 10

// SetBodyBudget sets the number of response-body bytes that all the
// process's clients together may hold while they read bodies; 0 or less
// removes the bound. A read takes budget as its buffer grows (by the
// buffer's capacity, in steps of at most a quarter MiB, or at once for
// a body of known length; a streamed body as its bytes arrive, see
// GetStream) and gives it back when the read is done, so that
// many concurrent syncs cannot together exceed it: a read that would waits
// for others to finish, within its attempt's timeout. So that waiting
// readers never deadlock, the oldest read in progress is never held back:
// the budget can be overrun by at most that one body (at most its client's
// MaxBodyBytes). Size the manager's memory limit from the budget, the
// largest MaxBodyBytes and what decoding costs on top. The manager calls it
// at start-up; the default is DefaultBodyBudget.
func SetBodyBudget(bytes int64) { bodies.setLimit(bytes) }

// BodyBytesInFlight returns the budget currently taken by body reads.
func BodyBytesInFlight() int64 { return bodies.inUse() }

var bodies = newBudget(DefaultBodyBudget)

// budget is a byte semaphore whose oldest holder never waits.
type budget struct {
	mu      sync.Mutex
	limit   int64
	used    int64
	next    uint64
	active  map[uint64]struct{}
	changed chan struct{} // closed and replaced whenever used or active shrinks
	// used is mirrored for lock-free reads by BodyBytesInFlight.
	usedView atomic.Int64
}

func newBudget(limit int64) *budget {
	return &budget{limit: limit, active: map[uint64]struct{}{}, changed: make(chan struct{})}
}

func (b *budget) setLimit(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.limit = n
	b.wakeLocked()
}

func (b *budget) inUse() int64 { return b.usedView.Load() }

func (b *budget) wakeLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// lease is one body read's share of the budget.
type lease struct {
	b      *budget
	ticket uint64
	held   int64
}

func (b *budget) start() *lease {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.next++
	b.active[b.next] = struct{}{}
	return &lease{b: b, ticket: b.next}
}

func (b *budget) oldestLocked() uint64 {
	var o uint64
	for t := range b.active {
		if o == 0 || t < o {
			o = t
		}
	}
	return o
}

// grow takes n more bytes, waiting while they do not fit, unless this is
// the oldest read in progress.
func (l *lease) grow(ctx context.Context, n int64) error {
	if n <= 0 {
		return nil
	}
	b := l.b
	for {
		b.mu.Lock()
		if b.limit <= 0 || b.used+n <= b.limit || b.oldestLocked() == l.ticket {
			b.used += n
			b.usedView.Store(b.used)
			l.held += n
			b.mu.Unlock()
			return nil
		}
		ch := b.changed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// done gives the lease's bytes back.
func (l *lease) done() {
	b := l.b
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= l.held
	b.usedView.Store(b.used)
	l.held = 0
	delete(b.active, l.ticket)
	b.wakeLocked()
}

// errTooLarge is returned by readBody for a body over its cap.
var errTooLarge = errors.New("response body too large")

// readBody reads r whole under the process's body budget: at most limit
// bytes (errTooLarge past them). length is the body's declared length, or
// -1. The budget taken is given back before it returns; the caller then
// holds the bytes outside the budget (decoding them at once).
func readBody(ctx context.Context, r io.Reader, length, limit int64) ([]byte, error) {
	return bodies.read(ctx, r, length, limit)
}

// read is readBody on b.
func (b *budget) read(ctx context.Context, r io.Reader, length, limit int64) ([]byte, error) {
	l := b.start()
	defer l.done()
	capacity := int64(bodyChunk)
	if length >= 0 {
		// Read a body of known length into one buffer of its size
		// (one byte more, to see a body longer than it said).
		capacity = min(length, limit) + 1
	}
	capacity = min(capacity, limit+1)
	if err := l.grow(ctx, capacity); err != nil {
		return nil, err
	}
	buf := make([]byte, 0, capacity)
	for {
		if int64(len(buf)) == int64(cap(buf)) {
			if int64(len(buf)) > limit {
				return nil, errTooLarge
			}
			// Doubling keeps the copies linear; the budget counts the
			// new buffer's whole capacity.
			next := min(max(int64(cap(buf))*2, int64(bodyChunk)), limit+1)
			if err := l.grow(ctx, next-int64(cap(buf))); err != nil {
				return nil, err
			}
			nb := make([]byte, len(buf), next)
			copy(nb, buf)
			buf = nb
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return nil, errTooLarge
		}
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// streamBody is a response body decoded as it is read, under the process's
// body budget: it takes budget for the bytes read so far (in steps of at
// most bodyChunk, before they are read), since what a decoder builds from
// them lives as long as the read, and gives it all back on close. Past
// limit bytes it fails with errTooLarge. err keeps the first failure of the
// underlying reader (or of the budget wait), so that the caller can tell a
// lost connection or a body over its cap from content that does not parse.
type streamBody struct {
	ctx    context.Context
	r      io.Reader
	lease  *lease
	limit  int64
	read   int64 // bytes read so far
	credit int64 // budget taken and not yet read into
	err    error
}

// newStreamBody starts a budgeted read of r, at most limit bytes. A
// declared length takes no budget up front: bytes are paid for as they
// arrive.
func (b *budget) newStreamBody(ctx context.Context, r io.Reader, limit int64) *streamBody {
	return &streamBody{ctx: ctx, r: r, lease: b.start(), limit: limit}
}

func (s *streamBody) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if s.read > s.limit {
		s.err = errTooLarge
		return 0, s.err
	}
	if s.credit == 0 {
		// One byte past the cap may be read, to see a body longer than it.
		step := min(int64(bodyChunk), s.limit+1-s.read)
		if err := s.lease.grow(s.ctx, step); err != nil {
			s.err = err
			return 0, err
		}
		s.credit = step
	}
	if int64(len(p)) > s.credit {
		p = p[:s.credit]
	}
	n, err := s.r.Read(p)
	s.read += int64(n)
	s.credit -= int64(n)
	if s.read > s.limit {
		s.err = errTooLarge
		return n, s.err
	}
	if err != nil && !errors.Is(err, io.EOF) {
		s.err = err
	}
	return n, err
}

// close gives the read's budget back.
func (s *streamBody) close() { s.lease.done() }
