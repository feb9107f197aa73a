// Package unleashed is the connector for the Unleashed Software API.
//
// It signs every request as Unleashed requires (api-auth-id,
// api-auth-signature = base64 HMAC-SHA256 of the query string keyed by the
// API key, client-type), puts the page number in the path with pageSize=1000
// (the documented maximum) and stops at Pagination.NumberOfPages, filters
// with modifiedSince (UTC, yyyy-MM-ddTHH:mm:ss) where Unleashed has it, reads
// Microsoft JSON dates, and sends every request through connectors/httpapi
// with the account's monthly call quota. See docs/connectors/unleashed.md.
package unleashed

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// Type is the connector type (the registry key).
const Type = "unleashed"

// DefaultBaseURL is Unleashed's API root.
const DefaultBaseURL = "https://api.unleashedsoftware.com/"

// DefaultHosts are the hosts of Unleashed's published API (the egress
// policy's defaults for the connector).
var DefaultHosts = []string{"api.unleashedsoftware.com"}

// Secret keys.
const (
	KeyAPIID  = "apiId"
	KeyAPIKey = "apiKey"
	// KeyClientType optionally overrides the client-type header
	// ("<partner_or_account>/<app>", lower case).
	KeyClientType = "clientType"
	// KeyMonthlyQuota optionally sets the plan's calls per month, so the
	// connector stops before Unleashed blocks the whole account.
	KeyMonthlyQuota = "monthlyQuota"
)

// DefaultClientType is sent as client-type unless the Secret names one.
const DefaultClientType = "erpsync/erpsync-operator"

// MaxPageSize is the largest pageSize Unleashed honours.
const MaxPageSize = 1000

// Options tune a connector beyond its Config: for simulators, tests and
// benchmarks. The zero value is production behaviour.
type Options struct {
	// TimeScale > 1 compresses the client's clock (waits, quota periods).
	TimeScale float64
	// Clock, when set, replaces the client's clock.
	Clock httpapi.Clock
	// Registry holds the shared limiters; nil means httpapi.SharedRegistry.
	Registry *httpapi.Registry
	// PageSize overrides pageSize (1..1000); 0 means 1000.
	PageSize int
	// MaxRetries and BackoffBase override httpapi's retry policy.
	MaxRetries  int
	BackoffBase time.Duration
}

// New builds an Unleashed connector from cfg. It is a connectors.Factory.
func New(ctx context.Context, cfg connectors.Config) (connectors.Connector, error) {
	return NewWithOptions(ctx, cfg, Options{})
}

// NewWithOptions builds an Unleashed connector with extra options.
func NewWithOptions(_ context.Context, cfg connectors.Config, opts Options) (connectors.Connector, error) {
	id, err := connectors.RequiredKey(cfg.Credentials, KeyAPIID)
	if err != nil {
		return nil, err
	}
	key, err := connectors.RequiredKey(cfg.Credentials, KeyAPIKey)
	if err != nil {
		return nil, err
	}
	clientType := DefaultClientType
	if v := strings.TrimSpace(string(cfg.Credentials[KeyClientType])); v != "" {
		clientType = v
	}
	var quota int64
	if v := strings.TrimSpace(string(cfg.Credentials[KeyMonthlyQuota])); v != "" {
		quota, err = strconv.ParseInt(v, 10, 64)
		if err != nil || quota < 0 {
			return nil, connectors.Errorf(connectors.KindInvalidConfig, "unleashed: Secret key %q must be a whole number of calls", KeyMonthlyQuota)
		}
	}
	base, err := connectors.BaseURL(cfg, Type, DefaultBaseURL, DefaultHosts, true)
	if err != nil {
		return nil, err
	}
	pageSize := opts.PageSize
	if pageSize <= 0 || pageSize > MaxPageSize {
		pageSize = MaxPageSize
	}
	client, err := httpapi.New(httpapi.Options{
		Connector:  Type,
		HTTPClient: cfg.HTTPClient,
		Registry:   opts.Registry,
		Clock:      opts.Clock,
		TimeScale:  opts.TimeScale,
		Log:        cfg.Log,
		// The limiter is shared only by holders of the API key, on this
		// host.
		Secret:      key,
		BaseURL:     base,
		DefaultHost: httpapi.IsDefaultHost(base, DefaultHosts),
		Limits: []httpapi.Limit{{
			// Unleashed counts calls per account per calendar month (UTC);
			// the API id identifies the account's API access.
			Key:    httpapi.Key(Type, id),
			Quotas: []httpapi.Quota{{Name: "month", Limit: quota, Period: httpapi.Monthly}},
		}},
		Classify:    classify,
		MaxRetries:  opts.MaxRetries,
		BackoffBase: opts.BackoffBase,
	})
	if err != nil {
		return nil, fmt.Errorf("unleashed: %w", err)
	}
	return &Connector{cfg: cfg, base: base, id: id, key: key, clientType: clientType, client: client, pageSize: pageSize}, nil
}

