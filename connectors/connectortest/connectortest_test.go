package connectortest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/internal/engine"
	"github.com/erpsync/erpsync-operator/sinks/memory"
)

// The fake vendor: page-numbered lists of products, customers and orders in
// modified order (the shape that loses records when edits move them),
// a Bearer key, a minute limit, and everything simkit.Base gives.

const (
	fakeVendor   = "fake"
	fakePageSize = 100
	fakeLimit    = 60
)

type fakeSim struct {
	simkit.Base
	data    *simkit.Dataset
	key     string
	limiter *simkit.Limiter
	// aside, when set, makes the product list serve one document of a
	// product type the connector does not know.
	aside atomic.Bool
	// keyset pages by key (modified time and id) instead of page number.
	keyset bool
}

const fakeAsideID = "mystery-product-1"

type fakeItem struct {
	ID       string `json:"id"`
	Modified string `json:"modified"`
	Type     string `json:"type,omitempty"`
	Name     string `json:"name,omitempty"`
	Price    string `json:"price,omitempty"`
	Phone    string `json:"phone,omitempty"`
	Status   string `json:"status,omitempty"`
	Deleted  bool   `json:"deleted,omitempty"`
}

type fakeList struct {
	Total int        `json:"total"`
	More  bool       `json:"more"`
	Items []fakeItem `json:"items"`
}

