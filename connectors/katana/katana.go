// Package katana reads a Katana (Katana MRP / Katana Cloud Inventory)
// account through its public API (https://api.katanamrp.com/v1): products
// and materials with their variants and prices, stock per location,
// locations, price lists with their rows and customers, customers with their
// addresses, sales orders with their rows, and tax rates.
//
// Katana authenticates with a Bearer API key, pages with page and limit (at
// most 250; the X-Pagination header carries total_records, total_pages and
// last_page), filters with updated_at_min (ISO 8601), and hides soft-deleted
// records unless include_deleted=true, in which case they arrive with
// deleted_at set. It allows 60 requests per 60 seconds per key and answers
// 429 with Retry-After beyond that.
package katana

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// Type is the connector type (the registry key).
const Type = "katana"

// DefaultBaseURL is Katana's API root.
const DefaultBaseURL = "https://api.katanamrp.com/v1"

// DefaultHosts are the hosts of Katana's published API (the egress policy's
// defaults for the connector).
var DefaultHosts = []string{"api.katanamrp.com"}

// PageSize is the largest page Katana serves.
const PageSize = 250

// RateWindow is the rate limit the connector keeps to: Katana allows 60
// requests per 60 seconds; the connector's window is a second longer, so
// that network jitter at the edge of the vendor's window never costs a 429.
var RateWindow = httpapi.Window{Name: "minute", Limit: 60, Per: 61 * time.Second}

// Options tune a connector beyond its Config: tests, benchmarks and
// simulator demos compress time and isolate limiters with them.
type Options struct {
	// TimeScale > 1 compresses the rate limit and Retry-After waits (match
	// the simulator's TimeScale).
	TimeScale float64
	// Clock overrides the client's clock (TimeScale is then ignored).
	Clock httpapi.Clock
	// Registry holds the shared limiters; nil means httpapi.SharedRegistry.
	Registry *httpapi.Registry
	// MaxRetries overrides httpapi's default retry budget.
	MaxRetries int
}

// New builds a Katana connector; it is a connectors.Factory. It needs the
// Secret key apiKey and makes no network call.
func New(ctx context.Context, cfg connectors.Config) (connectors.Connector, error) {
	return NewWithOptions(ctx, cfg, Options{})
}

// NewWithOptions is New with Options.
func NewWithOptions(_ context.Context, cfg connectors.Config, opts Options) (connectors.Connector, error) {
	key, err := connectors.RequiredKey(cfg.Credentials, "apiKey")
	if err != nil {
		return nil, err
	}
	key = strings.TrimSpace(key)
	base, err := connectors.BaseURL(cfg, Type, DefaultBaseURL, DefaultHosts, false)
	if err != nil {
		return nil, err
	}
	client, err := httpapi.New(httpapi.Options{
		Connector:  Type,
		HTTPClient: cfg.HTTPClient,
		Registry:   opts.Registry,
		Clock:      opts.Clock,
		TimeScale:  opts.TimeScale,
		MaxRetries: opts.MaxRetries,
		Log:        cfg.Log,
		// The key already scopes the limiter; the host keeps a simulator's
		// or another server's answers apart from Katana's.
		Secret:      key,
		BaseURL:     base,
		DefaultHost: httpapi.IsDefaultHost(base, DefaultHosts),
		Limits: []httpapi.Limit{{
			Key:     httpapi.Key(Type, key),
			Windows: []httpapi.Window{RateWindow},
		}},
	})
	if err != nil {
		return nil, err
	}
	return &connector{cfg: cfg, base: base, auth: "Bearer " + key, client: client}, nil
}

type connector struct {
	cfg    connectors.Config
	base   string
	auth   string
	client *httpapi.Client

	// lists and listCustomers resolve price-list rows. They are read on
	// the first page of every price_rules pass (and on the first page a
	// connector reads, after a restart), and once more within a pass when
	// a row names a list they do not hold (missReloaded).
	lists         map[int64]kPriceList
	listCustomers map[int64][]kPriceListCustomer
	missReloaded  bool

	// variantParents maps the variant ids of the last products id listing
	// to their parents ("product/<id>", "material/<id>"), so that ReadDocs
	// can read a variant's parent without asking GET /variants first.
	variantParents map[string]string

	// vendorOffset is the vendor's clock minus ours at the last answer with
	// a Date header, in nanoseconds (see vendorNow); offsetKnown says
	// whether there was one.
	vendorOffset atomic.Int64
	offsetKnown  atomic.Bool
}

