// Package enginetest provides an in-memory ERP for engine and controller
// tests: a mutable dataset served by page number, with a vendor clock, a
// total count, optional unordered rows, hooks to change records while a run
// pages through them, and failure injection. It also provides Synthetic, a
// connector that generates any number of records on the fly for benchmarks.
package enginetest

import (
	"context"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// Clock is a manual clock shared by a test, its Fake and the engine's
// Run.Now.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock reading t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Item is one record of the Fake's dataset.
type Item struct {
	ID string
	// Version counts the changes of the record; it is written into the
	// product's Name ("v3") so that tests can check which version a sink
	// holds.
	Version    int
	ModifiedAt time.Time
}

// Fake is an in-memory ERP connector. Configure it before the run; change
// its data at any time (from hooks too). Safe for concurrent use.
type Fake struct {
	// Vendor and Company stamp the records.
	Vendor, Company string
	// PageSize defaults to 10.
	PageSize int
	// Clock is our clock; the vendor's clock reads Clock plus Skew.
	Clock *Clock
	Skew  time.Duration
	// Latency is how far the clock moves while a page is served; the page
	// is read (and its ServerTime taken) at the start of the call.
	Latency time.Duration
	// NoServerTime leaves Page.ServerTime zero (no Date header).
	NoServerTime bool
	// NoTotal reports Page.Total as -1.
	NoTotal bool
	// Unordered serves rows in an order unrelated to id or modified time
	// (stable while the dataset does not change).
	Unordered bool
	// ByModified serves rows in modified-time order (then id), as vendors
	// that sort by their modified field do: an edit moves a record to the
	// end of the list.
	ByModified bool
	// Shuffle serves every request in a fresh random order (a vendor
	// reported to have no stable order).
	Shuffle bool
	// Keyset makes the Fake a keyset reader: each page after the first
	// restarts from the cursor (the last modified time and id served), so
	// rows sort by modified time and Page.Next is set; Total is -1.
	Keyset bool
	// WaitBefore, when set, says how long the vendor's limiter makes the
	// request wait; the Fake calls connectors.BeforeWait and advances the
	// clock by it, as the HTTP layer would.
	WaitBefore func(req connectors.PageRequest) time.Duration
	// SetAside, when set, returns documents of a page that the mapping
	// "cannot know"; they go to Page.SetAside instead of Records.
	SetAside func(req connectors.PageRequest, it Item) bool
	// Entities defaults to one incremental products stream.
	EntityList []connectors.EntityInfo
	// Before runs at the start of every ListPage; a non-nil error fails the
	// call with it (failure injection).
	Before func(req connectors.PageRequest) error
	// After runs once a page has been read, before ListPage returns: the
	// place to change records "while the run pages through them".
	After func(req connectors.PageRequest)
	// Stale, when set, adds to each page the records it returns, as older
	// duplicates (out-of-order delivery).
	Stale func(req connectors.PageRequest) []model.Record

	mu       sync.Mutex
	data     map[model.Kind]map[string]*Item
	requests []connectors.PageRequest
	shuffles uint64
}

// Entities implements connectors.Connector.
func (f *Fake) Entities() []connectors.EntityInfo {
	if len(f.EntityList) == 0 {
		return []connectors.EntityInfo{{Name: model.KindProduct, Incremental: true, Endpoint: "/products"}}
	}
	return f.EntityList
}

// VendorNow is the vendor's clock.
func (f *Fake) VendorNow() time.Time { return f.Clock.Now().Add(f.Skew) }

// Put creates or changes a record, stamping it with the vendor's clock and
// the next version.
func (f *Fake) Put(kind model.Kind, id string) *Item {
	return f.PutAt(kind, id, f.VendorNow())
}

// PutAt is Put with an explicit modified time.
func (f *Fake) PutAt(kind model.Kind, id string, at time.Time) *Item {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.data == nil {
		f.data = map[model.Kind]map[string]*Item{}
	}
	if f.data[kind] == nil {
		f.data[kind] = map[string]*Item{}
	}
	it := f.data[kind][id]
	if it == nil {
		it = &Item{ID: id}
		f.data[kind][id] = it
	}
	it.Version++
	it.ModifiedAt = at
	cp := *it
	return &cp
}

// Delete removes a record (a hard delete the vendor does not signal).
func (f *Fake) Delete(kind model.Kind, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.data[kind], id)
}

// Get returns a record of the dataset.
func (f *Fake) Get(kind model.Kind, id string) (Item, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	it, ok := f.data[kind][id]
	if !ok {
		return Item{}, false
	}
	return *it, true
}

// Items returns the dataset of a kind.
func (f *Fake) Items(kind model.Kind) []Item {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Item, 0, len(f.data[kind]))
	for _, it := range f.data[kind] {
		out = append(out, *it)
	}
	return out
}

// Requests returns every page request served, in order.
func (f *Fake) Requests() []connectors.PageRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

