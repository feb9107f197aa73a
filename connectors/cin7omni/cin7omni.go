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
	base := cfg.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "cin7omni: base URL %q is not an http(s) URL", base)
	}
	if !strings.HasSuffix(base, "/") {
		base += "/"
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
	// order is sent as order=; "" leaves Omni's default.
	order   string
	mapItem itemMapper
}

var streams = []*stream{
	{kind: model.KindWarehouse, path: "v1/Branches", modified: true, order: "Id ASC", mapItem: mapBranch},
	{kind: model.KindSalesPerson, path: "v1/Users", order: "Id ASC", mapItem: mapUser},
	{kind: model.KindSupplier, path: "v1/Contacts", where: "Type='Supplier'", modified: true, order: "Id ASC", mapItem: mapSupplier},
	{kind: model.KindCustomer, also: []model.Kind{model.KindContact}, path: "v1/Contacts", where: "Type='Customer'", modified: true, order: "Id ASC", mapItem: mapCustomer},
	{kind: model.KindProduct, also: []model.Kind{model.KindPriceRule}, path: "v1/Products", modified: true, order: "Id ASC", mapItem: mapProduct},
	{kind: model.KindStockLevel, path: "v1/Stock", modified: true, mapItem: mapStock},
	{kind: model.KindSalesOrder, also: []model.Kind{model.KindInvoice, model.KindShipment}, path: "v1/SalesOrders", modified: true, order: "Id ASC", mapItem: mapSalesOrder},
	{kind: model.KindCreditNote, path: "v1/CreditNotes", modified: true, order: "Id ASC", mapItem: mapCreditNote},
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

// where returns the where clause of a page request.
func (s *stream) whereClause(since time.Time) string {
	var conds []string
	if s.where != "" {
		conds = append(conds, s.where)
	}
	if s.modified && !since.IsZero() {
		// Seconds, rounded down: the window only widens. >= because Omni's
		// boundary semantics are the client's choice.
		conds = append(conds, "ModifiedDate>='"+since.UTC().Format(sinceLayout)+"'")
	}
	return strings.Join(conds, " AND ")
}

// ListPage implements connectors.Connector.
func (c *Connector) ListPage(ctx context.Context, req connectors.PageRequest) (*connectors.Page, error) {
	s := streamFor(req.Entity)
	if s == nil {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "cin7omni has no entity %q", req.Entity)
	}
	if req.Page < 1 {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "cin7omni %s: page %d: pages start at 1", req.Entity, req.Page)
	}
	q := url.Values{}
	if w := s.whereClause(req.Since); w != "" {
		q.Set("where", w)
	}
	if s.order != "" {
		q.Set("order", s.order)
	}
	q.Set("page", strconv.Itoa(req.Page))
	q.Set("rows", strconv.Itoa(c.rows))
	before := c.client.Calls()
	resp, err := c.client.Get(ctx, "list_"+string(s.kind), c.base+s.path+"?"+q.Encode(), c.header)
	page := &connectors.Page{Total: -1, Calls: int(c.client.Calls() - before)}
	if err != nil {
		return page, fmt.Errorf("cin7omni %s page %d: %w", req.Entity, req.Page, err)
	}
	page.ServerTime = resp.ServerTime
	fetched := resp.ServerTime
	if fetched.IsZero() {
		fetched = c.client.Clock().Now().UTC()
	}
	recs, items, err := decodePage(s.kind, s.mapItem, req.Page, resp.Body, mapEnv{Company: c.cfg.CompanyID, Fetched: fetched})
	if err != nil {
		return page, err
	}
	page.Records = recs
	// End of data: a page shorter than rows (Omni sends no total).
	page.More = items == c.rows
	return page, nil
}
