package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// QuotaUsage is the count of one quota in its current period, or, under a
// name starting with WindowUsagePrefix, the recent calls of one rate window.
type QuotaUsage struct {
	// PeriodStart is the start of the period Used counts (quotas only).
	PeriodStart time.Time `json:"periodStart"`
	// Used is the number of calls sent in the period, retries included; for
	// a window, the number of calls sent within the window's span up to
	// Last.
	Used int64 `json:"used"`
	// BlockedUntil is set when the vendor said the quota is used up; no call
	// is sent before it.
	BlockedUntil time.Time `json:"blockedUntil,omitzero"`
	// Last is, for a window, the time of the latest call Used counts. A
	// restarted process takes every one of them as sent at Last, so that
	// it never sends more than the window's limit within any span of it.
	Last time.Time `json:"last,omitzero"`
}

// WindowUsagePrefix starts the names under which a limiter keeps its rate
// windows in its QuotaStore entry, beside its quotas: "window:minute@1m0s"
// (the window's name and span). Quota names must not start with it.
const WindowUsagePrefix = "window:"

// EveryWindow names an entry that applies to every window of the limiter: a
// store that may have lost the windows' recent calls (a writer that crashed
// between coalesced writes, a damaged record) returns it with Used at or
// above any limit and Last at the latest time a lost call may have been
// sent, so that the windows are spent until one span after it.
const EveryWindow = WindowUsagePrefix + "*"

// QuotaStore keeps quota counters and the recent calls of rate windows
// across restarts, by limiter key and name. The Client saves after every
// call of a limiter with windows or quotas; an implementation backed by a
// slow store (a Kubernetes object) may coalesce saves, flushing once more
// when the process stops, at the price of under-counting the calls of its
// last moments after a crash. When Load fails, a limiter without quotas
// takes its windows as spent (its next call waits a full window) and one
// with quotas fails its calls until the store answers. Keys are hashes (see
// Key): they never carry secrets.
type QuotaStore interface {
	// Load returns the counters saved for key, or an empty map when there are
	// none.
	Load(ctx context.Context, key string) (map[string]QuotaUsage, error)
	// Save replaces the counters of key.
	Save(ctx context.Context, key string, usage map[string]QuotaUsage) error
}

// QuotaReserver is a QuotaStore that several processes (manager replicas)
// spending one credential share. Its quota counters are merged, never
// overwritten: each process adds the calls it spent, and a limiter whose
// store is a QuotaReserver sends a call of an enforced quota (Limit > 0)
// only out of calls its process reserved in the store beforehand. The
// store returns a process's unspent reserved calls when it goes idle or
// stops; those of a process that crashed stay counted as spent until the
// period ends. Save then carries only the rate windows and the vendor's
// blocks: the quota counts in it are the limiter's view, not news.
type QuotaReserver interface {
	QuotaStore
	// View returns, without I/O, what the store knows of the claims (as of
	// its last read of the shared counters, and this process's calls
	// since), and whether this process holds a reserved call of every
	// enforced claim, in the claim's period.
	View(key string, claims []QuotaClaim) (views []QuotaView, holds bool)
	// Spend takes one call of every claim (a reserved one for an enforced
	// quota) and counts it in the merged counters at the store's next
	// write, without I/O. It spends nothing and returns false when Holds
	// would be false.
	Spend(key string, claims []QuotaClaim) ([]QuotaView, bool)
	// Reserve claims, for every enforced claim of which this process holds
	// no call, a block of the calls no process has claimed (see
	// ReservationSize), writing what the process spent along with it. It
	// grants none when the quota is used up: the view's Held is then 0 and
	// its Used at least the limit.
	Reserve(ctx context.Context, key string, claims []QuotaClaim) ([]QuotaView, error)
}

// QuotaClaim names one quota of a limiter in a QuotaReserver call.
type QuotaClaim struct {
	Name        string
	Period      Period
	PeriodStart time.Time
	// Limit is the quota's limit; zero or less counts calls without a
	// reservation.
	Limit int64
}