// ResetRequests forgets the requests served so far.
func (f *Fake) ResetRequests() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = nil
}

// Record returns the canonical record of an item.
func (f *Fake) Record(kind model.Kind, it Item) model.Record {
	return model.Record{
		Company:    f.Company,
		Vendor:     f.Vendor,
		Kind:       kind,
		VendorID:   it.ID,
		ModifiedAt: it.ModifiedAt,
		Data:       &model.Product{SKU: it.ID, Name: "v" + strconv.Itoa(it.Version)},
	}
}

// ListPage implements connectors.Connector.
func (f *Fake) ListPage(ctx context.Context, req connectors.PageRequest) (*connectors.Page, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if f.WaitBefore != nil {
		if d := f.WaitBefore(req); d > 0 {
			connectors.BeforeWait(ctx, d)
			f.Clock.Advance(d)
		}
	}
	if f.Before != nil {
		if err := f.Before(req); err != nil {
			return &connectors.Page{Calls: 1}, err
		}
	}
	size := f.PageSize
	if size <= 0 {
		size = 10
	}
	served := f.VendorNow()
	f.mu.Lock()
	f.requests = append(f.requests, req)
	f.shuffles++
	seed := f.shuffles
	f.mu.Unlock()
	rows := f.Rows(req.Entity, req.Since)
	var p *connectors.Page
	var page []Item
	if f.Keyset {
		page, p = f.keysetPage(rows, req, size)
	} else {
		if f.Shuffle {
			r := rand.New(rand.NewPCG(seed, 7))
			r.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
		}
		start := min((req.Page-1)*size, len(rows))
		end := min(start+size, len(rows))
		p = &connectors.Page{More: end < len(rows), Total: len(rows), Calls: 1}
		page = rows[start:end]
	}
	if f.NoTotal {
		p.Total = -1
	}
	if !f.NoServerTime {
		p.ServerTime = served.Truncate(time.Second) // an HTTP Date header
	}
	for _, it := range page {
		if f.SetAside != nil && f.SetAside(req, it) {
			p.SetAside = append(p.SetAside, model.SetAside{Company: f.Company, Vendor: f.Vendor, Kind: req.Entity, VendorID: it.ID,
				ModifiedAt: it.ModifiedAt, Reason: "status \"weird\" is not one the connector knows", Raw: []byte(`{"id":"` + it.ID + `"}`)})
			continue
		}
		p.Records = append(p.Records, f.Record(req.Entity, it))
	}
	if f.Stale != nil {
		p.Records = append(p.Records, f.Stale(req)...)
	}
	f.Clock.Advance(f.Latency)
	if f.After != nil {
		f.After(req)
	}
	return p, nil
}

// keysetPage serves the page after the cursor "<unix nanos>/<id>" of rows
// sorted by modified time then id.
func (f *Fake) keysetPage(rows []Item, req connectors.PageRequest, size int) ([]Item, *connectors.Page) {
	start := 0
	if req.Cursor != "" {
		at, id, _ := strings.Cut(req.Cursor, "/")
		ns, _ := strconv.ParseInt(at, 10, 64)
		after := time.Unix(0, ns).UTC()
		start = len(rows)
		for i, it := range rows {
			if it.ModifiedAt.After(after) || (it.ModifiedAt.Equal(after) && compareIDs(it.ID, id) > 0) {
				start = i
				break
			}
		}
	}
	end := min(start+size, len(rows))
	p := &connectors.Page{More: end < len(rows), Total: -1, Calls: 1}
	if end > start {
		last := rows[end-1]
		p.Next = strconv.FormatInt(last.ModifiedAt.UnixNano(), 10) + "/" + last.ID
	} else {
		p.Next = req.Cursor
	}
	return rows[start:end], p
}

// Rows returns the records of a kind modified at or after since (all for the
// zero time), in the order ListPage serves them.
func (f *Fake) Rows(kind model.Kind, since time.Time) []Item {
	f.mu.Lock()
	var rows []Item
	for _, it := range f.data[kind] {
		if since.IsZero() || !it.ModifiedAt.Before(since) {
			rows = append(rows, *it)
		}
	}
	f.mu.Unlock()
	switch {
	case f.Keyset || f.ByModified:
		slices.SortFunc(rows, func(a, b Item) int {
			if c := a.ModifiedAt.Compare(b.ModifiedAt); c != 0 {
				return c
			}
			return compareIDs(a.ID, b.ID)
		})
	case f.Unordered:
		slices.SortFunc(rows, func(a, b Item) int { return int(hash(a.ID)) - int(hash(b.ID)) })
	default:
		slices.SortFunc(rows, func(a, b Item) int { return compareIDs(a.ID, b.ID) })
	}
	return rows
}

func hash(s string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(s))
	return h.Sum32() >> 1
}

// compareIDs orders ids numerically where they are numbers ("p9" < "p10").
func compareIDs(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
