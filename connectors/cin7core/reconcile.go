package cin7core

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// Reconciliation (connectors.IDLister, connectors.DocReader).
//
// Cin7 Core has no id-only endpoint and no field selection: the cheapest
// complete listing of an incremental entity is its own list at the largest
// page (Limit=1000) without any Include* option, so that products come
// without suppliers, BOM or custom prices and customers without their
// product prices. Deprecated products, customers and suppliers are left out
// (IncludeDeprecated defaults to false, as the spec documents): a record
// deprecated without a new LastModifiedOn is then absent and reconciliation
// marks it deleted. Sale lists cannot leave voided sales out (their Status
// filter takes one status): voided sales are listed, as a full read maps
// them (deleted).
//
// Products, customers and suppliers are read by id with the list's exact
// ID filter, one document a request. Stock levels, a full stream without
// an id listing, are read by product id for webhooks (the stock event names
// products): the availability list's ID filter gives the product's rows,
// one request a product (more only past 1000 rows). The sale lists have no id filter:
// a sale is read with GET /sale?ID= for its order number, then its list row
// with Search=<order number> (a substring search, so the rows are matched
// by SaleID): two requests a document.

var (
	_ connectors.IDLister      = (*Connector)(nil)
	_ connectors.DocReader     = (*Connector)(nil)
	_ connectors.DocReadCoster = (*Connector)(nil)
)

// Documents per ReadDocs call: the batch ReadDocs loops over, one request
// a document (two for sales and credit notes), so that one call stays
// within a third of Cin7 Core's 60 calls a minute.
const (
	docsPerRead       = 20
	docsPerReadSearch = 10
)

// IDListing implements connectors.IDLister.
func (c *Connector) IDListing(entity model.Kind) (connectors.IDListingInfo, bool) {
	s := streamFor(entity)
	if s == nil || s.filter == "" {
		return connectors.IDListingInfo{}, false
	}
	return connectors.IDListingInfo{PageSize: c.pageSize,
		Endpoint: fmt.Sprintf("GET /%s?Page=&Limit=%d", s.path, c.pageSize)}, true
}

// ListIDs implements connectors.IDLister: one page of the entity's list,
// read for ids and modified times only.
func (c *Connector) ListIDs(ctx context.Context, req connectors.PageRequest) (*connectors.IDPage, error) {
	s := streamFor(req.Entity)
	if s == nil || s.filter == "" {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "cin7core: entity %q has no id listing", req.Entity)
	}
	if req.Page < 1 {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "cin7core %s ids: page %d: pages start at 1", req.Entity, req.Page)
	}
	resp, calls, err := c.get(ctx, "ids_"+string(s.kind), s.path, c.query(nil, req.Page))
	page := &connectors.IDPage{Total: -1, Calls: calls}
	if err != nil {
		return page, fmt.Errorf("cin7core %s ids page %d: %w", req.Entity, req.Page, err)
	}
	page.ServerTime = resp.ServerTime
	docs, items, total, err := decodeIDs(s, req.Page, resp.Body)
	if err != nil {
		return page, err
	}
	page.Docs, page.Total = docs, total
	page.More = c.more(req.Page, items, total)
	return page, nil
}

// MaxDocsPerRead implements connectors.DocReader.
func (c *Connector) MaxDocsPerRead(entity model.Kind) int {
	s := streamFor(entity)
	switch {
	case s == nil || (s.filter == "" && !s.byProduct):
		return 0
	case s.bySearch:
		return docsPerReadSearch
	default:
		return docsPerRead
	}
}

// RequestsPerDoc implements connectors.DocReadCoster: one request a
// document (a product's stock rows: one past 1000 rows too rare to
// count), two for the sale lists (the sale, then its list row).
func (c *Connector) RequestsPerDoc(entity model.Kind) int {
	switch s := streamFor(entity); {
	case s == nil || (s.filter == "" && !s.byProduct):
		return 0
	case s.bySearch:
		return 2
	default:
		return 1
	}
}

// ReadDocs implements connectors.DocReader: every id is read as a full read
// reads it (the stream's own parameters), children and set-aside rows
// included; ids Cin7 Core does not have are left out. For stock levels an
// id is a product's: its rows in every location.
func (c *Connector) ReadDocs(ctx context.Context, entity model.Kind, ids []string) (*connectors.Page, error) {
	s := streamFor(entity)
	if s == nil || (s.filter == "" && !s.byProduct) {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "cin7core: entity %q cannot be read by id", entity)
	}
	out := &connectors.Page{Total: -1, Docs: []string{}}
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		var err error
		switch {
		case s.bySearch:
			err = c.readSale(ctx, s, id, out)
		case s.byProduct:
			err = c.readStock(ctx, s, id, out)
		default:
			err = c.readByID(ctx, s, id, out)
		}
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// readByID reads one document with the list's ID filter.
func (c *Connector) readByID(ctx context.Context, s *stream, id string, out *connectors.Page) error {
	q := c.query(s.extra, 1)
	q.Set("ID", id)
	page, _, err := c.readPage(ctx, "read_", s, 1, q)
	out.Calls += page.Calls
	if err != nil {
		return fmt.Errorf("cin7core reading %s by id: %w", s.kind, err)
	}
	keep(out, page, id)
	return nil
}

