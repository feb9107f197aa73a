// Package cin7core is the connector for Cin7 Core (formerly DEAR Inventory),
// External API v2.
//
// It authenticates with the api-auth-accountid and api-auth-applicationkey
// headers, pages with Page and Limit=1000 (the documented maximum) and stops
// at the envelope's Total, filters products, customers and suppliers with
// ModifiedSince and sale lists with UpdatedSince (UTC, yyyy-MM-ddTHH:mm:ss.fff),
// and sends every request through connectors/httpapi with Cin7 Core's limit
// of 60 calls a minute per API application, treating 429 and 503 as
// throttling.
//
// Cin7 Core documents no list order and no sort parameter, and its filters
// are lower bounds only, so no entity can be read by keyset: every page
// reports the envelope's Total and the vendor ids of its documents
// (Page.Docs), and the engine repeats a pass that read fewer distinct
// documents than the total. Documents the mapping cannot key (a credit note
// row of an Advanced Sale) are set aside, never fatal. See
// docs/connectors/cin7core.md.
package cin7core

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// Type is the connector type (the registry key).
const Type = "cin7core"

// DefaultBaseURL is Cin7 Core's API root.
const DefaultBaseURL = "https://inventory.dearsystems.com/ExternalApi/v2/"

// DefaultHosts are the hosts of Cin7 Core's published API (the egress
// policy's defaults for the connector).
var DefaultHosts = []string{"inventory.dearsystems.com"}

// Secret keys.
const (
	KeyAccountID      = "accountId"
	KeyApplicationKey = "applicationKey"
)

// Cin7 Core's documented limits.
const (
	// MaxPageSize is the largest Limit Cin7 Core honours.
	MaxPageSize = 1000
	// CallsPerMinute is the limit per API application.
	CallsPerMinute = 60
)

// minuteGuard widens the client's minute window. Cin7 Core counts a call
// when it arrives; a client sending at exactly 60 a minute sees calls
// arrive a little early (network jitter) and refused, which costs a whole
// minute's wait. A second's guard costs under 2 % of throughput.
const minuteGuard = time.Second

// Options tune a connector beyond its Config: for simulators, tests and
// benchmarks. The zero value is production behaviour.
type Options struct {
	// TimeScale > 1 compresses the client's clock (rate windows, waits).
	TimeScale float64
	// Clock, when set, replaces the client's clock.
	Clock httpapi.Clock
	// Registry holds the shared limiters; nil means httpapi.SharedRegistry.
	Registry *httpapi.Registry
	// PageSize overrides Limit (1..1000); 0 means 1000.
	PageSize int
	// MaxRetries, BackoffBase and ThrottleWait override httpapi's retry
	// policy (0: defaults; ThrottleWait defaults to a minute).
	MaxRetries   int
	BackoffBase  time.Duration
	ThrottleWait time.Duration
}

// New builds a Cin7 Core connector from cfg. It is a connectors.Factory.
func New(ctx context.Context, cfg connectors.Config) (connectors.Connector, error) {
	return NewWithOptions(ctx, cfg, Options{})
}

// NewWithOptions builds a Cin7 Core connector with extra options.
func NewWithOptions(_ context.Context, cfg connectors.Config, opts Options) (connectors.Connector, error) {
	account, err := connectors.RequiredKey(cfg.Credentials, KeyAccountID)
	if err != nil {
		return nil, err
	}
	appKey, err := connectors.RequiredKey(cfg.Credentials, KeyApplicationKey)
	if err != nil {
		return nil, err
	}
	base, err := connectors.BaseURL(cfg, Type, DefaultBaseURL, DefaultHosts, true)
	if err != nil {
		return nil, err
	}
	pageSize := opts.PageSize
	if pageSize <= 0 || pageSize > MaxPageSize {
		pageSize = MaxPageSize
	}
	throttleWait := opts.ThrottleWait
	if throttleWait <= 0 {
		throttleWait = time.Minute
	}
	client, err := httpapi.New(httpapi.Options{
		Connector:  Type,
		HTTPClient: cfg.HTTPClient,
		Registry:   opts.Registry,
		Clock:      opts.Clock,
		TimeScale:  opts.TimeScale,
		Log:        cfg.Log,
		// Shared only by holders of the application key, on this host.
		Secret:      appKey,
		BaseURL:     base,
		DefaultHost: httpapi.IsDefaultHost(base, DefaultHosts),
		Limits: []httpapi.Limit{{
			// Limits apply per API application: key by account and
			// application, hashed by httpapi.Key.
			Key:     httpapi.Key(Type, account, appKey),
			Windows: []httpapi.Window{{Name: "minute", Limit: CallsPerMinute, Per: time.Minute + minuteGuard}},
		}},
		ThrottleCodes: []int{http.StatusTooManyRequests, http.StatusServiceUnavailable},
		ThrottleWait:  throttleWait,
		MaxRetries:    opts.MaxRetries,
		BackoffBase:   opts.BackoffBase,
	})
	if err != nil {
		return nil, fmt.Errorf("cin7core: %w", err)
	}
	h := http.Header{}
	h.Set("api-auth-accountid", account)
	h.Set("api-auth-applicationkey", appKey)
	h.Set("Accept", "application/json")
	return &Connector{cfg: cfg, base: base, client: client, header: h, pageSize: pageSize}, nil
}

// Connector reads one Cin7 Core account.
type Connector struct {
	cfg      connectors.Config
	base     string
	client   *httpapi.Client
	header   http.Header
	pageSize int
}

