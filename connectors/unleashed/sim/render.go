package sim

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/simkit"
)

// msDate renders a time as a Microsoft JSON date: "/Date(ms)/", UTC.
func msDate(t time.Time) string { return simkit.MSDate(t) }

func msDateP(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := msDate(t)
	return &s
}

// num renders a decimal string as a JSON number.
func num(dec string) json.Number { return simkit.Money(dec) }

// tierValue renders a price tier the way Unleashed does: a string with four
// decimals.
func tierValue(dec string) string {
	c := cents(dec)
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s%d.%02d00", sign, c/100, c%100)
}

// deriveGUID makes a stable GUID for a record the dataset has no id for
// (price rows, shipments, addresses) from its parent's id and a salt.
func deriveGUID(parent, salt string) string {
	h := fnv.New64a()
	h.Write([]byte(parent + "/" + salt))
	v := h.Sum64()
	if len(parent) < 36 {
		parent = strings.Repeat("0", 36-len(parent)) + parent
	}
	return fmt.Sprintf("%08x-%04x", uint32(v>>32), uint16(v>>16)) + parent[13:]
}

const zeroGUID = "00000000-0000-4000-8000-000000000000"

type handler func(s *Server, req request) []byte

var routes = map[string]handler{
	"products":       (*Server).products,
	"stockonhand":    (*Server).stockOnHand,
	"productprices":  (*Server).productPrices,
	"customers":      (*Server).customers,
	"suppliers":      (*Server).suppliers,
	"warehouses":     (*Server).warehouses,
	"taxes":          (*Server).taxes,
	"currencies":     (*Server).currencies,
	"salespersons":   (*Server).salespersons,
	"salesorders":    (*Server).salesOrders,
	"invoices":       (*Server).invoices,
	"creditnotes":    (*Server).creditNotes,
	"salesshipments": (*Server).salesShipments,
}

// Pagination is Unleashed's page metadata.
type Pagination struct {
	NumberOfItems int `json:"NumberOfItems"`
	PageSize      int `json:"PageSize"`
	PageNumber    int `json:"PageNumber"`
	NumberOfPages int `json:"NumberOfPages"`
}

// page renders the envelope of the given page of the list idx (indexes
// into the caller's records, in the vendor's order); render is called for
// the indexes of the page. The base serves the list in a fresh order when
// its unstable-order knob is on.
func page[T any](s *Server, req request, idx []int, render func(i int) T) []byte {
	if req.single {
		// Not a list: the document is picked from every record.
		req.page, req.size = 1, max(len(idx), 1)
	} else {
		idx = s.Order(idx)
	}
	n := len(idx)
	size := req.size
	items := []T{}
	pages := 0
	if size > 0 {
		pages = (n + size - 1) / size
		start, end, _ := simkit.PageOf(n, req.page, size)
		for _, i := range idx[start:end] {
			items = append(items, render(i))
		}
	}
	b, err := json.Marshal(struct {
		Pagination Pagination `json:"Pagination"`
		Items      []T        `json:"Items"`
	}{Pagination{NumberOfItems: n, PageSize: size, PageNumber: req.page, NumberOfPages: pages}, items})
	if err != nil {
		panic(fmt.Sprintf("unleashed sim: rendering: %v", err)) // only our own types are rendered
	}
	return b
}

