package cin7omni

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/internal/vendorjson"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// The connector lists ids for reconciliation and reads chosen documents.
var (
	_ connectors.IDLister      = (*Connector)(nil)
	_ connectors.DocReader     = (*Connector)(nil)
	_ connectors.DocReadCoster = (*Connector)(nil)
)

// listingEndpoint is the request an entity's id listing sends (for docs
// and logs; the keyset condition is added per page).
func (s *stream) listingEndpoint() string {
	q := "GET /" + s.path + "?fields=" + s.fields
	if w := s.whereClause(time.Time{}, s.live); w != "" {
		q += "&where=" + w
	}
	return q
}

// IDListing implements connectors.IDLister: every incremental entity is
// listed by the same keyset reading as a full pass, at 250 rows, asking
// only for the fields that identify and version a record and leaving out
// what Omni marks deleted.
func (c *Connector) IDListing(entity model.Kind) (connectors.IDListingInfo, bool) {
	s := streamFor(entity)
	if s == nil || !s.modified {
		return connectors.IDListingInfo{}, false
	}
	return connectors.IDListingInfo{PageSize: c.rows, Endpoint: s.listingEndpoint()}, true
}

// ListIDs implements connectors.IDLister. A page is the keyset page a full
// read would get (same order, same cursor, same proof of completeness),
// with fields= cutting each document to its key, ModifiedDate and deletion
// marker, and the live condition leaving out the documents Omni marks
// deleted. The documents are mapped as a full read maps them, so each
// DocVersion is the VendorID and ModifiedAt of the record a full read
// stores; records the mapping marks deleted (a Disabled option of a live
// product) are left out too, and set-aside documents are listed under the
// key they are set aside by, so that reconciliation never deletes a record
// whose document Omni still serves. Omni reports no total: Total is -1.
func (c *Connector) ListIDs(ctx context.Context, req connectors.PageRequest) (*connectors.IDPage, error) {
	s := streamFor(req.Entity)
	if s == nil || !s.modified {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "cin7omni has no id listing of %q", req.Entity)
	}
	req.Since = time.Time{}
	r, err := c.keysetPage(ctx, s, req, s.live, s.fields)
	page := &connectors.IDPage{Total: -1, Calls: r.calls, ServerTime: r.serverTime, More: r.more, Next: r.next}
	if err != nil {
		return page, fmt.Errorf("cin7omni %s id listing: %w", req.Entity, err)
	}
	for _, rec := range r.d.records {
		if rec.Kind == s.kind && !rec.Deleted {
			page.Docs = append(page.Docs, connectors.DocVersion{ID: rec.VendorID, ModifiedAt: rec.ModifiedAt})
		}
	}
	for _, a := range r.d.aside {
		if a.Kind == s.kind {
			page.Docs = append(page.Docs, connectors.DocVersion{ID: a.VendorID, ModifiedAt: a.ModifiedAt})
		}
	}
	return page, nil
}

// maxDocsPerRead is how many ids one ReadDocs call takes. Omni has no
// documented filter that takes many ids (its where clause is documented
// with AND only), so each document costs one request (a product option
// two: its product is found through /v1/ProductOptions first); 20 keeps a
// call within a third of a minute's 60 calls.
const maxDocsPerRead = 20

// MaxDocsPerRead implements connectors.DocReader.
func (c *Connector) MaxDocsPerRead(entity model.Kind) int {
	if s := streamFor(entity); s == nil || !s.modified {
		return 0
	}
	return maxDocsPerRead
}

// RequestsPerDoc implements connectors.DocReadCoster: one request a
// document (a product option's adds one, not counted here: its product
// may serve several options).
func (c *Connector) RequestsPerDoc(entity model.Kind) int {
	if s := streamFor(entity); s == nil || !s.modified {
		return 0
	}
	return 1
}

// ReadDocs implements connectors.DocReader: each id is read with the
// entity's list request narrowed to it (where=…AND Id=N; stock by option and
// branch, one request per option), mapped as a full read maps it, children
// and set-aside documents included. Ids Omni no longer serves are left out.
func (c *Connector) ReadDocs(ctx context.Context, entity model.Kind, ids []string) (*connectors.Page, error) {
	s := streamFor(entity)
	if s == nil || !s.modified {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "cin7omni cannot read %q documents by id", entity)
	}
	if len(ids) > maxDocsPerRead {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "cin7omni %s: %d ids in one read, at most %d", entity, len(ids), maxDocsPerRead)
	}
	page := &connectors.Page{Total: -1}
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	// reads are the where conditions to send, each naming the ids it
	// stands for (a product read serves every requested option of it).
	reads, err := c.docReads(ctx, s, ids, page)
	if err != nil {
		return page, err
	}
	keyFn := keyOf(idKey)
	if s.kind == model.KindStockLevel {
		keyFn = stockKey
	}
	found := map[string]bool{}
	for i, rd := range reads {
		q := url.Values{}
		q.Set("where", s.whereClause(time.Time{}, rd.cond))
		q.Set("page", "1")
		q.Set("rows", strconv.Itoa(c.rows))
		d, f, err := c.fetch(ctx, s, q, i+1, keyFn, nil)
		page.Calls += f.calls
		if !f.serverTime.IsZero() {
			page.ServerTime = f.serverTime
		}
		if err != nil {
			return page, fmt.Errorf("cin7omni %s read by id: %w", entity, err)
		}
		for _, rec := range d.records {
			switch {
			case rec.Kind == s.kind && want[rec.VendorID]:
				found[rec.VendorID] = true
			case rec.Kind != s.kind && want[rec.Parent]:
			default:
				continue
			}
			page.Records = append(page.Records, rec)
		}
		for _, a := range d.aside {
			if want[a.VendorID] || slices.Contains(rd.styles, a.VendorID) {
				found[a.VendorID] = found[a.VendorID] || want[a.VendorID]
				page.SetAside = append(page.SetAside, a)
			}
		}
	}
	for _, id := range ids {
		if found[id] {
			page.Docs = append(page.Docs, id)
		}
	}
	return page, nil
}