// readStock reads the availability rows of one product with the list's ID
// filter, page by page to the envelope's Total.
func (c *Connector) readStock(ctx context.Context, s *stream, productID string, out *connectors.Page) error {
	found := false
	for n := 1; ; n++ {
		q := c.query(s.extra, n)
		q.Set("ID", productID)
		page, doc, err := c.readPage(ctx, "read_", s, n, q)
		out.Calls += page.Calls
		if err != nil {
			return fmt.Errorf("cin7core reading %s by product: %w", s.kind, err)
		}
		if keepStock(out, page, productID) {
			found = true
		}
		if !c.more(n, doc.Items, doc.Total) {
			break
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if found {
		out.Docs = append(out.Docs, productID)
	}
	return nil
}

// keepStock adds to out the rows of page that belong to product pid (an
// availability row's key starts with its product id); true if any.
func keepStock(out, page *connectors.Page, pid string) bool {
	if out.ServerTime.IsZero() || page.ServerTime.After(out.ServerTime) {
		out.ServerTime = page.ServerTime
	}
	found := false
	for _, r := range page.Records {
		if st, ok := r.Data.(*model.StockLevel); ok && st.ProductVendorID == pid {
			out.Records = append(out.Records, r)
			found = true
		}
	}
	for _, a := range page.SetAside {
		if strings.HasPrefix(a.VendorID, pid+"/") {
			out.SetAside = append(out.SetAside, a)
			found = true
		}
	}
	return found
}

// readSale reads the list row of one sale: its order number from
// GET /sale?ID=, then the rows whose search fields contain it, page by page
// until the sale's row is found.
func (c *Connector) readSale(ctx context.Context, s *stream, id string, out *connectors.Page) error {
	number, found, err := c.saleNumber(ctx, id, out)
	if err != nil || !found {
		return err
	}
	for n := 1; ; n++ {
		q := c.query(s.extra, n)
		q.Set("Search", number)
		page, doc, err := c.readPage(ctx, "read_", s, n, q)
		out.Calls += page.Calls
		if err != nil {
			return fmt.Errorf("cin7core reading %s by order number: %w", s.kind, err)
		}
		if keep(out, page, id) || !c.more(n, doc.Items, doc.Total) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// saleNumber reads a sale's order number (Order.SaleOrderNumber) with
// GET /sale?ID=. A sale Cin7 Core does not have is answered 400 (the
// blueprint's status for a request that fails validation; 404 means an
// endpoint that does not exist): found is then false.
func (c *Connector) saleNumber(ctx context.Context, id string, out *connectors.Page) (string, bool, error) {
	resp, calls, err := c.get(ctx, "read_sale", "sale", url.Values{"ID": {id}})
	out.Calls += calls
	if httpapi.StatusCode(err) == http.StatusBadRequest {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("cin7core reading sale by id: %w", err)
	}
	fail := func(reason string) error {
		return connectors.Errorf(connectors.KindInvalidResponse, "cin7core GET /sale: %s", reason)
	}
	o, err := newObj(resp.Body)
	if err != nil {
		return "", false, fail("the body is not a JSON object")
	}
	orderRaw := o.Get("Order")
	if orderRaw == nil || string(orderRaw) == "null" {
		return "", false, fail("field Order: missing")
	}
	order, err := newObj(orderRaw)
	if err != nil {
		return "", false, fail("field Order: not an object")
	}
	number := order.ReqStr("SaleOrderNumber")
	if order.Err() != nil {
		return "", false, fail("Order." + order.Err().Error())
	}
	return number, true, nil
}

// keep adds to out what page holds of document id: its records (the
// document's own and its children) and set-aside entry. It reports whether
// the document was on the page.
func keep(out, page *connectors.Page, id string) bool {
	if out.ServerTime.IsZero() || page.ServerTime.After(out.ServerTime) {
		out.ServerTime = page.ServerTime
	}
	found := false
	for _, r := range page.Records {
		if r.VendorID == id || r.Parent == id {
			out.Records = append(out.Records, r)
			found = true
		}
	}
	for _, a := range page.SetAside {
		if a.VendorID == id {
			out.SetAside = append(out.SetAside, a)
			found = true
		}
	}
	if found {
		out.Docs = append(out.Docs, id)
	}
	return found
}
