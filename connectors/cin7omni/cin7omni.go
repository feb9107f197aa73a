// Package cin7omni is the connector for Cin7 Omni (the original Cin7,
// api.cin7.com), API v1.
//
// It authenticates with HTTP Basic (API user name and connection key),
// pages with page and rows=250 (the maximum) and stops at the first short
// page (Omni answers bare arrays, with no total), filters every entity that
// has a ModifiedDate with where=ModifiedDate>='…Z', orders by Id so a record
// changed during a pass never shifts later pages, and sends every request
// through connectors/httpapi with Omni's limits: 3 calls a second, 60 a
// minute, 5,000 a day, 429 with Retry-After. See docs/connectors/cin7omni.md.
package cin7omni

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// Type is the connector type (the registry key).
const Type = "cin7omni"

// DefaultBaseURL is Cin7 Omni's API root.
const DefaultBaseURL = "https://api.cin7.com/api/"

// DefaultHosts are the hosts of Cin7 Omni's published API (the egress
// policy's defaults for the connector).
var DefaultHosts = []string{"api.cin7.com"}

// Secret keys.
const (
	KeyUsername = "username"
	KeyAPIKey   = "apiKey"
)

// Cin7 Omni's documented limits.
const (
	MaxRows   = 250
	PerSecond = 3
	PerMinute = 60
	PerDay    = 5000
)

// Guards added to the rate windows the client keeps. Omni counts a call
// when it arrives; a client that sends at exactly the limit sees some calls
// arrive a little early (network jitter, scheduling delays) and refused.
// The minute guard costs under 2 % of throughput; the second guard costs
// nothing, as 60 calls at 3 per 1.5 s still fit in the minute that binds.
const (
	secondGuard = 500 * time.Millisecond
	minuteGuard = time.Second
)

// Options tune a connector beyond its Config: for simulators, tests and
// benchmarks. The zero value is production behaviour.
type Options struct {
	// TimeScale > 1 compresses the client's clock (rate windows, waits,
	// the daily quota).
	TimeScale float64
	// Clock, when set, replaces the client's clock.
	Clock httpapi.Clock
	// Registry holds the shared limiters; nil means httpapi.SharedRegistry.
	Registry *httpapi.Registry
	// Rows overrides the page size (1..250); 0 means 250.
	Rows int
	// MaxRetries and BackoffBase override httpapi's retry policy.
	MaxRetries  int
	BackoffBase time.Duration
}

// New builds a Cin7 Omni connector from cfg. It is a connectors.Factory.
func New(ctx context.Context, cfg connectors.Config) (connectors.Connector, error) {
	return NewWithOptions(ctx, cfg, Options{})
}

// NewWithOptions builds a Cin7 Omni connector with extra options.
func NewWithOptions(_ context.Context, cfg connectors.Config, opts Options) (connectors.Connector, error) {
	user, err := connectors.RequiredKey(cfg.Credentials, KeyUsername)
	if err != nil {
		return nil, err
	}
	key, err := connectors.RequiredKey(cfg.Credentials, KeyAPIKey)
	if err != nil {
		return nil, err
	}
	base, err := connectors.BaseURL(cfg, Type, DefaultBaseURL, DefaultHosts, true)
	if err != nil {
		return nil, err
	}
	rows := opts.Rows
	if rows <= 0 || rows > MaxRows {
		rows = MaxRows
	}
	conn := &Connector{cfg: cfg, base: base, rows: rows}
	client, err := httpapi.New(httpapi.Options{
		Connector:  Type,
		HTTPClient: cfg.HTTPClient,
		Registry:   opts.Registry,
		Clock:      opts.Clock,
		TimeScale:  opts.TimeScale,
		Log:        cfg.Log,
		// The user name is not secret: the limiter is shared only by
		// holders of the API key, on this host.
		Secret:      key,
		BaseURL:     base,
		DefaultHost: httpapi.IsDefaultHost(base, DefaultHosts),
		Limits: []httpapi.Limit{{
			// Whether Omni meters per connection or per account is
			// unconfirmed; the API user name scopes the limiter.
			Key: httpapi.Key(Type, user),
			Windows: []httpapi.Window{
				{Name: "second", Limit: PerSecond, Per: time.Second + secondGuard},
				{Name: "minute", Limit: PerMinute, Per: time.Minute + minuteGuard},
			},
			Quotas: []httpapi.Quota{{Name: "day", Limit: PerDay, Period: httpapi.Daily}},
		}},
		Classify:    conn.classify,
		MaxRetries:  opts.MaxRetries,
		BackoffBase: opts.BackoffBase,
	})
	if err != nil {
		return nil, fmt.Errorf("cin7omni: %w", err)
	}
	conn.client = client
	h := http.Header{}
	h.Set("Accept", "application/json")
	req := http.Request{Header: http.Header{}}
	req.SetBasicAuth(user, key)
	h.Set("Authorization", req.Header.Get("Authorization"))
	conn.header = h
	return conn, nil
}

