// Package xero reads one Xero organisation through the Xero Accounting API
// (https://api.xero.com/api.xro/2.0): items with their sales and purchase
// prices and, for tracked items, the quantity on hand; contacts as customers
// and suppliers with their contact persons; sales invoices and supplier
// bills with their lines; credit notes; tax rates; currencies.
//
// Xero authenticates with OAuth 2.0. Access tokens last 30 minutes and every
// refresh rotates the refresh token; see token.go for how the connector keeps
// the credentials Secret working through crashes, shared Secrets and edits.
// Every request carries the organisation's xero-tenant-id and Accept:
// application/json, goes through connectors/httpapi with Xero's limits (per
// organisation 60 a minute, 5,000 a day, 5 in flight; per app 10,000 a
// minute) and reads X-Rate-Limit-Problem to tell the minute limit from the
// daily one, which ends the run with QuotaExhausted until its reset.
package xero

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/internal/vendorjson"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// Type is the connector type (the registry key).
const Type = "xero"

// Xero's endpoints.
const (
	DefaultBaseURL        = "https://api.xero.com/api.xro/2.0"
	DefaultTokenURL       = "https://identity.xero.com/connect/token" //nolint:gosec // G101: a public URL, not a credential
	DefaultConnectionsURL = "https://api.xero.com/connections"
)

// DefaultHosts are the hosts of Xero's published API and identity (token)
// endpoints (the egress policy's defaults for the connector).
var DefaultHosts = []string{"api.xero.com", "identity.xero.com"}

// PageSize is the largest pageSize the paged endpoints accept (Contacts,
// Invoices, CreditNotes; 1000 per third-party documentation, the OpenAPI
// document gives no maximum). Items, TaxRates and Currencies are not paged.
const PageSize = 1000

// Xero's limits. The minute windows are a second longer than Xero's so
// that network jitter at a window's edge costs no 429.
var (
	TenantMinute = httpapi.Window{Name: "minute", Limit: 60, Per: 61 * time.Second}
	AppMinute    = httpapi.Window{Name: "appminute", Limit: 10000, Per: 61 * time.Second, Split: true}
	TenantDay    = httpapi.Quota{Name: "day", Limit: 5000, Period: httpapi.Daily}
)

// maxBodyBytes bounds one answer of an unpaged list. Xero does not page
// Items, so an organisation's whole item list arrives at once (about 850
// bytes an item). pagedMaxBodyBytes bounds one page of a paged list
// (Contacts, Invoices, CreditNotes: at most PageSize documents of a few KB):
// only the unpaged lists may take the larger share of the process's body
// budget (httpapi.SetBodyBudget).
const (
	maxBodyBytes      = 256 << 20
	pagedMaxBodyBytes = 32 << 20
)

// TenantConcurrency is the number of calls Xero allows in flight per
// organisation.
const TenantConcurrency = 5

// Options tune a connector beyond its Config: tests, benchmarks and
// simulator demos compress time and isolate limiters and token caches.
type Options struct {
	// TimeScale > 1 compresses limits, Retry-After waits and token
	// lifetimes (match the simulator's TimeScale).
	TimeScale float64
	// Clock overrides the clients' clock (TimeScale is then ignored).
	Clock httpapi.Clock
	// Registry holds the shared limiters; nil means httpapi.SharedRegistry.
	Registry *httpapi.Registry
	// MaxRetries overrides httpapi's default retry budget.
	MaxRetries int
	// tokens replaces the process-wide token cache (tests playing a second
	// manager process).
	tokens *tokenCache
	// pageSize overrides PageSize (tests that need many pages of a small
	// dataset).
	pageSize int
}

// New builds a Xero connector; it is a connectors.Factory. It needs the
// Secret keys clientId, clientSecret and refreshToken, and a writable
// CredentialStore (the refresh token rotates); the organisation is
// cfg.TenantID, else the Secret key tenantId, else the only organisation of
// the connection. It makes no network call.
func New(ctx context.Context, cfg connectors.Config) (connectors.Connector, error) {
	return NewWithOptions(ctx, cfg, Options{})
}