// classify recognises Unleashed's answer once the monthly quota is used
// up: every request is refused (403, or 429) with a body naming the limit,
// until 00:00 UTC on the 1st of the next month. A plain 403 stays an
// authentication failure.
func classify(resp *httpapi.Response) error {
	if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusTooManyRequests {
		return nil
	}
	body := bytes.ToLower(resp.Body)
	if !bytes.Contains(body, []byte("limit")) && !bytes.Contains(body, []byte("quota")) {
		return nil
	}
	// The month is Unleashed's (its Date header): httpapi bounds the block
	// by our clock's month end and 31 days, so a server clock far off can
	// only shorten it.
	now := resp.ServerTime
	if now.IsZero() {
		now = resp.VendorNow().UTC()
	}
	reset := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, 1, 0)
	return &connectors.Error{Kind: connectors.KindQuotaExhausted, RetryAt: reset,
		Msg: fmt.Sprintf("Unleashed's monthly API call limit is used up (HTTP %d); calls resume on %s", resp.StatusCode, reset.Format("2006-01-02"))}
}

// Connector reads one Unleashed account.
type Connector struct {
	cfg                 connectors.Config
	base                string
	id, key, clientType string
	client              *httpapi.Client
	pageSize            int
	stock               *stockCache
	// warehouses is the number of warehouses the last stock pass found:
	// the stock listing costs a partial page per warehouse.
	warehouses atomic.Int64
}

// stream is one entity stream.
type stream struct {
	kind     model.Kind
	also     []model.Kind
	path     string
	params   [][2]string
	modified bool // Unleashed documents modifiedSince for the endpoint
	mapItem  itemMapper
	// ids are the parameters of the id listing (reconcile.go): the
	// stream's own without what brings deleted documents (Unleashed leaves
	// obsolete records and the Deleted status out by default) or children
	// (contacts).
	ids [][2]string
	// one are the parameters of a read of one document by Guid.
	one [][2]string
}

var streams = []*stream{
	{kind: model.KindTaxRate, path: "Taxes", mapItem: mapTax},
	{kind: model.KindCurrency, path: "Currencies", mapItem: mapCurrency},
	{kind: model.KindWarehouse, path: "Warehouses", params: [][2]string{{"includeObsolete", "true"}}, modified: true, mapItem: mapWarehouse},
	{kind: model.KindSalesPerson, path: "Salespersons", mapItem: mapSalesperson},
	{kind: model.KindSupplier, path: "Suppliers", params: [][2]string{{"includeObsolete", "true"}}, mapItem: mapSupplier},
	{kind: model.KindCustomer, also: []model.Kind{model.KindContact}, path: "Customers",
		params: [][2]string{{"includeObsolete", "true"}, {"includeAllContacts", "true"}}, modified: true, mapItem: mapCustomer,
		one: [][2]string{{"includeAllContacts", "true"}}},
	{kind: model.KindProduct, path: "Products", params: [][2]string{{"includeObsolete", "true"}}, modified: true, mapItem: mapProduct},
	{kind: model.KindStockLevel, path: "StockOnHand", modified: true, mapItem: mapStock},
	{kind: model.KindPriceRule, path: "ProductPrices", modified: true, mapItem: mapPrice},
	{kind: model.KindSalesOrder, path: "SalesOrders", params: [][2]string{{"orderStatus", "Parked,Placed,Backordered,Completed,Deleted"}}, modified: true, mapItem: mapSalesOrder,
		ids: [][2]string{{"orderStatus", "Parked,Placed,Backordered,Completed"}}},
	{kind: model.KindInvoice, path: "Invoices", params: [][2]string{{"invoiceStatus", "Parked,Completed,Deleted"}}, modified: true, mapItem: mapInvoice,
		ids: [][2]string{{"invoiceStatus", "Parked,Completed"}}},
	{kind: model.KindCreditNote, path: "CreditNotes", params: [][2]string{{"creditStatus", "Parked,Completed,Deleted"}}, modified: true, mapItem: mapCreditNote,
		ids: [][2]string{{"creditStatus", "Parked,Completed"}}},
	{kind: model.KindShipment, path: "SalesShipments", params: [][2]string{{"shipmentStatus", "Parked,Placed,Dispatched,Deleted"}}, modified: true, mapItem: mapShipment,
		ids: [][2]string{{"shipmentStatus", "Parked,Placed,Dispatched"}}},
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
		ep := "GET /" + s.path + "/{page}"
		if s.kind == model.KindStockLevel {
			ep += "?warehouseCode= (per warehouse)"
		}
		out = append(out, connectors.EntityInfo{Name: s.kind, Incremental: s.modified, Also: s.also, Endpoint: ep})
	}
	return out
}

