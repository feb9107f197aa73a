package sim

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/simkit"
)

// Katana ids derived from the dataset's sequence numbers. Products, customers,
// locations, tax rates and orders use their sequence number; variants and
// materials live in their own ranges so no two ids collide within a type.
const (
	variantBase         = 1_000_000
	materialBase        = 500_000
	materialVariantBase = 2_000_000
)

// VariantID returns the Katana variant id of a dataset product.
func VariantID(productSeq int) int { return variantBase + productSeq }

// MaterialID returns the Katana material id of the material the simulator
// derives from a supplier.
func MaterialID(supplierSeq int) int { return materialBase + supplierSeq }

// MaterialVariantID returns the Katana variant id of the material the
// simulator derives from a supplier.
func MaterialVariantID(supplierSeq int) int { return materialVariantBase + supplierSeq }

// ids maps dataset references (GUIDs, codes) to Katana integer ids.
type ids struct {
	shape      shape // the dataset's shape when built
	product    map[string]int
	customer   map[string]int
	warehouse  map[string]int
	tax        map[string]int
	taxRate    map[string]float64
	supplierBy map[string]int
	// quiet holds the deletion times of records deleted quietly
	// (DeleteQuietly), by dataset id: a copy-on-write snapshot.
	quiet map[string]time.Time
}

// deletedAt renders a record's deleted_at: its quiet deletion time, or its
// modified time (a deletion that moved updated_at), or null when live.
func (x *ids) deletedAt(m simkit.Meta) *string {
	if !m.Deleted {
		return nil
	}
	if t, ok := x.quiet[m.ID]; ok {
		return tsp(t, true)
	}
	return tsp(m.Modified, true)
}

// shape is what changes in a dataset when records are added or removed
// (edits keep it): the id maps are rebuilt when it changes.
type shape struct {
	products, firstProduct, lastProduct, customers, warehouses, taxes, suppliers int
}

func shapeOf(d *simkit.Dataset) shape {
	sh := shape{products: len(d.Products), customers: len(d.Customers), warehouses: len(d.Warehouses), taxes: len(d.TaxRates), suppliers: len(d.Suppliers)}
	if n := len(d.Products); n > 0 {
		sh.firstProduct, sh.lastProduct = d.Products[0].Seq, d.Products[n-1].Seq
	}
	return sh
}

// idx returns the id maps, rebuilding them when the dataset changed shape.
// Call it inside Dataset.View.
func (s *Server) idx(d *simkit.Dataset) *ids {
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := shapeOf(d)
	if s.index != nil && s.index.shape == sh {
		return s.index
	}
	x := &ids{shape: sh, product: make(map[string]int, len(d.Products)), customer: make(map[string]int, len(d.Customers)),
		warehouse: map[string]int{}, tax: map[string]int{}, taxRate: map[string]float64{}, supplierBy: map[string]int{}}
	for _, p := range d.Products {
		x.product[p.ID] = p.Seq
	}
	for _, c := range d.Customers {
		x.customer[c.ID] = c.Seq
	}
	for _, w := range d.Warehouses {
		x.warehouse[w.Code] = w.Seq
	}
	for _, t := range d.TaxRates {
		x.tax[t.Code] = t.Seq
		x.taxRate[t.Code] = t.Rate
	}
	for _, sp := range d.Suppliers {
		x.supplierBy[sp.Code] = sp.Seq
	}
	x.quiet = s.quiet
	s.index = x
	return x
}