// NewWithOptions is New with Options.
func NewWithOptions(_ context.Context, cfg connectors.Config, opts Options) (connectors.Connector, error) {
	clientID, err := connectors.RequiredKey(cfg.Credentials, "clientId")
	if err != nil {
		return nil, err
	}
	secret, err := connectors.RequiredKey(cfg.Credentials, "clientSecret")
	if err != nil {
		return nil, err
	}
	if _, err := connectors.RequiredKey(cfg.Credentials, "refreshToken"); err != nil {
		return nil, err
	}
	if cfg.CredentialStore == nil {
		return nil, connectors.Errorf(connectors.KindInvalidConfig,
			"Xero rotates its refresh token on every refresh, so the connector must be able to write the credentials Secret back; it was given no credential store")
	}
	c := &connector{cfg: cfg, clientID: strings.TrimSpace(clientID), clientSecret: strings.TrimSpace(secret), store: cfg.CredentialStore,
		storeKey: cfg.CredentialStore.Key(), tokens: opts.tokens, opts: opts, log: cfg.Log}
	if c.tokens == nil {
		c.tokens = sharedTokens
	}
	c.pageSize = PageSize
	if opts.pageSize > 0 {
		c.pageSize = min(opts.pageSize, PageSize)
	}
	c.tenant = strings.TrimSpace(cfg.TenantID)
	if c.tenant == "" {
		c.tenant = strings.TrimSpace(string(cfg.Credentials["tenantId"]))
	}
	if c.base, c.tokenURL, c.connectionsURL, err = endpoints(cfg); err != nil {
		return nil, err
	}
	c.auth, err = httpapi.New(httpapi.Options{Connector: Type, HTTPClient: cfg.HTTPClient, Registry: opts.Registry, Clock: opts.Clock,
		TimeScale: opts.TimeScale, MaxRetries: opts.MaxRetries, Log: cfg.Log, AcceptStatus: []int{http.StatusBadRequest, http.StatusUnauthorized}})
	if err != nil {
		return nil, err
	}
	if c.tenant != "" {
		if err := c.apiClient(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// endpoints derives the API root, the token URL and the connections URL.
// BaseURL overrides the API root, and the connections endpoint then lives
// on the same host (/connections), as on the simulator. The token endpoint,
// which gets the client secret and the refresh token, is never derived from
// BaseURL (a tenant's choice) when the manager has an egress policy: it is
// identity.xero.com unless the Secret key tokenURL names one the policy
// allows. Without a policy (tests, tools) it is <BaseURL's host>/connect/token.
func endpoints(cfg connectors.Config) (base, token, conns string, err error) {
	base = strings.TrimRight(strings.TrimSpace(cfg.BaseURL), "/")
	token, conns = DefaultTokenURL, DefaultConnectionsURL
	if base == "" {
		base = DefaultBaseURL
	} else {
		u, perr := url.Parse(base)
		if perr != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return "", "", "", connectors.Errorf(connectors.KindInvalidConfig, "the Xero base URL %q is not an absolute http(s) URL", cfg.BaseURL)
		}
		if err := connectors.CheckEgress(cfg, DefaultHosts, base); err != nil {
			return "", "", "", fmt.Errorf("xero: base URL: %w", err)
		}
		root := u.Scheme + "://" + u.Host
		conns = root + "/connections"
		if cfg.Egress == nil {
			token = root + "/connect/token"
		}
	}
	if t := strings.TrimSpace(string(cfg.Credentials["tokenURL"])); t != "" {
		u, perr := url.Parse(t)
		if perr != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return "", "", "", connectors.Errorf(connectors.KindInvalidConfig, "the Secret key tokenURL is not an absolute http(s) URL")
		}
		if err := connectors.CheckEgress(cfg, DefaultHosts, t); err != nil {
			return "", "", "", fmt.Errorf("xero: the Secret key tokenURL: %w", err)
		}
		token = t
	}
	return base, token, conns, nil
}

type connector struct {
	cfg                    connectors.Config
	opts                   Options
	log                    logr.Logger
	clientID, clientSecret string
	store                  connectors.CredentialStore
	storeKey               string
	tokens                 *tokenCache
	base, tokenURL         string
	connectionsURL         string
	tenant                 string
	pageSize               int
	auth                   *httpapi.Client // identity endpoints: no API limits
	api                    *httpapi.Client // Accounting API, paged lists: the tenant's and the app's limits
	whole                  *httpapi.Client // Accounting API, unpaged lists: the same limiters, a larger body cap
}

// apiClient builds the Accounting API client once the organisation is known:
// its limits are keyed by app and organisation.
func (c *connector) apiClient() error {
	paged, err := c.newAPIClient(pagedMaxBodyBytes)
	if err != nil {
		return err
	}
	whole, err := c.newAPIClient(maxBodyBytes)
	if err != nil {
		return err
	}
	c.api, c.whole = paged, whole
	return nil
}

// newAPIClient builds an Accounting API client with a body cap; every
// such client of the credential shares the same limiters (same keys).
func (c *connector) newAPIClient(maxBody int64) (*httpapi.Client, error) {
	return httpapi.New(httpapi.Options{
		Connector: Type, HTTPClient: c.cfg.HTTPClient, Registry: c.opts.Registry, Clock: c.opts.Clock, TimeScale: c.opts.TimeScale,
		MaxRetries: c.opts.MaxRetries, Log: c.cfg.Log, ProblemHeader: "X-Rate-Limit-Problem",
		// Every key gets a digest of the client secret and the API host:
		// the tenants of one platform app share its client id, and only
		// holders of its secret, calling Xero, share its limits.
		Secret: c.clientSecret, BaseURL: c.base, DefaultHost: httpapi.IsDefaultHost(c.base, DefaultHosts),
		// Items come whole, unpaged: 30,000 items are about 25 MB.
		MaxBodyBytes: maxBody,
		Limits: []httpapi.Limit{
			{Key: httpapi.Key("xero-app", c.clientID), Windows: []httpapi.Window{AppMinute}},
			{Key: httpapi.Key(Type, c.clientID, strings.ToLower(c.tenant)), Concurrency: TenantConcurrency,
				Windows: []httpapi.Window{TenantMinute}, Quotas: []httpapi.Quota{TenantDay}},
		},
	})
}

var entities = []connectors.EntityInfo{
	{Name: model.KindTaxRate, Incremental: false, Endpoint: "GET /TaxRates"},
	{Name: model.KindCurrency, Incremental: false, Endpoint: "GET /Currencies"},
	{Name: model.KindCustomer, Incremental: true, Also: []model.Kind{model.KindSupplier, model.KindContact}, Endpoint: "GET /Contacts"},
	// Items come whole in one call either way (Xero does not page them), and
	// a stock movement need not bump an item's UpdatedDateUTC: read in full.
	{Name: model.KindProduct, Incremental: false, Also: []model.Kind{model.KindStockLevel}, Endpoint: "GET /Items"},
	{Name: model.KindInvoice, Incremental: true, Endpoint: "GET /Invoices"},
	{Name: model.KindCreditNote, Incremental: true, Endpoint: "GET /CreditNotes"},
}

// Entities implements connectors.Connector.
func (c *connector) Entities() []connectors.EntityInfo {
	return append([]connectors.EntityInfo(nil), entities...)
}

// endpoint describes how one stream is read.
type endpoint struct {
	op, path, list string
	paged          bool
	incremental    bool
	extra          url.Values
	fn             func(*mapper, json.RawMessage) ([]model.Record, error)
	// summary is what the id listing adds to the list request for Xero's
	// lighter documents (summaryOnly=true), nil where Xero has none.
	summary url.Values
	// byIDs names the list's filter by a comma-separated list of ids
	// (IDs), empty where Xero has none and ReadDocs asks for each document
	// at path/{id}.
	byIDs string
	// mixed is set when the list holds documents that map to no record of
	// the stream's kind (suppliers among the contacts): its pagination
	// count is then no count of the stream's records.
	mixed bool
}

var byKind = map[model.Kind]endpoint{
	model.KindTaxRate:  {op: "list_tax_rates", path: "/TaxRates", list: "TaxRates", fn: (*mapper).taxRate},
	model.KindCurrency: {op: "list_currencies", path: "/Currencies", list: "Currencies", fn: (*mapper).currency},
	model.KindCustomer: {op: "list_contacts", path: "/Contacts", list: "Contacts", paged: true, incremental: true,
		extra: url.Values{"includeArchived": {"true"}, "order": {"UpdatedDateUTC ASC"}}, fn: (*mapper).contact,
		summary: url.Values{"summaryOnly": {"true"}}, byIDs: "IDs", mixed: true},
	model.KindProduct: {op: "list_items", path: "/Items", list: "Items",
		extra: url.Values{"unitdp": {"4"}}, fn: (*mapper).item},
	model.KindInvoice: {op: "list_invoices", path: "/Invoices", list: "Invoices", paged: true, incremental: true,
		extra: url.Values{"includeArchived": {"true"}, "order": {"UpdatedDateUTC ASC"}, "unitdp": {"4"}}, fn: (*mapper).invoice,
		summary: url.Values{"summaryOnly": {"true"}}, byIDs: "IDs"},
	// GET /CreditNotes has neither summaryOnly nor an IDs filter.
	model.KindCreditNote: {op: "list_credit_notes", path: "/CreditNotes", list: "CreditNotes", paged: true, incremental: true,
		extra: url.Values{"order": {"UpdatedDateUTC ASC"}, "unitdp": {"4"}}, fn: (*mapper).creditNote},
}

// ListPage implements connectors.Connector.
func (c *connector) ListPage(ctx context.Context, req connectors.PageRequest) (*connectors.Page, error) {
	ep, ok := byKind[req.Entity]
	if !ok {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "entity %q is not offered by the xero connector", req.Entity)
	}
	if req.Page < 1 {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "xero %s: page %d: pages are numbered from 1", req.Entity, req.Page)
	}
	before := c.calls()
	page, err := c.listPage(ctx, req, ep, nil)
	calls := int(c.calls() - before)
	if err != nil {
		return &connectors.Page{Calls: calls, Total: -1}, c.explain(req, err)
	}
	page.Calls = calls
	return page, nil
}