// classify tells the daily limit from the others: Omni answers every limit
// with 429 and Retry-After, and only the day's wait runs past a minute.
// That one is a used-up quota (the call is not retried; the controller
// comes back at RetryAt), the others are waited out by httpapi.
func (c *Connector) classify(resp *httpapi.Response) error {
	if resp.StatusCode != http.StatusTooManyRequests || c.client == nil {
		return nil
	}
	now := c.client.Clock().Now()
	wait, ok := httpapi.RetryAfter(resp.Header, now)
	if !ok || wait <= time.Minute+minuteGuard {
		return nil
	}
	return &connectors.Error{Kind: connectors.KindQuotaExhausted, RetryAt: now.Add(wait),
		Msg: fmt.Sprintf("Cin7 Omni's daily limit of %d calls is used up", PerDay)}
}

// Connector reads one Cin7 Omni account.
type Connector struct {
	cfg    connectors.Config
	base   string
	client *httpapi.Client
	header http.Header
	rows   int
}

// stream is one entity stream.
type stream struct {
	kind model.Kind
	also []model.Kind
	path string
	// where is the stream's own condition ("Type='Customer'").
	where string
	// modified: the resource has ModifiedDate to filter on.
	modified bool
	mapItem  itemMapper
	// fields are what the id listing asks for (fields=): the document's
	// key, its ModifiedDate and what the mapping needs to tell a record of
	// the stream's kind that a full read would map live.
	fields string
	// live is the listing's condition that leaves out the documents the
	// vendor marks deleted ("" where it marks none).
	live string
}

var streams = []*stream{
	{kind: model.KindWarehouse, path: "v1/Branches", modified: true, mapItem: mapBranch,
		fields: "Id,ModifiedDate,IsActive", live: "IsActive=true"},
	{kind: model.KindSalesPerson, path: "v1/Users", mapItem: mapUser},
	{kind: model.KindSupplier, path: "v1/Contacts", where: "Type='Supplier'", modified: true, mapItem: mapSupplier,
		fields: "Id,ModifiedDate,IsActive", live: "IsActive=true"},
	{kind: model.KindCustomer, also: []model.Kind{model.KindContact}, path: "v1/Contacts", where: "Type='Customer'", modified: true, mapItem: mapCustomer,
		fields: "Id,ModifiedDate,IsActive", live: "IsActive=true"},
	// A product's records are its options, each versioned by the later of
	// its own and the product's ModifiedDate: the listing needs both.
	{kind: model.KindProduct, also: []model.Kind{model.KindPriceRule}, path: "v1/Products", modified: true, mapItem: mapProduct,
		fields: "Id,ModifiedDate,Status,ProductOptions", live: "Status<>'Inactive'"},
	{kind: model.KindStockLevel, path: "v1/Stock", modified: true, mapItem: mapStock,
		fields: "ProductId,ProductOptionId,BranchId,ModifiedDate"},
	{kind: model.KindSalesOrder, also: []model.Kind{model.KindInvoice, model.KindShipment}, path: "v1/SalesOrders", modified: true, mapItem: mapSalesOrder,
		fields: "Id,ModifiedDate,IsVoid", live: "IsVoid=false"},
	{kind: model.KindCreditNote, path: "v1/CreditNotes", modified: true, mapItem: mapCreditNote,
		fields: "Id,ModifiedDate,IsVoid", live: "IsVoid=false"},
}

