package unleashed

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
	"github.com/erpsync/erpsync-operator/connectors/internal/vendorjson"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// Reconciliation (see docs/connectors/unleashed.md, "Deletions").
//
// Unleashed has no id-only endpoint, no field selection and no summary
// mode, so an entity's id listing is its own list at the largest page
// (pageSize=1000) with the least it can leave out: obsolete records and the
// Deleted status (hidden by default, so the listing asks for neither) and
// customers' inline contacts. Each page is mapped as a read maps it, so an
// id and its version are exactly what a full read stores. The stock
// listing is the stock stream itself (warehouse by warehouse: there is
// nothing smaller), and so is the price listing.

var (
	_ connectors.IDLister      = (*Connector)(nil)
	_ connectors.DocReader     = (*Connector)(nil)
	_ connectors.DocReadCoster = (*Connector)(nil)
)

// IDListing implements connectors.IDLister for the incremental entities.
func (c *Connector) IDListing(entity model.Kind) (connectors.IDListingInfo, bool) {
	s := streamFor(entity)
	if s == nil || !s.modified {
		return connectors.IDListingInfo{}, false
	}
	ep := "GET /" + s.path + "/{page}?" + c.idQuery(s).String()
	extra := 0
	if s.kind == model.KindStockLevel {
		ep = "GET /Warehouses/{page} once, then GET /StockOnHand/{page}?warehouseCode=W&pageSize=" + strconv.Itoa(c.pageSize) + " per warehouse"
		// The warehouse list, and a partial last page per warehouse
		// (as many as the last stock pass found; 10 before one).
		extra = 1 + int(c.warehouses.Load())
		if extra == 1 {
			extra = 11
		}
	}
	return connectors.IDListingInfo{PageSize: c.pageSize, Endpoint: ep, ExtraCalls: extra}, true
}

// idQuery is the listing's query without the page.
func (c *Connector) idQuery(s *stream) query {
	var q query
	for _, p := range s.ids {
		q.add(p[0], p[1])
	}
	q.add("pageSize", strconv.Itoa(c.pageSize))
	return q
}

// ListIDs implements connectors.IDLister: one page of an entity's id
// listing, by page number (the stock listing carries its position in Next,
// as the stock stream does).
func (c *Connector) ListIDs(ctx context.Context, req connectors.PageRequest) (*connectors.IDPage, error) {
	s := streamFor(req.Entity)
	if s == nil || !s.modified {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "unleashed has no id listing of %q", req.Entity)
	}
	if req.Page < 1 {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "unleashed %s ids: page %d: pages start at 1", req.Entity, req.Page)
	}
	var page *connectors.Page
	var err error
	if s.kind == model.KindStockLevel {
		page, err = c.listStock(ctx, s, connectors.PageRequest{Entity: req.Entity, Page: req.Page, Cursor: req.Cursor})
	} else {
		page, err = c.listPage(ctx, s, s.ids, req.Page, time.Time{})
	}
	out := &connectors.IDPage{Total: -1}
	if page != nil {
		out.Total, out.More, out.ServerTime, out.Calls, out.Next = page.Total, page.More, page.ServerTime, page.Calls, page.Next
	}
	if err != nil {
		return out, fmt.Errorf("listing ids: %w", err)
	}
	out.Docs = make([]connectors.DocVersion, 0, len(page.Records)+len(page.SetAside))
	for _, r := range page.Records {
		if r.Kind == s.kind {
			out.Docs = append(out.Docs, connectors.DocVersion{ID: r.VendorID, ModifiedAt: r.ModifiedAt})
		}
	}
	// Rows set aside (product-group prices) count in NumberOfItems as
	// they count in a read's total: they are listed too, so that the
	// listing's distinct ids add up to its total.
	for _, a := range page.SetAside {
		if a.Kind == s.kind {
			out.Docs = append(out.Docs, connectors.DocVersion{ID: a.VendorID, ModifiedAt: a.ModifiedAt})
		}
	}
	return out, nil
}

// Documents one ReadDocs call reads at most. Unleashed reads one document
// by Guid per request (GET /Products/{guid}), and the stock of one product
// in every warehouse per request; ReadDocs loops over a batch. Customer
// prices have no read by id: ReadDocs reads the whole ProductPrices list
// once for any number of ids.
const (
	maxDocsPerRead   = 25
	maxPricesPerRead = 10000
)

// MaxDocsPerRead implements connectors.DocReader.
func (c *Connector) MaxDocsPerRead(entity model.Kind) int {
	s := streamFor(entity)
	switch {
	case s == nil || !s.modified:
		return 0
	case s.kind == model.KindPriceRule:
		return maxPricesPerRead
	default:
		return maxDocsPerRead
	}
}

// RequestsPerDoc implements connectors.DocReadCoster: one request a
// document (a stock row's: one for its product's rows in every
// warehouse); customer prices cost one read of the whole list per call.
func (c *Connector) RequestsPerDoc(entity model.Kind) int {
	if s := streamFor(entity); s == nil || !s.modified || s.kind == model.KindPriceRule {
		return 0
	}
	return 1
}