var entities = []connectors.EntityInfo{
	{Name: model.KindTaxRate, Incremental: true, Endpoint: "GET /tax_rates"},
	{Name: model.KindWarehouse, Incremental: true, Endpoint: "GET /locations"},
	{Name: model.KindCustomer, Incremental: true, Also: []model.Kind{model.KindContact}, Endpoint: "GET /customers"},
	{Name: model.KindProduct, Incremental: true, Endpoint: "GET /products and GET /materials"},
	{Name: model.KindStockLevel, Incremental: false, Endpoint: "GET /inventory"},
	{Name: model.KindPriceRule, Incremental: false, Endpoint: "GET /price_list_rows (with /price_lists and /price_list_customers)"},
	{Name: model.KindSalesOrder, Incremental: true, Endpoint: "GET /sales_orders"},
}

// Entities implements connectors.Connector.
func (c *connector) Entities() []connectors.EntityInfo {
	return append([]connectors.EntityInfo(nil), entities...)
}

// ListPage implements connectors.Connector.
func (c *connector) ListPage(ctx context.Context, req connectors.PageRequest) (*connectors.Page, error) {
	if req.Page < 1 {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "katana %s: page %d: pages are numbered from 1", req.Entity, req.Page)
	}
	before := c.client.Calls()
	page, err := c.listPage(ctx, req)
	calls := int(c.client.Calls() - before)
	if page != nil {
		page.Calls = calls
	}
	if err != nil {
		err = c.explain(req, err)
		return &connectors.Page{Calls: calls, Total: -1}, err
	}
	return page, nil
}