// ListPage implements connectors.Connector.
func (c *Connector) ListPage(ctx context.Context, req connectors.PageRequest) (*connectors.Page, error) {
	s := streamFor(req.Entity)
	if s == nil {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "unleashed has no entity %q", req.Entity)
	}
	if req.Page < 1 {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "unleashed %s: page %d: pages start at 1", req.Entity, req.Page)
	}
	if s.kind == model.KindStockLevel {
		return c.listStock(ctx, s, req)
	}
	return c.listPage(ctx, s, s.params, req.Page, req.Since)
}

// listPage reads one page of s with the given parameters: the stream's
// own for a read, the listing's for an id listing.
func (c *Connector) listPage(ctx context.Context, s *stream, params [][2]string, pageNo int, since time.Time) (*connectors.Page, error) {
	before := c.client.Calls()
	doc, st, err := c.fetchWith(ctx, s, params, pageNo, since, nil)
	page := &connectors.Page{Total: -1, Calls: int(c.client.Calls() - before), ServerTime: st}
	if err != nil {
		return page, err
	}
	page.Records, page.Total, page.SetAside = doc.Records, doc.Total, doc.SetAside
	// Page numbers, with NumberOfItems as the total: every list is in an
	// order that edits do not change (see docs/connectors/unleashed.md), and
	// the engine repeats a pass whose total moved or that read fewer distinct
	// documents than the total. Docs stays nil: each document yields one
	// record of the stream's kind (customers add their contacts).
	page.More = doc.more()
	return page, nil
}

// more is the end-of-data signal: Pagination says this is not the last
// page (and the page is not empty).
func (d *pageDoc) more() bool { return d.Items > 0 && d.PageNumber < d.NumberOfPages }

// fetch reads one page of s, with extra parameters after the stream's own.
func (c *Connector) fetch(ctx context.Context, s *stream, page int, since time.Time, extra [][2]string) (*pageDoc, time.Time, error) {
	return c.fetchWith(ctx, s, s.params, page, since, extra)
}

// fetchWith reads one page of s with params, then extra, then pageSize and
// modifiedSince.
func (c *Connector) fetchWith(ctx context.Context, s *stream, params [][2]string, page int, since time.Time, extra [][2]string) (*pageDoc, time.Time, error) {
	var q query
	for _, p := range params {
		q.add(p[0], p[1])
	}
	for _, p := range extra {
		q.add(p[0], p[1])
	}
	q.add("pageSize", strconv.Itoa(c.pageSize))
	if s.modified && !since.IsZero() {
		q.add("modifiedSince", since.UTC().Format(sinceLayout))
	}
	// The page number goes in the path, so paging never changes the
	// signature.
	resp, err := c.get(ctx, "list_"+string(s.kind), s.path+"/"+strconv.Itoa(page), q)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("unleashed %s page %d: %w", s.kind, page, err)
	}
	doc, err := decodePage(s.kind, s.mapItem, page, resp.Body, c.env(resp))
	return doc, resp.ServerTime, err
}

// get sends one signed GET of path (below the API root) with query q.
func (c *Connector) get(ctx context.Context, op, path string, q query) (*httpapi.Response, error) {
	raw := q.String()
	h := http.Header{}
	h.Set("Accept", "application/json")
	h.Set("Content-Type", "application/json")
	h.Set("api-auth-id", c.id)
	h.Set("api-auth-signature", sign(raw, c.key))
	h.Set("client-type", c.clientType)
	u := c.base + path
	if raw != "" {
		u += "?" + raw
	}
	return c.client.Get(ctx, op, u, h)
}

// env is the mapping environment of a response: records without a
// modified time are stamped with its Date.
func (c *Connector) env(resp *httpapi.Response) mapEnv {
	fetched := resp.ServerTime
	if fetched.IsZero() {
		fetched = c.client.Clock().Now().UTC()
	}
	return mapEnv{Company: c.cfg.CompanyID, Fetched: fetched}
}

// LimitKeys names the rate limiters and quotas the connector's calls count
// against (httpapi.Client.LimitKeys): for tests of credential isolation.
func (c *Connector) LimitKeys() []string { return c.client.LimitKeys() }