func (s *fakeSim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.Stats().Count(r.URL.Path)
	s.SetDate(w)
	if s.ApplyFault(w, r) {
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+s.key {
		s.Stats().AuthFails.Add(1)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if ok, _, wait := s.limiter.Allow(s.key); !ok {
		s.Stats().Throttled.Add(1)
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		http.Error(w, "slow down", http.StatusTooManyRequests)
		return
	}
	q := r.URL.Query()
	page, err := strconv.Atoi(q.Get("page"))
	if err != nil || page < 1 {
		http.Error(w, "bad page", http.StatusBadRequest)
		return
	}
	var since time.Time
	if v := q.Get("since"); v != "" {
		if since, err = time.Parse(time.RFC3339Nano, v); err != nil {
			http.Error(w, "bad since", http.StatusBadRequest)
			return
		}
	}
	keep := func(m simkit.Meta) bool { return since.IsZero() || !m.Modified.Before(since) }
	if v := q.Get("ids"); v != "" {
		want := strings.Split(v, ",")
		keep = func(m simkit.Meta) bool { return slices.Contains(want, m.ID) }
	}
	idsOnly := q.Get("fields") == "id,modified"
	stamp := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	after := q.Get("after")
	var items []fakeItem
	total, more, found := 0, false, true
	s.data.View(func(d *simkit.Dataset) {
		switch strings.TrimPrefix(r.URL.Path, "/") {
		case "products":
			list := d.Products
			if s.aside.Load() {
				// The unknown document is the newest product.
				list = append(list[:len(list):len(list)], &simkit.Product{Meta: simkit.Meta{ID: fakeAsideID, Modified: s.Now()}})
			}
			var idx []int
			idx, total, more = listOf(s, list, func(p *simkit.Product) simkit.Meta { return p.Meta }, keep, page, after, pageSize(idsOnly))
			for _, i := range idx {
				p := list[i]
				typ := "goods"
				if p.ID == fakeAsideID {
					typ = "mystery"
				}
				items = append(items, fakeItem{ID: p.ID, Modified: stamp(p.Modified), Type: typ, Name: p.Name, Price: p.SellPrice, Deleted: p.Deleted})
			}
		case "customers":
			var idx []int
			idx, total, more = listOf(s, d.Customers, func(c *simkit.Customer) simkit.Meta { return c.Meta }, keep, page, after, pageSize(idsOnly))
			for _, i := range idx {
				c := d.Customers[i]
				items = append(items, fakeItem{ID: c.ID, Modified: stamp(c.Modified), Name: c.Name, Phone: c.Phone})
			}
		case "orders":
			var idx []int
			idx, total, more = listOf(s, d.Orders, func(o *simkit.Document) simkit.Meta { return o.Meta }, keep, page, after, pageSize(idsOnly))
			for _, i := range idx {
				o := d.Orders[i]
				items = append(items, fakeItem{ID: o.ID, Modified: stamp(o.Modified), Name: o.Number, Status: o.Status})
			}
		default:
			found = false
		}
	})
	if !found {
		http.NotFound(w, r)
		return
	}
	if idsOnly {
		for i := range items {
			items[i] = fakeItem{ID: items[i].ID, Modified: items[i].Modified}
		}
	}
	body, err := json.Marshal(fakeList{Total: total, More: more, Items: items})
	if err != nil {
		http.Error(w, "encoding", http.StatusInternalServerError)
		return
	}
	s.Stats().Served.Add(1)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// listOf serves one page of a list in modified order. Page-numbered: the
// page-th slice of the list, the whole list shuffled when the base is
// unstable. Keyset (s.keyset): the page after the key in after
// ("<RFC 3339 time>|<id>"), shuffled within the page when unstable (an
// order by modified time and id is the server's, and cannot shuffle
// across pages). total counts the whole filtered list either way.
func listOf[T any](s *fakeSim, items []T, meta func(T) simkit.Meta, keep func(simkit.Meta) bool, page int, after string, size int) (idx []int, total int, more bool) {
	filter := func(it T) bool { return keep(meta(it)) }
	if !s.keyset || size != fakePageSize {
		return simkit.List(&s.Base, items, filter, simkit.ByModified(meta), page, size)
	}
	all := simkit.Sorted(items, filter, simkit.ByModified(meta))
	total = len(all)
	if mod, id, ok := strings.Cut(after, "|"); ok {
		if t, err := time.Parse(time.RFC3339Nano, mod); err == nil {
			all = simkit.After(items, all, meta, t, id)
		}
	}
	more = len(all) > fakePageSize
	return s.Order(all[:min(len(all), fakePageSize)]), total, more
}

// fakeIDPageSize is the page size of the fake's id listing.
const fakeIDPageSize = 500

func pageSize(idsOnly bool) int {
	if idsOnly {
		return fakeIDPageSize
	}
	return fakePageSize
}

// fakeConn is the fake vendor's connector, on the shared HTTP layer.
type fakeConn struct {
	c    *httpapi.Client
	base string
	key  string
	// dropFirstOfPage2 is a deliberately broken mapping: it loses the
	// first record of every second page.
	dropFirstOfPage2 bool
	// keyset reads by key: each page restarts after the largest
	// (modified, id) the previous one held.
	keyset bool
	// flaw is a deliberate bug in reading by id (see hookFlaw).
	flaw hookFlaw
	// reads counts ReadDocs calls (hookVolatileReads); cache holds what
	// list pages served (hookCachedReads).
	reads atomic.Int64
	mu    sync.Mutex
	cache map[string]model.Record
}

// fakeEntities are the fake's streams; the page-numbered fake lists by
// modified time, so its streams shift on edits.
var fakeEntities = []connectors.EntityInfo{
	{Name: model.KindCustomer, Incremental: true, Endpoint: "/customers"},
	{Name: model.KindProduct, Incremental: true, Endpoint: "/products"},
	{Name: model.KindSalesOrder, Incremental: true, Endpoint: "/orders"},
}

func (c *fakeConn) Entities() []connectors.EntityInfo {
	out := slices.Clone(fakeEntities)
	for i := range out {
		out[i].ShiftsOnEdit = !c.keyset
	}
	return out
}

func (c *fakeConn) ListPage(ctx context.Context, req connectors.PageRequest) (*connectors.Page, error) {
	return c.list(ctx, req, nil)
}

// IDListing implements connectors.IDLister: every stream, ids only.
func (c *fakeConn) IDListing(e model.Kind) (connectors.IDListingInfo, bool) {
	for _, x := range fakeEntities {
		if x.Name == e {
			return connectors.IDListingInfo{PageSize: fakeIDPageSize, Endpoint: x.Endpoint + "?fields=id,modified"}, true
		}
	}
	return connectors.IDListingInfo{}, false
}

// ListIDs implements connectors.IDLister.
func (c *fakeConn) ListIDs(ctx context.Context, req connectors.PageRequest) (*connectors.IDPage, error) {
	p, err := c.list(ctx, connectors.PageRequest{Entity: req.Entity, Page: req.Page}, url.Values{"fields": {"id,modified"}})
	if p == nil {
		return nil, err
	}
	out := &connectors.IDPage{More: p.More, Total: p.Total, ServerTime: p.ServerTime, Calls: p.Calls}
	for _, r := range p.Records {
		out.Docs = append(out.Docs, connectors.DocVersion{ID: r.VendorID, ModifiedAt: r.ModifiedAt})
	}
	for _, a := range p.SetAside {
		out.Docs = append(out.Docs, connectors.DocVersion{ID: a.VendorID, ModifiedAt: a.ModifiedAt})
	}
	return out, err
}

// MaxDocsPerRead implements connectors.DocReader.
func (c *fakeConn) MaxDocsPerRead(model.Kind) int { return 50 }

// ReadDocs implements connectors.DocReader: an ids filter. An id may also
// be given as its document's name, "doc/<id>" (hookDocNames).
func (c *fakeConn) ReadDocs(ctx context.Context, e model.Kind, ids []string) (*connectors.Page, error) {
	ids = slices.Clone(ids)
	for i, id := range ids {
		ids[i] = strings.TrimPrefix(id, fakeDocPrefix)
	}
	switch c.flaw {
	case hookChattyReads:
		// Three requests per document: the document alone, then twice
		// more (as if for parts of it the list already held).
		out := &connectors.Page{}
		for _, id := range ids {
			for n := range 3 {
				p, err := c.list(ctx, connectors.PageRequest{Entity: e, Page: 1}, url.Values{"ids": {id}})
				if p != nil {
					out.Calls += p.Calls
					if n == 0 {
						out.Records = append(out.Records, p.Records...)
						out.Docs = append(out.Docs, p.Docs...)
					}
				}
				if err != nil {
					return out, err
				}
			}
		}
		return out, nil
	case hookCachedReads:
		// Documents a list served are answered from memory.
		out := &connectors.Page{}
		var rest []string
		c.mu.Lock()
		for _, id := range ids {
			if r, ok := c.cache[string(e)+"/"+id]; ok {
				out.Records = append(out.Records, r)
				out.Docs = append(out.Docs, id)
			} else {
				rest = append(rest, id)
			}
		}
		c.mu.Unlock()
		if len(rest) == 0 {
			return out, nil
		}
		p, err := c.list(ctx, connectors.PageRequest{Entity: e, Page: 1}, url.Values{"ids": {strings.Join(rest, ",")}})
		if p != nil {
			out.Calls, out.Records, out.Docs = p.Calls, append(out.Records, p.Records...), append(out.Docs, p.Docs...)
		}
		return out, err
	}
	p, err := c.list(ctx, connectors.PageRequest{Entity: e, Page: 1}, url.Values{"ids": {strings.Join(ids, ",")}})
	if c.flaw == hookVolatileReads && p != nil {
		// A read stamps the document with something of its own, so that
		// reading it again rewrites it.
		n := c.reads.Add(1)
		for i := range p.Records {
			p.Records[i].Raw = fmt.Appendf(nil, `{"read":%d}`, n)
		}
	}
	return p, err
}

func (c *fakeConn) list(ctx context.Context, req connectors.PageRequest, extra url.Values) (*connectors.Page, error) {
	var path string
	for _, e := range fakeEntities {
		if e.Name == req.Entity {
			path = e.Endpoint
		}
	}
	if path == "" {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "fake: no entity %q", req.Entity)
	}
	q := url.Values{"page": {strconv.Itoa(req.Page)}}
	if !req.Since.IsZero() {
		q.Set("since", req.Since.UTC().Format(time.RFC3339Nano))
	}
	if c.keyset && req.Cursor != "" {
		q.Set("after", req.Cursor)
	}
	for k, v := range extra {
		q[k] = v
	}
	var body fakeList
	resp, err := c.c.GetJSON(ctx, "list_"+string(req.Entity), c.base+path+"?"+q.Encode(), http.Header{"Authorization": {"Bearer " + c.key}}, &body)
	calls := 0
	if resp != nil {
		calls = resp.Attempts
	}
	if err != nil {
		return &connectors.Page{Calls: calls}, err
	}
	p := &connectors.Page{Total: body.Total, More: body.More, ServerTime: resp.ServerTime, Calls: calls}
	var lastMod time.Time
	lastID := ""
	for i, it := range body.Items {
		// Docs names every document the page held: a broken mapping that
		// drops one still reports it read, so no repeat recovers it.
		p.Docs = append(p.Docs, it.ID)
		if c.dropFirstOfPage2 && req.Page == 2 && i == 0 && extra == nil {
			continue
		}
		mod, err := time.Parse(time.RFC3339Nano, it.Modified)
		if err != nil {
			return p, connectors.Errorf(connectors.KindInvalidResponse, "fake: item %d: field modified does not parse", i)
		}
		if mod.After(lastMod) || (mod.Equal(lastMod) && it.ID > lastID) {
			lastMod, lastID = mod, it.ID
		}
		raw, _ := json.Marshal(it)
		rec := model.Record{Company: Company, Vendor: fakeVendor, Kind: req.Entity, VendorID: it.ID, ModifiedAt: mod, Deleted: it.Deleted, Raw: raw}
		switch req.Entity {
		case model.KindProduct:
			if it.Type != "goods" {
				p.SetAside = append(p.SetAside, model.SetAside{Company: Company, Vendor: fakeVendor, Kind: req.Entity, VendorID: it.ID, ModifiedAt: mod,
					Reason: fmt.Sprintf("product type %q is not one the connector knows", it.Type), Raw: raw})
				continue
			}
			rec.Data = &model.Product{Name: it.Name, SellPrice: model.Decimal(it.Price), Obsolete: it.Deleted}
		case model.KindCustomer:
			rec.Data = &model.Customer{Name: it.Name, Phone: it.Phone}
		default:
			rec.Data = &model.SalesOrder{Number: it.Name, Status: it.Status}
		}
		p.Records = append(p.Records, rec)
		if c.flaw == hookCachedReads && extra == nil {
			c.mu.Lock()
			if c.cache == nil {
				c.cache = map[string]model.Record{}
			}
			c.cache[string(req.Entity)+"/"+it.ID] = rec
			c.mu.Unlock()
		}
	}
	if c.keyset && p.More && lastID != "" && extra == nil {
		p.Next = lastMod.UTC().Format(time.RFC3339Nano) + "|" + lastID
	}
	return p, nil
}

// fakeHarness is the fake vendor's Harness; broken selects the lossy
// mapping, hook a flaw of its webhooks.
type fakeHarness struct {
	broken bool
	keyset bool
	hook   hookFlaw
}

func (fakeHarness) Vendor() string { return fakeVendor }

func (h fakeHarness) Start(t testing.TB, ds simkit.Options, clock *httpapi.FakeClock) *Env {
	s := &fakeSim{data: simkit.NewDataset(ds), key: "k-" + strconv.FormatUint(ds.Seed, 10), keyset: h.keyset}
	s.Init(clock.Now)
	s.data.SetClock(s.Now)
	s.limiter = simkit.NewLimiter(s.Now, simkit.Window{Name: "minute", Limit: fakeLimit, Per: time.Minute})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	connect := func(t testing.TB, reg *httpapi.Registry, edit func(map[string][]byte)) connectors.Connector {
		creds := map[string][]byte{"apiKey": []byte(s.key)}
		if edit != nil {
			edit(creds)
		}
		c, err := httpapi.New(httpapi.Options{
			Connector:  fakeVendor,
			Limits:     []httpapi.Limit{{Key: httpapi.Key(fakeVendor, string(creds["apiKey"])), Windows: []httpapi.Window{{Name: "minute", Limit: fakeLimit, Per: time.Minute}}}},
			HTTPClient: srv.Client(), Registry: reg, Clock: clock, Log: testLogger(t),
		})
		if err != nil {
			t.Fatalf("fake client: %v", err)
		}
		return &fakeConn{c: c, base: srv.URL, key: string(creds["apiKey"]), dropFirstOfPage2: h.broken, keyset: h.keyset, flaw: h.hook}
	}
	var hooks *WebhookEnv
	if h.hook != hookNone {
		hooks = s.webhooks(h.hook, clock)
	}
	return &Env{
		Base: &s.Base,
		Data: s.data,
		Connect: func(t testing.TB, reg *httpapi.Registry) connectors.Connector {
			return connect(t, reg, nil)
		},
		ConnectWith: connect,
		Expected: func() []Want {
			var out []Want
			s.data.View(func(d *simkit.Dataset) {
				for _, p := range d.Products {
					name, price := p.Name, p.SellPrice
					out = append(out, Want{Kind: model.KindProduct, VendorID: p.ID, Deleted: p.Deleted, Check: func(r *model.Record) error {
						if got, ok := r.Data.(*model.Product); !ok || got.Name != name || string(got.SellPrice) != price {
							return fmt.Errorf("holds %+v, want name %q price %s", r.Data, name, price)
						}
						return nil
					}})
				}
				for _, c := range d.Customers {
					phone := c.Phone
					out = append(out, Want{Kind: model.KindCustomer, VendorID: c.ID, Check: func(r *model.Record) error {
						if got, ok := r.Data.(*model.Customer); !ok || got.Phone != phone {
							return fmt.Errorf("holds %+v, want phone %q", r.Data, phone)
						}
						return nil
					}})
				}
				for _, o := range d.Orders {
					status := o.Status
					out = append(out, Want{Kind: model.KindSalesOrder, VendorID: o.ID, Check: func(r *model.Record) error {
						if got, ok := r.Data.(*model.SalesOrder); !ok || got.Status != status {
							return fmt.Errorf("holds %+v, want status %q", r.Data, status)
						}
						return nil
					}})
				}
			})
			return out
		},
		SetAside: func() (model.Kind, string) {
			s.aside.Store(true)
			return model.KindProduct, fakeAsideID
		},
		Caps:     Caps{ModifiedPrecision: time.Millisecond, MinuteLimit: fakeLimit, PageSize: fakePageSize, Throttle: http.StatusTooManyRequests},
		Webhooks: hooks,
	}
}

// TestScenarios runs the whole suite against the fake vendor, reading by
// page number and by keyset.
func TestScenarios(t *testing.T) {
	t.Run("PageNumbers", func(t *testing.T) { Run(t, fakeHarness{}) })
	t.Run("Keyset", func(t *testing.T) { Run(t, fakeHarness{keyset: true}) })
}

// TestCompareReportsLoss: the comparison helper reports the records a
// lossy connector drops, names them, and tells stale from lost.
func TestCompareReportsLoss(t *testing.T) {
	w := newWorld(t, fakeHarness{broken: true}, simkit.Options{Seed: 5, Products: 250, Customers: 30, Orders: 30})
	w.mustRun("import", engine.Run{Connector: &hooked{inner: w.conn, after: func(_ context.Context, req connectors.PageRequest, _ *connectors.Page) {
		if req.Entity == model.KindProduct && req.Page == 1 {
			w.env.Data.EditOldest(3)
		}
	}}})
	d := w.diff()
	if d.OK() || d.Lost == 0 {
		t.Fatalf("a connector that drops the first record of page 2 compared equal: %s", d)
	}
	if len(d.LostIDs) == 0 || !strings.HasPrefix(d.LostIDs[0], string(model.KindProduct)+"/") {
		t.Errorf("the diff does not name the lost product: %s", d)
	}
	if !strings.Contains(d.String(), "lost") {
		t.Errorf("the summary does not say what was lost: %s", d)
	}

	// Stale: a record the CRM holds in an older version.
	sink := memory.New()
	var want []Want
	want = append(want, Want{Kind: model.KindProduct, VendorID: "p1", Check: func(r *model.Record) error {
		if r.Data.(*model.Product).Name != "new" {
			return fmt.Errorf("old name")
		}
		return nil
	}}, Want{Kind: model.KindProduct, VendorID: "p2", Deleted: true}, Want{Kind: model.KindProduct, VendorID: "p3"})
	for _, id := range []string{"p1", "p2", "p9"} {
		sink.Put(model.Record{Company: Company, Vendor: fakeVendor, Kind: model.KindProduct, VendorID: id, ModifiedAt: Start, Data: &model.Product{Name: "old"}})
	}
	d = Compare(sink, fakeVendor, want)
	if d.Lost != 1 || d.Stale != 2 || d.Extra != 1 || d.Wanted != 3 {
		t.Fatalf("Compare = %s, want 3 wanted, 1 lost (p3), 2 stale (p1 content, p2 deleted), 1 extra (p9)", d)
	}
	if d.LostIDs[0] != "products/p3" {
		t.Errorf("lost ids %v, want products/p3", d.LostIDs)
	}
}

// TestTorture runs a small torture against the keyset fake vendor: nothing
// lost or stale, every crash taken, and the calls measured against a clean
// import (a crash costs at most a batch of pages, and every page adds a
// product). The page-numbered fake's torture is the engine's to pass: see
// TestScenarios/PageNumbers.
func TestTorture(t *testing.T) {
	r := Torture(t, fakeHarness{keyset: true}, TortureOptions{Products: 1500, Customers: 300, Orders: 300, Crashes: 3})
	if r.Lost != 0 || r.Stale != 0 {
		t.Errorf("torture lost %d and left %d stale: %v %v", r.Lost, r.Stale, r.LostIDs, r.StaleIDs)
	}
	if r.Crashes != 3 || r.Runs != 4 {
		t.Errorf("torture took %d crashes in %d runs, want 3 in 4", r.Crashes, r.Runs)
	}
	if r.CleanCalls <= 0 || r.Calls < r.CleanCalls || r.Records < 2100 {
		t.Errorf("torture measured %d calls against a clean %d over %d records", r.Calls, r.CleanCalls, r.Records)
	}
	if r.ProductsAdded == 0 || r.Pages < r.CleanPages {
		t.Errorf("torture added %d products over %d pages (clean %d)", r.ProductsAdded, r.Pages, r.CleanPages)
	}
	if r.ExtraCallsPct > 30 {
		t.Errorf("a keyset reader's torture cost %.1f%% extra calls (%d against %d)", r.ExtraCallsPct, r.Calls, r.CleanCalls)
	}
}

// TestTortureCatchesLoss: a lossy connector's torture reports lost records.
func TestTortureCatchesLoss(t *testing.T) {
	r := Torture(t, fakeHarness{broken: true, keyset: true}, TortureOptions{Products: 600, Customers: 150, Orders: 150, Crashes: 2})
	if r.Lost == 0 {
		t.Fatalf("a connector that drops records tortured with nothing lost: %+v", r)
	}
}

func TestBenchLines(t *testing.T) {
	got := benchLines("fake", TortureResult{Lost: 2, Stale: 0, ExtraCallsPct: 7.25, Calls: 110, CleanCalls: 100, Throttled: 1})
	want := []string{
		"BENCH fake_torture_lost 2 records",
		"BENCH fake_torture_stale 0 records",
		"BENCH fake_torture_extra_calls_pct 7.2 %",
		"BENCH fake_torture_calls 110 calls",
		"BENCH fake_torture_clean_calls 100 calls",
		"BENCH fake_torture_throttled 1 requests",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("bench lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// ---- the fake vendor's webhooks ----

// hookFlaw is a deliberate bug of the fake vendor's webhooks, each one a
// scenario must catch; hookSound has none.
type hookFlaw int

const (
	hookSound hookFlaw = iota
	// hookNone: the vendor has no webhooks (Env.Webhooks is nil).
	hookNone
	// hookAcceptAll: Verify accepts any delivery.
	hookAcceptAll
	// hookSignsTimestamp: the signature covers the timestamp, not the body.
	hookSignsTimestamp
	// hookWrongIDs: events name the record's sequence number, not its id.
	hookWrongIDs
	// hookDropsDeletes: deletions and removals are not delivered.
	hookDropsDeletes
	// hookAllDeleted: every event says the document was deleted.
	hookAllDeleted
	// hookChattyReads: ReadDocs sends three requests per document.
	hookChattyReads
	// hookVolatileReads: every read by id changes the document's raw form.
	hookVolatileReads
	// hookCachedReads: ReadDocs answers from what list pages served.
	hookCachedReads
	// hookStaysOff: once its subscription is disabled the simulator never
	// delivers again, even switched back on.
	hookStaysOff
	// hookNeighbourIDs: events name another record of the kind (one the
	// vendor has, so reading it returns records, not the changed one).
	hookNeighbourIDs
	// hookPhantomDeletes: every delivery also names, as deleted, a
	// document the vendor never had.
	hookPhantomDeletes
	// hookDocNames is no flaw: events name a record's document as
	// "doc/<id>", which ReadDocs takes as well as the id (as Katana's
	// product events name "product/<id>", whose records are its variants).
	hookDocNames
)

// fakeDocPrefix is how hookDocNames events name a document.
const fakeDocPrefix = "doc/"

// The fake's deliveries: a JSON list of events, signed with the hex
// HMAC-SHA256 of "<timestamp>.<body>" under the token the subscription
// returned, and refused 5 minutes after the timestamp.
const (
	fakeSigHeader  = "X-Fake-Signature"
	fakeTimeHeader = "X-Fake-Timestamp"
	fakeReplay     = 5 * time.Minute
)

type fakeEvent struct {
	Type   string    `json:"type"`
	Entity string    `json:"entity"`
	ID     string    `json:"id"`
	At     time.Time `json:"at"`
}

type fakeDelivery struct {
	Events []*fakeEvent `json:"events"`
}

// fakeHookKinds are the dataset kinds the fake announces.
var fakeHookKinds = map[string]model.Kind{
	simkit.AdminCustomers: model.KindCustomer,
	simkit.AdminProducts:  model.KindProduct,
	simkit.AdminOrders:    model.KindSalesOrder,
}

func fakeSign(key []byte, ts string, body []byte, flaw hookFlaw) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(ts + "."))
	if flaw != hookSignsTimestamp {
		m.Write(body)
	}
	return m.Sum(nil)
}

// fakeCodec is the fake vendor's connectors.WebhookCodec.
type fakeCodec struct{ flaw hookFlaw }

func (fakeCodec) Routing() connectors.WebhookRouting { return connectors.RouteByPath }

func (c fakeCodec) Verify(h http.Header, body []byte, keys map[string][]byte, now time.Time) error {
	if c.flaw == hookAcceptAll {
		return nil
	}
	key := keys[connectors.WebhookKeyToken]
	if len(key) == 0 {
		return fmt.Errorf("fake webhooks: the keys lack %s", connectors.WebhookKeyToken)
	}
	sig, err := hex.DecodeString(h.Get(fakeSigHeader))
	if err != nil || len(sig) == 0 {
		return fmt.Errorf("%w: no signature", connectors.ErrWebhookSignature)
	}
	ts := h.Get(fakeTimeHeader)
	if !hmac.Equal(sig, fakeSign(key, ts, body, c.flaw)) {
		return fmt.Errorf("%w: wrong signature", connectors.ErrWebhookSignature)
	}
	ms, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || now.Sub(time.UnixMilli(ms)) > fakeReplay {
		return fmt.Errorf("%w: too old", connectors.ErrWebhookSignature)
	}
	return nil
}

func (c fakeCodec) Parse(_ http.Header, body []byte) ([]connectors.WebhookEvent, error) {
	var d fakeDelivery
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, fmt.Errorf("fake webhooks: %w", err)
	}
	var out []connectors.WebhookEvent
	for i, e := range d.Events {
		if e == nil || e.ID == "" {
			return nil, fmt.Errorf("fake webhooks: event %d names nothing", i)
		}
		var k model.Kind
		for _, x := range fakeEntities {
			if string(x.Name) == e.Entity {
				k = x.Name
			}
		}
		if k == "" {
			continue
		}
		deleted := strings.HasSuffix(e.Type, ".deleted") || strings.HasSuffix(e.Type, ".removed")
		out = append(out, connectors.WebhookEvent{Entity: k, ID: e.ID, Deleted: deleted || c.flaw == hookAllDeleted, At: e.At, Type: e.Type})
	}
	return out, nil
}

// webhooks is the fake's WebhookEnv: one delivery per change of an
// announced kind, two retries, disabled after three failed deliveries.
func (s *fakeSim) webhooks(flaw hookFlaw, clock *httpapi.FakeClock) *WebhookEnv {
	return &WebhookEnv{
		Codec: fakeCodec{flaw: flaw},
		Kinds: fakeHookKinds,
		Subscribe: func(t testing.TB, _ *httpapi.Registry, target string) (map[string][]byte, *simkit.Deliverer) {
			token := []byte("whsec-" + s.key)
			var mu sync.Mutex
			var cancel func()
			del := simkit.NewDeliverer(&http.Client{}, simkit.DeliveryPolicy{Timeout: 5 * time.Second, Retries: []time.Duration{time.Minute, 10 * time.Minute}, DisableAfter: 3}, clock.Sleep,
				func(off bool) {
					if off && flaw == hookStaysOff {
						mu.Lock()
						defer mu.Unlock()
						cancel()
					}
				})
			mu.Lock()
			cancel = s.data.Subscribe(func(c simkit.Change) {
				entity, ok := fakeHookKinds[c.Kind]
				if !ok || (flaw == hookDropsDeletes && (c.Op == simkit.ChangeDeleted || c.Op == simkit.ChangeRemoved)) {
					return
				}
				del.Enqueue(func() simkit.Delivery {
					id := c.ID
					switch flaw {
					case hookWrongIDs:
						id = strconv.Itoa(c.Seq)
					case hookDocNames:
						id = fakeDocPrefix + c.ID
					case hookNeighbourIDs:
						// The delivery goroutine may read the dataset.
						if refs, err := s.data.Refs(c.Kind); err == nil {
							if i := slices.IndexFunc(refs, func(r simkit.RecordRef) bool { return r.ID == c.ID }); i >= 0 {
								id = refs[(i+1)%len(refs)].ID
							}
						}
					}
					evs := []*fakeEvent{{Type: string(entity) + "." + string(c.Op), Entity: string(entity), ID: id, At: c.At}}
					if flaw == hookPhantomDeletes {
						evs = append(evs, &fakeEvent{Type: string(entity) + ".deleted", Entity: string(entity), ID: fmt.Sprintf("phantom-%d", c.Seq), At: c.At})
					}
					body, _ := json.Marshal(fakeDelivery{Events: evs})
					ts := strconv.FormatInt(s.Now().UnixMilli(), 10)
					return simkit.Delivery{URL: target, Body: body, Header: http.Header{
						fakeSigHeader:  {hex.EncodeToString(fakeSign(token, ts, body, flaw))},
						fakeTimeHeader: {ts},
					}}
				})
			})
			mu.Unlock()
			t.Cleanup(func() {
				mu.Lock()
				cancel()
				mu.Unlock()
				del.Close()
			})
			return map[string][]byte{"apiKey": []byte(s.key), connectors.WebhookKeyToken: token}, del
		},
	}
}

// failRecorder is a testing.TB whose failures are kept instead of failing
// the test: a scenario run against a flawed vendor must fail, and why.
// Fatal stops the scenario's goroutine.
type failRecorder struct {
	testing.TB
	mu   sync.Mutex
	msgs []string
}

func (r *failRecorder) record(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, msg)
}

func (r *failRecorder) Helper()                           {}
func (r *failRecorder) Fail()                             { r.record("Fail") }
func (r *failRecorder) Error(args ...any)                 { r.record(fmt.Sprint(args...)) }
func (r *failRecorder) Errorf(format string, args ...any) { r.record(fmt.Sprintf(format, args...)) }
func (r *failRecorder) FailNow()                          { r.Fail(); runtime.Goexit() }
func (r *failRecorder) Fatal(args ...any)                 { r.Error(args...); runtime.Goexit() }
func (r *failRecorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}
func (r *failRecorder) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs) > 0
}