func streamFor(k model.Kind) *stream {
	for _, s := range streams {
		if s.kind == k {
			return s
		}
	}
	return nil
}

// Entities implements connectors.Connector.
func (c *Connector) Entities() []connectors.EntityInfo {
	out := make([]connectors.EntityInfo, 0, len(streams))
	for _, s := range streams {
		ep := "GET /" + s.path
		if s.where != "" {
			ep += "?where=" + s.where
		}
		out = append(out, connectors.EntityInfo{Name: s.kind, Incremental: s.modified, Also: s.also, Endpoint: ep})
	}
	return out
}

// whereClause returns the where clause of a page request: the stream's own
// condition, the modified-since filter and the extra conditions (the
// listing's live condition, the keyset or id condition), empty ones left
// out.
func (s *stream) whereClause(since time.Time, extra ...string) string {
	var conds []string
	if s.where != "" {
		conds = append(conds, s.where)
	}
	if s.modified && !since.IsZero() {
		// Seconds, rounded down: the window only widens. >= because Omni's
		// boundary semantics are the client's choice. The literal is UTC
		// with Z, so an account whose dates are local reads it exactly.
		conds = append(conds, "ModifiedDate>='"+since.UTC().Format(sinceLayout)+"'")
	}
	for _, c := range extra {
		if c != "" {
			conds = append(conds, c)
		}
	}
	return strings.Join(conds, " AND ")
}

// cursor is a keyset position, carried in Page.Next and back in
// PageRequest.Cursor. In the usual, open form the next page asks for the
// rows after After (for stock: from option After on, dropping the branches
// Seen of it already read). When Omni serves a full page out of the order
// asked for (a fault: the page may then miss rows after the cursor), the
// pass narrows instead: it asks for the closed range (After, Upto] of ids,
// halving it until a page comes back short, which proves the range read
// whole in any order, and then goes on after it.
type cursor struct {
	After int64
	Seen  []int64
	Upto  int64 // 0: open
}

func (c cursor) encode() string {
	if c.Upto != 0 {
		return strconv.FormatInt(c.After, 10) + "~" + strconv.FormatInt(c.Upto, 10)
	}
	out := strconv.FormatInt(c.After, 10)
	if len(c.Seen) > 0 {
		parts := make([]string, len(c.Seen))
		for i, b := range c.Seen {
			parts[i] = strconv.FormatInt(b, 10)
		}
		out += ":" + strings.Join(parts, ",")
	}
	return out
}

func decodeCursor(s string) (cursor, bool) {
	var c cursor
	var err error
	if a, u, ok := strings.Cut(s, "~"); ok {
		c.After, err = strconv.ParseInt(a, 10, 64)
		if err != nil {
			return cursor{}, false
		}
		if c.Upto, err = strconv.ParseInt(u, 10, 64); err != nil || c.Upto <= c.After {
			return cursor{}, false
		}
		return c, true
	}
	a, rest, _ := strings.Cut(s, ":")
	if c.After, err = strconv.ParseInt(a, 10, 64); err != nil {
		return cursor{}, false
	}
	if rest == "" {
		return c, true
	}
	for _, p := range strings.Split(rest, ",") {
		b, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return cursor{}, false
		}
		c.Seen = append(c.Seen, b)
	}
	return c, true
}