// all returns the indexes 0..n-1: a list in the dataset's (creation) order.
func all(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// modified is modifiedSince: "created or modified since", inclusive.
func modified(t time.Time, req request) bool { return req.since.IsZero() || !t.Before(req.since) }

// isTarget reports whether a record is the one a read by Guid asks for
// (every record is, in a list): a read of one product or customer, the
// documents webhooks name, renders that document only.
func isTarget(req request, id string) bool { return !req.single || strings.EqualFold(id, req.id) }

func includeObsolete(req request) bool {
	return req.single || strings.EqualFold(req.q["includeobsolete"], "true")
}

// statusFilter returns the statuses asked for in param; by default every
// status but Deleted.
func statusFilter(req request, param string) func(status string) bool {
	v := req.q[param]
	if req.single {
		return func(string) bool { return true }
	}
	if v == "" {
		return func(s string) bool { return s != "Deleted" }
	}
	set := map[string]bool{}
	for _, s := range strings.Split(v, ",") {
		set[strings.ToLower(strings.TrimSpace(s))] = true
	}
	return func(s string) bool { return set[strings.ToLower(s)] }
}

// Ref is the small object Unleashed nests for linked records.
type Ref struct {
	Guid string `json:"Guid"`
}

// UnitOfMeasure nests in a product.
type UnitOfMeasure struct {
	Guid string `json:"Guid"`
	Name string `json:"Name"`
}

// ProductGroup nests in a product.
type ProductGroup struct {
	Guid           string `json:"Guid"`
	GroupName      string `json:"GroupName"`
	LastModifiedOn string `json:"LastModifiedOn"`
}

// PriceTier is one of a product's ten sell price tiers.
type PriceTier struct {
	Name  string `json:"Name"`
	Value string `json:"Value"`
}

// SupplierRef nests in a product.
type SupplierRef struct {
	Guid         string `json:"Guid"`
	SupplierCode string `json:"SupplierCode"`
	SupplierName string `json:"SupplierName"`
}

// Product is an Unleashed product (GET /Products).
type Product struct {
	Guid                 string         `json:"Guid"`
	ProductCode          string         `json:"ProductCode"`
	ProductDescription   string         `json:"ProductDescription"`
	Notes                string         `json:"Notes"`
	Barcode              *string        `json:"Barcode"`
	UnitOfMeasure        *UnitOfMeasure `json:"UnitOfMeasure"`
	ProductGroup         *ProductGroup  `json:"ProductGroup"`
	DefaultPurchasePrice json.Number    `json:"DefaultPurchasePrice"`
	DefaultSellPrice     json.Number    `json:"DefaultSellPrice"`
	AverageLandPrice     json.Number    `json:"AverageLandPrice"`
	SellPriceTier1       PriceTier      `json:"SellPriceTier1"`
	SellPriceTier2       PriceTier      `json:"SellPriceTier2"`
	SellPriceTier3       PriceTier      `json:"SellPriceTier3"`
	SellPriceTier4       PriceTier      `json:"SellPriceTier4"`
	SellPriceTier5       PriceTier      `json:"SellPriceTier5"`
	SellPriceTier6       PriceTier      `json:"SellPriceTier6"`
	SellPriceTier7       PriceTier      `json:"SellPriceTier7"`
	SellPriceTier8       PriceTier      `json:"SellPriceTier8"`
	SellPriceTier9       PriceTier      `json:"SellPriceTier9"`
	SellPriceTier10      PriceTier      `json:"SellPriceTier10"`
	Supplier             *SupplierRef   `json:"Supplier"`
	NeverDiminishing     bool           `json:"NeverDiminishing"`
	IsSellable           bool           `json:"IsSellable"`
	IsComponent          bool           `json:"IsComponent"`
	IsAssembledProduct   bool           `json:"IsAssembledProduct"`
	Obsolete             bool           `json:"Obsolete"`
	XeroSalesTaxCode     *string        `json:"XeroSalesTaxCode"`
	Width                *float64       `json:"Width"`
	Height               *float64       `json:"Height"`
	Depth                *float64       `json:"Depth"`
	Weight               *float64       `json:"Weight"`
	CreatedBy            string         `json:"CreatedBy"`
	CreatedOn            string         `json:"CreatedOn"`
	LastModifiedBy       string         `json:"LastModifiedBy"`
	LastModifiedOn       string         `json:"LastModifiedOn"`
}

func strp(s string) *string { return &s }

func (s *Server) product(d *simkit.Dataset, p *simkit.Product, suppliers map[string]*simkit.Supplier) Product {
	blank := func(n int) PriceTier { return PriceTier{Name: fmt.Sprintf("Sell Price Tier %d", n), Value: "0.0000"} }
	out := Product{Guid: p.ID, ProductCode: p.SKU, ProductDescription: p.Name, Notes: p.Description,
		UnitOfMeasure:        &UnitOfMeasure{Guid: deriveGUID(zeroGUID, "uom/"+p.Unit), Name: p.Unit},
		ProductGroup:         &ProductGroup{Guid: deriveGUID(zeroGUID, "group/"+p.Category), GroupName: p.Category, LastModifiedOn: msDate(p.Created)},
		DefaultPurchasePrice: num(p.CostPrice), DefaultSellPrice: num(p.SellPrice), AverageLandPrice: num(p.CostPrice),
		SellPriceTier1: PriceTier{Name: "Wholesale", Value: tierValue(p.Tier2Price)}, SellPriceTier2: blank(2), SellPriceTier3: blank(3),
		SellPriceTier4: blank(4), SellPriceTier5: blank(5), SellPriceTier6: blank(6), SellPriceTier7: blank(7), SellPriceTier8: blank(8),
		SellPriceTier9: blank(9), SellPriceTier10: blank(10),
		IsSellable: true, Obsolete: p.Deleted, XeroSalesTaxCode: strp("OUTPUT2"),
		CreatedBy: "admin@example.com", CreatedOn: msDate(p.Created), LastModifiedBy: "admin@example.com", LastModifiedOn: msDate(p.Modified)}
	if p.Barcode != "" {
		out.Barcode = strp(p.Barcode)
	}
	if sup := suppliers[p.SupplierCode]; sup != nil {
		out.Supplier = &SupplierRef{Guid: sup.ID, SupplierCode: sup.Code, SupplierName: sup.Name}
	}
	return out
}

func supplierIndex(d *simkit.Dataset) map[string]*simkit.Supplier {
	m := map[string]*simkit.Supplier{}
	for _, s := range d.Suppliers {
		m[s.Code] = s
	}
	return m
}

func (s *Server) products(req request) []byte {
	var body []byte
	s.data.View(func(d *simkit.Dataset) {
		sups := supplierIndex(d)
		// Unleashed lists products by code unless orderBy says otherwise
		// (Products page): an edit does not move a product.
		idx := simkit.Sorted(d.Products, func(p *simkit.Product) bool {
			return isTarget(req, p.ID) && (!p.Deleted || includeObsolete(req)) && modified(p.Modified, req) && (req.q["productcode"] == "" || strings.EqualFold(req.q["productcode"], p.SKU))
		}, func(a, b *simkit.Product) bool { return a.SKU < b.SKU })
		body = page(s, req, idx, func(i int) Product { return s.product(d, d.Products[i], sups) })
	})
	return body
}

// StockOnHand is one row of GET /StockOnHand: a product's stock in one
// warehouse (warehouseCode given) or across all warehouses (WarehouseId
// null).
type StockOnHand struct {
	Guid               string      `json:"Guid"`
	ProductGuid        string      `json:"ProductGuid"`
	ProductCode        string      `json:"ProductCode"`
	ProductDescription string      `json:"ProductDescription"`
	ProductGroupName   string      `json:"ProductGroupName"`
	WarehouseId        *string     `json:"WarehouseId"`
	WarehouseCode      *string     `json:"WarehouseCode"`
	Warehouse          *string     `json:"Warehouse"`
	DaysSinceLastSale  *int        `json:"DaysSinceLastSale"`
	OnPurchase         float64     `json:"OnPurchase"`
	AllocatedQty       float64     `json:"AllocatedQty"`
	AvailableQty       float64     `json:"AvailableQty"`
	QtyOnHand          float64     `json:"QtyOnHand"`
	AvgCost            json.Number `json:"AvgCost"`
	TotalCost          json.Number `json:"TotalCost"`
	LastModifiedOn     string      `json:"LastModifiedOn"`
}

func (s *Server) stockOnHand(req request) []byte {
	var body []byte
	s.data.View(func(d *simkit.Dataset) {
		code := req.q["warehousecode"]
		var wh *simkit.Warehouse
		for _, w := range d.Warehouses {
			if strings.EqualFold(w.Code, code) {
				wh = w
			}
		}
		whByCode := map[string]*simkit.Warehouse{}
		for _, w := range d.Warehouses {
			whByCode[w.Code] = w
		}
		type row struct{ p, st int }
		var rows []row
		// Rows come in product code order (an assumption: Unleashed does
		// not document the order of StockOnHand).
		for _, i := range simkit.Sorted(d.Products, nil, func(a, b *simkit.Product) bool { return a.SKU < b.SKU }) {
			p := d.Products[i]
			if req.allWarehouses {
				// GET /StockOnHand/{productGuid}/AllWarehouses: the
				// product's row in each warehouse.
				if strings.EqualFold(p.ID, req.id) {
					for j, st := range p.Stock {
						if whByCode[st.WarehouseCode] != nil {
							rows = append(rows, row{i, j})
						}
					}
				}
				continue
			}
			if code == "" {
				mod := p.Modified
				for _, st := range p.Stock {
					if st.Modified.After(mod) {
						mod = st.Modified
					}
				}
				if modified(mod, req) {
					rows = append(rows, row{i, -1})
				}
				continue
			}
			for j, st := range p.Stock {
				if wh != nil && st.WarehouseCode == wh.Code && modified(st.Modified, req) {
					rows = append(rows, row{i, j})
				}
			}
		}
		body = page(s, req, all(len(rows)), func(i int) StockOnHand {
			p := d.Products[rows[i].p]
			cost := float64(cents(p.CostPrice)) / 100
			out := StockOnHand{Guid: p.ID, ProductGuid: p.ID, ProductCode: p.SKU, ProductDescription: p.Name, ProductGroupName: p.Category,
				AvgCost: num(p.CostPrice)}
			if rows[i].st < 0 {
				var mod time.Time
				for _, st := range p.Stock {
					out.QtyOnHand += st.OnHand
					out.AllocatedQty += st.Allocated
					if st.Modified.After(mod) {
						mod = st.Modified
					}
				}
				out.LastModifiedOn = msDate(mod)
			} else {
				st := p.Stock[rows[i].st]
				wh := whByCode[st.WarehouseCode]
				out.WarehouseId, out.WarehouseCode, out.Warehouse = strp(wh.ID), strp(wh.Code), strp(wh.Name)
				out.QtyOnHand, out.AllocatedQty = st.OnHand, st.Allocated
				out.LastModifiedOn = msDate(st.Modified)
			}
			out.AvailableQty = out.QtyOnHand - out.AllocatedQty
			out.TotalCost = json.Number(strconv.FormatFloat(out.QtyOnHand*cost, 'f', 2, 64))
			return out
		})
	})
	return body
}

// ProductRef nests a product in prices, lines and stock.
type ProductRef struct {
	Guid               string `json:"Guid"`
	ProductCode        string `json:"ProductCode"`
	ProductDescription string `json:"ProductDescription"`
}

// CustomerRef nests a customer in prices and documents.
type CustomerRef struct {
	Guid           string `json:"Guid"`
	CustomerCode   string `json:"CustomerCode"`
	CustomerName   string `json:"CustomerName"`
	CurrencyId     int    `json:"CurrencyId"`
	LastModifiedOn string `json:"LastModifiedOn"`
}

// ProductPrice is a customer-specific price (GET /ProductPrices).
type ProductPrice struct {
	Guid             string        `json:"Guid"`
	Product          *ProductRef   `json:"Product"`
	ProductGroup     *ProductGroup `json:"ProductGroup"`
	Customer         *CustomerRef  `json:"Customer"`
	PriceType        string        `json:"PriceType"`
	DiscountValue    *float64      `json:"DiscountValue"`
	MinimumQuantity  float64       `json:"MinimumQuantity"`
	DefaultSellPrice json.Number   `json:"DefaultSellPrice"`
	CustomerPrice    json.Number   `json:"CustomerPrice"`
	ValidFrom        *string       `json:"ValidFrom"`
	ValidTo          *string       `json:"ValidTo"`
	Comments         string        `json:"Comments"`
	LastModifiedOn   string        `json:"LastModifiedOn"`
}

func customerRef(c *simkit.Customer) *CustomerRef {
	if c == nil {
		return nil
	}
	return &CustomerRef{Guid: c.ID, CustomerCode: c.Code, CustomerName: c.Name, CurrencyId: currencyID(c.Currency), LastModifiedOn: msDate(c.Modified)}
}

func currencyID(code string) int {
	for i, c := range []string{"NZD", "AUD", "USD", "GBP"} {
		if c == code {
			return i + 1
		}
	}
	return 0
}

func customerIndex(d *simkit.Dataset) map[string]*simkit.Customer {
	m := make(map[string]*simkit.Customer, len(d.Customers))
	for _, c := range d.Customers {
		m[c.ID] = c
	}
	return m
}

func (s *Server) productPrices(req request) []byte {
	groups := s.groupPriceRows()
	var body []byte
	s.data.View(func(d *simkit.Dataset) {
		custs := customerIndex(d)
		// Rows: each product's customer prices in product code order (an
		// assumption: the ProductPrices page does not say), then the
		// product-group prices.
		type row struct{ p, sp, group int }
		var rows []row
		for _, i := range simkit.Sorted(d.Products, nil, func(a, b *simkit.Product) bool { return a.SKU < b.SKU }) {
			p := d.Products[i]
			if !modified(p.Modified, req) {
				continue
			}
			for j, sp := range p.SpecialPrices {
				if cc := req.q["customercode"]; cc != "" && !strings.EqualFold(cc, sp.CustomerCode) {
					continue
				}
				rows = append(rows, row{i, j, -1})
			}
		}
		for g, gp := range groups {
			if modified(gp.modified, req) {
				rows = append(rows, row{-1, -1, g})
			}
		}
		body = page(s, req, all(len(rows)), func(i int) ProductPrice {
			if g := rows[i].group; g >= 0 {
				gp := groups[g]
				pct := gp.discount
				return ProductPrice{Guid: gp.guid, ProductGroup: &ProductGroup{Guid: deriveGUID(zeroGUID, "group/"+gp.group), GroupName: gp.group, LastModifiedOn: msDate(gp.modified)},
					Customer: customerRef(custs[gp.customerID]), PriceType: "Discount", DiscountValue: &pct, MinimumQuantity: 1, DefaultSellPrice: "0",
					CustomerPrice: "0", LastModifiedOn: msDate(gp.modified)}
			}
			p := d.Products[rows[i].p]
			sp := p.SpecialPrices[rows[i].sp]
			return ProductPrice{Guid: PriceID(p.ID, sp.CustomerID, rows[i].sp),
				Product: &ProductRef{Guid: p.ID, ProductCode: p.SKU, ProductDescription: p.Name}, Customer: customerRef(custs[sp.CustomerID]),
				PriceType: "Fixed Price", MinimumQuantity: sp.MinQuantity, DefaultSellPrice: num(p.SellPrice), CustomerPrice: num(sp.Price),
				LastModifiedOn: msDate(p.Modified)}
		})
	})
	return body
}

// PriceID is the Guid of the j-th customer price of a product.
func PriceID(productID, customerID string, j int) string {
	return deriveGUID(productID, "price/"+customerID+"/"+strconv.Itoa(j))
}

// ShipmentID is the Guid of an order's shipment.
func ShipmentID(orderID string) string { return deriveGUID(orderID, "shipment") }

// groupPrice is a discount for a whole product group and one customer:
// Unleashed's ProductPrices has them (ProductGroup instead of Product, the
// productGroupPrices filter); the connector maps prices of products only.
type groupPrice struct {
	guid, group, customerID string
	discount                float64
	modified                time.Time
}

func (s *Server) groupPriceRows() []groupPrice {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]groupPrice(nil), s.groupPrices...)
}