// failures runs a scenario on its own goroutine and returns its failures.
func failures(t *testing.T, h Harness, run func(testing.TB, Harness)) []string {
	r := &failRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		run(r, h)
	}()
	<-done
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// TestWebhookScenariosCatchFlaws: each webhook scenario fails against a
// fake vendor with the flaw it exists to catch, for that reason (the
// sound fake passes them all in TestScenarios).
func TestWebhookScenariosCatchFlaws(t *testing.T) {
	defer func(w time.Duration) { webhookWait = w }(webhookWait)
	webhookWait = 2 * time.Second
	for _, tc := range []struct {
		name string
		flaw hookFlaw
		run  func(testing.TB, Harness)
		// want is a part of the failure message that says why.
		want []string
	}{
		{"BadSignatureAcceptAll", hookAcceptAll, webhookBadSignature, []string{"a wrong key", "without its signature", "nothing authenticates it"}},
		{"BadSignatureBodyUnsigned", hookSignsTimestamp, webhookBadSignature, []string{"gained a byte after signing", "changed a digit after signing"}},
		{"EditWrongIDs", hookWrongIDs, webhookEdit, []string{"named by no event"}},
		{"EditDropsDeletes", hookDropsDeletes, webhookEdit, []string{"deliveries incomplete", "3 records changed, 2 named"}},
		{"EditCachedReads", hookCachedReads, webhookEdit, []string{"the CRM differs from the ERP"}},
		{"DuplicateVolatileReads", hookVolatileReads, webhookDuplicate, []string{"duplicates of synced events rewrote"}},
		{"OutOfOrderCachedReads", hookCachedReads, webhookOutOfOrder, []string{"the CRM differs from the ERP"}},
		{"StormChattyReads", hookChattyReads, webhookStorm, []string{"vendor calls, more than 2 per document"}},
		{"DeleteAllDeleted", hookAllDeleted, webhookDelete, []string{"an edit was announced as a deletion", "an update event of a removed record deleted it"}},
		{"RetryDisableStaysOff", hookStaysOff, webhookRetryDisable, []string{"a change after the receiver is back: deliveries incomplete"}},
		{"EditNeighbourIDs", hookNeighbourIDs, webhookEdit, []string{"named by no event"}},
		{"EditPhantomDeletes", hookPhantomDeletes, webhookEdit, []string{"events name documents the vendor does not have", "phantom-"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := failures(t, fakeHarness{keyset: true, hook: tc.flaw}, tc.run)
			if len(got) == 0 {
				t.Fatalf("the scenario passed against a vendor with the flaw")
			}
			all := strings.Join(got, "\n")
			t.Logf("failed as it should: %s", all)
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("the scenario failed, but not saying %q:\n%s", w, all)
				}
			}
		})
	}
}

