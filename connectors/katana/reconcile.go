package katana

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// Reconciliation: the id listing of every incremental entity
// (connectors.IDLister) and reading chosen documents by id
// (connectors.DocReader).
//
// Katana has no field selection, summary mode or id-only endpoint (the
// community OpenAPI document lists none on any list), so the cheapest
// complete listing is the list itself at its largest page (250), read
// exactly as a full read reads it: the same endpoints, include_deleted (and
// include_archived), the pass's created_at_max cap, the same mapping. That
// makes the listing agree with a full read by construction (same ids, same
// versions), and it keeps the listing's pages still while records are
// soft-deleted or archived: a list without include_deleted drops a record
// the moment it is deleted, which moves every later record up one place
// and skips one, while a list with it keeps the record where it was, with
// its new version (its deleted_at, see latest), which reconciliation reads
// again. The listing is a full read's traffic without its writes.

var (
	_ connectors.IDLister  = (*connector)(nil)
	_ connectors.DocReader = (*connector)(nil)
)

// idListings are the entities with an id listing: every incremental one.
var idListings = map[model.Kind]connectors.IDListingInfo{
	model.KindTaxRate:    {PageSize: PageSize, Endpoint: "GET /tax_rates?limit=250"},
	model.KindWarehouse:  {PageSize: PageSize, Endpoint: "GET /locations?include_deleted=true&limit=250"},
	model.KindCustomer:   {PageSize: PageSize, Endpoint: "GET /customers?include_deleted=true&limit=250"},
	model.KindProduct:    {PageSize: PageSize, Endpoint: "GET /products, then GET /materials, ?include_deleted=true&include_archived=true&limit=250"},
	model.KindSalesOrder: {PageSize: PageSize, Endpoint: "GET /sales_orders?include_deleted=true&limit=250"},
}

// byID are the lists ReadDocs reads with the ids filter, per entity
// (products read /products and /materials, see readProducts).
var byID = map[model.Kind]list{
	model.KindTaxRate:    taxRates,
	model.KindWarehouse:  locations,
	model.KindCustomer:   customers,
	model.KindSalesOrder: orders,
}

// IDListing implements connectors.IDLister.
func (c *connector) IDListing(entity model.Kind) (connectors.IDListingInfo, bool) {
	info, ok := idListings[entity]
	return info, ok
}

// ListIDs implements connectors.IDLister. Each page is the entity's page
// of a full read (see the package's reconciliation notes) reduced to its
// documents' ids and versions. Documents a full read sets aside are listed
// too, with their version: they exist in Katana, and leaving them out would
// have reconciliation delete a stored older version.
func (c *connector) ListIDs(ctx context.Context, req connectors.PageRequest) (*connectors.IDPage, error) {
	if _, ok := idListings[req.Entity]; !ok {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "katana: entity %q has no id listing", req.Entity)
	}
	if req.Page < 1 {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "katana %s id listing: page %d: pages are numbered from 1", req.Entity, req.Page)
	}
	req.Since = time.Time{}
	before := c.client.Calls()
	var p *connectors.Page
	var err error
	if req.Entity == model.KindProduct {
		p, err = c.productIDs(ctx, req)
	} else {
		p, err = c.listPage(ctx, req)
	}
	calls := int(c.client.Calls() - before)
	if err != nil {
		return &connectors.IDPage{Calls: calls, Total: -1}, fmt.Errorf("id listing: %w", c.explain(req, err))
	}
	out := &connectors.IDPage{Docs: make([]connectors.DocVersion, 0, len(p.Records)), More: p.More, Total: p.Total,
		ServerTime: p.ServerTime, Calls: calls, Next: p.Next}
	for _, r := range p.Records {
		if r.Kind == req.Entity {
			out.Docs = append(out.Docs, connectors.DocVersion{ID: r.VendorID, ModifiedAt: r.ModifiedAt})
		}
	}
	for _, a := range p.SetAside {
		if a.Kind == req.Entity {
			out.Docs = append(out.Docs, connectors.DocVersion{ID: a.VendorID, ModifiedAt: a.ModifiedAt})
		}
	}
	return out, nil
}

