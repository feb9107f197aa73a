// Package memory is an in-memory Sink for tests and benchmarks. It follows
// every rule of sinks.Sink.
package memory

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/sinks"
)

// Sink keeps the newest version of each record in memory.
type Sink struct {
	mu       sync.Mutex
	records  map[model.Key]model.Record
	hashes   map[model.Key]string
	setAside map[model.Key]model.SetAside
	// tomb holds when and how each deleted record's deletion was learned.
	tomb map[model.Key]model.Tombstone
	// children indexes records by their parent's key.
	children map[model.Key]map[model.Key]struct{}
	writes   int
	// Now stamps deletions learned from parents; nil means time.Now.
	Now func() time.Time
	// FailWith, when set, is returned by the next Write (and cleared), which
	// then stores nothing.
	FailWith error
	// Discard, when true, counts records without keeping them.
	Discard bool
}

// New returns an empty sink.
func New() *Sink {
	return &Sink{records: map[model.Key]model.Record{}, hashes: map[model.Key]string{}, setAside: map[model.Key]model.SetAside{},
		tomb: map[model.Key]model.Tombstone{}, children: map[model.Key]map[model.Key]struct{}{}}
}

// Write implements sinks.Sink.
func (s *Sink) Write(ctx context.Context, batch []model.Record) (sinks.WriteResult, error) {
	if err := ctx.Err(); err != nil {
		return sinks.WriteResult{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.FailWith != nil {
		err := s.FailWith
		s.FailWith = nil
		return sinks.WriteResult{}, err
	}
	s.writes++
	var res sinks.WriteResult
	// parents are the records whose child rules apply once the whole
	// batch is stored (their children may follow them in it).
	var parents []model.Record
	for _, r := range batch {
		if s.Discard {
			res.Upserted++
			continue
		}
		k := r.Key()
		h, err := r.ContentHash()
		if err != nil {
			return sinks.WriteResult{}, err
		}
		delete(s.setAside, k)
		if old, ok := s.records[k]; ok && (r.ModifiedAt.Before(old.ModifiedAt) || s.hashes[k] == h) {
			if !r.ModifiedAt.Before(old.ModifiedAt) {
				// The same version: its children rules still hold.
				parents = append(parents, r)
			}
			res.Skipped++
			continue
		}
		parents = append(parents, r)
		s.store(r, h)
		res.Upserted++
	}
	// Only the version each key ends with rules its children: an older
	// version earlier in the batch says nothing.
	last := map[model.Key]int{}
	for i, r := range parents {
		last[r.Key()] = i
	}
	for i, r := range parents {
		if last[r.Key()] != i || !r.ModifiedAt.Equal(s.records[r.Key()].ModifiedAt) {
			continue
		}
		if r.Deleted || len(r.Children) > 0 {
			s.childRules(r)
		}
	}
	return res, nil
}

func (s *Sink) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// store keeps r (already judged newer) and applies its deletion rules.
func (s *Sink) store(r model.Record, h string) {
	k := r.Key()
	if old, ok := s.records[k]; ok {
		if pk, ok := old.ParentKey(); ok {
			delete(s.children[pk], k)
		}
	}
	r.Children = nil
	if r.Deleted {
		via := r.DeletedVia
		if via == "" {
			via = model.DeletedByVendor
		}
		r.DeletedVia = via
		if _, ok := s.tomb[k]; !ok || !s.records[k].Deleted {
			s.tomb[k] = model.Tombstone{Key: k, At: s.now(), Via: via}
		}
	} else {
		r.DeletedVia = ""
		delete(s.tomb, k)
	}
	s.records[k] = r
	s.hashes[k] = h
	if pk, ok := r.ParentKey(); ok {
		if s.children[pk] == nil {
			s.children[pk] = map[model.Key]struct{}{}
		}
		s.children[pk][k] = struct{}{}
	}
}

// childRules applies a written record's child sets and, for a deleted one,
// the cascade to its children. It returns how many records it marked.
func (s *Sink) childRules(r model.Record) int {
	k := r.Key()
	n := 0
	at := s.now()
	if r.Deleted {
		return s.cascade(k, at)
	}
	for _, set := range r.Children {
		for ck := range s.children[k] {
			if ck.Kind != set.Kind || slices.Contains(set.IDs, ck.VendorID) {
				continue
			}
			n += s.mark(model.Tombstone{Key: ck, At: at, Via: model.DeletedFromParent})
		}
	}
	return n
}

// mark tombstones one live record and its children.
func (s *Sink) mark(t model.Tombstone) int {
	r, ok := s.records[t.Key]
	if !ok || r.Deleted {
		return 0
	}
	r.Deleted = true
	r.DeletedVia = t.Via
	h, _ := r.ContentHash()
	s.records[t.Key] = r
	s.hashes[t.Key] = h
	s.tomb[t.Key] = t
	return 1 + s.cascade(t.Key, t.At)
}

func (s *Sink) cascade(parent model.Key, at time.Time) int {
	n := 0
	for ck := range s.children[parent] {
		n += s.mark(model.Tombstone{Key: ck, At: at, Via: model.DeletedWithParent})
	}
	return n
}

// Delete implements sinks.Sink.
func (s *Sink) Delete(ctx context.Context, tombstones []model.Tombstone) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.FailWith != nil {
		err := s.FailWith
		s.FailWith = nil
		return 0, err
	}
	n := 0
	for _, t := range tombstones {
		n += s.mark(t)
	}
	return n, nil
}

// Live implements sinks.Sink.
func (s *Sink) Live(ctx context.Context, sc sinks.Scope, fn func(model.LiveRecord) error) error {
	s.mu.Lock()
	var live []model.LiveRecord
	for k, r := range s.records {
		if k.Company == sc.Company && k.Vendor == sc.Vendor && k.Kind == sc.Kind && !r.Deleted {
			live = append(live, model.LiveRecord{VendorID: k.VendorID, ModifiedAt: r.ModifiedAt})
		}
	}
	s.mu.Unlock()
	for _, l := range live {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(l); err != nil {
			return err
		}
	}
	return nil
}

// Purge implements sinks.Sink.
func (s *Sink) Purge(ctx context.Context, company, vendor string, before time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, t := range s.tomb {
		if r := s.records[k]; k.Company == company && k.Vendor == vendor && t.At.Before(before) && r.Deleted {
			if pk, ok := r.ParentKey(); ok {
				delete(s.children[pk], k)
			}
			delete(s.records, k)
			delete(s.hashes, k)
			delete(s.tomb, k)
			n++
		}
	}
	return n, nil
}

// Tombstone returns when and how a deleted record's deletion was learned.
func (s *Sink) Tombstone(k model.Key) (model.Tombstone, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tomb[k]
	return t, ok && s.records[k].Deleted
}

// SetAside implements sinks.Sink.
func (s *Sink) SetAside(ctx context.Context, items []model.SetAside) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.FailWith != nil {
		err := s.FailWith
		s.FailWith = nil
		return err
	}
	for _, it := range items {
		s.setAside[it.Key()] = it
	}
	return nil
}

// SetAsideItems returns a copy of every set-aside document.
func (s *Sink) SetAsideItems() []model.SetAside {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]model.SetAside, 0, len(s.setAside))
	for _, it := range s.setAside {
		out = append(out, it)
	}
	return out
}

// Put stores a record as it is, bypassing every rule: a test's way to edit
// the CRM behind the operator's back.
func (s *Sink) Put(r model.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, _ := r.ContentHash()
	s.records[r.Key()] = r
	s.hashes[r.Key()] = h
}

// Remove drops a record as if a CRM user deleted the row behind the
// operator's back.
func (s *Sink) Remove(k model.Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.records, k)
	delete(s.hashes, k)
	delete(s.tomb, k)
}

// Close implements sinks.Sink.
func (s *Sink) Close() error { return nil }

// Get returns the stored record for a key.
func (s *Sink) Get(k model.Key) (model.Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.records[k]
	return r, ok
}

// Len returns the number of stored records.
func (s *Sink) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.records)
}

// Writes returns the number of successful Write calls.
func (s *Sink) Writes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

// Records returns a copy of every stored record.
func (s *Sink) Records() []model.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]model.Record, 0, len(s.records))
	for _, r := range s.records {
		out = append(out, r)
	}
	return out
}