// Currency is an Unleashed currency (GET /Currencies; nested in parties
// and documents).
type Currency struct {
	Guid            string   `json:"Guid"`
	CurrencyCode    string   `json:"CurrencyCode"`
	Description     string   `json:"Description"`
	DefaultBuyRate  *float64 `json:"DefaultBuyRate"`
	DefaultSellRate *float64 `json:"DefaultSellRate"`
	LastModifiedOn  string   `json:"LastModifiedOn"`
}

func currencyOf(d *simkit.Dataset, code string) *Currency {
	for _, c := range d.Currencies {
		if c.Code == code {
			rate := c.Rate
			return &Currency{Guid: c.ID, CurrencyCode: c.Code, Description: c.Name, DefaultBuyRate: &rate, DefaultSellRate: &rate, LastModifiedOn: msDate(c.Modified)}
		}
	}
	return nil
}

// Salesperson is an Unleashed sales person (GET /Salespersons).
type Salesperson struct {
	Guid           string `json:"Guid"`
	FullName       string `json:"FullName"`
	Email          string `json:"Email"`
	Obsolete       bool   `json:"Obsolete"`
	LastModifiedOn string `json:"LastModifiedOn"`
}

// Address is a customer address.
type Address struct {
	AddressType    string  `json:"AddressType"`
	AddressName    string  `json:"AddressName"`
	StreetAddress  string  `json:"StreetAddress"`
	StreetAddress2 *string `json:"StreetAddress2"`
	Suburb         *string `json:"Suburb"`
	City           string  `json:"City"`
	Region         *string `json:"Region"`
	Country        string  `json:"Country"`
	PostalCode     string  `json:"PostalCode"`
	IsDefault      bool    `json:"IsDefault"`
}

