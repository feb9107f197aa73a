package xero

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

// Reconciliation (connectors.IDLister, connectors.DocReader).
//
// Contacts, invoices and credit notes are read incrementally. Their id
// listing is the stream's own keyset read (keyset.go) over the whole list,
// page size 1000, in the smallest form Xero serves: summaryOnly=true on
// Contacts and Invoices (Xero's lighter documents, without addresses,
// people, lines or balances); GET /CreditNotes has no summary mode and is
// listed whole. Each listed document is mapped as a full read maps it, and
// the listing keeps the version (UpdatedDateUTC) of the record of the
// stream's kind it gives, or of the set-aside document where it gives none
// (a type the connector does not map): the listing and a full read agree
// by construction. Contacts that are suppliers only map to no customer and
// are left out; the contacts' pagination count then counts more than the
// listing, so their listing reports no total.
//
// Reading chosen documents: Contacts and Invoices take a comma-separated
// IDs filter (with page=1, so that Xero returns whole documents: invoices
// come without lines on an unpaged list); credit notes are read one GET
// /CreditNotes/{CreditNoteID} each, Xero's only way to choose them.

// maxIDsPerRead bounds the ids of one IDs filter: 50 GUIDs make a query of
// about 2 KB. Xero documents no limit; the bound is an assumption that
// keeps the URL well under common 8 KB request-line limits.
const maxIDsPerRead = 50

// creditNotesPerRead is how many credit notes one ReadDocs call reads, one
// request each.
const creditNotesPerRead = 10

// IDListing implements connectors.IDLister.
func (c *connector) IDListing(entity model.Kind) (connectors.IDListingInfo, bool) {
	ep, ok := byKind[entity]
	if !ok || !ep.incremental {
		return connectors.IDListingInfo{}, false
	}
	q := ep.query(ep.summary)
	q.Set("pageSize", strconv.Itoa(c.pageSize))
	return connectors.IDListingInfo{PageSize: c.pageSize, Endpoint: "GET " + ep.path + "?" + q.Encode()}, true
}

// ListIDs implements connectors.IDLister: one page of the keyset read of
// the whole list in its summary form (Since is ignored: a listing is
// complete).
func (c *connector) ListIDs(ctx context.Context, req connectors.PageRequest) (*connectors.IDPage, error) {
	ep, ok := byKind[req.Entity]
	if !ok || !ep.incremental {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "the xero connector lists no ids of entity %q", req.Entity)
	}
	if req.Page < 1 {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "xero %s id listing: page %d: pages are numbered from 1", req.Entity, req.Page)
	}
	before := c.calls()
	page, err := c.listPage(ctx, connectors.PageRequest{Entity: req.Entity, Page: req.Page, Cursor: req.Cursor}, ep, ep.summary)
	calls := int(c.calls() - before)
	if err != nil {
		return &connectors.IDPage{Calls: calls, Total: -1}, fmt.Errorf("xero %s id listing page %d: %w", req.Entity, req.Page, err)
	}
	out := &connectors.IDPage{More: page.More, Total: page.Total, ServerTime: page.ServerTime, Calls: calls, Next: page.Next,
		Docs: make([]connectors.DocVersion, 0, len(page.Records)+len(page.SetAside))}
	if ep.mixed {
		out.Total = -1
	}
	for _, r := range page.Records {
		if r.Kind == req.Entity {
			out.Docs = append(out.Docs, connectors.DocVersion{ID: r.VendorID, ModifiedAt: r.ModifiedAt})
		}
	}
	for _, a := range page.SetAside {
		out.Docs = append(out.Docs, connectors.DocVersion{ID: a.VendorID, ModifiedAt: a.ModifiedAt})
	}
	return out, nil
}

// MaxDocsPerRead implements connectors.DocReader.
func (c *connector) MaxDocsPerRead(entity model.Kind) int {
	ep, ok := byKind[entity]
	switch {
	case !ok || !ep.incremental:
		return 0
	case ep.byIDs == "":
		return creditNotesPerRead
	}
	return min(maxIDsPerRead, c.pageSize)
}

// ReadDocs implements connectors.DocReader: the documents with the given
// ids, mapped as a full read maps them; ids Xero does not have are left
// out.
func (c *connector) ReadDocs(ctx context.Context, entity model.Kind, ids []string) (*connectors.Page, error) {
	ep, ok := byKind[entity]
	if !ok || !ep.incremental {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "the xero connector reads no documents of entity %q by id", entity)
	}
	if n := c.MaxDocsPerRead(entity); len(ids) > n {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "xero %s: %d ids in one read, at most %d", entity, len(ids), n)
	}
	for _, id := range ids {
		if !isGUID(id) {
			return nil, connectors.Errorf(connectors.KindInvalidConfig, "xero %s: id %s is not a Xero id (a GUID)", entity, model.QuoteValue(id))
		}
	}
	before := c.calls()
	page := &connectors.Page{Total: -1}
	var err error
	if len(ids) > 0 {
		if ep.byIDs != "" {
			err = c.readByFilter(ctx, entity, ep, ids, page)
		} else {
			err = c.readEach(ctx, entity, ep, ids, page)
		}
	}
	page.Calls = int(c.calls() - before)
	if err != nil {
		return &connectors.Page{Calls: page.Calls, Total: -1}, fmt.Errorf("xero %s: reading %d documents by id: %w", entity, len(ids), err)
	}
	return page, nil
}

// readByFilter reads ids with the list's IDs filter, in one page.
func (c *connector) readByFilter(ctx context.Context, entity model.Kind, ep endpoint, ids []string, page *connectors.Page) error {
	q := ep.query(nil)
	q.Set(ep.byIDs, strings.Join(ids, ","))
	q.Set("page", "1")
	q.Set("pageSize", strconv.Itoa(c.pageSize))
	resp, err := c.get(ctx, ep.op, ep.path, q, time.Time{}, true)
	if err != nil {
		return err
	}
	_, got, _, err := c.decode(entity, ep, resp, nil)
	if err != nil {
		return err
	}
	page.Records, page.SetAside, page.Docs, page.ServerTime = got.recs, got.aside, got.ids(), resp.ServerTime
	return nil
}

// readEach reads ids one GET path/{id} each; a 404 means Xero no longer
// has the document.
func (c *connector) readEach(ctx context.Context, entity model.Kind, ep endpoint, ids []string, page *connectors.Page) error {
	q := url.Values{}
	if dp := ep.extra.Get("unitdp"); dp != "" {
		q.Set("unitdp", dp)
	}
	page.Docs = []string{}
	op := "get_" + strings.TrimSuffix(strings.TrimPrefix(ep.op, "list_"), "s") // get_credit_note
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		resp, err := c.get(ctx, op, ep.path+"/"+url.PathEscape(id), q, time.Time{}, true)
		if httpapi.StatusCode(err) == http.StatusNotFound {
			continue
		}
		if err != nil {
			return err
		}
		_, got, _, err := c.decode(entity, ep, resp, nil)
		if err != nil {
			return err
		}
		page.Records = append(page.Records, got.recs...)
		page.SetAside = append(page.SetAside, got.aside...)
		page.Docs = append(page.Docs, got.ids()...)
		page.ServerTime = resp.ServerTime
	}
	return nil
}

// isGUID reports whether s has the shape of Xero's ids
// (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, hex digits).
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
				return false
			}
		}
	}
	return true
}
