package enginetest

import (
	"context"
	"strconv"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// Synthetic is a connector with N products that it generates page by page,
// without ever holding the dataset: memory stays flat however large N is.
// It has no latency, for benchmarks of the engine itself.
type Synthetic struct {
	N        int
	PageSize int // defaults to 1000
	Vendor   string
	Company  string
	// Modified is the modified time of every record; zero means a fixed
	// date.
	Modified time.Time
}

// Entities implements connectors.Connector.
func (s *Synthetic) Entities() []connectors.EntityInfo {
	return []connectors.EntityInfo{{Name: model.KindProduct, Incremental: true, Endpoint: "/products"}}
}

// ListPage implements connectors.Connector.
func (s *Synthetic) ListPage(ctx context.Context, req connectors.PageRequest) (*connectors.Page, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	size := s.PageSize
	if size <= 0 {
		size = 1000
	}
	mod := s.Modified
	if mod.IsZero() {
		mod = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	start := min((req.Page-1)*size, s.N)
	end := min(start+size, s.N)
	p := &connectors.Page{Records: make([]model.Record, 0, end-start), More: end < s.N, Total: s.N, Calls: 1}
	for i := start; i < end; i++ {
		id := strconv.Itoa(i)
		p.Records = append(p.Records, model.Record{
			Company:    s.Company,
			Vendor:     s.Vendor,
			Kind:       model.KindProduct,
			VendorID:   id,
			ModifiedAt: mod.Add(time.Duration(i) * time.Millisecond),
			Data: &model.Product{
				SKU:           "SKU-" + id,
				Name:          "Product " + id,
				UnitOfMeasure: "EA",
				SellPrice:     model.Decimal(strconv.Itoa(i%1000) + ".95"),
				Currency:      "NZD",
				IsSold:        true,
			},
		})
	}
	return p, nil
}
