package unleashed

import (
	"context"
	"fmt"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// stockCursor maps the stock stream's page numbers onto the warehouses'
// own pages. GET /StockOnHand without warehouseCode sums a product's stock
// over every warehouse, so the stream reads /StockOnHand?warehouseCode=W
// for each warehouse in turn: stream pages 1..n1 are the first warehouse's,
// n1+1.. the next one's.
type stockCursor struct {
	since time.Time
	codes []string
	wi    int // the warehouse being read
	base  int // the stream page just before the warehouse's page 1
	next  int // the stream page expected next
}

func (c *Connector) listStock(ctx context.Context, s *stream, req connectors.PageRequest) (*connectors.Page, error) {
	before := c.client.Calls()
	page := &connectors.Page{Total: -1}
	done := func(err error) (*connectors.Page, error) {
		page.Calls = int(c.client.Calls() - before)
		return page, err
	}
	cur := c.stock
	if cur == nil || !cur.since.Equal(req.Since) || req.Page != cur.next {
		// A new pass (or a resumed one): list the warehouses first.
		codes, err := c.warehouseCodes(ctx)
		if err != nil {
			c.stock = nil
			return done(err)
		}
		cur = &stockCursor{since: req.Since, codes: codes}
		c.stock = cur
	}
	for {
		if cur.wi >= len(cur.codes) {
			cur.next = req.Page + 1
			return done(nil)
		}
		wp := req.Page - cur.base
		doc, st, err := c.fetch(ctx, s, wp, req.Since, [][2]string{{"warehouseCode", cur.codes[cur.wi]}})
		if err != nil {
			c.stock = nil
			return done(err)
		}
		n := max(doc.NumberOfPages, 1)
		if wp > n {
			// Resuming past this warehouse's pages: move on.
			cur.base += n
			cur.wi++
			continue
		}
		page.Records, page.ServerTime = doc.Records, st
		if wp >= n || doc.Items == 0 {
			cur.base = req.Page
			cur.wi++
		}
		page.More = cur.wi < len(cur.codes)
		cur.next = req.Page + 1
		return done(nil)
	}
}

// warehouseCodes lists every warehouse's code, obsolete ones included.
func (c *Connector) warehouseCodes(ctx context.Context) ([]string, error) {
	s := streamFor(model.KindWarehouse)
	var codes []string
	for p := 1; ; p++ {
		doc, _, err := c.fetch(ctx, s, p, time.Time{}, nil)
		if err != nil {
			return nil, fmt.Errorf("listing warehouses for stock on hand: %w", err)
		}
		for _, r := range doc.Records {
			if w, ok := r.Data.(*model.Warehouse); ok {
				codes = append(codes, w.Code)
			}
		}
		if doc.Items == 0 || doc.PageNumber >= doc.NumberOfPages {
			return codes, nil
		}
	}
}