// explain adds what a person needs to the error of a page.
func (c *connector) explain(req connectors.PageRequest, err error) error {
	msg := fmt.Sprintf("katana %s page %d", req.Entity, req.Page)
	if connectors.KindOf(err) == connectors.KindAuthenticationFailed {
		return connectors.Wrap(connectors.KindAuthenticationFailed, err, msg+": Katana refused the API key; put a valid key (Settings → API → API keys) in the credentials Secret under apiKey")
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// list is one Katana list endpoint as the connector reads it.
type list struct {
	op, path string
	// deleted asks for soft-deleted records too (include_deleted=true).
	deleted bool
	// capped lists take created_at_max: a pass pins its pages to the
	// documents created before it began (see passCap).
	capped bool
	extra  url.Values
	mapFn  func(*mapper, json.RawMessage) ([]model.Record, error)
	// doc names a mapped document (the units of the list's total_records)
	// from its records, reading the raw document only where they do not
	// tell.
	doc func(raw json.RawMessage, recs []model.Record) string
}

var (
	taxRates   = list{op: "list_tax_rates", path: "/tax_rates", capped: true, mapFn: (*mapper).taxRate, doc: recordDoc}
	locations  = list{op: "list_locations", path: "/locations", capped: true, deleted: true, mapFn: (*mapper).location, doc: recordDoc}
	customers  = list{op: "list_customers", path: "/customers", capped: true, deleted: true, mapFn: (*mapper).customer, doc: recordDoc}
	orders     = list{op: "list_sales_orders", path: "/sales_orders", capped: true, deleted: true, mapFn: (*mapper).salesOrder, doc: recordDoc}
	products   = list{op: "list_products", path: "/products", capped: true, deleted: true, extra: url.Values{"include_archived": {"true"}}, mapFn: (*mapper).item, doc: itemDoc("product")}
	materials  = list{op: "list_materials", path: "/materials", capped: true, deleted: true, extra: url.Values{"include_archived": {"true"}}, mapFn: (*mapper).item, doc: itemDoc("material")}
	inventory  = list{op: "list_inventory", path: "/inventory", extra: url.Values{"extend": {"variant", "location"}}, mapFn: (*mapper).inventory, doc: recordDoc}
	priceRows  = list{op: "list_price_list_rows", path: "/price_list_rows", mapFn: (*mapper).priceRow, doc: rowDoc}
	priceLists = list{op: "list_price_lists", path: "/price_lists"}
	listCusts  = list{op: "list_price_list_customers", path: "/price_list_customers"}
)

// recordDoc names a document by its first record's vendor id: the
// document's id (customers, orders, locations, tax rates; the customer's
// contact follows it) or its variant and location (inventory rows).
func recordDoc(raw json.RawMessage, recs []model.Record) string {
	if len(recs) > 0 {
		return recs[0].VendorID
	}
	return rawID(raw, "")
}

// rowDoc names a price-list row by its id (its records are keyed
// <row>/<customer>).
func rowDoc(raw json.RawMessage, recs []model.Record) string {
	if len(recs) > 0 {
		id, _, _ := strings.Cut(recs[0].VendorID, "/")
		return id
	}
	return rawID(raw, "")
}

// itemDoc names a product or material by its parent id, "product/<id>" or
// "material/<id>" (its records are its variants; it may have none).
func itemDoc(kind string) func(json.RawMessage, []model.Record) string {
	return func(raw json.RawMessage, recs []model.Record) string {
		if len(recs) > 0 {
			if p, ok := recs[0].Data.(*model.Product); ok && p.ParentVendorID != "" {
				return p.ParentVendorID
			}
		}
		return rawID(raw, kind+"/")
	}
}

// rawID reads a document's id, for one whose records do not name it.
func rawID(raw json.RawMessage, prefix string) string {
	var h struct {
		ID json.Number `json:"id"`
	}
	if json.Unmarshal(raw, &h) != nil || h.ID == "" {
		return ""
	}
	return prefix + h.ID.String()
}

// listPage reads one page of an entity. Every list is read by page number:
// Katana orders its lists by creation (newest first; inventory by location),
// never by a field that edits change, and offers no range filter on the
// order's key, so a keyset cannot be formed (docs/connectors/katana.md).
// Each page reports the vendor's total_records and the documents it held
// (Page.Docs), so that the engine can tell a pass that shifted or fell short.
func (c *connector) listPage(ctx context.Context, req connectors.PageRequest) (*connectors.Page, error) {
	switch req.Entity {
	case model.KindTaxRate:
		return c.capped(ctx, taxRates, req)
	case model.KindWarehouse:
		return c.capped(ctx, locations, req)
	case model.KindCustomer:
		return c.capped(ctx, customers, req)
	case model.KindSalesOrder:
		return c.capped(ctx, orders, req)
	case model.KindProduct:
		return c.products(ctx, req)
	case model.KindStockLevel:
		p, err := c.simple(ctx, inventory, req.Page, time.Time{}, time.Time{})
		return floorTotal(p, req), err
	case model.KindPriceRule:
		p, err := c.priceRules(ctx, req.Page)
		return floorTotal(p, req), err
	}
	return nil, connectors.Errorf(connectors.KindInvalidConfig, "entity %q is not offered by the katana connector", req.Entity)
}

// simple reads one page of one list endpoint and maps it.
func (c *connector) simple(ctx context.Context, l list, page int, since, capAt time.Time) (*connectors.Page, error) {
	lp, err := c.get(ctx, l, page, since, capAt)
	if err != nil {
		return nil, err
	}
	return c.mapPage(lp, c.mapper(lp))
}

// capped reads a page of a list that takes created_at_max. Katana lists
// newest first, so a document created while a pass runs enters at the head
// of the list, before the pass's cursor: it pushes every later document one
// place down (read twice, never lost) and raises the total, which the pass
// never reaches, so the engine would see a pass short of its total and read
// it again, and again while documents keep coming. So a pass is pinned to
// the documents created before its first request (created_at_max on every
// page, the first included), and the pin travels in Page.Next, so that a
// resumed pass keeps it. Documents created later are read by the next
// window, which starts before the pass did (the engine's overlap).
func (c *connector) capped(ctx context.Context, l list, req connectors.PageRequest) (*connectors.Page, error) {
	var lp *listPage
	var capAt time.Time
	var err error
	if req.Page == 1 || req.Cursor == "" {
		lp, capAt, err = c.firstPage(ctx, l, req.Page, req.Since)
	} else {
		capAt = c.cursorCap(req)
		lp, err = c.get(ctx, l, req.Page, req.Since, capAt)
	}
	if err != nil {
		return nil, err
	}
	p, err := c.mapPage(lp, c.mapper(lp))
	if err != nil {
		return nil, err
	}
	if p.More && !capAt.IsZero() {
		p.Next = capCursor(capAt)
	}
	return p, nil
}

// maxCapDrift is how far a pass's creation cap may be from the vendor's
// clock at its first page. The cap is estimated from the vendor's clock at
// the previous answer; an estimate further off (a clock that jumped) is
// replaced by one taken from the first page's own Date, which costs that
// page again. It is well inside
// the engine's window overlap (engine.DefaultOverlap), which is what catches
// the documents created between the cap and the pass's start.
const maxCapDrift = 30 * time.Second

// firstPage reads the page a pass starts at (page 1, or the page of a
// checkpoint without a cursor) with the pass's creation cap, and returns
// the cap (zero: none). Before the connector has seen the vendor's clock it
// reads the page uncapped, and reads it again capped only when the list
// runs past it.
func (c *connector) firstPage(ctx context.Context, l list, page int, since time.Time) (*listPage, time.Time, error) {
	if !c.offsetKnown.Load() {
		lp, err := c.get(ctx, l, page, since, time.Time{})
		if err != nil || !lp.more || lp.serverTime.IsZero() {
			return lp, time.Time{}, err
		}
	}
	capAt := c.vendorNow()
	lp, err := c.get(ctx, l, page, since, capAt)
	if err != nil {
		return nil, time.Time{}, err
	}
	if st := lp.serverTime; !st.IsZero() {
		if d := capAt.Sub(st); d > maxCapDrift || d < -maxCapDrift {
			capAt = passCap(st)
			if lp, err = c.get(ctx, l, page, since, capAt); err != nil {
				return nil, time.Time{}, err
			}
		}
	}
	return lp, capAt, nil
}

// vendorNow estimates the vendor's clock now from the offset of its last
// Date header to ours (our clock before any answer). Date holds whole
// seconds, so the estimate runs up to a second behind, never ahead: a cap
// from it leaves out, rather than lets in, the documents created around the
// first request.
func (c *connector) vendorNow() time.Time {
	return c.client.Clock().Now().UTC().Add(time.Duration(c.vendorOffset.Load()))
}

// floorTotal reports, on a page of a list without a creation filter
// (inventory, price-list rows), the smaller of the list's total at the
// pass's first page (carried in Page.Next) and its total now. A row created
// while the pass runs may land before the cursor (a new variant adds a row
// to every location, and the inventory is sorted by location): it pushes
// later rows down, which costs a row read twice, never a row lost, and the
// pass cannot read it, so a total that counted it would make the engine
// read the pass again for nothing (the next pass, a full read like every
// pass of these lists, reads it). A removal pushes later rows up and may
// skip one: the total falls below the first, and the engine reads the pass
// again. A creation and a removal in one pass may hide each other; the
// next pass reads the list in full again.
func floorTotal(p *connectors.Page, req connectors.PageRequest) *connectors.Page {
	if p == nil {
		return nil
	}
	first := p.Total
	if n, ok := strings.CutPrefix(req.Cursor, "total="); ok && req.Page > 1 {
		if v, err := strconv.Atoi(n); err == nil && v >= 0 {
			first = v
		}
	}
	if first >= 0 && (p.Total < 0 || first < p.Total) {
		p.Total = first
	}
	if p.More && first >= 0 {
		p.Next = "total=" + strconv.Itoa(first)
	}
	return p
}

// passCap is the cap taken from the Date of a pass's first page when the
// estimate was off: the end of that second (the answer was computed within
// it; documents created in the rest of it may shift the pass a little,
// which the engine's counts catch).
func passCap(serverTime time.Time) time.Time {
	return serverTime.UTC().Truncate(time.Second).Add(time.Second - time.Millisecond)
}

// capCursor and cursorCap write and read the cursor of a capped list: the
// pass's created_at_max in Unix milliseconds.
func capCursor(capAt time.Time) string { return "cap=" + strconv.FormatInt(capAt.UnixMilli(), 10) }

func (c *connector) cursorCap(req connectors.PageRequest) time.Time {
	if req.Cursor == "" || req.Page == 1 {
		return time.Time{}
	}
	ms, ok := strings.CutPrefix(req.Cursor, "cap=")
	n, err := strconv.ParseInt(ms, 10, 64)
	if !ok || err != nil || n <= 0 {
		// Not a cursor this connector wrote: read uncapped, which loses
		// nothing (the engine's counts catch a shifted pass).
		c.cfg.Log.Info("a checkpoint's cursor is not one this connector wrote; reading without a creation cap", "entity", req.Entity, "page", req.Page)
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

// mapper returns the mapper of a response: it stamps records without a
// modified time with the vendor's clock at the response.
func (c *connector) mapper(lp *listPage) *mapper {
	now := lp.serverTime
	if now.IsZero() {
		now = c.client.Clock().Now().UTC()
	}
	return &mapper{company: c.cfg.CompanyID, now: now, lists: c.lists, listCustomers: c.listCustomers}
}

// mapPage maps a response. A document the mapping cannot know (an
// *asideError) is set aside with its raw document; any other failure fails
// the page, naming the record and field. Page.Docs names every document.
func (c *connector) mapPage(lp *listPage, m *mapper) (*connectors.Page, error) {
	p := &connectors.Page{Records: make([]model.Record, 0, len(lp.data)), More: lp.more, Total: lp.total, ServerTime: lp.serverTime,
		Docs: make([]string, 0, len(lp.data))}
	fn := func(raw json.RawMessage) ([]model.Record, error) { return lp.list.mapFn(m, raw) }
	for i, raw := range lp.data {
		recs, a, err := mapOne(raw, fn)
		if err != nil {
			return nil, connectors.Wrap(connectors.KindInvalidResponse, fmt.Errorf("record %d: %w", i, err),
				fmt.Sprintf("GET %s page %d returned a document the connector cannot read", lp.list.path, lp.page))
		}
		if a != nil {
			p.SetAside = append(p.SetAside, model.SetAside{Company: c.cfg.CompanyID, Vendor: Type, Kind: a.err.kind, VendorID: a.err.id,
				ModifiedAt: a.err.mod, Reason: a.err.reason, Raw: a.raw})
			p.Docs = append(p.Docs, a.err.id)
			continue
		}
		p.Records = append(p.Records, recs...)
		p.Docs = append(p.Docs, lp.list.doc(raw, recs))
	}
	return p, nil
}

// priceRules reads a page of price-list rows. The price lists and their
// customers are read again at the start of every pass, so that a row set
// aside for naming a list the connector did not know maps once the list is
// there; within a pass, the first row naming an unknown list makes the
// connector read them once more before it sets the row aside.
func (c *connector) priceRules(ctx context.Context, page int) (*connectors.Page, error) {
	if page == 1 || c.lists == nil {
		if err := c.loadPriceLists(ctx); err != nil {
			return nil, err
		}
		c.missReloaded = false
	}
	lp, err := c.get(ctx, priceRows, page, time.Time{}, time.Time{})
	if err != nil {
		return nil, err
	}
	p, err := c.mapPage(lp, c.mapper(lp))
	if err != nil || len(p.SetAside) == 0 || c.missReloaded {
		return p, err
	}
	c.missReloaded = true
	if err := c.loadPriceLists(ctx); err != nil {
		return nil, err
	}
	return c.mapPage(lp, c.mapper(lp))
}

// productsCursor is where the products stream continues: the stream reads
// /products page by page and then /materials page by page, and its first
// page holds the first page of both (so that its total counts both lists).
// It is the engine's opaque Page.Next; its totals are the lists' latest
// total_records, so that every page can report the stream's total.
type productsCursor struct {
	// products and materials are the next pages to read of each list; 0
	// means the list has been read to its end.
	products, materials int
	// productsTotal and materialsTotal are the lists' latest
	// total_records, -1 when unknown.
	productsTotal, materialsTotal int
	// capAt is the pass's created_at_max (see capped), zero for none.
	capAt time.Time
}

func (pc productsCursor) String() string {
	var ms int64
	if !pc.capAt.IsZero() {
		ms = pc.capAt.UnixMilli()
	}
	return url.Values{"p": {strconv.Itoa(pc.products)}, "m": {strconv.Itoa(pc.materials)},
		"pt": {strconv.Itoa(pc.productsTotal)}, "mt": {strconv.Itoa(pc.materialsTotal)}, "c": {strconv.FormatInt(ms, 10)}}.Encode()
}

// parseProductsCursor reads a cursor written by String.
func parseProductsCursor(s string) (productsCursor, error) {
	v, err := url.ParseQuery(s)
	if err != nil {
		return productsCursor{}, err
	}
	var pc productsCursor
	for _, f := range []struct {
		key string
		to  *int
		min int
	}{{"p", &pc.products, 0}, {"m", &pc.materials, 0}, {"pt", &pc.productsTotal, -1}, {"mt", &pc.materialsTotal, -1}} {
		n, err := strconv.Atoi(v.Get(f.key))
		if err != nil || n < f.min {
			return productsCursor{}, fmt.Errorf("%s is not a number of at least %d", f.key, f.min)
		}
		*f.to = n
	}
	if pc.products == 0 && pc.materials == 0 {
		return productsCursor{}, fmt.Errorf("it points past both lists")
	}
	ms, err := strconv.ParseInt(v.Get("c"), 10, 64)
	if err != nil || ms < 0 {
		return productsCursor{}, fmt.Errorf("c is not a time")
	}
	if ms > 0 {
		pc.capAt = time.UnixMilli(ms).UTC()
	}
	return pc, nil
}

// total is the stream's total, -1 unless both lists' are known.
func (pc productsCursor) total() int {
	if pc.productsTotal < 0 || pc.materialsTotal < 0 {
		return -1
	}
	return pc.productsTotal + pc.materialsTotal
}

// products reads the products stream: every /products page, then every
// /materials page, the first page of each on the stream's first page, every
// later page capped at the creation time the first page pinned (see
// capped).
func (c *connector) products(ctx context.Context, req connectors.PageRequest) (*connectors.Page, error) {
	p, _, _, err := c.productsPass(ctx, req)
	return p, err
}

// productsPass reads a page of the products stream and returns it with
// the cursor it started from (zero on a pass's first page) and the cursor
// after it (the lists' totals as this page saw them).
func (c *connector) productsPass(ctx context.Context, req connectors.PageRequest) (*connectors.Page, productsCursor, productsCursor, error) {
	var pc productsCursor
	if req.Cursor != "" {
		var err error
		if pc, err = parseProductsCursor(req.Cursor); err != nil {
			// A cursor this connector did not write (a checkpoint of an
			// older version): read the pass from its start again, which
			// re-reads and loses nothing.
			c.cfg.Log.Info("the products checkpoint is not one this connector wrote; reading the pass from its start", "page", req.Page, "reason", err.Error())
			req.Cursor = ""
		}
	}
	if req.Cursor == "" {
		p, next, err := c.productsStart(ctx, req.Since)
		return p, productsCursor{}, next, err
	}
	from := pc
	l, page := products, pc.products
	if page == 0 {
		l, page = materials, pc.materials
	}
	lp, err := c.get(ctx, l, page, req.Since, pc.capAt)
	if err != nil {
		return nil, from, pc, err
	}
	p, err := c.mapPage(lp, c.mapper(lp))
	if err != nil {
		return nil, from, pc, err
	}
	next := page + 1
	if !lp.more {
		next = 0
	}
	if l.path == products.path {
		pc.products, pc.productsTotal = next, lp.total
	} else {
		pc.materials, pc.materialsTotal = next, lp.total
	}
	return c.productsPage(p, pc), from, pc, nil
}

// productsStart reads the first page of /products and of /materials.
func (c *connector) productsStart(ctx context.Context, since time.Time) (*connectors.Page, productsCursor, error) {
	pl, capAt, err := c.firstPage(ctx, products, 1, since)
	if err != nil {
		return nil, productsCursor{}, err
	}
	pp, err := c.mapPage(pl, c.mapper(pl))
	if err != nil {
		return nil, productsCursor{}, err
	}
	ml, err := c.get(ctx, materials, 1, since, capAt)
	if err != nil {
		return nil, productsCursor{}, err
	}
	mp, err := c.mapPage(ml, c.mapper(ml))
	if err != nil {
		return nil, productsCursor{}, err
	}
	pc := productsCursor{productsTotal: pl.total, materialsTotal: ml.total, capAt: capAt}
	if pl.more {
		pc.products = 2
	}
	if ml.more {
		pc.materials = 2
	}
	pp.Records = append(pp.Records, mp.Records...)
	pp.Docs = append(pp.Docs, mp.Docs...)
	pp.SetAside = append(pp.SetAside, mp.SetAside...)
	return c.productsPage(pp, pc), pc, nil
}

// productsPage sets a products page's continuation and total from pc.
func (c *connector) productsPage(p *connectors.Page, pc productsCursor) *connectors.Page {
	p.Total = pc.total()
	p.More = pc.products > 0 || pc.materials > 0
	p.Next = ""
	if p.More {
		p.Next = pc.String()
	}
	return p
}

// loadPriceLists reads every price list and every price-list customer, so
// that rows can name their list and customers.
func (c *connector) loadPriceLists(ctx context.Context) error {
	lists := map[int64]kPriceList{}
	if err := c.loadAll(ctx, priceLists, func(page, i int, raw json.RawMessage) (int64, error) {
		var l kPriceList
		if err := decode(raw, &l); err != nil || l.ID <= 0 {
			return 0, connectors.Errorf(connectors.KindInvalidResponse, "GET /price_lists page %d record %d: not a price list: %v", page, i, errOrID(err))
		}
		lists[l.ID] = l
		return l.ID, nil
	}); err != nil {
		return err
	}
	links := map[int64]kPriceListCustomer{}
	if err := c.loadAll(ctx, listCusts, func(page, i int, raw json.RawMessage) (int64, error) {
		var pc kPriceListCustomer
		if err := decode(raw, &pc); err != nil || pc.ID <= 0 || pc.PriceListID <= 0 || pc.CustomerID <= 0 {
			return 0, connectors.Errorf(connectors.KindInvalidResponse, "GET /price_list_customers page %d record %d: not a price-list customer: %v", page, i, errOrID(err))
		}
		links[pc.ID] = pc
		return pc.ID, nil
	}); err != nil {
		return err
	}
	custs := map[int64][]kPriceListCustomer{}
	for _, pc := range links {
		custs[pc.PriceListID] = append(custs[pc.PriceListID], pc)
	}
	for _, cs := range custs {
		sort.Slice(cs, func(i, j int) bool { return cs[i].CustomerID < cs[j].CustomerID })
	}
	c.lists, c.listCustomers = lists, custs
	return nil
}

// maxLoadPasses bounds the passes loadAll makes over a list whose pages
// held fewer distinct documents than its total.
const maxLoadPasses = 10

// loadAll reads every page of a reference list, calling add for each
// document (add returns its id). A pass whose distinct ids fall short of
// the list's total_records (an order that changed between pages, a list
// edited while it was read) is read again, the passes adding up, at most
// maxLoadPasses times; a list still short fails, since a missing list
// customer would key a price rule wrongly.
func (c *connector) loadAll(ctx context.Context, l list, add func(page, i int, raw json.RawMessage) (int64, error)) error {
	seen := map[int64]bool{}
	total := -1
	for pass := 1; pass <= maxLoadPasses; pass++ {
		for page := 1; ; page++ {
			lp, err := c.get(ctx, l, page, time.Time{}, time.Time{})
			if err != nil {
				return err
			}
			for i, raw := range lp.data {
				id, err := add(page, i, raw)
				if err != nil {
					return err
				}
				seen[id] = true
			}
			total = lp.total
			if !lp.more {
				break
			}
		}
		if total < 0 || len(seen) >= total {
			return nil
		}
	}
	return connectors.Errorf(connectors.KindERPUnavailable, "GET %s: %d passes read %d distinct documents of the %d Katana reports; the list keeps changing order", l.path, maxLoadPasses, len(seen), total)
}

func errOrID(err error) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("missing id")
}

// isoMillis is the ISO 8601 form the connector sends (Katana's own).
const isoMillis = "2006-01-02T15:04:05.000Z"

// listPage is one decoded list response.
type listPage struct {
	list       list
	page       int
	data       []json.RawMessage
	more       bool
	total      int // total_records, or -1 when not given
	serverTime time.Time
}

// get reads one page of a list endpoint: documents updated at or after
// since (zero: all) and, for a capped list, created at or before capAt (zero:
// no cap).
func (c *connector) get(ctx context.Context, l list, page int, since, capAt time.Time) (*listPage, error) {
	return c.getWith(ctx, l, page, since, capAt, nil)
}

// getWith is get with more query parameters (the ids filter of ReadDocs).
func (c *connector) getWith(ctx context.Context, l list, page int, since, capAt time.Time, more url.Values) (*listPage, error) {
	q := url.Values{"limit": {strconv.Itoa(PageSize)}, "page": {strconv.Itoa(page)}}
	if !since.IsZero() {
		q.Set("updated_at_min", since.UTC().Format(isoMillis))
	}
	if l.capped && !capAt.IsZero() {
		q.Set("created_at_max", capAt.UTC().Format(isoMillis))
	}
	if l.deleted {
		q.Set("include_deleted", "true")
	}
	for k, vs := range l.extra {
		q[k] = vs
	}
	for k, vs := range more {
		q[k] = vs
	}
	h := http.Header{"Authorization": {c.auth}, "Accept": {"application/json"}}
	resp, err := c.client.Get(ctx, l.op, c.base+l.path+"?"+q.Encode(), h)
	if err != nil {
		return nil, err
	}
	if !resp.ServerTime.IsZero() {
		c.vendorOffset.Store(int64(resp.ServerTime.Sub(c.client.Clock().Now())))
		c.offsetKnown.Store(true)
	}
	var body struct {
		Data *[]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(resp.Body, &body); err != nil {
		return nil, connectors.Wrap(connectors.KindInvalidResponse, err, fmt.Sprintf("GET %s page %d: the response is not JSON", l.path, page))
	}
	if body.Data == nil {
		return nil, connectors.Errorf(connectors.KindInvalidResponse, "GET %s page %d: the response has no data array", l.path, page)
	}
	lp := &listPage{list: l, page: page, data: *body.Data, total: -1, serverTime: resp.ServerTime}
	pag, err := parsePagination(resp.Header.Get("X-Pagination"))
	if err != nil {
		return nil, connectors.Wrap(connectors.KindInvalidResponse, err, fmt.Sprintf("GET %s page %d: X-Pagination", l.path, page))
	}
	switch {
	case pag.lastPage != nil:
		lp.more = !*pag.lastPage
	case pag.totalPages >= 0:
		lp.more = page < pag.totalPages
	default:
		lp.more = len(lp.data) >= PageSize
	}
	lp.total = pag.totalRecords
	return lp, nil
}

// pagination is the X-Pagination header. The community OpenAPI document
// types every value as a string ("150", "false"); Katana's portal document
// types them as numbers and booleans: both parse.
type pagination struct {
	totalRecords int
	totalPages   int
	lastPage     *bool
}

func parsePagination(h string) (pagination, error) {
	p := pagination{totalRecords: -1, totalPages: -1}
	if strings.TrimSpace(h) == "" {
		return p, nil
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(h), &raw); err != nil {
		return p, fmt.Errorf("not a JSON object: %w", err)
	}
	intOf := func(k string) (int, error) {
		switch v := raw[k].(type) {
		case nil:
			return -1, nil
		case float64:
			return int(v), nil
		case string:
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return -1, fmt.Errorf("%s %q is not a number", k, v)
			}
			return n, nil
		}
		return -1, fmt.Errorf("%s has an unexpected type", k)
	}
	var err error
	if p.totalRecords, err = intOf("total_records"); err != nil {
		return p, err
	}
	if p.totalPages, err = intOf("total_pages"); err != nil {
		return p, err
	}
	switch v := raw["last_page"].(type) {
	case nil:
	case bool:
		p.lastPage = &v
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return p, fmt.Errorf("last_page %q is not a boolean", v)
		}
		p.lastPage = &b
	default:
		return p, fmt.Errorf("last_page has an unexpected type")
	}
	return p, nil
}

// LimitKeys names the rate limiters and quotas the connector's calls count
// against (httpapi.Client.LimitKeys): for tests of credential isolation.
func (c *connector) LimitKeys() []string { return c.client.LimitKeys() }