// stream is one entity stream: an endpoint, its list key, its filter.
type stream struct {
	kind    model.Kind
	also    []model.Kind
	path    string
	listKey string
	// filter is the modified-since parameter, "" for full streams.
	filter  string
	extra   url.Values
	mapItem itemMapper
	// idField and modField are the fields the mapper reads the document's
	// vendor id and modified time from (for the id listing).
	idField, modField string
	// bySearch is set for the sale lists, which take no id filter: a
	// document is read by id through its sale's order number (see
	// ReadDocs).
	bySearch bool
	// byProduct is set for the availability list, a full stream read by
	// product id (its ID filter) for webhooks: a "document" is the stock
	// rows of one product (see ReadDocs).
	byProduct bool
}

var streams = []*stream{
	{kind: model.KindTaxRate, path: "ref/tax", listKey: "TaxRuleList", mapItem: mapTaxRule},
	{kind: model.KindWarehouse, path: "ref/location", listKey: "LocationList", mapItem: mapLocation},
	{kind: model.KindSupplier, path: "supplier", listKey: "SupplierList", filter: "ModifiedSince",
		extra: url.Values{"IncludeDeprecated": {"true"}}, mapItem: mapSupplier, idField: "ID", modField: "LastModifiedOn"},
	{kind: model.KindCustomer, also: []model.Kind{model.KindContact, model.KindPriceRule}, path: "customer", listKey: "CustomerList",
		filter: "ModifiedSince", extra: url.Values{"IncludeDeprecated": {"true"}, "IncludeProductPrices": {"true"}}, mapItem: mapCustomer,
		idField: "ID", modField: "LastModifiedOn"},
	{kind: model.KindProduct, path: "product", listKey: "Products", filter: "ModifiedSince",
		extra: url.Values{"IncludeDeprecated": {"true"}}, mapItem: mapProduct, idField: "ID", modField: "LastModifiedOn"},
	{kind: model.KindStockLevel, path: "ref/productavailability", listKey: "ProductAvailabilityList", mapItem: mapAvailability, byProduct: true},
	{kind: model.KindSalesOrder, also: []model.Kind{model.KindInvoice, model.KindShipment}, path: "saleList", listKey: "SaleList",
		filter: "UpdatedSince", mapItem: mapSale, idField: "SaleID", modField: "Updated", bySearch: true},
	{kind: model.KindCreditNote, path: "saleCreditNoteList", listKey: "SaleList", filter: "UpdatedSince", mapItem: mapCreditNote,
		idField: "SaleID", modField: "Updated", bySearch: true},
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
		if s.filter != "" {
			ep += "?" + s.filter + "="
		}
		out = append(out, connectors.EntityInfo{Name: s.kind, Incremental: s.filter != "", Also: s.also, Endpoint: ep})
	}
	return out
}

// ListPage implements connectors.Connector.
func (c *Connector) ListPage(ctx context.Context, req connectors.PageRequest) (*connectors.Page, error) {
	s := streamFor(req.Entity)
	if s == nil {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "cin7core has no entity %q", req.Entity)
	}
	if req.Page < 1 {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "cin7core %s: page %d: pages start at 1", req.Entity, req.Page)
	}
	q := c.query(s.extra, req.Page)
	if s.filter != "" && !req.Since.IsZero() {
		q.Set(s.filter, req.Since.UTC().Format(sinceLayout))
	}
	page, doc, err := c.readPage(ctx, "list_", s, req.Page, q)
	if err != nil {
		return page, err
	}
	page.More = c.more(req.Page, doc.Items, doc.Total)
	return page, nil
}

// query is the query of a list page: the stream's extra parameters, Page
// and Limit.
func (c *Connector) query(extra url.Values, page int) url.Values {
	q := url.Values{}
	for k, v := range extra {
		q[k] = v
	}
	q.Set("Page", strconv.Itoa(page))
	q.Set("Limit", strconv.Itoa(c.pageSize))
	return q
}

// get sends one GET of path?q and returns the response and the calls it
// cost (retries included).
func (c *Connector) get(ctx context.Context, op, path string, q url.Values) (*httpapi.Response, int, error) {
	before := c.client.Calls()
	resp, err := c.client.Get(ctx, op, c.base+path+"?"+q.Encode(), c.header)
	return resp, int(c.client.Calls() - before), err
}

// readPage reads and maps one page of stream s with query q: what ListPage
// and ReadDocs share. op prefixes the request's metric name.
func (c *Connector) readPage(ctx context.Context, op string, s *stream, n int, q url.Values) (*connectors.Page, *pageDoc, error) {
	resp, calls, err := c.get(ctx, op+string(s.kind), s.path, q)
	page := &connectors.Page{Total: -1, Calls: calls}
	if err != nil {
		return page, nil, fmt.Errorf("cin7core %s page %d: %w", s.kind, n, err)
	}
	page.ServerTime = resp.ServerTime
	fetched := resp.ServerTime
	if fetched.IsZero() {
		fetched = c.client.Clock().Now().UTC()
	}
	doc, err := decodePage(s, n, resp.Body, mapEnv{Company: c.cfg.CompanyID, Fetched: fetched})
	if err != nil {
		return page, nil, err
	}
	page.Records = doc.Records
	page.Total = doc.Total
	page.Docs = doc.Docs
	page.SetAside = doc.SetAside
	return page, doc, nil
}

// more is Cin7 Core's end of data: another page follows while the records
// before this page plus this page's are fewer than the envelope's Total
// (and this page held any), or, without a Total, while pages are full.
func (c *Connector) more(page, items, total int) bool {
	seen := (page-1)*c.pageSize + items
	if total >= 0 {
		return items > 0 && seen < total
	}
	return items == c.pageSize
}

// LimitKeys names the rate limiters and quotas the connector's calls count
// against (httpapi.Client.LimitKeys): for tests of credential isolation.
func (c *Connector) LimitKeys() []string { return c.client.LimitKeys() }