// productIDs reads a page of the products listing. Its documents are
// products and materials, its ids their variants (the records a full read
// keys by variant id), so Katana's total_records, which counts documents,
// is not a count of the ids: the page reports no total (-1). What the
// total would guard against, a list that shifted between pages, the
// connector checks itself: every page after the first compares its list's
// total_records with the one the previous page of that list saw, and fails
// when they differ. With the creation cap and include_deleted, only a hard
// removal (or a restore) changes them, and a failed listing deletes
// nothing. It also remembers each variant's parent, for ReadDocs.
func (c *connector) productIDs(ctx context.Context, req connectors.PageRequest) (*connectors.Page, error) {
	p, from, to, err := c.productsPass(ctx, req)
	if err != nil {
		return nil, err
	}
	if from != (productsCursor{}) {
		switch {
		case from.products > 0 && from.productsTotal >= 0 && to.productsTotal != from.productsTotal:
			return nil, connectors.Errorf(connectors.KindERPUnavailable, "GET /products changed from %d to %d documents while it was listed; the listing must start again", from.productsTotal, to.productsTotal)
		case from.products == 0 && from.materialsTotal >= 0 && to.materialsTotal != from.materialsTotal:
			return nil, connectors.Errorf(connectors.KindERPUnavailable, "GET /materials changed from %d to %d documents while it was listed; the listing must start again", from.materialsTotal, to.materialsTotal)
		}
	}
	if req.Cursor == "" || c.variantParents == nil {
		c.variantParents = map[string]string{}
	}
	for _, r := range p.Records {
		if pr, ok := r.Data.(*model.Product); ok && pr.ParentVendorID != "" {
			c.variantParents[r.VendorID] = pr.ParentVendorID
		}
	}
	p.Total = -1
	return p, nil
}

// MaxDocsPerRead implements connectors.DocReader: one page of Katana's ids
// filter (for products, variant ids, whose parents fill at most a page).
func (c *connector) MaxDocsPerRead(entity model.Kind) int {
	if _, ok := byID[entity]; ok || entity == model.KindProduct {
		return PageSize
	}
	return 0
}

// ReadDocs implements connectors.DocReader with Katana's documented ids
// filter (an array of integers, sent as repeated ids=), with
// include_deleted (and include_archived for products), so that a deleted
// document maps deleted, as a full read maps it. Ids Katana no longer has
// are left out. The products stream takes variant ids (its records' ids)
// and also its documents' names, "product/<id>" and "material/<id>" (what
// its pages' Docs hold and what product and material webhooks name), which
// read that product or material with every variant.
func (c *connector) ReadDocs(ctx context.Context, entity model.Kind, ids []string) (*connectors.Page, error) {
	req := connectors.PageRequest{Entity: entity, Page: 1}
	if len(ids) > c.MaxDocsPerRead(entity) {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "katana %s: %d ids to read, at most %d a call", entity, len(ids), c.MaxDocsPerRead(entity))
	}
	var docs productDocs
	var nums []string
	var err error
	if entity == model.KindProduct {
		docs, err = splitProductIDs(ids)
		nums = slices.Concat(docs.variants, docs.products, docs.materials)
	} else {
		nums, err = katanaIDs(ids)
	}
	if err != nil {
		return nil, connectors.Wrap(connectors.KindInvalidConfig, err, fmt.Sprintf("katana %s: reading by id", entity))
	}
	before := c.client.Calls()
	out := &connectors.Page{Total: -1, Docs: []string{}}
	if len(nums) > 0 {
		if entity == model.KindProduct {
			err = c.readProducts(ctx, docs, out)
		} else if l, ok := byID[entity]; ok {
			err = c.readByID(ctx, l, nums, out)
		} else {
			err = connectors.Errorf(connectors.KindInvalidConfig, "katana: entity %q cannot be read by id", entity)
		}
	}
	out.Calls = int(c.client.Calls() - before)
	if err != nil {
		return &connectors.Page{Calls: out.Calls, Total: -1}, fmt.Errorf("reading by id: %w", c.explain(req, err))
	}
	return out, nil
}

// katanaIDs parses vendor ids as Katana's integer ids.
func katanaIDs(ids []string) ([]string, error) {
	out := make([]string, 0, len(ids))
	seen := map[string]bool{}
	for _, id := range ids {
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%s is not a Katana id", model.QuoteValue(id))
		}
		s := strconv.FormatInt(n, 10)
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out, nil
}