// ReadDocs implements connectors.DocReader: the documents of entity with
// the given ids, mapped as a read maps them (a customer with its contacts
// and its claim about them); ids Unleashed no longer has (404) are left out.
func (c *Connector) ReadDocs(ctx context.Context, entity model.Kind, ids []string) (*connectors.Page, error) {
	s := streamFor(entity)
	if s == nil || !s.modified {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "unleashed cannot read %q by id", entity)
	}
	if limit := c.MaxDocsPerRead(entity); len(ids) > limit {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "unleashed %s: %d ids, at most %d a call", entity, len(ids), limit)
	}
	before := c.client.Calls()
	page := &connectors.Page{Total: -1}
	var err error
	switch s.kind {
	case model.KindPriceRule:
		err = c.readPrices(ctx, s, ids, page)
	case model.KindStockLevel:
		err = c.readStock(ctx, s, ids, page)
	default:
		err = c.readEach(ctx, s, ids, page)
	}
	page.Calls = int(c.client.Calls() - before)
	return page, err
}

// readEach reads each document with GET /{Endpoint}/{guid}.
func (c *Connector) readEach(ctx context.Context, s *stream, ids []string, page *connectors.Page) error {
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		var q query
		for _, p := range s.one {
			q.add(p[0], p[1])
		}
		doc, ok, err := c.readDoc(ctx, s, s.path+"/"+url.PathEscape(id), q)
		if err != nil {
			return fmt.Errorf("unleashed %s: reading one document: %w", s.kind, err)
		}
		if ok {
			page.Records = append(page.Records, doc.Records...)
			page.SetAside = append(page.SetAside, doc.SetAside...)
		}
	}
	return nil
}

// readStock reads each product's stock with GET
// /StockOnHand/{productGuid}/AllWarehouses and keeps the rows asked for.
func (c *Connector) readStock(ctx context.Context, s *stream, ids []string, page *connectors.Page) error {
	want := map[string]bool{}
	var products []string
	for _, id := range ids {
		want[id] = true
		pid, _, ok := strings.Cut(id, "/")
		if !ok || pid == "" {
			continue // not a stock row's id: Unleashed has no such row
		}
		if !want["product:"+pid] {
			want["product:"+pid] = true
			products = append(products, pid)
		}
	}
	for _, pid := range products {
		if err := ctx.Err(); err != nil {
			return err
		}
		doc, ok, err := c.readDoc(ctx, s, s.path+"/"+url.PathEscape(pid)+"/AllWarehouses", nil)
		if err != nil {
			return fmt.Errorf("unleashed %s: reading one product's stock: %w", s.kind, err)
		}
		if !ok {
			continue
		}
		for _, r := range doc.Records {
			if want[r.VendorID] {
				page.Records = append(page.Records, r)
			}
		}
	}
	return nil
}

// readPrices reads the whole ProductPrices list (Unleashed reads no price
// row by id) and keeps the rows asked for, set-aside ones included.
func (c *Connector) readPrices(ctx context.Context, s *stream, ids []string, page *connectors.Page) error {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	for n := 1; ; n++ {
		doc, st, err := c.fetch(ctx, s, n, time.Time{}, nil)
		if err != nil {
			return err
		}
		page.ServerTime = st
		for _, r := range doc.Records {
			if want[r.VendorID] {
				page.Records = append(page.Records, r)
			}
		}
		for _, a := range doc.SetAside {
			if want[a.VendorID] {
				page.SetAside = append(page.SetAside, a)
			}
		}
		if !doc.more() {
			return nil
		}
	}
}

// readDoc sends one GET of a single document (or one product's stock) and
// maps what comes back; false when Unleashed answers 404. The body may be
// the document itself, a list envelope, or an array of documents.
func (c *Connector) readDoc(ctx context.Context, s *stream, path string, q query) (*pageDoc, bool, error) {
	resp, err := c.get(ctx, "read_"+string(s.kind), path, q)
	if httpapi.StatusCode(err) == http.StatusNotFound {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	body := resp.Body
	if trimmed := strings.TrimSpace(string(body)); trimmed == "" || trimmed == "null" {
		return nil, false, nil
	}
	if wrapped, ok := envelope(body); ok {
		body = wrapped
	}
	doc, err := decodePage(s.kind, s.mapItem, 1, body, c.env(resp))
	return doc, true, err
}

// envelope wraps a single document or an array of documents in the list
// envelope decodePage reads; a body that already is one comes back false.
func envelope(body []byte) ([]byte, bool) {
	var items []json.RawMessage
	if arr, ok := vendorjson.SplitArray(body); ok {
		items = arr
	} else {
		o, err := newObj(body)
		if err != nil || o.Get("Items") != nil || o.Get("Pagination") != nil {
			return nil, false
		}
		items = []json.RawMessage{body}
	}
	b, err := json.Marshal(struct {
		Pagination map[string]int
		Items      []json.RawMessage
	}{map[string]int{"NumberOfItems": len(items), "PageNumber": 1, "NumberOfPages": 1}, items})
	if err != nil {
		return nil, false
	}
	return b, true
}