// Contact is a customer contact (includeAllContacts=true).
type Contact struct {
	Guid         string  `json:"Guid"`
	FirstName    string  `json:"FirstName"`
	LastName     string  `json:"LastName"`
	EmailAddress string  `json:"EmailAddress"`
	PhoneNumber  *string `json:"PhoneNumber"`
	MobilePhone  *string `json:"MobilePhone"`
	OfficePhone  *string `json:"OfficePhone"`
	IsDefault    bool    `json:"IsDefault"`
}

// Customer is an Unleashed customer (GET /Customers).
type Customer struct {
	Guid          string       `json:"Guid"`
	CustomerCode  string       `json:"CustomerCode"`
	CustomerName  string       `json:"CustomerName"`
	Email         string       `json:"Email"`
	PhoneNumber   string       `json:"PhoneNumber"`
	MobileNumber  *string      `json:"MobileNumber"`
	GSTVATNumber  string       `json:"GSTVATNumber"`
	Currency      *Currency    `json:"Currency"`
	SellPriceTier string       `json:"SellPriceTier"`
	Salesperson   *Salesperson `json:"Salesperson"`
	Addresses     []Address    `json:"Addresses"`
	// Contacts is there (an array, empty when the customer has none) only
	// when includeAllContacts=true asked for it.
	Contacts       *[]Contact `json:"Contacts,omitempty"`
	Obsolete       bool       `json:"Obsolete"`
	CreatedOn      string     `json:"CreatedOn"`
	LastModifiedOn string     `json:"LastModifiedOn"`
}