// readByID reads the documents of l with the given ids into out, mapped
// as a full read maps them. The ids fit one page; the pages are followed
// anyway, up to one per id, should Katana serve fewer.
func (c *connector) readByID(ctx context.Context, l list, ids []string, out *connectors.Page) error {
	q := url.Values{"ids": ids}
	for page := 1; page <= max(1, len(ids)); page++ {
		lp, err := c.getWith(ctx, l, page, time.Time{}, time.Time{}, q)
		if err != nil {
			return err
		}
		p, err := c.mapPage(lp, c.mapper(lp))
		if err != nil {
			return err
		}
		out.Records = append(out.Records, p.Records...)
		out.Docs = append(out.Docs, p.Docs...)
		out.SetAside = append(out.SetAside, p.SetAside...)
		out.ServerTime = p.ServerTime
		if !lp.more || len(lp.data) == 0 {
			return nil
		}
	}
	return nil
}

// variantsList is GET /variants, read only by ids to find the parents of
// variants the connector has not seen in a listing.
var variantsList = list{op: "list_variants", path: "/variants", deleted: true, extra: url.Values{"include_archived": {"true"}}}

// productDocs are the ids a products read names: variant ids, and
// products and materials by their own ids.
type productDocs struct {
	variants, products, materials []string
}

// splitProductIDs sorts the products stream's ids into variant ids and the
// ids of products ("product/<id>") and materials ("material/<id>"), each a
// Katana integer id.
func splitProductIDs(ids []string) (productDocs, error) {
	var d productDocs
	var vs, ps, ms []string
	for _, id := range ids {
		switch {
		case strings.HasPrefix(id, "product/"):
			ps = append(ps, strings.TrimPrefix(id, "product/"))
		case strings.HasPrefix(id, "material/"):
			ms = append(ms, strings.TrimPrefix(id, "material/"))
		default:
			vs = append(vs, id)
		}
	}
	var err error
	if d.variants, err = katanaIDs(vs); err != nil {
		return d, err
	}
	if d.products, err = katanaIDs(ps); err != nil {
		return d, fmt.Errorf("a product id: %w", err)
	}
	if d.materials, err = katanaIDs(ms); err != nil {
		return d, fmt.Errorf("a material id: %w", err)
	}
	return d, nil
}

// readProducts reads the products and materials named by id, and those
// whose variants have the given ids: the variants' parents come from the
// last listing or, for variants it did not hold, from GET /variants?ids=...
// (one call); then GET /products?ids=... and GET /materials?ids=... read
// them, every variant of each mapped as a full read maps it.
func (c *connector) readProducts(ctx context.Context, docs productDocs, out *connectors.Page) error {
	var unknown []string
	prods, mats := map[string]bool{}, map[string]bool{}
	for _, id := range docs.products {
		prods[id] = true
	}
	for _, id := range docs.materials {
		mats[id] = true
	}
	variantIDs := docs.variants
	add := func(parent string) {
		if id, ok := strings.CutPrefix(parent, "product/"); ok {
			prods[id] = true
		} else if id, ok := strings.CutPrefix(parent, "material/"); ok {
			mats[id] = true
		}
	}
	for _, v := range variantIDs {
		if parent, ok := c.variantParents[v]; ok {
			add(parent)
		} else {
			unknown = append(unknown, v)
		}
	}
	if len(unknown) > 0 {
		lp, err := c.getWith(ctx, variantsList, 1, time.Time{}, time.Time{}, url.Values{"ids": unknown})
		if err != nil {
			return err
		}
		for i, raw := range lp.data {
			var v kVariant
			if err := decode(raw, &v); err != nil {
				return connectors.Wrap(connectors.KindInvalidResponse, fmt.Errorf("record %d: %w", i, err), "GET /variants returned a document the connector cannot read")
			}
			switch {
			case v.ProductID != nil && *v.ProductID > 0:
				add("product/" + strconv.FormatInt(*v.ProductID, 10))
			case v.MaterialID != nil && *v.MaterialID > 0:
				add("material/" + strconv.FormatInt(*v.MaterialID, 10))
			}
			// A variant of neither (a service) is not read by this
			// connector: a full read would not map it either.
		}
	}
	for _, part := range []struct {
		l   list
		ids map[string]bool
	}{{products, prods}, {materials, mats}} {
		if len(part.ids) == 0 {
			continue
		}
		ids := make([]string, 0, len(part.ids))
		for id := range part.ids {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		if err := c.readByID(ctx, part.l, ids, out); err != nil {
			return err
		}
	}
	return nil
}