// QuotaView is what a QuotaReserver knows of one quota after a call.
type QuotaView struct {
	Name        string
	PeriodStart time.Time
	// Used is the calls of the period this process may not send: those
	// any process spent and those other processes reserved (a crashed
	// one's included). The quota's limit minus Used is what this process
	// may still send: its own reserved calls and the unclaimed ones.
	Used int64
	// Held is this process's reserved calls not yet spent.
	Held int64
	// Granted is how many calls the call reserved (Reserve only).
	Granted int64
	// BlockedUntil is the latest vendor block any process saved.
	BlockedUntil time.Time
}

// Bounds of a reservation: MaxReservation calls at most, and a
// ReservationShare-th of the quota's limit, so that a process never sits on
// much of a quota others may need.
const (
	MaxReservation   = 200
	ReservationShare = 50
)

// ReservationSize is how many calls a process reserves at once of a quota
// of limit calls of which free are claimed by no process: limit/50, at most
// 200, at least 1, and shrinking as the quota runs out (at most a quarter
// of what is free, so that the last calls go to the processes that still
// need them, a few at a time); never more than free, and 0 when nothing is
// free or the quota is not enforced.
func ReservationSize(limit, free int64) int64 {
	if limit <= 0 || free <= 0 {
		return 0
	}
	n := min(limit/ReservationShare, MaxReservation, free/4)
	return min(max(1, n), free)
}

// MemoryQuotaStore is a QuotaStore in memory: counters and windows survive a
// new Client or Registry in the same process (a simulated restart), not a
// real one.
type MemoryQuotaStore struct {
	mu sync.Mutex
	m  map[string]map[string]QuotaUsage
}

// NewMemoryQuotaStore returns an empty MemoryQuotaStore.
func NewMemoryQuotaStore() *MemoryQuotaStore {
	return &MemoryQuotaStore{m: map[string]map[string]QuotaUsage{}}
}

// Load implements QuotaStore.
func (s *MemoryQuotaStore) Load(_ context.Context, key string) (map[string]QuotaUsage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneUsage(s.m[key]), nil
}

// Save implements QuotaStore.
func (s *MemoryQuotaStore) Save(_ context.Context, key string, usage map[string]QuotaUsage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = cloneUsage(usage)
	return nil
}

// FileQuotaStore is a QuotaStore in one JSON file, rewritten atomically
// (write to a temporary file, then rename) on every save. It suits a single
// process with a persistent volume and local runs.
type FileQuotaStore struct {
	path string
	mu   sync.Mutex
}

// NewFileQuotaStore returns a store kept at path; the file is created on the
// first save.
func NewFileQuotaStore(path string) *FileQuotaStore { return &FileQuotaStore{path: path} }

func (s *FileQuotaStore) read() (map[string]map[string]QuotaUsage, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]map[string]QuotaUsage{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading quota file: %w", err)
	}
	all := map[string]map[string]QuotaUsage{}
	if len(b) == 0 {
		return all, nil
	}
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, fmt.Errorf("parsing quota file %s: %w", s.path, err)
	}
	return all, nil
}

// Load implements QuotaStore.
func (s *FileQuotaStore) Load(ctx context.Context, key string) (map[string]QuotaUsage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	all, err := s.read()
	if err != nil {
		return nil, err
	}
	return cloneUsage(all[key]), nil
}

// Save implements QuotaStore.
func (s *FileQuotaStore) Save(ctx context.Context, key string, usage map[string]QuotaUsage) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	all, err := s.read()
	if err != nil {
		return err
	}
	all[key] = cloneUsage(usage)
	b, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding quota file: %w", err)
	}
	dir := filepath.Dir(s.path)
	f, err := os.CreateTemp(dir, ".quota-*.json")
	if err != nil {
		return fmt.Errorf("writing quota file: %w", err)
	}
	tmp := f.Name()
	_, werr := f.Write(b)
	cerr := f.Close()
	if werr == nil {
		werr = cerr
	}
	if werr != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing quota file: %w", werr)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("replacing quota file: %w", err)
	}
	return nil
}

func cloneUsage(m map[string]QuotaUsage) map[string]QuotaUsage {
	if m == nil {
		return map[string]QuotaUsage{}
	}
	return maps.Clone(m)
}