func salesperson(sp *simkit.SalesPerson) *Salesperson {
	if sp == nil {
		return nil
	}
	return &Salesperson{Guid: sp.ID, FullName: sp.Name, Email: sp.Email, Obsolete: sp.Deleted, LastModifiedOn: msDate(sp.Modified)}
}

func (s *Server) customers(req request) []byte {
	var body []byte
	s.data.View(func(d *simkit.Dataset) {
		reps := map[string]*simkit.SalesPerson{}
		for _, sp := range d.SalesPeople {
			reps[sp.Code] = sp
		}
		// Customers come by code unless orderBy says otherwise (Customers
		// page): an edit does not move a customer.
		idx := simkit.Sorted(d.Customers, func(c *simkit.Customer) bool {
			return isTarget(req, c.ID) && (!c.Deleted || includeObsolete(req)) && modified(c.Modified, req)
		}, func(a, b *simkit.Customer) bool { return a.Code < b.Code })
		withContacts := strings.EqualFold(req.q["includeallcontacts"], "true")
		body = page(s, req, idx, func(i int) Customer {
			c := d.Customers[i]
			out := Customer{Guid: c.ID, CustomerCode: c.Code, CustomerName: c.Name, Email: c.Email, PhoneNumber: c.Phone, GSTVATNumber: c.TaxNumber,
				Currency: currencyOf(d, c.Currency), SellPriceTier: c.PriceTier, Salesperson: salesperson(reps[c.SalesPersonCode]),
				Addresses: []Address{{AddressType: "Postal", AddressName: "Head office", StreetAddress: c.Street, City: c.City, Country: c.Country, PostalCode: c.PostalCode, IsDefault: true}},
				Obsolete:  c.Deleted, CreatedOn: msDate(c.Created), LastModifiedOn: msDate(c.Modified)}
			if withContacts {
				cs := []Contact{}
				for j, ct := range c.Contacts {
					if j == MaxInlineContacts {
						break // the inline list stops at the cap
					}
					cs = append(cs, Contact{Guid: ct.ID, FirstName: ct.FirstName, LastName: ct.LastName, EmailAddress: ct.Email,
						PhoneNumber: strp(ct.Phone), IsDefault: j == 0})
				}
				out.Contacts = &cs
			}
			return out
		})
	})
	return body
}

// Supplier is an Unleashed supplier (GET /Suppliers).
type Supplier struct {
	Guid           string    `json:"Guid"`
	SupplierCode   string    `json:"SupplierCode"`
	SupplierName   string    `json:"SupplierName"`
	Email          string    `json:"Email"`
	PhoneNumber    string    `json:"PhoneNumber"`
	Currency       *Currency `json:"Currency"`
	Obsolete       bool      `json:"Obsolete"`
	CreatedOn      string    `json:"CreatedOn"`
	LastModifiedOn string    `json:"LastModifiedOn"`
}

func (s *Server) suppliers(req request) []byte {
	var body []byte
	s.data.View(func(d *simkit.Dataset) {
		var idx []int
		for i, sp := range d.Suppliers {
			if !sp.Deleted || includeObsolete(req) {
				idx = append(idx, i)
			}
		}
		body = page(s, req, idx, func(i int) Supplier {
			sp := d.Suppliers[i]
			return Supplier{Guid: sp.ID, SupplierCode: sp.Code, SupplierName: sp.Name, Email: sp.Email, PhoneNumber: sp.Phone,
				Currency: currencyOf(d, sp.Currency), Obsolete: sp.Deleted, CreatedOn: msDate(sp.Created), LastModifiedOn: msDate(sp.Modified)}
		})
	})
	return body
}

// Warehouse is an Unleashed warehouse (GET /Warehouses).
type Warehouse struct {
	Guid           string  `json:"Guid"`
	WarehouseCode  string  `json:"WarehouseCode"`
	WarehouseName  string  `json:"WarehouseName"`
	IsDefault      bool    `json:"IsDefault"`
	StreetNo       string  `json:"StreetNo"`
	AddressLine1   string  `json:"AddressLine1"`
	AddressLine2   *string `json:"AddressLine2"`
	Suburb         string  `json:"Suburb"`
	City           *string `json:"City"`
	Region         string  `json:"Region"`
	Country        string  `json:"Country"`
	PostCode       string  `json:"PostCode"`
	PhoneNumber    string  `json:"PhoneNumber"`
	ContactName    string  `json:"ContactName"`
	Obsolete       bool    `json:"Obsolete"`
	LastModifiedOn string  `json:"LastModifiedOn"`
}

func warehouse(w *simkit.Warehouse, def bool) Warehouse {
	return Warehouse{Guid: w.ID, WarehouseCode: w.Code, WarehouseName: w.Name, IsDefault: def, StreetNo: strconv.Itoa(w.Seq),
		AddressLine1: "Depot Road", Suburb: "", City: strp(w.City), Country: "New Zealand", PostCode: "1010",
		PhoneNumber: "+64 9 555 0000", ContactName: "Stores", Obsolete: w.Deleted, LastModifiedOn: msDate(w.Modified)}
}

func (s *Server) warehouses(req request) []byte {
	var body []byte
	s.data.View(func(d *simkit.Dataset) {
		var idx []int
		for i, w := range d.Warehouses {
			if (!w.Deleted || includeObsolete(req)) && modified(w.Modified, req) {
				idx = append(idx, i)
			}
		}
		body = page(s, req, idx, func(i int) Warehouse { return warehouse(d.Warehouses[i], i == 0) })
	})
	return body
}