func (c *connector) calls() int64 {
	n := c.auth.Calls()
	if c.api != nil {
		n += c.api.Calls() + c.whole.Calls()
	}
	return n
}

func (c *connector) explain(req connectors.PageRequest, err error) error {
	return fmt.Errorf("xero %s page %d: %w", req.Entity, req.Page, err)
}

// listPage reads one page of a stream; mode holds query parameters that
// change the documents' form, not which documents are listed (the id
// listing's summaryOnly).
func (c *connector) listPage(ctx context.Context, req connectors.PageRequest, ep endpoint, mode url.Values) (*connectors.Page, error) {
	if !ep.paged && req.Page > 1 {
		return &connectors.Page{Total: -1}, nil // the whole list came with page 1
	}
	since := time.Time{}
	if ep.incremental {
		since = req.Since
	}
	// Paged lists are read by keyset (keyset.go): the cursor, not the
	// engine's page number, says where a page starts. A pass without a
	// cursor beyond page 1 resumes a checkpoint written by page number.
	at := startCursor(since, req.Page)
	if ep.paged && req.Cursor != "" {
		cur, err := parseCursor(req.Cursor)
		if err != nil {
			// Not ours (a checkpoint of another version): reading the
			// window again from its start loses nothing.
			c.log.Info("the checkpoint's cursor does not parse; reading the pass's window again from its start", "entity", req.Entity, "error", err.Error())
			cur = startCursor(since, 1)
		}
		at = cur
	}
	q := ep.query(mode)
	if ep.paged {
		since = at.since
		q.Set("page", strconv.Itoa(at.page))
		q.Set("pageSize", strconv.Itoa(c.pageSize))
	}
	var seen func(string, time.Time) bool
	if ep.paged && len(at.seen) > 0 {
		seen = at.wasSeen
	}
	// The page is decoded as it arrives: it costs its documents, not the
	// body besides (issue 12).
	var (
		env map[string]json.RawMessage
		got *mapped
		n   int
	)
	resp, err := c.getStream(ctx, ep.op, ep.path, q, since, ep.paged, func(resp *httpapi.Response, body io.Reader) (err error) {
		env, got, n, err = c.decodeFrom(req.Entity, ep, resp, body, seen)
		return err
	})
	if err != nil {
		return nil, err
	}
	page := &connectors.Page{Records: got.recs, Total: -1, ServerTime: resp.ServerTime, Docs: got.ids(), SetAside: got.aside}
	if !ep.paged {
		page.Total = n
		return page, nil
	}
	var pag struct {
		Pagination *struct {
			Page      int `json:"page"`
			PageSize  int `json:"pageSize"`
			PageCount int `json:"pageCount"`
			ItemCount int `json:"itemCount"`
		} `json:"pagination"`
	}
	if raw, ok := env["pagination"]; ok {
		if err := json.Unmarshal(raw, &pag.Pagination); err != nil {
			return nil, connectors.Wrap(connectors.KindInvalidResponse, err, fmt.Sprintf("GET %s: the pagination object does not parse", ep.path))
		}
	}
	if p := pag.Pagination; p != nil && p.PageCount >= 0 {
		page.More = at.page < p.PageCount
		if req.Cursor == "" && req.Page == 1 {
			// The first page's count is the whole pass's; later pages
			// count only what follows their cursor.
			page.Total = p.ItemCount
		}
	} else {
		page.More = n >= c.pageSize
	}
	if page.More {
		next, ordered := at.next(got.docs, c.pageSize/2)
		if !ordered {
			c.log.Info("Xero returned a page out of UpdatedDateUTC order; reading on by page number within the window", "entity", req.Entity, "page", req.Page)
		}
		page.Next = next.String()
	}
	return page, nil
}

