// Package memory is an in-memory Sink for tests and benchmarks. It follows
// every rule of sinks.Sink.
package memory

import (
	"context"
	"sync"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/sinks"
)

// Sink keeps the newest version of each record in memory.
type Sink struct {
	mu       sync.Mutex
	records  map[model.Key]model.Record
	hashes   map[model.Key]string
	setAside map[model.Key]model.SetAside
	writes   int
	// FailWith, when set, is returned by the next Write (and cleared), which
	// then stores nothing.
	FailWith error
	// Discard, when true, counts records without keeping them.
	Discard bool
}

// New returns an empty sink.
func New() *Sink {
	return &Sink{records: map[model.Key]model.Record{}, hashes: map[model.Key]string{}, setAside: map[model.Key]model.SetAside{}}
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
			res.Skipped++
			continue
		}
		s.records[k] = r
		s.hashes[k] = h
		res.Upserted++
	}
	return res, nil
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