// docRead is one request of a read by id.
type docRead struct {
	cond string
	// styles are the set-aside keys ("style/<id>") of the products read
	// for requested options: a product Omni serves with an unknown status
	// comes back set aside under its style, not its options.
	styles []string
}

// docReads turns requested ids into requests: one per id, except stock
// (one per option, all its branches) and product options (resolved to
// their product through /v1/ProductOptions, one per product).
func (c *Connector) docReads(ctx context.Context, s *stream, ids []string, page *connectors.Page) ([]docRead, error) {
	bad := func(id string) error {
		return connectors.Errorf(connectors.KindInvalidConfig, "cin7omni %s: %s is not an id this connector gives", s.kind, model.QuoteValue(id))
	}
	var out []docRead
	seen := map[string]bool{}
	add := func(cond string, style string) {
		if seen[cond] {
			return
		}
		seen[cond] = true
		rd := docRead{cond: cond}
		if style != "" {
			rd.styles = []string{style}
		}
		out = append(out, rd)
	}
	var options []string
	for _, id := range ids {
		switch s.kind {
		case model.KindStockLevel:
			// <option>/<branch>, or style/<product>/<branch>.
			if p, ok := strings.CutPrefix(id, "style/"); ok {
				pid, _, ok := strings.Cut(p, "/")
				if !isInt(pid) || !ok {
					return nil, bad(id)
				}
				add("ProductId="+pid+" AND ProductOptionId=0", "")
				continue
			}
			oid, bid, ok := strings.Cut(id, "/")
			if !ok || !isInt(oid) || !isInt(bid) {
				return nil, bad(id)
			}
			add("ProductOptionId="+oid, "")
		case model.KindProduct:
			if pid, ok := strings.CutPrefix(id, "style/"); ok {
				if !isInt(pid) {
					return nil, bad(id)
				}
				add("Id="+pid, "")
				continue
			}
			if !isInt(id) {
				return nil, bad(id)
			}
			options = append(options, id)
		default:
			if !isInt(id) {
				return nil, bad(id)
			}
			add("Id="+id, "")
		}
	}
	for _, oid := range options {
		pid, ok, err := c.optionProduct(ctx, oid, page)
		if err != nil {
			return nil, err
		}
		if ok {
			add("Id="+pid, "style/"+pid)
		}
	}
	return out, nil
}

// optionProduct finds the product of an option (GET /v1/ProductOptions
// narrowed to its Id, fields Id and ProductId); ok is false for an option
// Omni no longer serves.
func (c *Connector) optionProduct(ctx context.Context, oid string, page *connectors.Page) (string, bool, error) {
	q := url.Values{}
	q.Set("where", "Id="+oid)
	q.Set("fields", "Id,ProductId")
	q.Set("page", "1")
	q.Set("rows", "1")
	before := c.client.Calls()
	resp, err := c.client.Get(ctx, "get_product_option", c.base+"v1/ProductOptions?"+q.Encode(), c.header)
	page.Calls += int(c.client.Calls() - before)
	if err != nil {
		return "", false, fmt.Errorf("cin7omni products read by id: option %s: %w", oid, err)
	}
	if !resp.ServerTime.IsZero() {
		page.ServerTime = resp.ServerTime
	}
	list, ok := vendorjson.SplitArray(bytes.TrimSpace(resp.Body))
	if !ok {
		return "", false, connectors.Errorf(connectors.KindInvalidResponse, "cin7omni product option %s: the body is not a JSON array", oid)
	}
	for i, raw := range list {
		o, err := newObj(raw)
		if err != nil {
			return "", false, connectors.Errorf(connectors.KindInvalidResponse, "cin7omni product option %s: item %d: not a JSON object", oid, i)
		}
		id, ok1 := intField(o, "Id")
		pid, ok2 := intField(o, "ProductId")
		if !ok1 || !ok2 {
			return "", false, connectors.Errorf(connectors.KindInvalidResponse, "cin7omni product option %s: item %d: %v", oid, i, firstErr(o.Err(), "field ProductId: missing"))
		}
		if strconv.FormatInt(id, 10) == oid {
			return strconv.FormatInt(pid, 10), true, nil
		}
	}
	return "", false, nil
}

func isInt(s string) bool {
	_, err := strconv.ParseInt(s, 10, 64)
	return err == nil && s != "" && s[0] != '-' && s[0] != '+'
}