// query is the list request's parameters: the stream's own, then mode's.
func (ep endpoint) query(mode url.Values) url.Values {
	q := url.Values{}
	for k, v := range ep.extra {
		q[k] = v
	}
	for k, v := range mode {
		q[k] = v
	}
	return q
}

// decode reads the list of a response and maps its documents (dropping
// those seen says were read already); it returns the envelope, the mapped
// page and the number of documents the list held.
func (c *connector) decode(entity model.Kind, ep endpoint, resp *httpapi.Response, seen func(string, time.Time) bool) (map[string]json.RawMessage, *mapped, int, error) {
	return c.decodeFrom(entity, ep, resp, bytes.NewReader(resp.Body), seen)
}

// decodeFrom is decode reading the body from body, as it arrives: the
// envelope is never held whole, each document is a copy of its own.
func (c *connector) decodeFrom(entity model.Kind, ep endpoint, resp *httpapi.Response, body io.Reader, seen func(string, time.Time) bool) (map[string]json.RawMessage, *mapped, int, error) {
	var data []json.RawMessage
	env, ok, err := vendorjson.StreamList(body, ep.list, func(raw json.RawMessage) error {
		data = append(data, raw)
		return nil
	})
	if err != nil {
		return nil, nil, 0, connectors.Wrap(connectors.KindInvalidResponse, err, fmt.Sprintf("GET %s: the response is not JSON with a list %s", ep.path, ep.list))
	}
	if !ok {
		return nil, nil, 0, connectors.Errorf(connectors.KindInvalidResponse, "GET %s: the response has no %s list", ep.path, ep.list)
	}
	now := resp.ServerTime
	if now.IsZero() {
		now = c.auth.Clock().Now().UTC()
	}
	// Lists without a modified time are stamped with the response's second:
	// the record's content, not this stamp, tells the sinks whether it
	// changed.
	m := &mapper{company: c.cfg.CompanyID, now: now.UTC().Truncate(time.Second)}
	got, err := mapAll(c.cfg.CompanyID, data, func(raw json.RawMessage) ([]model.Record, error) { return ep.fn(m, raw) }, seen)
	if err != nil {
		return nil, nil, 0, connectors.Wrap(connectors.KindInvalidResponse, err, fmt.Sprintf("GET %s returned a document the connector cannot read", ep.path))
	}
	if len(got.aside) > 0 {
		c.log.Info("set aside Xero documents the connector does not map", "entity", entity, "count", len(got.aside), "first", got.aside[0].VendorID)
	}
	return env, got, len(data), nil
}

