package controllers

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// fakeERP is an in-memory ERP for controller tests: two entities, page-number
// paging, a modified-since filter, call counting, and hooks to fail or block.
type fakeERP struct {
	mu       sync.Mutex
	products []fakeRecord
	pageSize int
	// requests logs every ListPage call.
	requests []connectors.PageRequest
	calls    atomic.Int64
	// failWith, when set, is returned by every ListPage.
	failWith error
	// block, when set, makes ListPage of page >= blockFromPage wait until the
	// channel is closed or the context ends.
	block         chan struct{}
	blockFromPage int
	// failProductsFrom and failTimes: the next failTimes requests for a
	// product page >= failProductsFrom fail as the ERP being unavailable.
	failProductsFrom, failTimes int
	// setAside lists product ids the mapping "cannot know": they come as
	// set-aside documents, not records.
	setAside map[string]bool
	// overstate is added to the products' Total: a vendor whose count
	// claims more than its list holds, so every pass reads short.
	overstate int
	// keyset makes product pages carry a cursor (Next "after:<last id>"),
	// as keyset readers do; the fake still pages by number.
	keyset bool
	// configs logs the config of every connector built.
	configs []connectors.Config
	// requiredKey is the Secret key the factory demands.
	requiredKey string
	now         func() time.Time
	// hooks is the webhook subscription (see fake_webhooks_test.go).
	hooks fakeHooks
}

type fakeRecord struct {
	id       string
	modified time.Time
	// rev counts the edits, so that an edit changes the content (a sink
	// skips a record whose content is unchanged).
	rev int
}

func newFakeERP(products int) *fakeERP {
	f := &fakeERP{pageSize: 10, requiredKey: "apiKey", now: time.Now}
	base := time.Now().Add(-24 * time.Hour)
	for i := 0; i < products; i++ {
		f.products = append(f.products, fakeRecord{id: fmt.Sprintf("P%04d", i), modified: base.Add(time.Duration(i) * time.Second)})
	}
	return f
}

func (f *fakeERP) factory(_ context.Context, cfg connectors.Config) (connectors.Connector, error) {
	f.mu.Lock()
	f.configs = append(f.configs, cfg)
	f.mu.Unlock()
	if _, err := connectors.RequiredKey(cfg.Credentials, f.requiredKey); err != nil {
		return nil, err
	}
	if string(cfg.Credentials[f.requiredKey]) == "wrong" {
		return &fakeConn{erp: f, cfg: cfg, authFail: true}, nil
	}
	return &fakeConn{erp: f, cfg: cfg}, nil
}

// touch edits n products now.
func (f *fakeERP) touch(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := 0; i < n && i < len(f.products); i++ {
		f.products[i].modified = f.now()
		f.products[i].rev++
	}
}

func (f *fakeERP) log() []connectors.PageRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]connectors.PageRequest(nil), f.requests...)
}

// built returns the configs of the connectors built so far.
func (f *fakeERP) built() []connectors.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]connectors.Config(nil), f.configs...)
}

// builtWith reports whether a connector was built with the Secret value.
func (f *fakeERP) builtWith(key, value string) bool {
	for _, c := range f.built() {
		if string(c.Credentials[key]) == value {
			return true
		}
	}
	return false
}