func ts(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func tsp(t time.Time, set bool) *string {
	if !set {
		return nil
	}
	v := ts(t)
	return &v
}

// qty renders a quantity as Katana does: a decimal string with 5 places.
func qty(f float64) string { return strconv.FormatFloat(f, 'f', 5, 64) }

// money renders a dataset decimal as Katana's long decimal string.
func money(dec string) string {
	f, err := strconv.ParseFloat(dec, 64)
	if err != nil {
		return "0.0000000000"
	}
	return strconv.FormatFloat(f, 'f', 10, 64)
}

// num renders a dataset decimal as a JSON number without a float round trip.
func num(dec string) json.Number {
	if dec == "" {
		return "0"
	}
	return json.Number(dec)
}

func keep(m simkit.Meta, id int, q query) bool {
	if m.Deleted && !q.includeDeleted {
		return false
	}
	if q.ids != nil && !q.ids[id] {
		return false
	}
	if !q.createdMax.IsZero() && m.Created.After(q.createdMax) {
		return false
	}
	return q.since.IsZero() || !m.Modified.Before(q.since)
}

// newestFirst returns the indexes of the items kept by q in the order s
// serves them: highest sequence (most recently created) first, as Katana
// documents its lists, or a fresh order when s is unstable. Dataset slices
// are in creation order, so reversing them is the newest-first order.
// id gives an item's Katana id, for the ids filter.
func newestFirst[T any](s *Server, items []T, meta func(T) simkit.Meta, id func(T) int, q query) []int {
	idx := simkit.Sorted(items, func(it T) bool { return keep(meta(it), id(it), q) }, nil)
	slices.Reverse(idx)
	return s.Order(idx)
}

type variant struct {
	ID                int           `json:"id"`
	ProductID         *int          `json:"product_id"`
	MaterialID        *int          `json:"material_id"`
	SKU               string        `json:"sku"`
	SalesPrice        json.Number   `json:"sales_price"`
	PurchasePrice     json.Number   `json:"purchase_price"`
	Type              string        `json:"type"`
	InternalBarcode   *string       `json:"internal_barcode"`
	RegisteredBarcode *string       `json:"registered_barcode"`
	SupplierItemCodes []string      `json:"supplier_item_codes"`
	ConfigAttributes  []configAttr  `json:"config_attributes"`
	CustomFields      []customField `json:"custom_fields"`
	LeadTime          *int          `json:"lead_time"`
	MinimumOrderQty   *float64      `json:"minimum_order_quantity"`
	CreatedAt         string        `json:"created_at"`
	UpdatedAt         string        `json:"updated_at"`
	DeletedAt         *string       `json:"deleted_at"`
	ProductOrMaterial any           `json:"product_or_material,omitempty"`
	AbcClassification *string       `json:"abc_classification,omitempty"`
}

type configAttr struct {
	ConfigName  string `json:"config_name"`
	ConfigValue string `json:"config_value"`
}

type customField struct {
	FieldName  string `json:"field_name"`
	FieldValue string `json:"field_value"`
}

type product struct {
	ID                        int       `json:"id"`
	Name                      string    `json:"name"`
	UOM                       string    `json:"uom"`
	CategoryName              string    `json:"category_name"`
	IsSellable                bool      `json:"is_sellable"`
	IsProducible              *bool     `json:"is_producible,omitempty"`
	IsPurchasable             *bool     `json:"is_purchasable,omitempty"`
	IsAutoAssembly            *bool     `json:"is_auto_assembly,omitempty"`
	DefaultSupplierID         *int      `json:"default_supplier_id"`
	Type                      string    `json:"type"`
	PurchaseUOM               *string   `json:"purchase_uom"`
	PurchaseUOMConversionRate *string   `json:"purchase_uom_conversion_rate"`
	BatchTracked              bool      `json:"batch_tracked"`
	SerialTracked             bool      `json:"serial_tracked"`
	OperationsInSequence      bool      `json:"operations_in_sequence"`
	AdditionalInfo            string    `json:"additional_info"`
	CustomFieldCollectionID   *int      `json:"custom_field_collection_id"`
	CreatedAt                 string    `json:"created_at"`
	UpdatedAt                 string    `json:"updated_at"`
	ArchivedAt                *string   `json:"archived_at"`
	DeletedAt                 *string   `json:"deleted_at"`
	Variants                  []variant `json:"variants"`
	Configs                   []any     `json:"configs"`
}

func ptr[T any](v T) *T { return &v }

func productVariant(p *simkit.Product, x *ids) variant {
	return variant{ID: VariantID(p.Seq), ProductID: ptr(p.Seq), SKU: p.SKU, SalesPrice: num(p.SellPrice), PurchasePrice: num(p.CostPrice),
		Type: "product", InternalBarcode: ptr(p.Barcode), SupplierItemCodes: []string{}, ConfigAttributes: []configAttr{},
		CustomFields: []customField{}, CreatedAt: ts(p.Created), UpdatedAt: ts(p.Modified), DeletedAt: x.deletedAt(p.Meta)}
}

func renderProduct(p *simkit.Product, x *ids) product {
	out := product{ID: p.Seq, Name: p.Name, UOM: unit(p.Unit), CategoryName: p.Category, IsSellable: true, IsProducible: ptr(false),
		IsPurchasable: ptr(true), IsAutoAssembly: ptr(false), Type: "product", AdditionalInfo: p.Description,
		CreatedAt: ts(p.Created), UpdatedAt: ts(p.Modified), DeletedAt: x.deletedAt(p.Meta), Configs: []any{}}
	if sup, ok := x.supplierBy[p.SupplierCode]; ok {
		out.DefaultSupplierID = ptr(sup)
	}
	out.Variants = []variant{productVariant(p, x)}
	return out
}

func unit(u string) string {
	switch u {
	case "EA":
		return "pcs"
	case "BOX":
		return "box"
	case "KG":
		return "kg"
	case "M":
		return "m"
	}
	return u
}

func (s *Server) products(d *simkit.Dataset, q query) (int, []any) {
	x := s.idx(d)
	sel := newestFirst(s, d.Products, func(p *simkit.Product) simkit.Meta { return p.Meta }, func(p *simkit.Product) int { return p.Seq }, q)
	start, end := pageOf(len(sel), q)
	out := make([]any, 0, end-start)
	for _, i := range sel[start:end] {
		out = append(out, renderProduct(d.Products[i], x))
	}
	return len(sel), out
}

func materialVariant(sp *simkit.Supplier, x *ids) variant {
	return variant{ID: MaterialVariantID(sp.Seq), MaterialID: ptr(materialBase + sp.Seq), SKU: "MAT-" + sp.Code,
		SalesPrice: "0", PurchasePrice: json.Number(fmt.Sprintf("%d.50", 2+sp.Seq)), Type: "material",
		SupplierItemCodes: []string{sp.Code + "-RAW"}, ConfigAttributes: []configAttr{}, CustomFields: []customField{},
		CreatedAt: ts(sp.Created), UpdatedAt: ts(sp.Modified), DeletedAt: x.deletedAt(sp.Meta)}
}

func (s *Server) materials(d *simkit.Dataset, q query) (int, []any) {
	x := s.idx(d)
	sel := newestFirst(s, d.Suppliers, func(sp *simkit.Supplier) simkit.Meta { return sp.Meta }, func(sp *simkit.Supplier) int { return materialBase + sp.Seq }, q)
	start, end := pageOf(len(sel), q)
	out := make([]any, 0, end-start)
	for _, i := range sel[start:end] {
		sp := d.Suppliers[i]
		out = append(out, product{ID: materialBase + sp.Seq, Name: "Raw material from " + sp.Name, UOM: "kg", CategoryName: "Raw materials",
			IsSellable: false, DefaultSupplierID: ptr(sp.Seq), Type: "material", AdditionalInfo: "", CreatedAt: ts(sp.Created),
			UpdatedAt: ts(sp.Modified), DeletedAt: x.deletedAt(sp.Meta), Configs: []any{}, Variants: []variant{materialVariant(sp, x)}})
	}
	return len(sel), out
}

type address struct {
	ID      int     `json:"id"`
	City    string  `json:"city"`
	Country string  `json:"country"`
	Line1   string  `json:"line_1"`
	Line2   *string `json:"line_2,omitempty"`
	State   string  `json:"state"`
	Zip     string  `json:"zip"`
}

type location struct {
	ID                   int      `json:"id"`
	Name                 string   `json:"name"`
	LegalName            string   `json:"legal_name"`
	AddressID            *int     `json:"address_id"`
	Address              *address `json:"address"`
	IsPrimary            bool     `json:"is_primary"`
	SalesAllowed         bool     `json:"sales_allowed"`
	PurchaseAllowed      bool     `json:"purchase_allowed"`
	ManufacturingAllowed bool     `json:"manufacturing_allowed"`
	CreatedAt            string   `json:"created_at"`
	UpdatedAt            string   `json:"updated_at"`
	DeletedAt            *string  `json:"deleted_at"`
}

func renderLocation(w *simkit.Warehouse, x *ids) location {
	return location{ID: w.Seq, Name: w.Name, LegalName: w.Name + " (" + w.Code + ")", AddressID: ptr(w.Seq),
		Address:   &address{ID: w.Seq, City: w.City, Country: "NZ", Line1: fmt.Sprintf("%d Depot Road", w.Seq*10), State: "", Zip: fmt.Sprintf("%04d", 1000+w.Seq)},
		IsPrimary: w.Seq == 1, SalesAllowed: true, PurchaseAllowed: true, ManufacturingAllowed: w.Seq == 1,
		CreatedAt: ts(w.Created), UpdatedAt: ts(w.Modified), DeletedAt: x.deletedAt(w.Meta)}
}

func (s *Server) locations(d *simkit.Dataset, q query) (int, []any) {
	x := s.idx(d)
	sel := newestFirst(s, d.Warehouses, func(w *simkit.Warehouse) simkit.Meta { return w.Meta }, func(w *simkit.Warehouse) int { return w.Seq }, q)
	start, end := pageOf(len(sel), q)
	out := make([]any, 0, end-start)
	for _, i := range sel[start:end] {
		out = append(out, renderLocation(d.Warehouses[i], x))
	}
	return len(sel), out
}

type inventoryRow struct {
	VariantID               int       `json:"variant_id"`
	LocationID              int       `json:"location_id"`
	ReorderPoint            string    `json:"reorder_point"`
	AverageCost             string    `json:"average_cost"`
	ValueInStock            string    `json:"value_in_stock"`
	QuantityInStock         string    `json:"quantity_in_stock"`
	QuantityCommitted       string    `json:"quantity_committed"`
	QuantityExpected        string    `json:"quantity_expected"`
	QuantityMissingOrExcess string    `json:"quantity_missing_or_excess"`
	QuantityPotential       string    `json:"quantity_potential"`
	SafetyStockLevel        string    `json:"safety_stock_level"`
	ArchivedAt              *string   `json:"archived_at"`
	Variant                 *variant  `json:"variant,omitempty"`
	Location                *location `json:"location,omitempty"`
}

// inventory lists stock per variant and location, oldest location first
// (as Katana documents) and, within a location, by variant id ascending
// (an assumption): live products, then materials. Katana has no updated_at
// filter here.
func (s *Server) inventory(d *simkit.Dataset, q query) (int, []any) {
	x := s.idx(d)
	live := make([]int, 0, len(d.Products))
	for i, p := range d.Products {
		if !p.Deleted {
			live = append(live, i)
		}
	}
	nw := len(d.Warehouses)
	ne := len(live) + len(d.Suppliers)
	total := ne * nw
	start, end := pageOf(total, q)
	out := make([]any, 0, end-start)
	// Row r is entity r%ne in warehouse r/ne.
	for _, r := range s.positions(total, start, end) {
		e, wi := r%ne, r/ne
		w := d.Warehouses[wi]
		row := inventoryRow{LocationID: w.Seq, ReorderPoint: qty(0), QuantityExpected: qty(0), QuantityMissingOrExcess: qty(0), SafetyStockLevel: qty(0)}
		var v variant
		if e < len(live) {
			p := d.Products[live[e]]
			st := p.Stock[wi%len(p.Stock)]
			cost, _ := strconv.ParseFloat(p.CostPrice, 64)
			v = productVariant(p, x)
			row.VariantID = v.ID
			row.AverageCost = money(p.CostPrice)
			row.ValueInStock = strconv.FormatFloat(st.OnHand*cost, 'f', 10, 64)
			row.QuantityInStock = qty(st.OnHand)
			row.QuantityCommitted = qty(st.Allocated)
			row.QuantityPotential = qty(st.OnHand - st.Allocated)
		} else {
			sp := d.Suppliers[e-len(live)]
			v = materialVariant(sp, x)
			onHand := materialStock(sp, wi)
			row.VariantID = v.ID
			row.AverageCost = money(string(v.PurchasePrice))
			cost, _ := strconv.ParseFloat(string(v.PurchasePrice), 64)
			row.ValueInStock = strconv.FormatFloat(onHand*cost, 'f', 10, 64)
			row.QuantityInStock = qty(onHand)
			row.QuantityCommitted = qty(0)
			row.QuantityPotential = qty(onHand)
		}
		if q.extend["variant"] {
			row.Variant = &v
		}
		if q.extend["location"] {
			l := renderLocation(w, x)
			row.Location = &l
		}
		out = append(out, row)
	}
	return total, out
}

// variants lists the variants of products and materials (each has one),
// newest first: materials' variants, which the simulator creates with its
// suppliers, after the products' (an assumption; Katana documents "the
// most recent variants appearing first" and the connector reads this list
// only by ids). It takes the documented ids and include_deleted.
func (s *Server) variants(d *simkit.Dataset, q query) (int, []any) {
	x := s.idx(d)
	ps := newestFirst(s, d.Products, func(p *simkit.Product) simkit.Meta { return p.Meta }, func(p *simkit.Product) int { return VariantID(p.Seq) }, q)
	ms := newestFirst(s, d.Suppliers, func(sp *simkit.Supplier) simkit.Meta { return sp.Meta }, func(sp *simkit.Supplier) int { return MaterialVariantID(sp.Seq) }, q)
	n := len(ps) + len(ms)
	start, end := pageOf(n, q)
	out := make([]any, 0, end-start)
	for i := start; i < end; i++ {
		if i < len(ps) {
			out = append(out, productVariant(d.Products[ps[i]], x))
		} else {
			out = append(out, materialVariant(d.Suppliers[ms[i-len(ps)]], x))
		}
	}
	return n, out
}

// materialStock is the simulator's stock of a material in the wi-th
// location (the dataset has no materials of its own).
func materialStock(sp *simkit.Supplier, wi int) float64 { return float64(100 + 10*sp.Seq + wi) }

type customerAddress struct {
	ID         int     `json:"id"`
	CustomerID int     `json:"customer_id"`
	EntityType string  `json:"entity_type"`
	Default    bool    `json:"default"`
	FirstName  *string `json:"first_name"`
	LastName   *string `json:"last_name"`
	Company    *string `json:"company"`
	Phone      *string `json:"phone"`
	Line1      *string `json:"line_1"`
	Line2      *string `json:"line_2"`
	City       *string `json:"city"`
	State      *string `json:"state"`
	Zip        *string `json:"zip"`
	Country    *string `json:"country"`
	CreatedAt  string  `json:"created_at"`
	UpdatedAt  string  `json:"updated_at"`
	DeletedAt  *string `json:"deleted_at"`
}

type customer struct {
	ID                int               `json:"id"`
	Name              string            `json:"name"`
	FirstName         *string           `json:"first_name"`
	LastName          *string           `json:"last_name"`
	Company           *string           `json:"company"`
	Email             *string           `json:"email"`
	Phone             *string           `json:"phone"`
	Currency          string            `json:"currency"`
	ReferenceID       *string           `json:"reference_id"`
	Category          *string           `json:"category"`
	Comment           *string           `json:"comment"`
	DiscountRate      *float64          `json:"discount_rate"`
	DefaultBillingID  *int              `json:"default_billing_id"`
	DefaultShippingID *int              `json:"default_shipping_id"`
	CreatedAt         string            `json:"created_at"`
	UpdatedAt         string            `json:"updated_at"`
	DeletedAt         *string           `json:"deleted_at"`
	Addresses         []customerAddress `json:"addresses"`
}

func renderCustomer(c *simkit.Customer, x *ids) customer {
	out := customer{ID: c.Seq, Name: c.Name, Company: ptr(c.Name), Email: ptr(c.Email), Phone: ptr(c.Phone), Currency: c.Currency,
		ReferenceID: ptr(c.Code), Category: ptr(c.PriceTier), CreatedAt: ts(c.Created), UpdatedAt: ts(c.Modified), DeletedAt: x.deletedAt(c.Meta),
		DefaultBillingID: ptr(c.Seq*10 + 1), DefaultShippingID: ptr(c.Seq*10 + 2)}
	if len(c.Contacts) > 0 {
		out.FirstName, out.LastName = ptr(c.Contacts[0].FirstName), ptr(c.Contacts[0].LastName)
	}
	for i, kind := range []string{"billing", "shipping"} {
		out.Addresses = append(out.Addresses, customerAddress{ID: c.Seq*10 + 1 + i, CustomerID: c.Seq, EntityType: kind, Default: true,
			FirstName: out.FirstName, LastName: out.LastName, Company: ptr(c.Name), Phone: ptr(c.Phone), Line1: ptr(c.Street),
			City: ptr(c.City), Zip: ptr(c.PostalCode), Country: ptr(c.Country), CreatedAt: ts(c.Created), UpdatedAt: ts(c.Modified)})
	}
	return out
}

func (s *Server) customers(d *simkit.Dataset, q query) (int, []any) {
	x := s.idx(d)
	sel := newestFirst(s, d.Customers, func(c *simkit.Customer) simkit.Meta { return c.Meta }, func(c *simkit.Customer) int { return c.Seq }, q)
	start, end := pageOf(len(sel), q)
	out := make([]any, 0, end-start)
	for _, i := range sel[start:end] {
		out = append(out, renderCustomer(d.Customers[i], x))
	}
	return len(sel), out
}

type salesOrderRow struct {
	ID                         int      `json:"id"`
	SalesOrderID               int      `json:"sales_order_id"`
	VariantID                  int      `json:"variant_id"`
	Quantity                   float64  `json:"quantity"`
	PricePerUnit               string   `json:"price_per_unit"`
	PricePerUnitInBaseCurrency float64  `json:"price_per_unit_in_base_currency"`
	TaxRateID                  *int     `json:"tax_rate_id"`
	TaxRate                    *float64 `json:"tax_rate"`
	LocationID                 *int     `json:"location_id"`
	Total                      float64  `json:"total"`
	TotalInBaseCurrency        float64  `json:"total_in_base_currency"`
	TotalDiscount              *string  `json:"total_discount"`
	LinkedManufacturingOrderID *int     `json:"linked_manufacturing_order_id"`
	ConversionRate             *float64 `json:"conversion_rate"`
	ConversionDate             *string  `json:"conversion_date"`
	CreatedAt                  string   `json:"created_at"`
	UpdatedAt                  string   `json:"updated_at"`
	DeletedAt                  *string  `json:"deleted_at"`
	Attributes                 []any    `json:"attributes"`
}

type salesOrder struct {
	ID                  int             `json:"id"`
	CustomerID          int             `json:"customer_id"`
	OrderNo             string          `json:"order_no"`
	Source              *string         `json:"source"`
	OrderCreatedDate    string          `json:"order_created_date"`
	DeliveryDate        *string         `json:"delivery_date"`
	LocationID          int             `json:"location_id"`
	Status              string          `json:"status"`
	Currency            string          `json:"currency"`
	ConversionRate      *float64        `json:"conversion_rate"`
	Total               json.Number     `json:"total"`
	TotalInBaseCurrency json.Number     `json:"total_in_base_currency"`
	AdditionalInfo      *string         `json:"additional_info"`
	CustomerRef         *string         `json:"customer_ref"`
	InvoicingStatus     *string         `json:"invoicing_status"`
	CreatedAt           string          `json:"created_at"`
	UpdatedAt           string          `json:"updated_at"`
	DeletedAt           *string         `json:"deleted_at"`
	SalesOrderRows      []salesOrderRow `json:"sales_order_rows"`
	Addresses           []any           `json:"addresses"`
}

// OrderStatus maps the dataset's order states to Katana's.
func OrderStatus(st string) string {
	switch st {
	case "Parked":
		return "PENDING"
	case "Completed":
		return "DELIVERED"
	case "Backordered":
		return "PARTIALLY_DELIVERED"
	}
	return "NOT_SHIPPED"
}

func renderOrder(o *simkit.Document, x *ids) salesOrder {
	_, _, total := o.Totals()
	out := salesOrder{ID: o.Seq, CustomerID: x.customer[o.CustomerID], OrderNo: o.Number, OrderCreatedDate: ts(o.Date),
		DeliveryDate: ptr(ts(o.DueDate)), LocationID: x.warehouse[o.WarehouseCode], Status: OrderStatus(o.Status), Currency: o.Currency,
		Total: num(total), TotalInBaseCurrency: num(total), CreatedAt: ts(o.Created), UpdatedAt: ts(o.Modified),
		DeletedAt: x.deletedAt(o.Meta), Addresses: []any{}}
	for i, l := range o.Lines {
		price, _ := strconv.ParseFloat(l.UnitPrice, 64)
		taxID := x.tax[l.TaxCode]
		out.SalesOrderRows = append(out.SalesOrderRows, salesOrderRow{ID: o.Seq*100 + i + 1, SalesOrderID: o.Seq, VariantID: VariantID(x.product[l.ProductID]),
			Quantity: l.Quantity, PricePerUnit: money(l.UnitPrice), PricePerUnitInBaseCurrency: price, TaxRateID: ptr(taxID), TaxRate: ptr(l.TaxRate),
			LocationID: ptr(out.LocationID), Total: price * l.Quantity, TotalInBaseCurrency: price * l.Quantity,
			CreatedAt: ts(o.Created), UpdatedAt: ts(o.Modified), Attributes: []any{}})
	}
	return out
}

func (s *Server) salesOrders(d *simkit.Dataset, q query) (int, []any) {
	x := s.idx(d)
	sel := newestFirst(s, d.Orders, func(o *simkit.Document) simkit.Meta { return o.Meta }, func(o *simkit.Document) int { return o.Seq }, q)
	start, end := pageOf(len(sel), q)
	out := make([]any, 0, end-start)
	for _, i := range sel[start:end] {
		out = append(out, renderOrder(d.Orders[i], x))
	}
	return len(sel), out
}

type taxRate struct {
	ID                 int     `json:"id"`
	Name               string  `json:"name"`
	Rate               float64 `json:"rate"`
	IsDefaultSales     bool    `json:"is_default_sales"`
	IsDefaultPurchases bool    `json:"is_default_purchases"`
	DisplayName        string  `json:"display_name"`
	CreatedAt          string  `json:"created_at"`
	UpdatedAt          string  `json:"updated_at"`
}

func (s *Server) taxRates(d *simkit.Dataset, q query) (int, []any) {
	q.includeDeleted = false // Katana's tax rates have no deleted marker
	sel := newestFirst(s, d.TaxRates, func(t *simkit.TaxRate) simkit.Meta { return t.Meta }, func(t *simkit.TaxRate) int { return t.Seq }, q)
	start, end := pageOf(len(sel), q)
	out := make([]any, 0, end-start)
	for _, i := range sel[start:end] {
		t := d.TaxRates[i]
		out = append(out, taxRate{ID: t.Seq, Name: t.Code, Rate: t.Rate, IsDefaultSales: t.Seq == 1, IsDefaultPurchases: t.Seq == 1,
			DisplayName: fmt.Sprintf("%s (%g%%)", t.Name, t.Rate), CreatedAt: ts(t.Created), UpdatedAt: ts(t.Modified)})
	}
	return len(sel), out
}

// priceRow is one fixed price of a variant on a customer's price list.
type priceRow struct {
	ID          int         `json:"id"`
	PriceListID int         `json:"price_list_id"`
	VariantID   int         `json:"variant_id"`
	Method      string      `json:"adjustment_method"`
	Amount      json.Number `json:"amount"`
	CreatedAt   string      `json:"created_at"`
	UpdatedAt   string      `json:"updated_at"`
}

// priceRef points at one special price: product index, special price index
// and the price list (customer) it belongs to.
type priceRef struct{ product, special, list int }

// priceRefs lists the dataset's special prices as price-list rows: one price
// list per customer with special prices, one row per (list, variant), newest
// product first. Deleted products have no rows. Only the page's rows are
// rendered (renderRow), so a page costs one pass of integers.
func priceRefs(d *simkit.Dataset, x *ids) []priceRef {
	out := make([]priceRef, 0, len(d.Products))
	for i := len(d.Products) - 1; i >= 0; i-- {
		p := d.Products[i]
		if p.Deleted {
			continue
		}
	next:
		for j, sp := range p.SpecialPrices {
			list := x.customer[sp.CustomerID]
			if list == 0 {
				continue
			}
			for _, prev := range p.SpecialPrices[:j] {
				if x.customer[prev.CustomerID] == list {
					continue next // one row per variant and list
				}
			}
			out = append(out, priceRef{product: i, special: j, list: list})
		}
	}
	return out
}

func renderRow(d *simkit.Dataset, r priceRef) priceRow {
	p := d.Products[r.product]
	return priceRow{ID: p.Seq*16 + r.special + 1, PriceListID: r.list, VariantID: VariantID(p.Seq), Method: "fixed",
		Amount: num(p.SpecialPrices[r.special].Price), CreatedAt: ts(p.Created), UpdatedAt: ts(p.Modified)}
}

// listCustomers returns the customers that have a price list (those with
// special prices), newest first.
func listCustomers(d *simkit.Dataset, x *ids) []*simkit.Customer {
	has := map[int]bool{}
	for _, p := range d.Products {
		if p.Deleted {
			continue
		}
		for _, sp := range p.SpecialPrices {
			has[x.customer[sp.CustomerID]] = true
		}
	}
	var out []*simkit.Customer
	for i := len(d.Customers) - 1; i >= 0; i-- {
		if has[d.Customers[i].Seq] {
			out = append(out, d.Customers[i])
		}
	}
	return out
}

type priceList struct {
	ID        int    `json:"id"`
	Name      string `json:"name"`
	IsActive  bool   `json:"is_active"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

type priceListCustomer struct {
	ID          int    `json:"id"`
	PriceListID int    `json:"price_list_id"`
	CustomerID  int    `json:"customer_id"`
	CreatedAt   string `json:"created_at"`
	UpdatedAt   string `json:"updated_at"`
}

func (s *Server) priceLists(d *simkit.Dataset, q query) (int, []any) {
	cs := listCustomers(d, s.idx(d))
	var late []lateList
	for _, l := range s.lateLists() {
		if l.published {
			late = append(late, l)
		}
	}
	n := len(late) + len(cs)
	start, end := pageOf(n, q)
	out := make([]any, 0, end-start)
	for _, i := range s.positions(n, start, end) {
		if i < len(late) {
			l := late[len(late)-1-i] // the newest first
			out = append(out, priceList{ID: l.listID, Name: fmt.Sprintf("Late list %d", l.listID), IsActive: true, CreatedAt: ts(l.created), UpdatedAt: ts(l.created)})
			continue
		}
		c := cs[i-len(late)]
		out = append(out, priceList{ID: c.Seq, Name: "Special prices " + c.Code, IsActive: !c.Deleted, CreatedAt: ts(c.Created), UpdatedAt: ts(c.Modified)})
	}
	return n, out
}

func (s *Server) priceListCustomers(d *simkit.Dataset, q query) (int, []any) {
	cs := listCustomers(d, s.idx(d))
	start, end := pageOf(len(cs), q)
	out := make([]any, 0, end-start)
	for _, i := range s.positions(len(cs), start, end) {
		c := cs[i]
		out = append(out, priceListCustomer{ID: c.Seq, PriceListID: c.Seq, CustomerID: c.Seq, CreatedAt: ts(c.Created), UpdatedAt: ts(c.Modified)})
	}
	return len(cs), out
}

// priceListRows serves the rows of late price lists (the newest) first,
// then the dataset's rows, newest product first.
func (s *Server) priceListRows(d *simkit.Dataset, q query) (int, []any) {
	refs := priceRefs(d, s.idx(d))
	late := s.lateLists()
	n := len(late) + len(refs)
	start, end := pageOf(n, q)
	out := make([]any, 0, end-start)
	for _, i := range s.positions(n, start, end) {
		if i < len(late) {
			out = append(out, lateRow(late[len(late)-1-i]))
			continue
		}
		out = append(out, renderRow(d, refs[i-len(late)]))
	}
	return n, out
}

func lateRow(l lateList) priceRow {
	return priceRow{ID: l.rowID, PriceListID: l.listID, VariantID: l.variantID, Method: "fixed", Amount: num(l.amount),
		CreatedAt: ts(l.created), UpdatedAt: ts(l.created)}
}

// positions returns the list indexes served at positions [start, end) of a
// list of n: the positions themselves, or, when s is unstable, that stretch
// of a fresh permutation of the whole list.
func (s *Server) positions(n, start, end int) []int {
	if !s.Unstable() {
		out := make([]int, 0, end-start)
		for i := start; i < end; i++ {
			out = append(out, i)
		}
		return out
	}
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	return s.Order(all)[start:end]
}

// AddLatePriceList creates a price list with one fixed-price row for the
// newest live product, as if it had been created after the client read
// /price_lists: from now on /price_list_rows serves the row, while
// /price_lists does not list the list until PublishLatePriceLists. The
// list has no customers. It returns the row's id, or 0 when the dataset
// has no live product.
func (s *Server) AddLatePriceList() int {
	var variantID int
	s.data.View(func(d *simkit.Dataset) {
		for i := len(d.Products) - 1; i >= 0; i-- {
			if !d.Products[i].Deleted {
				variantID = VariantID(d.Products[i].Seq)
				return
			}
		}
	})
	if variantID == 0 {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.late) + 1
	l := lateList{listID: lateListBase + n, rowID: lateRowBase + n, variantID: variantID, amount: fmt.Sprintf("%d.25", 10+n),
		created: s.Now().Truncate(time.Millisecond)}
	s.late = append(s.late, l)
	return l.rowID
}

// PublishLatePriceLists makes every late price list appear in
// /price_lists, so that its rows can be read.
func (s *Server) PublishLatePriceLists() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.late {
		s.late[i].published = true
	}
}

// LatePriceRow describes a late price list's row for a test: its id, its
// variant, its price and whether its list is published.
type LatePriceRow struct {
	RowID, VariantID int
	Price            string
	Published        bool
}

// LatePriceRows returns the rows of the late price lists, oldest first.
func (s *Server) LatePriceRows() []LatePriceRow {
	var out []LatePriceRow
	for _, l := range s.lateLists() {
		out = append(out, LatePriceRow{RowID: l.rowID, VariantID: l.variantID, Price: l.amount, Published: l.published})
	}
	return out
}

func (s *Server) lateLists() []lateList {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]lateList(nil), s.late...)
}

// PriceRow is one price-list row the simulator serves, as a test needs it
// to know what a full import must yield.
type PriceRow struct {
	RowID, VariantID int
	// CustomerSeq is the sequence (Katana id) of the list's one customer,
	// 0 for a late list, which has none.
	CustomerSeq int
	// Price is the row's fixed price as a dataset decimal.
	Price string
	// Active is false for the list of a deleted customer.
	Active bool
	// Listed is false for a late list not yet published: its rows cannot
	// be resolved.
	Listed bool
}

// PriceRows returns every row /price_list_rows serves now.
func (s *Server) PriceRows() []PriceRow {
	var out []PriceRow
	for _, l := range s.lateLists() {
		out = append(out, PriceRow{RowID: l.rowID, VariantID: l.variantID, Price: l.amount, Active: true, Listed: l.published})
	}
	s.data.View(func(d *simkit.Dataset) {
		x := s.idx(d)
		deleted := map[int]bool{}
		for _, c := range d.Customers {
			deleted[c.Seq] = c.Deleted
		}
		for _, r := range priceRefs(d, x) {
			row := renderRow(d, r)
			out = append(out, PriceRow{RowID: row.ID, VariantID: row.VariantID, CustomerSeq: r.list, Price: d.Products[r.product].SpecialPrices[r.special].Price,
				Active: !deleted[r.list], Listed: true})
		}
	})
	return out
}

// MaterialOnHand is the stock the simulator serves for the material of a
// supplier in the wi-th location (0-based, in dataset order).
func MaterialOnHand(sp *simkit.Supplier, wi int) float64 { return materialStock(sp, wi) }

// MaterialSKU is the SKU of the material the simulator derives from a
// supplier.
func MaterialSKU(sp *simkit.Supplier) string { return "MAT-" + sp.Code }