// Tax is an Unleashed tax (GET /Taxes).
type Tax struct {
	Guid               string  `json:"Guid"`
	TaxCode            string  `json:"TaxCode"`
	Description        string  `json:"Description"`
	TaxRate            float64 `json:"TaxRate"`
	CanApplyToExpenses bool    `json:"CanApplyToExpenses"`
	CanApplyToRevenue  bool    `json:"CanApplyToRevenue"`
	Obsolete           bool    `json:"Obsolete"`
	LastModifiedOn     string  `json:"LastModifiedOn"`
}

func taxOf(t *simkit.TaxRate) *Tax {
	if t == nil {
		return nil
	}
	// Unleashed rates are fractions: 15 % is 0.15.
	return &Tax{Guid: t.ID, TaxCode: t.Code, Description: t.Name, TaxRate: t.Rate / 100, CanApplyToExpenses: true, CanApplyToRevenue: true,
		Obsolete: t.Deleted, LastModifiedOn: msDate(t.Modified)}
}

func (s *Server) taxes(req request) []byte {
	var body []byte
	s.data.View(func(d *simkit.Dataset) {
		body = page(s, req, all(len(d.TaxRates)), func(i int) Tax { return *taxOf(d.TaxRates[i]) })
	})
	return body
}

func (s *Server) currencies(req request) []byte {
	var body []byte
	s.data.View(func(d *simkit.Dataset) {
		body = page(s, req, all(len(d.Currencies)), func(i int) Currency { return *currencyOf(d, d.Currencies[i].Code) })
	})
	return body
}

func (s *Server) salespersons(req request) []byte {
	var body []byte
	s.data.View(func(d *simkit.Dataset) {
		body = page(s, req, all(len(d.SalesPeople)), func(i int) Salesperson { return *salesperson(d.SalesPeople[i]) })
	})
	return body
}

// Line is a line of an order, invoice or credit note.
type Line struct {
	Guid            string      `json:"Guid"`
	LineNumber      int         `json:"LineNumber"`
	LineType        *string     `json:"LineType"`
	Product         ProductRef  `json:"Product"`
	DueDate         string      `json:"DueDate,omitempty"`
	OrderQuantity   float64     `json:"OrderQuantity,omitempty"`
	InvoiceQuantity float64     `json:"InvoiceQuantity,omitempty"`
	CreditQuantity  float64     `json:"CreditQuantity,omitempty"`
	UnitPrice       json.Number `json:"UnitPrice"`
	DiscountRate    float64     `json:"DiscountRate"`
	LineTotal       json.Number `json:"LineTotal"`
	LineTax         json.Number `json:"LineTax"`
	LineTaxCode     string      `json:"LineTaxCode"`
	TaxRate         float64     `json:"TaxRate"`
	Comments        *string     `json:"Comments"`
	LastModifiedOn  string      `json:"LastModifiedOn"`
}

type lineKind int

const (
	orderLine lineKind = iota
	invoiceLine
	creditLine
)

func lines(doc *simkit.Document, kind lineKind) []Line {
	out := make([]Line, 0, len(doc.Lines))
	for i, l := range doc.Lines {
		lc := int64(l.Quantity) * cents(l.UnitPrice)
		tax := lc * int64(l.TaxRate) / 100
		ln := Line{Guid: deriveGUID(doc.ID, "line/"+strconv.Itoa(i)), LineNumber: i + 1, Product: ProductRef{Guid: l.ProductID, ProductCode: l.SKU, ProductDescription: l.Description},
			UnitPrice: num(l.UnitPrice), LineTotal: num(fmtCents(lc)), LineTax: num(fmtCents(tax)), LineTaxCode: l.TaxCode, TaxRate: l.TaxRate / 100,
			LastModifiedOn: msDate(doc.Modified)}
		switch kind {
		case orderLine:
			ln.OrderQuantity, ln.DueDate = l.Quantity, msDate(doc.DueDate)
		case invoiceLine:
			ln.InvoiceQuantity = l.Quantity
		case creditLine:
			ln.CreditQuantity = l.Quantity
		}
		out = append(out, ln)
	}
	return out
}

// WarehouseRef nests a warehouse in documents.
type WarehouseRef struct {
	Guid          string `json:"Guid"`
	WarehouseCode string `json:"WarehouseCode"`
	WarehouseName string `json:"WarehouseName"`
}

// SalesOrder is an Unleashed sales order (GET /SalesOrders).
type SalesOrder struct {
	Guid            string        `json:"Guid"`
	OrderNumber     string        `json:"OrderNumber"`
	OrderDate       *string       `json:"OrderDate"`
	RequiredDate    *string       `json:"RequiredDate"`
	CompletedDate   *string       `json:"CompletedDate"`
	OrderStatus     string        `json:"OrderStatus"`
	Customer        *CustomerRef  `json:"Customer"`
	CustomerRef     *string       `json:"CustomerRef"`
	Warehouse       *WarehouseRef `json:"Warehouse"`
	Currency        *Currency     `json:"Currency"`
	ExchangeRate    float64       `json:"ExchangeRate"`
	DiscountRate    float64       `json:"DiscountRate"`
	Tax             *Tax          `json:"Tax"`
	SubTotal        json.Number   `json:"SubTotal"`
	TaxTotal        json.Number   `json:"TaxTotal"`
	Total           json.Number   `json:"Total"`
	SalesOrderLines []Line        `json:"SalesOrderLines"`
	CreatedBy       string        `json:"CreatedBy"`
	CreatedOn       string        `json:"CreatedOn"`
	LastModifiedBy  string        `json:"LastModifiedBy"`
	LastModifiedOn  string        `json:"LastModifiedOn"`
}

func orderStatus(o *simkit.Document) string {
	if o.Deleted {
		return "Deleted"
	}
	return o.Status
}

