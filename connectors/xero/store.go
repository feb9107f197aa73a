package xero

import (
	"context"
	"errors"
	"strconv"
	"sync"
)

// ErrConflict is what MemoryCredentialStore.Update returns when the data
// changed since the version it was given.
var ErrConflict = errors.New("the credentials changed since they were read (conflict)")

// MemoryCredentialStore is a connectors.CredentialStore in memory with
// resource versions, for tests, benchmarks and simulator demos. The manager
// uses the Kubernetes-backed store instead.
type MemoryCredentialStore struct {
	mu      sync.Mutex
	key     string
	data    map[string][]byte
	version int
	// BeforeUpdate, when set, runs at the start of every Update (outside the
	// lock): tests use it to edit the data "at the same moment".
	BeforeUpdate func()
	// FailUpdates makes the next n updates fail without writing (a crash or
	// an API server outage between the refresh and the write).
	FailUpdates int
}

// NewMemoryCredentialStore returns a store named key holding data.
func NewMemoryCredentialStore(key string, data map[string]string) *MemoryCredentialStore {
	s := &MemoryCredentialStore{key: key, data: map[string][]byte{}, version: 1}
	for k, v := range data {
		s.data[k] = []byte(v)
	}
	return s
}

// Key implements connectors.CredentialStore.
func (s *MemoryCredentialStore) Key() string { return s.key }

// Get implements connectors.CredentialStore.
func (s *MemoryCredentialStore) Get(ctx context.Context) (map[string][]byte, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return clone(s.data), strconv.Itoa(s.version), nil
}

// Update implements connectors.CredentialStore.
func (s *MemoryCredentialStore) Update(ctx context.Context, data map[string][]byte, version string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	s.mu.Lock()
	hook := s.BeforeUpdate
	s.mu.Unlock()
	if hook != nil {
		hook()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.FailUpdates > 0 {
		s.FailUpdates--
		return "", errors.New("the credentials store is unavailable")
	}
	if version != strconv.Itoa(s.version) {
		return "", ErrConflict
	}
	s.data = clone(data)
	s.version++
	return strconv.Itoa(s.version), nil
}

// Set replaces one key, as a person editing the Secret would, and bumps the
// version.
func (s *MemoryCredentialStore) Set(key, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data[key] = []byte(value)
	s.version++
}

// Value returns the current value of a key.
func (s *MemoryCredentialStore) Value(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.data[key])
}

// Data returns a copy of the current data.
func (s *MemoryCredentialStore) Data() map[string][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return clone(s.data)
}

func clone(m map[string][]byte) map[string][]byte {
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = append([]byte(nil), v...)
	}
	return out
}
