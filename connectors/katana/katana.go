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
	"strconv"
	"strings"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// Type is the connector type (the registry key).
const Type = "katana"

// DefaultBaseURL is Katana's API root.
const DefaultBaseURL = "https://api.katanamrp.com/v1"

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
	base := strings.TrimRight(cfg.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	if u, err := url.Parse(base); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "the Katana base URL %q is not an absolute http(s) URL", cfg.BaseURL)
	}
	client, err := httpapi.New(httpapi.Options{
		Connector:  Type,
		HTTPClient: cfg.HTTPClient,
		Registry:   opts.Registry,
		Clock:      opts.Clock,
		TimeScale:  opts.TimeScale,
		MaxRetries: opts.MaxRetries,
		Log:        cfg.Log,
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

	// split remembers how many /products pages precede the /materials pages
	// of the products stream, for the filter it was learned with.
	split *pageSplit
	// lists and listCustomers resolve price-list rows; loaded on the first
	// page of the price_rules stream (or the first page read after a
	// restart).
	lists         map[int64]kPriceList
	listCustomers map[int64][]kPriceListCustomer
}

type pageSplit struct {
	since time.Time
	pages int
}

var entities = []connectors.EntityInfo{
	{Name: model.KindTaxRate, Incremental: true, Endpoint: "GET /tax_rates"},
	{Name: model.KindWarehouse, Incremental: true, Endpoint: "GET /locations"},
	{Name: model.KindCustomer, Incremental: true, Also: []model.Kind{model.KindContact}, Endpoint: "GET /customers"},
	{Name: model.KindProduct, Incremental: true, Endpoint: "GET /products, then GET /materials"},
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

func (c *connector) listPage(ctx context.Context, req connectors.PageRequest) (*connectors.Page, error) {
	switch req.Entity {
	case model.KindTaxRate:
		return c.simple(ctx, "list_tax_rates", "/tax_rates", req, false, (*mapper).taxRate, nil)
	case model.KindWarehouse:
		return c.simple(ctx, "list_locations", "/locations", req, true, (*mapper).location, nil)
	case model.KindCustomer:
		return c.simple(ctx, "list_customers", "/customers", req, true, (*mapper).customer, nil)
	case model.KindSalesOrder:
		return c.simple(ctx, "list_sales_orders", "/sales_orders", req, true, (*mapper).salesOrder, nil)
	case model.KindProduct:
		return c.products(ctx, req)
	case model.KindStockLevel:
		extra := url.Values{"extend": {"variant", "location"}}
		return c.simple(ctx, "list_inventory", "/inventory", connectors.PageRequest{Entity: req.Entity, Page: req.Page}, false, (*mapper).inventory, extra)
	case model.KindPriceRule:
		if req.Page == 1 || c.lists == nil {
			if err := c.loadPriceLists(ctx); err != nil {
				return nil, err
			}
		}
		return c.simple(ctx, "list_price_list_rows", "/price_list_rows", connectors.PageRequest{Entity: req.Entity, Page: req.Page}, false, (*mapper).priceRow, nil)
	}
	return nil, connectors.Errorf(connectors.KindInvalidConfig, "entity %q is not offered by the katana connector", req.Entity)
}

// simple reads one page of one list endpoint and maps it.
func (c *connector) simple(ctx context.Context, op, path string, req connectors.PageRequest, deleted bool, fn func(*mapper, json.RawMessage) ([]model.Record, error), extra url.Values) (*connectors.Page, error) {
	lp, err := c.get(ctx, op, path, req.Page, req.Since, deleted, extra)
	if err != nil {
		return nil, err
	}
	return c.mapPage(lp, fn)
}

func (c *connector) mapPage(lp *listPage, fn func(*mapper, json.RawMessage) ([]model.Record, error)) (*connectors.Page, error) {
	m := lp.mapper
	recs, err := mapAll(lp.data, func(raw json.RawMessage) ([]model.Record, error) { return fn(m, raw) })
	if err != nil {
		return nil, connectors.Wrap(connectors.KindInvalidResponse, err, fmt.Sprintf("GET %s returned a document the connector cannot read", lp.path))
	}
	return &connectors.Page{Records: recs, More: lp.more, Total: lp.total, ServerTime: lp.serverTime}, nil
}

// products reads the products stream: every /products page, then every
// /materials page. Page numbers past the products' last page address the
// materials; the split is learned from X-Pagination.
func (c *connector) products(ctx context.Context, req connectors.PageRequest) (*connectors.Page, error) {
	if c.split == nil || !c.split.since.Equal(req.Since) || req.Page <= c.split.pages {
		lp, err := c.get(ctx, "list_products", "/products", req.Page, req.Since, true, url.Values{"include_archived": {"true"}})
		if err != nil {
			return nil, err
		}
		if lp.pages < 0 {
			return nil, connectors.Errorf(connectors.KindInvalidResponse, "GET /products page %d: no X-Pagination header, so the products cannot be told from the materials", req.Page)
		}
		c.split = &pageSplit{since: req.Since, pages: lp.pages}
		if req.Page <= lp.pages {
			p, err := c.mapPage(lp, (*mapper).item)
			if err != nil {
				return nil, err
			}
			p.More = true // the materials follow
			p.Total = -1  // two lists: no single count
			return p, nil
		}
	}
	lp, err := c.get(ctx, "list_materials", "/materials", req.Page-c.split.pages, req.Since, true, url.Values{"include_archived": {"true"}})
	if err != nil {
		return nil, err
	}
	p, err := c.mapPage(lp, (*mapper).item)
	if err != nil {
		return nil, err
	}
	p.Total = -1
	return p, nil
}

// loadPriceLists reads every price list and every price-list customer, so
// that rows can name their list and customers.
func (c *connector) loadPriceLists(ctx context.Context) error {
	lists := map[int64]kPriceList{}
	custs := map[int64][]kPriceListCustomer{}
	for page := 1; ; page++ {
		lp, err := c.get(ctx, "list_price_lists", "/price_lists", page, time.Time{}, false, nil)
		if err != nil {
			return err
		}
		for i, raw := range lp.data {
			var l kPriceList
			if err := decode(raw, &l); err != nil || l.ID <= 0 {
				return connectors.Errorf(connectors.KindInvalidResponse, "GET /price_lists page %d record %d: not a price list: %v", page, i, errOrID(err))
			}
			lists[l.ID] = l
		}
		if !lp.more {
			break
		}
	}
	for page := 1; ; page++ {
		lp, err := c.get(ctx, "list_price_list_customers", "/price_list_customers", page, time.Time{}, false, nil)
		if err != nil {
			return err
		}
		for i, raw := range lp.data {
			var pc kPriceListCustomer
			if err := decode(raw, &pc); err != nil || pc.PriceListID <= 0 || pc.CustomerID <= 0 {
				return connectors.Errorf(connectors.KindInvalidResponse, "GET /price_list_customers page %d record %d: not a price-list customer: %v", page, i, errOrID(err))
			}
			custs[pc.PriceListID] = append(custs[pc.PriceListID], pc)
		}
		if !lp.more {
			break
		}
	}
	c.lists, c.listCustomers = lists, custs
	return nil
}

func errOrID(err error) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("missing id")
}

// listPage is one decoded list response.
type listPage struct {
	path       string
	data       []json.RawMessage
	more       bool
	total      int
	pages      int // total_pages, or -1 when not given
	serverTime time.Time
	mapper     *mapper
}

// get reads one page of a list endpoint.
func (c *connector) get(ctx context.Context, op, path string, page int, since time.Time, deleted bool, extra url.Values) (*listPage, error) {
	q := url.Values{"limit": {strconv.Itoa(PageSize)}, "page": {strconv.Itoa(page)}}
	if !since.IsZero() {
		q.Set("updated_at_min", since.UTC().Format("2006-01-02T15:04:05.000Z"))
	}
	if deleted {
		q.Set("include_deleted", "true")
	}
	for k, vs := range extra {
		q[k] = vs
	}
	h := http.Header{"Authorization": {c.auth}, "Accept": {"application/json"}}
	resp, err := c.client.Get(ctx, op, c.base+path+"?"+q.Encode(), h)
	if err != nil {
		return nil, err
	}
	var body struct {
		Data *[]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(resp.Body, &body); err != nil {
		return nil, connectors.Wrap(connectors.KindInvalidResponse, err, fmt.Sprintf("GET %s page %d: the response is not JSON", path, page))
	}
	if body.Data == nil {
		return nil, connectors.Errorf(connectors.KindInvalidResponse, "GET %s page %d: the response has no data array", path, page)
	}
	lp := &listPage{path: path, data: *body.Data, total: -1, pages: -1, serverTime: resp.ServerTime}
	now := resp.ServerTime
	if now.IsZero() {
		now = c.client.Clock().Now().UTC()
	}
	lp.mapper = &mapper{company: c.cfg.CompanyID, now: now, lists: c.lists, listCustomers: c.listCustomers}
	pag, err := parsePagination(resp.Header.Get("X-Pagination"))
	if err != nil {
		return nil, connectors.Wrap(connectors.KindInvalidResponse, err, fmt.Sprintf("GET %s page %d: X-Pagination", path, page))
	}
	switch {
	case pag.lastPage != nil:
		lp.more = !*pag.lastPage
	case pag.totalPages >= 0:
		lp.more = page < pag.totalPages
	default:
		lp.more = len(lp.data) >= PageSize
	}
	lp.total, lp.pages = pag.totalRecords, pag.totalPages
	if lp.pages < 0 && !lp.more {
		lp.pages = page
	}
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