// ListPage implements connectors.Connector.
//
// Every stream is read by keyset: each page asks for the rows after the
// last one read (where=…AND Id>N, order=Id ASC; stock by ProductOptionId)
// and returns that position as Next. Ids never change and new records get
// higher ids, so an edit, a creation or a removal during a pass moves no
// row across a page boundary, and a resumed pass continues from its cursor.
// Omni reports no total, so the connector proves each page complete itself:
// a short page is the end, a full page in the order asked for ends at its
// last row, and a full page out of that order is narrowed (see cursor).
func (c *Connector) ListPage(ctx context.Context, req connectors.PageRequest) (*connectors.Page, error) {
	s := streamFor(req.Entity)
	if s == nil {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "cin7omni has no entity %q", req.Entity)
	}
	r, err := c.keysetPage(ctx, s, req, "", "")
	page := &connectors.Page{Total: -1, Calls: r.calls, ServerTime: r.serverTime, More: r.more, Next: r.next}
	if r.d != nil {
		page.Records, page.SetAside, page.Docs = r.d.records, r.d.aside, r.d.docs
	}
	return page, err
}

// keysetRead is one page of a keyset pass.
type keysetRead struct {
	d          *decoded
	calls      int
	serverTime time.Time
	more       bool
	next       string
}

// keysetPage reads one page of s by keyset from req.Cursor (see ListPage),
// adding live to the where clause and asking for fields ("" for whole
// documents). ListPage and ListIDs share it.
func (c *Connector) keysetPage(ctx context.Context, s *stream, req connectors.PageRequest, live, fields string) (keysetRead, error) {
	if req.Page < 1 {
		return keysetRead{}, connectors.Errorf(connectors.KindInvalidConfig, "cin7omni %s: page %d: pages start at 1", req.Entity, req.Page)
	}
	stock := s.kind == model.KindStockLevel
	field, keyFn := "Id", keyOf(idKey)
	if stock {
		field, keyFn = "ProductOptionId", stockKey
	}
	cur := cursor{After: -1}
	if req.Cursor != "" {
		var ok bool
		if cur, ok = decodeCursor(req.Cursor); !ok {
			return keysetRead{}, connectors.Errorf(connectors.KindInvalidConfig, "cin7omni %s page %d: the checkpointed cursor is not one this connector wrote", req.Entity, req.Page)
		}
	}
	var after string
	var skip func(key) bool
	switch {
	case cur.Upto != 0:
		after = field + ">" + strconv.FormatInt(cur.After, 10) + " AND " + field + "<=" + strconv.FormatInt(cur.Upto, 10)
	case stock && cur.After >= 0:
		// From the last option on: a page may have ended inside its
		// branches.
		after = field + ">=" + strconv.FormatInt(cur.After, 10)
		seen := map[int64]bool{}
		for _, b := range cur.Seen {
			seen[b] = true
		}
		skip = func(k key) bool { return k.a == cur.After && seen[k.b] }
	case cur.After >= 0:
		after = field + ">" + strconv.FormatInt(cur.After, 10)
	}
	q := url.Values{}
	if w := s.whereClause(req.Since, live, after); w != "" {
		q.Set("where", w)
	}
	if fields != "" {
		q.Set("fields", fields)
	}
	q.Set("order", field+" ASC")
	q.Set("page", "1")
	q.Set("rows", strconv.Itoa(c.rows))
	d, f, err := c.fetch(ctx, s, q, req.Page, keyFn, skip)
	r := keysetRead{d: d, calls: f.calls, serverTime: f.serverTime}
	if err != nil {
		return r, err
	}
	next, more, err := c.advance(s, cur, d)
	if err != nil {
		return r, fmt.Errorf("cin7omni %s page %d: %w", req.Entity, req.Page, err)
	}
	r.more = more
	if more {
		r.next = next.encode()
	}
	return r, nil
}

// readCost is what one request cost and when Omni answered it.
type readCost struct {
	calls      int
	serverTime time.Time
}