type docIndex struct {
	custs  map[string]*simkit.Customer
	whs    map[string]*simkit.Warehouse
	taxes  map[string]*simkit.TaxRate
	orders map[string]*simkit.Document
}

func indexDocs(d *simkit.Dataset) docIndex {
	ix := docIndex{custs: customerIndex(d), whs: map[string]*simkit.Warehouse{}, taxes: map[string]*simkit.TaxRate{}, orders: map[string]*simkit.Document{}}
	for _, w := range d.Warehouses {
		ix.whs[w.Code] = w
	}
	for _, t := range d.TaxRates {
		ix.taxes[t.Code] = t
	}
	for _, o := range d.Orders {
		ix.orders[o.Number] = o
	}
	return ix
}

func (ix docIndex) warehouseRef(code string) *WarehouseRef {
	w := ix.whs[code]
	if w == nil {
		return nil
	}
	return &WarehouseRef{Guid: w.ID, WarehouseCode: w.Code, WarehouseName: w.Name}
}

func (ix docIndex) tax(doc *simkit.Document) *Tax {
	if len(doc.Lines) == 0 {
		return nil
	}
	return taxOf(ix.taxes[doc.Lines[0].TaxCode])
}

func (s *Server) salesOrders(req request) []byte {
	var body []byte
	s.data.View(func(d *simkit.Dataset) {
		ix := indexDocs(d)
		keep := statusFilter(req, "orderstatus")
		var idx []int
		for i, o := range d.Orders {
			if keep(orderStatus(o)) && modified(o.Modified, req) {
				idx = append(idx, i)
			}
		}
		body = page(s, req, idx, func(i int) SalesOrder {
			o := d.Orders[i]
			sub, tax, total := o.Totals()
			out := SalesOrder{Guid: o.ID, OrderNumber: o.Number, OrderDate: msDateP(o.Date), RequiredDate: msDateP(o.DueDate), OrderStatus: orderStatus(o),
				Customer: customerRef(ix.custs[o.CustomerID]), Warehouse: ix.warehouseRef(o.WarehouseCode), Currency: currencyOf(d, o.Currency),
				ExchangeRate: 1, Tax: ix.tax(o), SubTotal: num(sub), TaxTotal: num(tax), Total: num(total), SalesOrderLines: lines(o, orderLine),
				CreatedBy: "sales@example.com", CreatedOn: msDate(o.Created), LastModifiedBy: "sales@example.com", LastModifiedOn: msDate(o.Modified)}
			if o.Status == "Completed" {
				out.CompletedDate = msDateP(o.Date.Add(72 * time.Hour))
			}
			return out
		})
	})
	return body
}

// Invoice is an Unleashed sales invoice (GET /Invoices).
type Invoice struct {
	Guid           string        `json:"Guid"`
	InvoiceNumber  string        `json:"InvoiceNumber"`
	OrderNumber    string        `json:"OrderNumber"`
	InvoiceDate    *string       `json:"InvoiceDate"`
	DueDate        *string       `json:"DueDate"`
	InvoiceStatus  string        `json:"InvoiceStatus"`
	Customer       *CustomerRef  `json:"Customer"`
	Warehouse      *WarehouseRef `json:"Warehouse"`
	Currency       *Currency     `json:"Currency"`
	Tax            *Tax          `json:"Tax"`
	SubTotal       json.Number   `json:"SubTotal"`
	TaxTotal       json.Number   `json:"TaxTotal"`
	Total          json.Number   `json:"Total"`
	InvoiceLines   []Line        `json:"InvoiceLines"`
	CreatedOn      string        `json:"CreatedOn"`
	LastModifiedOn string        `json:"LastModifiedOn"`
}

// invoiceStatus maps the dataset's invoice states to Unleashed's.
func invoiceStatus(inv *simkit.Document) string {
	switch {
	case inv.Deleted:
		return "Deleted"
	case inv.Status == "DRAFT":
		return "Parked"
	default:
		return "Completed"
	}
}

func (s *Server) invoices(req request) []byte {
	var body []byte
	s.data.View(func(d *simkit.Dataset) {
		ix := indexDocs(d)
		keep := statusFilter(req, "invoicestatus")
		var idx []int
		for i, inv := range d.Invoices {
			if keep(invoiceStatus(inv)) && modified(inv.Modified, req) {
				idx = append(idx, i)
			}
		}
		body = page(s, req, idx, func(i int) Invoice {
			inv := d.Invoices[i]
			sub, tax, total := inv.Totals()
			return Invoice{Guid: inv.ID, InvoiceNumber: inv.Number, OrderNumber: inv.OrderNumber, InvoiceDate: msDateP(inv.Date), DueDate: msDateP(inv.DueDate),
				InvoiceStatus: invoiceStatus(inv), Customer: customerRef(ix.custs[inv.CustomerID]), Warehouse: ix.warehouseRef(inv.WarehouseCode),
				Currency: currencyOf(d, inv.Currency), Tax: ix.tax(inv), SubTotal: num(sub), TaxTotal: num(tax), Total: num(total),
				InvoiceLines: lines(inv, invoiceLine), CreatedOn: msDate(inv.Created), LastModifiedOn: msDate(inv.Modified)}
		})
	})
	return body
}

// CreditNote is an Unleashed credit note (GET /CreditNotes).
type CreditNote struct {
	Guid             string       `json:"Guid"`
	CreditNoteNumber string       `json:"CreditNoteNumber"`
	InvoiceNumber    string       `json:"InvoiceNumber"`
	OrderNumber      string       `json:"OrderNumber"`
	CreditDate       *string      `json:"CreditDate"`
	Status           string       `json:"Status"`
	Customer         *CustomerRef `json:"Customer"`
	Currency         *Currency    `json:"Currency"`
	SubTotal         json.Number  `json:"SubTotal"`
	TaxTotal         json.Number  `json:"TaxTotal"`
	Total            json.Number  `json:"Total"`
	CreditLines      []Line       `json:"CreditLines"`
	CreatedOn        string       `json:"CreatedOn"`
	LastModifiedOn   string       `json:"LastModifiedOn"`
}

