package unleashed

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// GET /StockOnHand without warehouseCode sums a product's stock over every
// warehouse, so the stock stream reads /StockOnHand?warehouseCode=W for
// each warehouse in turn. Its position is a stockPass, carried in Page.Next
// and back in PageRequest.Cursor (the engine checkpoints it), so a resumed
// pass continues from its warehouse and page without a call to find them.
//
// The pass starts by listing the warehouses and reading page 1 of each:
// the warehouses' NumberOfItems (each updated as its pages come) add up to
// the stream's Total, which the engine
// compares with the distinct rows the pass read (rows shifted by a product
// removed mid-pass, or served in an unstable order, make it repeat the
// pass). Page 1 of the later warehouses is kept until the pass reaches it,
// so the counting costs no extra call; a resumed pass reads it again.

// stockPass is the position of a stock pass.
type stockPass struct {
	// Codes are the warehouse codes, in reading order.
	Codes []string `json:"c"`
	// Counts are each warehouse's NumberOfItems: at the start of the pass,
	// then as its latest page reported it.
	Counts []int `json:"n"`
	// W is the warehouse to read next and P its page.
	W int `json:"w"`
	P int `json:"p"`
}

func (sp *stockPass) total() int {
	n := 0
	for _, c := range sp.Counts {
		n += c
	}
	return n
}

func (sp *stockPass) encode() string {
	b, err := json.Marshal(sp)
	if err != nil {
		return "" // only ints and strings: cannot fail
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeStockPass(cursor string) (*stockPass, bool) {
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return nil, false
	}
	var sp stockPass
	if json.Unmarshal(b, &sp) != nil || len(sp.Codes) != len(sp.Counts) || sp.W < 0 || sp.W >= len(sp.Codes) || sp.P < 1 {
		return nil, false
	}
	return &sp, true
}

// stockCache keeps page 1 of each warehouse, read at the start of a pass,
// until the pass reaches it.
type stockCache struct {
	since time.Time
	first []*pageDoc
	times []time.Time
}

func (c *Connector) listStock(ctx context.Context, s *stream, req connectors.PageRequest) (*connectors.Page, error) {
	before := c.client.Calls()
	page := &connectors.Page{Total: -1}
	done := func(err error) (*connectors.Page, error) {
		page.Calls = int(c.client.Calls() - before)
		return page, err
	}
	sp, ok := (*stockPass)(nil), false
	if req.Cursor != "" {
		if sp, ok = decodeStockPass(req.Cursor); !ok {
			c.cfg.Log.Info("the stock cursor does not decode; reading the stock pass again from its start", "entity", req.Entity, "page", req.Page)
		}
	}
	if !ok {
		var err error
		if sp, err = c.startStockPass(ctx, s, req.Since); err != nil {
			return done(err)
		}
	}
	// Skip warehouses with nothing to read.
	for sp.W < len(sp.Codes) && sp.Counts[sp.W] == 0 && sp.P == 1 {
		sp.W++
	}
	if sp.W >= len(sp.Codes) {
		page.Total = sp.total()
		return done(nil)
	}
	var doc *pageDoc
	var st time.Time
	if sp.P == 1 && c.stock != nil && c.stock.since.Equal(req.Since) && sp.W < len(c.stock.first) && c.stock.first[sp.W] != nil {
		doc, st = c.stock.first[sp.W], c.stock.times[sp.W]
		c.stock.first[sp.W] = nil
	} else {
		var err error
		if doc, st, err = c.fetch(ctx, s, sp.P, req.Since, [][2]string{{"warehouseCode", sp.Codes[sp.W]}}); err != nil {
			return done(err)
		}
	}
	page.Records, page.SetAside, page.ServerTime = doc.Records, doc.SetAside, st
	// The total is the sum of the warehouses' latest counts: a count that
	// fell under the pass (a removal shifts the later pages) makes the
	// engine repeat it; rows added to a warehouse before the pass reaches
	// its end are read, so growth stays counted.
	next := *sp
	next.Counts = append([]int(nil), sp.Counts...)
	next.Counts[sp.W] = doc.Total
	page.Total = next.total()
	if doc.Items == 0 || doc.PageNumber >= doc.NumberOfPages {
		next.W, next.P = sp.W+1, 1
		for next.W < len(next.Codes) && next.Counts[next.W] == 0 {
			next.W++
		}
	} else {
		next.P = sp.P + 1
	}
	if next.W < len(next.Codes) {
		page.More, page.Next = true, next.encode()
	}
	return done(nil)
}

// startStockPass lists the warehouses and reads page 1 of each, keeping
// the pages for the pass.
func (c *Connector) startStockPass(ctx context.Context, s *stream, since time.Time) (*stockPass, error) {
	c.stock = nil
	codes, err := c.warehouseCodes(ctx)
	if err != nil {
		return nil, err
	}
	sp := &stockPass{Codes: codes, Counts: make([]int, len(codes)), P: 1}
	c.warehouses.Store(int64(len(codes)))
	cache := &stockCache{since: since, first: make([]*pageDoc, len(codes)), times: make([]time.Time, len(codes))}
	for i, code := range codes {
		doc, st, err := c.fetch(ctx, s, 1, since, [][2]string{{"warehouseCode", code}})
		if err != nil {
			return nil, err
		}
		sp.Counts[i], cache.first[i], cache.times[i] = doc.Total, doc, st
	}
	c.stock = cache
	return sp, nil
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