// fetch sends one list request of s with the query q and maps the answer
// as a full read does (decodePage). Every read of the connector goes
// through it: pages, id listings and reads by id.
func (c *Connector) fetch(ctx context.Context, s *stream, q url.Values, page int, keyFn keyOf, skip func(key) bool) (*decoded, readCost, error) {
	before := c.client.Calls()
	resp, err := c.client.Get(ctx, "list_"+string(s.kind), c.base+s.path+"?"+q.Encode(), c.header)
	f := readCost{calls: int(c.client.Calls() - before)}
	if err != nil {
		return nil, f, fmt.Errorf("cin7omni %s page %d: %w", s.kind, page, err)
	}
	f.serverTime = resp.ServerTime
	at := resp.ServerTime
	if at.IsZero() {
		at = c.client.Clock().Now().UTC()
	}
	d, err := decodePage(s.kind, s.mapItem, page, resp.Body, mapEnv{Company: c.cfg.CompanyID, Fetched: at}, keyFn, skip)
	return d, f, err
}

// advance decides where the pass goes after a page read from cur.
func (c *Connector) advance(s *stream, cur cursor, d *decoded) (next cursor, more bool, err error) {
	stock := s.kind == model.KindStockLevel
	full := d.items >= c.rows
	lo := cur.After // the page's rows are all above lo (or at it, for open stock)
	ordered := true
	for i, k := range d.keys {
		switch {
		case stock && cur.Upto == 0:
			ordered = ordered && k.a >= lo && (i == 0 || k.a >= d.keys[i-1].a)
		case stock:
			ordered = ordered && k.a > lo && k.a <= cur.Upto && (i == 0 || k.a >= d.keys[i-1].a)
		default:
			ordered = ordered && k.a > lo && (cur.Upto == 0 || k.a <= cur.Upto) && (i == 0 || k.a > d.keys[i-1].a)
		}
	}
	if cur.Upto != 0 {
		// A closed range: complete when the page is short, or when the
		// range cannot hold more ids than a page (distinct ids; stock has
		// a row per branch, so only a short page proves it).
		if !full || (!stock && cur.Upto-cur.After <= int64(c.rows)) {
			return cursor{After: cur.Upto}, true, nil
		}
		return c.narrow(cur.After, cur.Upto, d)
	}
	if !full {
		// All the rows after the cursor, in whatever order: the end.
		return cursor{}, false, nil
	}
	if !ordered {
		// Rows out of the order asked for: rows after the cursor may be
		// missing from this page. Read the range up to the page's
		// highest key in halves until each comes back whole.
		lower := cur.After
		if stock && lower >= 0 {
			lower-- // the open stock form includes its last option
		}
		var hi int64
		for _, k := range d.keys {
			hi = max(hi, k.a)
		}
		return c.narrow(lower, hi, d)
	}
	if len(d.keys) == 0 {
		return cursor{}, false, fmt.Errorf("a full page held no row after the cursor (more than %d rows of one key)", c.rows)
	}
	last := d.keys[len(d.keys)-1]
	if !stock {
		return cursor{After: last.a}, true, nil
	}
	next = cursor{After: last.a}
	if last.a == cur.After {
		next.Seen = append(next.Seen, cur.Seen...)
	}
	for _, k := range d.keys {
		if k.a == last.a {
			next.Seen = append(next.Seen, k.b)
		}
	}
	return next, true, nil
}

// narrow returns the closed range (lo, m] whose upper end m is the median
// key of a full page of rows above lo: about half the rows the page held.
func (c *Connector) narrow(lo, hi int64, d *decoded) (cursor, bool, error) {
	keys := make([]int64, 0, len(d.keys))
	for _, k := range d.keys {
		if k.a > lo && k.a <= hi {
			keys = append(keys, k.a)
		}
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	m := hi
	if len(keys) > 1 {
		m = keys[(len(keys)-1)/2]
	}
	if m <= lo || (m == hi && hi-lo <= 1) {
		return cursor{}, false, connectors.Errorf(connectors.KindInvalidResponse, "rows out of the order asked for, and more than a page of them under one key")
	}
	if m == hi {
		m = lo + (hi-lo)/2
	}
	return cursor{After: lo, Upto: m}, true, nil
}

// LimitKeys names the rate limiters and quotas the connector's calls count
// against (httpapi.Client.LimitKeys): for tests of credential isolation.
func (c *Connector) LimitKeys() []string { return c.client.LimitKeys() }