// byModifiedDesc orders indexes as Unleashed's credit notes and shipments
// come by default: last modified first.
func byModifiedDesc(idx []int, mod func(i int) time.Time, id func(i int) string) {
	sort.SliceStable(idx, func(a, b int) bool {
		ma, mb := mod(idx[a]), mod(idx[b])
		if !ma.Equal(mb) {
			return ma.After(mb)
		}
		return id(idx[a]) < id(idx[b])
	})
}

func (s *Server) creditNotes(req request) []byte {
	var body []byte
	s.data.View(func(d *simkit.Dataset) {
		ix := indexDocs(d)
		invoices := map[string]*simkit.Document{}
		for _, inv := range d.Invoices {
			invoices[inv.Number] = inv
		}
		status := func(cn *simkit.Document) string {
			if cn.Deleted {
				return "Deleted"
			}
			return "Completed"
		}
		keep := statusFilter(req, "creditstatus")
		var idx []int
		for i, cn := range d.CreditNotes {
			if keep(status(cn)) && modified(cn.Modified, req) {
				idx = append(idx, i)
			}
		}
		byModifiedDesc(idx, func(i int) time.Time { return d.CreditNotes[i].Modified }, func(i int) string { return d.CreditNotes[i].ID })
		body = page(s, req, idx, func(i int) CreditNote {
			cn := d.CreditNotes[i]
			sub, tax, total := cn.Totals()
			order := ""
			if inv := invoices[cn.OrderNumber]; inv != nil {
				order = inv.OrderNumber
			}
			return CreditNote{Guid: cn.ID, CreditNoteNumber: cn.Number, InvoiceNumber: cn.OrderNumber, OrderNumber: order, CreditDate: msDateP(cn.Date),
				Status: status(cn), Customer: customerRef(ix.custs[cn.CustomerID]), Currency: currencyOf(d, cn.Currency),
				SubTotal: num(sub), TaxTotal: num(tax), Total: num(total), CreditLines: lines(cn, creditLine),
				CreatedOn: msDate(cn.Created), LastModifiedOn: msDate(cn.Modified)}
		})
	})
	return body
}

// SalesShipment is an Unleashed sales shipment (GET /SalesShipments).
type SalesShipment struct {
	Guid            string        `json:"Guid"`
	ShipmentNumber  string        `json:"ShipmentNumber"`
	OrderNumber     string        `json:"OrderNumber"`
	ShipmentStatus  string        `json:"ShipmentStatus"`
	DispatchDate    *string       `json:"DispatchDate"`
	ShippingCompany *string       `json:"ShippingCompany"`
	TrackingNumber  *string       `json:"TrackingNumber"`
	Warehouse       *WarehouseRef `json:"Warehouse"`
	Customer        *CustomerRef  `json:"Customer"`
	CreatedOn       string        `json:"CreatedOn"`
	LastModifiedOn  string        `json:"LastModifiedOn"`
}

// hasShipment: completed orders were dispatched (deleted ones keep their
// shipment, flagged Deleted).
func hasShipment(o *simkit.Document) bool { return o.Status == "Completed" }

func shipmentStatus(o *simkit.Document) string {
	if o.Deleted {
		return "Deleted"
	}
	return "Dispatched"
}

func (s *Server) salesShipments(req request) []byte {
	var body []byte
	s.data.View(func(d *simkit.Dataset) {
		ix := indexDocs(d)
		keep := statusFilter(req, "shipmentstatus")
		var idx []int
		for i, o := range d.Orders {
			if hasShipment(o) && keep(shipmentStatus(o)) && modified(o.Modified, req) {
				idx = append(idx, i)
			}
		}
		if strings.EqualFold(req.q["sort"], "asc") {
			sort.SliceStable(idx, func(a, b int) bool { return d.Orders[idx[a]].Modified.Before(d.Orders[idx[b]].Modified) })
		} else {
			byModifiedDesc(idx, func(i int) time.Time { return d.Orders[i].Modified }, func(i int) string { return d.Orders[i].ID })
		}
		body = page(s, req, idx, func(i int) SalesShipment {
			o := d.Orders[i]
			return SalesShipment{Guid: ShipmentID(o.ID), ShipmentNumber: fmt.Sprintf("SS-%08d", o.Seq), OrderNumber: o.Number,
				ShipmentStatus: shipmentStatus(o), DispatchDate: msDateP(o.Date.Add(48 * time.Hour)), ShippingCompany: strp("NZ Couriers"),
				TrackingNumber: strp(fmt.Sprintf("NZC%09d", o.Seq)), Warehouse: ix.warehouseRef(o.WarehouseCode), Customer: customerRef(ix.custs[o.CustomerID]),
				CreatedOn: msDate(o.Date.Add(48 * time.Hour)), LastModifiedOn: msDate(o.Modified)}
		})
	})
	return body
}

func cents(dec string) int64 {
	neg := strings.HasPrefix(dec, "-")
	dec = strings.TrimPrefix(dec, "-")
	w, f, _ := strings.Cut(dec, ".")
	var whole, frac int64
	for _, c := range w {
		whole = whole*10 + int64(c-'0')
	}
	f = (f + "00")[:2]
	for _, c := range f {
		frac = frac*10 + int64(c-'0')
	}
	v := whole*100 + frac
	if neg {
		v = -v
	}
	return v
}

func fmtCents(c int64) string {
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s%d.%02d", sign, c/100, c%100)
}