func (f *fakeERP) set(fn func(f *fakeERP)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

type fakeConn struct {
	erp      *fakeERP
	cfg      connectors.Config
	authFail bool
}

func (c *fakeConn) Entities() []connectors.EntityInfo {
	return []connectors.EntityInfo{
		{Name: model.KindCustomer, Incremental: true},
		{Name: model.KindProduct, Incremental: true},
	}
}

func (c *fakeConn) ListPage(ctx context.Context, req connectors.PageRequest) (*connectors.Page, error) {
	f := c.erp
	f.calls.Add(1)
	f.mu.Lock()
	f.requests = append(f.requests, req)
	failWith, block, blockFrom := f.failWith, f.block, f.blockFromPage
	if req.Entity == model.KindProduct && f.failTimes > 0 && f.failProductsFrom > 0 && req.Page >= f.failProductsFrom {
		f.failTimes--
		failWith = connectors.Errorf(connectors.KindERPUnavailable, "the fake ERP answered 503 for products page %d", req.Page)
	}
	f.mu.Unlock()
	if c.authFail {
		return &connectors.Page{Calls: 1}, connectors.Errorf(connectors.KindAuthenticationFailed, "the fake ERP refused the API key (401)")
	}
	if failWith != nil {
		return &connectors.Page{Calls: 1}, failWith
	}
	if block != nil && req.Page >= blockFrom && req.Entity == model.KindProduct {
		select {
		case <-block:
		case <-ctx.Done():
			return &connectors.Page{Calls: 1}, ctx.Err()
		}
	}
	if req.Entity == model.KindCustomer {
		return &connectors.Page{Calls: 1, Total: 1, Records: []model.Record{{
			Company: c.cfg.CompanyID, Vendor: c.cfg.Type, Kind: model.KindCustomer, VendorID: "C1",
			ModifiedAt: time.Unix(1700000000, 0), Data: &model.Customer{Code: "C1", Name: "Customer 1"},
		}}}, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var match []fakeRecord
	for _, p := range f.products {
		if req.Since.IsZero() || p.modified.After(req.Since) {
			match = append(match, p)
		}
	}
	start := min((req.Page-1)*f.pageSize, len(match))
	end := min(start+f.pageSize, len(match))
	page := &connectors.Page{Calls: 1, Total: len(match) + f.overstate, More: end < len(match), ServerTime: f.now()}
	for _, p := range match[start:end] {
		if f.setAside[p.id] {
			page.SetAside = append(page.SetAside, model.SetAside{
				Company: c.cfg.CompanyID, Vendor: c.cfg.Type, Kind: model.KindProduct, VendorID: p.id, ModifiedAt: p.modified,
				Reason: "productType \"kit\" is not a product type the connector knows", Raw: []byte(`{"id":"` + p.id + `"}`),
			})
			continue
		}
		page.Records = append(page.Records, model.Record{
			Company: c.cfg.CompanyID, Vendor: c.cfg.Type, Kind: model.KindProduct, VendorID: p.id,
			ModifiedAt: p.modified, Data: &model.Product{SKU: p.id, Name: fmt.Sprintf("Product %s rev %d", p.id, p.rev)},
		})
	}
	if f.keyset && len(page.Records) > 0 && page.More {
		page.Next = "after:" + page.Records[len(page.Records)-1].VendorID
	}
	return page, nil
}

// remove drops products from the fake ERP (a hard delete it does not
// signal) and returns their ids.
func (f *fakeERP) remove(n int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for i := 0; i < n && len(f.products) > 0; i++ {
		ids = append(ids, f.products[len(f.products)-1].id)
		f.products = f.products[:len(f.products)-1]
	}
	return ids
}

// IDListing implements connectors.IDLister: both entities, 100 a page.
func (c *fakeConn) IDListing(model.Kind) (connectors.IDListingInfo, bool) {
	return connectors.IDListingInfo{PageSize: 100, Endpoint: "fake"}, true
}

// ListIDs implements connectors.IDLister.
func (c *fakeConn) ListIDs(ctx context.Context, req connectors.PageRequest) (*connectors.IDPage, error) {
	c.erp.calls.Add(1)
	if req.Entity == model.KindCustomer {
		return &connectors.IDPage{Calls: 1, Total: 1, Docs: []connectors.DocVersion{{ID: "C1", ModifiedAt: time.Unix(1700000000, 0)}}}, nil
	}
	f := c.erp
	f.mu.Lock()
	defer f.mu.Unlock()
	start := min((req.Page-1)*100, len(f.products))
	end := min(start+100, len(f.products))
	p := &connectors.IDPage{Calls: 1, Total: len(f.products), More: end < len(f.products)}
	for _, r := range f.products[start:end] {
		p.Docs = append(p.Docs, connectors.DocVersion{ID: r.id, ModifiedAt: r.modified})
	}
	return p, nil
}
