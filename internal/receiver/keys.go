package receiver

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"slices"
	"sync"
	"time"
)

// ErrNoKeys is what a KeySource returns (wrapped) for an ErpSync whose
// credentials Secret is missing or not labelled as credentials: its
// deliveries cannot be authenticated and are refused.
var ErrNoKeys = errors.New("no webhook keys")

// KeySource returns an ErpSync's webhook keys: the data of its credentials
// Secret with the data of its webhook Secret merged over it.
type KeySource interface {
	Keys(ctx context.Context, s Subscriber) (map[string][]byte, error)
}

// keyCacheConfig tunes a keyCache.
type keyCacheConfig struct {
	// ttl is how long keys read are used.
	ttl time.Duration
	// refreshEvery is the least time between two reads of one ErpSync's
	// keys: a verification failure re-reads (a key may have rotated) only
	// when the cached keys are at least this old, and a failed read is
	// remembered this long.
	refreshEvery time.Duration
	// size bounds the entries; the least recently used goes first.
	size int
	now  func() time.Time
}

// keys is one read of an ErpSync's keys.
type keys struct {
	data map[string][]byte
	// fp identifies the key material (a hash of the sorted keys and
	// values), so that deliveries are checked once per distinct key set.
	fp string
	// none is set when the ErpSync has no keys (ErrNoKeys).
	none bool
}

type keyEntry struct {
	id      string
	keys    keys
	err     error // a failed read (not ErrNoKeys), kept for refreshEvery
	fetched time.Time
	elem    *list.Element
}

type keyCall struct {
	done chan struct{}
	e    *keyEntry
}

// keyCache caches a KeySource, so that a flood of deliveries (forged or
// not) costs at most one Secret read per ErpSync per refreshEvery.
type keyCache struct {
	src KeySource
	cfg keyCacheConfig

	mu       sync.Mutex
	entries  map[string]*keyEntry
	lru      *list.List
	inflight map[string]*keyCall
}

func newKeyCache(src KeySource, cfg keyCacheConfig) *keyCache {
	return &keyCache{src: src, cfg: cfg, entries: map[string]*keyEntry{}, lru: list.New(), inflight: map[string]*keyCall{}}
}

// cacheID names a Subscriber's keys: another credentials Secret is another
// entry.
func cacheID(s Subscriber) string {
	return string(s.UID) + "/" + s.Key.Namespace + "/" + s.CredentialsSecret
}

// get returns s's keys, read at most once per ttl (and failures at most
// once per refreshEvery). cached is set when they came from the cache.
func (c *keyCache) get(ctx context.Context, s Subscriber) (k keys, cached bool, err error) {
	id := cacheID(s)
	c.mu.Lock()
	if e := c.entries[id]; e != nil {
		age := c.cfg.now().Sub(e.fetched)
		if (e.err == nil && age < c.cfg.ttl) || (e.err != nil && age < c.cfg.refreshEvery) {
			c.lru.MoveToFront(e.elem)
			c.mu.Unlock()
			return e.keys, true, e.err
		}
	}
	c.mu.Unlock()
	e, err := c.read(ctx, s, id)
	if err != nil {
		return keys{}, false, err
	}
	return e.keys, false, e.err
}

// refresh re-reads s's keys after a verification failure with cached
// keys, unless they were read less than refreshEvery ago; ok is false when
// no read was made.
func (c *keyCache) refresh(ctx context.Context, s Subscriber) (k keys, ok bool, err error) {
	id := cacheID(s)
	c.mu.Lock()
	if e := c.entries[id]; e != nil && c.cfg.now().Sub(e.fetched) < c.cfg.refreshEvery {
		c.mu.Unlock()
		return keys{}, false, nil
	}
	c.mu.Unlock()
	e, err := c.read(ctx, s, id)
	if err != nil {
		return keys{}, false, err
	}
	return e.keys, true, e.err
}

// read reads s's keys, once for concurrent callers, and caches the result.
// err is set only when ctx ended while waiting.
func (c *keyCache) read(ctx context.Context, s Subscriber, id string) (*keyEntry, error) {
	c.mu.Lock()
	call := c.inflight[id]
	if call == nil {
		call = &keyCall{done: make(chan struct{})}
		c.inflight[id] = call
		c.mu.Unlock()
		data, err := c.src.Keys(ctx, s)
		e := &keyEntry{id: id, fetched: c.cfg.now()}
		switch {
		case errors.Is(err, ErrNoKeys):
			e.keys = keys{none: true}
		case err != nil:
			e.err = err
		default:
			e.keys = keys{data: data, fp: fingerprint(data)}
		}
		c.mu.Lock()
		call.e = e
		delete(c.inflight, id)
		c.storeLocked(e)
		c.mu.Unlock()
		close(call.done)
		return e, nil
	}
	c.mu.Unlock()
	select {
	case <-call.done:
		return call.e, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *keyCache) storeLocked(e *keyEntry) {
	if old := c.entries[e.id]; old != nil {
		c.lru.Remove(old.elem)
	}
	e.elem = c.lru.PushFront(e)
	c.entries[e.id] = e
	for c.lru.Len() > max(1, c.cfg.size) {
		last := c.lru.Back()
		c.lru.Remove(last)
		delete(c.entries, last.Value.(*keyEntry).id)
	}
}

// sweep drops the entries past their time, so that no key is held in
// memory much longer than ttl after its last read.
func (c *keyCache) sweep() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.now()
	for id, e := range c.entries {
		if now.Sub(e.fetched) >= max(c.cfg.ttl, c.cfg.refreshEvery) {
			c.lru.Remove(e.elem)
			delete(c.entries, id)
		}
	}
}

// fingerprint identifies key material (a map key in memory, never shown):
// a SHA-256 over the sorted keys and values, length-prefixed.
func fingerprint(data map[string][]byte) string {
	names := make([]string, 0, len(data))
	for k := range data {
		names = append(names, k)
	}
	slices.Sort(names)
	h := sha256.New()
	var n [8]byte
	for _, k := range names {
		binary.BigEndian.PutUint64(n[:], uint64(len(k)))
		h.Write(n[:])
		h.Write([]byte(k))
		binary.BigEndian.PutUint64(n[:], uint64(len(data[k])))
		h.Write(n[:])
		h.Write(data[k])
	}
	return string(h.Sum(nil))
}