// get sends one Accounting API request with a valid access token, the
// organisation and, for incremental reads, If-Modified-Since. A 401 (the
// token was refused before its time) gets one fresh token and one retry.
func (c *connector) get(ctx context.Context, op, path string, q url.Values, since time.Time, paged bool) (*httpapi.Response, error) {
	return c.getStream(ctx, op, path, q, since, paged, nil)
}

// getStream is get with the answer's body decoded by decode as it arrives
// (httpapi.Client.GetStream); nil decode reads it whole into the Response.
func (c *connector) getStream(ctx context.Context, op, path string, q url.Values, since time.Time, paged bool, decode httpapi.BodyDecoder) (*httpapi.Response, error) {
	if c.api == nil {
		tenant, err := c.discoverTenant(ctx)
		if err != nil {
			return nil, err
		}
		c.tenant = tenant
		if err := c.apiClient(); err != nil {
			return nil, err
		}
	}
	target := c.base + path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	for attempt := 1; ; attempt++ {
		tok, err := c.accessToken(ctx)
		if err != nil {
			return nil, err
		}
		h := http.Header{"Authorization": {"Bearer " + tok}, "xero-tenant-id": {c.tenant}, "Accept": {"application/json"}}
		if !since.IsZero() {
			// Xero compares to the second, in UTC; rounding down never
			// skips a change.
			h.Set("If-Modified-Since", since.UTC().Truncate(time.Second).Format("2006-01-02T15:04:05Z"))
		}
		cl := c.whole
		if paged {
			cl = c.api
		}
		resp, err := cl.GetStream(ctx, op, target, h, decode)
		if err == nil {
			return resp, nil
		}
		switch httpapi.StatusCode(err) {
		case http.StatusUnauthorized:
			c.dropAccessToken(tok)
			if attempt == 1 {
				continue
			}
			return nil, connectors.Wrap(connectors.KindAuthenticationFailed, err, "Xero refused a freshly issued access token")
		case http.StatusForbidden:
			// The token may have lost the organisation or its scopes: never
			// send it again.
			c.dropAccessToken(tok)
			return nil, connectors.Wrap(connectors.KindAuthenticationFailed, err, fmt.Sprintf(
				"Xero refused access to organisation %s: the connection does not reach it or lacks the read scopes; check tenantId and reconnect the app", c.tenant))
		}
		return nil, err
	}
}

// LimitKeys names the rate limiters and quotas the Accounting API calls
// count against (httpapi.Client.LimitKeys), nil until the organisation is
// known: for tests of credential isolation.
func (c *connector) LimitKeys() []string {
	if c.api == nil {
		return nil
	}
	return c.api.LimitKeys()
}