// TestWebhookScenariosTakeDocumentNames: a vendor whose events name a
// record's document by a name ReadDocs takes, not by the record's id
// (hookDocNames, as Katana's "product/<id>"), passes the scenarios that
// check what events name: they map an event to the records a read of it
// returns. Such an event cannot tombstone a record the vendor removed
// (a read of a removed document returns nothing to map): that is left to
// reconciliation, and the scenarios accept it.
func TestWebhookScenariosTakeDocumentNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(testing.TB, Harness)
	}{
		{"Edit", webhookEdit},
		{"OutOfOrder", webhookOutOfOrder},
		{"Storm", webhookStorm},
		{"Delete", webhookDelete},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := failures(t, fakeHarness{keyset: true, hook: hookDocNames}, tc.run); len(got) > 0 {
				t.Errorf("the scenario failed against a vendor whose events name documents:\n%s", strings.Join(got, "\n"))
			}
		})
	}
}

// TestWebhookScenariosOnlyForWebhookVendors: Run adds the webhook
// scenarios only for a harness with Env.Webhooks.
func TestWebhookScenariosOnlyForWebhookVendors(t *testing.T) {
	if hasWebhooks(t, fakeHarness{hook: hookNone}) {
		t.Errorf("a harness without Env.Webhooks is taken for a webhook vendor")
	}
	if !hasWebhooks(t, fakeHarness{hook: hookSound}) {
		t.Errorf("the fake with webhooks is not taken for a webhook vendor")
	}
}
