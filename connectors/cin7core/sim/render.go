package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/simkit"
)

// Cin7 Core's wire formats: timestamps in UTC with up to three fractional
// digits (trailing zeros dropped, as .NET prints them), business dates
// without a zone.
const (
	stampLayout = "2006-01-02T15:04:05.999Z"
	dateLayout  = "2006-01-02T15:04:05"
)

func stamp(t time.Time) string { return t.UTC().Format(stampLayout) }

func date(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(dateLayout)
	return &s
}

// num renders a decimal string as a JSON number without trailing zeros.
func num(dec string) json.Number {
	if dec == "" {
		return "0"
	}
	if strings.Contains(dec, ".") {
		dec = strings.TrimRight(strings.TrimRight(dec, "0"), ".")
	}
	if dec == "" || dec == "-" {
		return "0"
	}
	return json.Number(dec)
}

type handler func(s *Server, req request) []byte

var routes = map[string]handler{
	"product":                 (*Server).products,
	"ref/productavailability": (*Server).availability,
	"customer":                (*Server).customers,
	"supplier":                (*Server).suppliers,
	"ref/location":            (*Server).locations,
	"ref/tax":                 (*Server).taxes,
	"salelist":                (*Server).saleList,
	"salecreditnotelist":      (*Server).saleCreditNoteList,
}

// detailRoutes answer one document, or an error status with a message.
var detailRoutes = map[string]func(s *Server, req request) (int, []byte){
	"sale": (*Server).saleDetail,
}

// since filters: Cin7 Core's ModifiedSince is "modified since" (>=), its
// UpdatedSince "changed after" (>). Records keep their order in the dataset
// (by code), so a record changed during a pass never shifts a later page,
// unless the base is unstable: then every request is served from a fresh
// order (simkit.Base.Order), Total staying honest.
func atOrAfter(t, since time.Time) bool { return since.IsZero() || !t.Before(since) }
func after(t, since time.Time) bool     { return since.IsZero() || t.After(since) }

func truthy(q map[string]string, k string) bool { return strings.EqualFold(q[k], "true") }

// envelope renders {"Total":n,"Page":p,"<key>":[...]}.
func envelope(key string, total, page int, items any) []byte {
	b, err := json.Marshal(map[string]any{"Total": total, "Page": page, key: items})
	if err != nil {
		panic(fmt.Sprintf("cin7core sim: rendering %s: %v", key, err)) // only our own types are rendered
	}
	return b
}

// Product is a Cin7 Core product document (GET /product).
type Product struct {
	ID                           string               `json:"ID"`
	SKU                          string               `json:"SKU"`
	Name                         string               `json:"Name"`
	Category                     string               `json:"Category"`
	Brand                        *string              `json:"Brand"`
	Type                         string               `json:"Type"`
	CostingMethod                string               `json:"CostingMethod"`
	DropShipMode                 string               `json:"DropShipMode"`
	DefaultLocation              string               `json:"DefaultLocation"`
	Length                       float64              `json:"Length"`
	Width                        float64              `json:"Width"`
	Height                       float64              `json:"Height"`
	Weight                       float64              `json:"Weight"`
	UOM                          string               `json:"UOM"`
	WeightUnits                  string               `json:"WeightUnits"`
	DimensionsUnits              string               `json:"DimensionsUnits"`
	Barcode                      *string              `json:"Barcode"`
	MinimumBeforeReorder         float64              `json:"MinimumBeforeReorder"`
	ReorderQuantity              float64              `json:"ReorderQuantity"`
	PriceTier1                   json.Number          `json:"PriceTier1"`
	PriceTier2                   json.Number          `json:"PriceTier2"`
	PriceTier3                   json.Number          `json:"PriceTier3"`
	PriceTier4                   json.Number          `json:"PriceTier4"`
	PriceTier5                   json.Number          `json:"PriceTier5"`
	PriceTier6                   json.Number          `json:"PriceTier6"`
	PriceTier7                   json.Number          `json:"PriceTier7"`
	PriceTier8                   json.Number          `json:"PriceTier8"`
	PriceTier9                   json.Number          `json:"PriceTier9"`
	PriceTier10                  json.Number          `json:"PriceTier10"`
	PriceTiers                   orderedTiers         `json:"PriceTiers"`
	AverageCost                  json.Number          `json:"AverageCost"`
	ShortDescription             *string              `json:"ShortDescription"`
	InternalNote                 *string              `json:"InternalNote"`
	Description                  string               `json:"Description"`
	AdditionalAttribute1         *string              `json:"AdditionalAttribute1"`
	AdditionalAttribute2         *string              `json:"AdditionalAttribute2"`
	AdditionalAttribute3         *string              `json:"AdditionalAttribute3"`
	AdditionalAttribute4         *string              `json:"AdditionalAttribute4"`
	AdditionalAttribute5         *string              `json:"AdditionalAttribute5"`
	AdditionalAttribute6         *string              `json:"AdditionalAttribute6"`
	AdditionalAttribute7         *string              `json:"AdditionalAttribute7"`
	AdditionalAttribute8         *string              `json:"AdditionalAttribute8"`
	AdditionalAttribute9         *string              `json:"AdditionalAttribute9"`
	AdditionalAttribute10        *string              `json:"AdditionalAttribute10"`
	AttributeSet                 *string              `json:"AttributeSet"`
	DiscountRule                 *string              `json:"DiscountRule"`
	Tags                         *string              `json:"Tags"`
	Status                       string               `json:"Status"`
	StockLocator                 *string              `json:"StockLocator"`
	COGSAccount                  *string              `json:"COGSAccount"`
	RevenueAccount               *string              `json:"RevenueAccount"`
	ExpenseAccount               *string              `json:"ExpenseAccount"`
	InventoryAccount             *string              `json:"InventoryAccount"`
	PurchaseTaxRule              *string              `json:"PurchaseTaxRule"`
	SaleTaxRule                  *string              `json:"SaleTaxRule"`
	LastModifiedOn               string               `json:"LastModifiedOn"`
	Sellable                     bool                 `json:"Sellable"`
	PickZones                    *string              `json:"PickZones"`
	BillOfMaterial               bool                 `json:"BillOfMaterial"`
	AutoAssembly                 bool                 `json:"AutoAssembly"`
	AutoDisassembly              bool                 `json:"AutoDisassembly"`
	QuantityToProduce            float64              `json:"QuantityToProduce"`
	AlwaysShowQuantity           *float64             `json:"AlwaysShowQuantity"`
	AssemblyInstructionURL       *string              `json:"AssemblyInstructionURL"`
	AssemblyCostEstimationMethod string               `json:"AssemblyCostEstimationMethod"`
	Suppliers                    []ProductSupplier    `json:"Suppliers"`
	ReorderLevels                []json.RawMessage    `json:"ReorderLevels"`
	BillOfMaterialsProducts      []json.RawMessage    `json:"BillOfMaterialsProducts"`
	BillOfMaterialsServices      []json.RawMessage    `json:"BillOfMaterialsServices"`
	Movements                    []json.RawMessage    `json:"Movements"`
	Attachments                  []json.RawMessage    `json:"Attachments"`
	BOMType                      string               `json:"BOMType"`
	WarrantyName                 *string              `json:"WarrantyName"`
	CustomPrices                 []ProductCustomPrice `json:"CustomPrices"`
	CartonHeight                 *float64             `json:"CartonHeight"`
	CartonWidth                  *float64             `json:"CartonWidth"`
	CartonLength                 *float64             `json:"CartonLength"`
	CartonQuantity               *float64             `json:"CartonQuantity"`
	CartonInnerQuantity          *float64             `json:"CartonInnerQuantity"`
	HSCode                       *string              `json:"HSCode"`
	CountryOfOrigin              *string              `json:"CountryOfOrigin"`
	CountryOfOriginCode          *string              `json:"CountryOfOriginCode"`
	CreatedDate                  string               `json:"CreatedDate"`
}

// ProductSupplier is one supplier of a product (IncludeSuppliers=true).
type ProductSupplier struct {
	SupplierID            string      `json:"SupplierID"`
	SupplierName          string      `json:"SupplierName"`
	SupplierInventoryCode string      `json:"SupplierInventoryCode"`
	SupplierProductName   string      `json:"SupplierProductName"`
	Cost                  json.Number `json:"Cost"`
	FixedCost             json.Number `json:"FixedCost"`
	Currency              string      `json:"Currency"`
	DropShip              bool        `json:"DropShip"`
	URL                   string      `json:"URL"`
}

// ProductCustomPrice is a customer-specific price inside a product
// (IncludeCustomPrices=true).
type ProductCustomPrice struct {
	CustomerID string      `json:"CustomerID"`
	Customer   string      `json:"Customer"`
	Price      json.Number `json:"Price"`
}

// orderedTiers renders the PriceTiers object in tier order.
type orderedTiers []tier

type tier struct {
	name  string
	value json.Number
}

func (t orderedTiers) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, x := range t {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Quote(x.name))
		b.WriteByte(':')
		b.WriteString(string(x.value))
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

var uoms = map[string]string{"EA": "Item", "BOX": "Box", "KG": "kg", "M": "m"}

func (s *Server) product(d *simkit.Dataset, p *simkit.Product, withSuppliers, withPrices bool, names map[string]string) Product {
	status := "Active"
	if p.Deleted {
		status = "Deprecated"
	}
	bar := p.Barcode
	uom := uoms[p.Unit]
	if uom == "" {
		uom = p.Unit
	}
	out := Product{
		ID: p.ID, SKU: p.SKU, Name: p.Name, Category: p.Category, Type: "Stock", CostingMethod: "FIFO",
		DropShipMode: "No Drop Ship", UOM: uom, Barcode: &bar,
		PriceTier1: num(p.SellPrice), PriceTier2: num(p.Tier2Price), PriceTier3: "0", PriceTier4: "0", PriceTier5: "0",
		PriceTier6: "0", PriceTier7: "0", PriceTier8: "0", PriceTier9: "0", PriceTier10: "0",
		AverageCost: num(p.CostPrice), Description: p.Description, Status: status,
		LastModifiedOn: stamp(p.Modified), Sellable: true, QuantityToProduce: 1,
		AssemblyCostEstimationMethod: "Average Cost", BOMType: "None",
		Suppliers: []ProductSupplier{}, ReorderLevels: []json.RawMessage{}, BillOfMaterialsProducts: []json.RawMessage{},
		BillOfMaterialsServices: []json.RawMessage{}, Movements: []json.RawMessage{}, Attachments: []json.RawMessage{},
		CustomPrices: []ProductCustomPrice{}, CreatedDate: p.Created.UTC().Format("2006-01-02T15:04:05.999"),
	}
	if len(d.Warehouses) > 0 {
		out.DefaultLocation = d.Warehouses[0].Name
	}
	out.PriceTiers = orderedTiers{{"Tier 1", out.PriceTier1}, {"Tier 2", out.PriceTier2}, {"Tier 3", "0"}, {"Tier 4", "0"}, {"Tier 5", "0"},
		{"Tier 6", "0"}, {"Tier 7", "0"}, {"Tier 8", "0"}, {"Tier 9", "0"}, {"Tier 10", "0"}}
	if withSuppliers {
		for _, sup := range d.Suppliers {
			if sup.Code == p.SupplierCode {
				out.Suppliers = append(out.Suppliers, ProductSupplier{SupplierID: sup.ID, SupplierName: sup.Name, SupplierInventoryCode: p.SKU,
					SupplierProductName: p.Name, Cost: num(p.CostPrice), FixedCost: "0", Currency: sup.Currency})
			}
		}
	}
	if withPrices {
		for _, sp := range p.SpecialPrices {
			out.CustomPrices = append(out.CustomPrices, ProductCustomPrice{CustomerID: sp.CustomerID, Customer: names[sp.CustomerID], Price: num(sp.Price)})
		}
	}
	return out
}

func (s *Server) products(req request) []byte {
	var items []Product
	var total int
	s.data.View(func(d *simkit.Dataset) {
		includeDeprecated := truthy(req.q, "includedeprecated")
		var names map[string]string
		withPrices := truthy(req.q, "includecustomprices")
		if withPrices {
			names = make(map[string]string, len(d.Customers))
			for _, c := range d.Customers {
				names[c.ID] = c.Name
			}
		}
		var idx []int
		for i, p := range d.Products {
			if p.Deleted && !includeDeprecated {
				continue
			}
			if id := req.q["id"]; id != "" && !strings.EqualFold(id, p.ID) {
				continue
			}
			if sku := req.q["sku"]; sku != "" && !strings.Contains(p.SKU, sku) {
				continue
			}
			if atOrAfter(p.Modified, req.since) {
				idx = append(idx, i)
			}
		}
		idx = s.Order(idx)
		total = len(idx)
		start, end, _ := simkit.PageOf(total, req.page, req.limit)
		items = make([]Product, 0, end-start)
		for _, i := range idx[start:end] {
			items = append(items, s.product(d, d.Products[i], truthy(req.q, "includesuppliers"), withPrices, names))
		}
	})
	return envelope("Products", total, req.page, items)
}

// Availability is one row of GET /ref/productavailability.
type Availability struct {
	ID               string      `json:"ID"`
	SKU              string      `json:"SKU"`
	Name             string      `json:"Name"`
	Barcode          string      `json:"Barcode"`
	Location         string      `json:"Location"`
	Bin              *string     `json:"Bin"`
	Batch            *string     `json:"Batch"`
	ExpiryDate       *string     `json:"ExpiryDate"`
	OnHand           float64     `json:"OnHand"`
	Allocated        float64     `json:"Allocated"`
	Available        float64     `json:"Available"`
	OnOrder          float64     `json:"OnOrder"`
	StockOnHand      json.Number `json:"StockOnHand"`
	InTransit        float64     `json:"InTransit"`
	NextDeliveryDate *string     `json:"NextDeliveryDate"`
}

func (s *Server) availability(req request) []byte {
	var items []Availability
	var total int
	s.data.View(func(d *simkit.Dataset) {
		names := map[string]string{}
		for _, w := range d.Warehouses {
			names[w.Code] = w.Name
		}
		// Rows are products x locations in product order; filters narrow it.
		type row struct{ p, st int }
		var rows []row
		for i, p := range d.Products {
			if id := req.q["id"]; id != "" && !strings.EqualFold(id, p.ID) {
				continue
			}
			if sku := req.q["sku"]; sku != "" && !strings.Contains(p.SKU, sku) {
				continue
			}
			for j, st := range p.Stock {
				if loc := req.q["location"]; loc != "" && !strings.EqualFold(loc, names[st.WarehouseCode]) {
					continue
				}
				rows = append(rows, row{i, j})
			}
		}
		idx := s.Order(simkit.Sorted(rows, nil, nil))
		total = len(idx)
		start, end, _ := simkit.PageOf(total, req.page, req.limit)
		items = make([]Availability, 0, end-start)
		for _, i := range idx[start:end] {
			r := rows[i]
			items = append(items, availabilityRow(d.Products[r.p], r.st, names))
		}
	})
	if items == nil {
		items = []Availability{}
	}
	return envelope("ProductAvailabilityList", total, req.page, items)
}

func availabilityRow(p *simkit.Product, j int, names map[string]string) Availability {
	st := p.Stock[j]
	cost := float64(cents(p.CostPrice)) / 100
	return Availability{ID: p.ID, SKU: p.SKU, Name: p.Name, Barcode: p.Barcode, Location: names[st.WarehouseCode],
		OnHand: st.OnHand, Allocated: st.Allocated, Available: st.OnHand - st.Allocated,
		StockOnHand: json.Number(fmt.Sprintf("%.4f", st.OnHand*cost))}
}

// Address is a customer or supplier address.
type Address struct {
	ID             string `json:"ID"`
	Line1          string `json:"Line1"`
	Line2          string `json:"Line2"`
	City           string `json:"City"`
	State          string `json:"State"`
	Postcode       string `json:"Postcode"`
	Country        string `json:"Country"`
	Type           string `json:"Type"`
	DefaultForType bool   `json:"DefaultForType"`
}

// Contact is a contact person of a customer or supplier.
type Contact struct {
	ID             string  `json:"ID"`
	Name           string  `json:"Name"`
	Phone          *string `json:"Phone"`
	MobilePhone    *string `json:"MobilePhone"`
	Fax            *string `json:"Fax"`
	Email          *string `json:"Email"`
	Website        *string `json:"Website"`
	Comment        *string `json:"Comment"`
	Default        bool    `json:"Default"`
	IncludeInEmail bool    `json:"IncludeInEmail"`
	JobTitle       *string `json:"JobTitle"`
}

// ProductPrice is a customer-specific price (IncludeProductPrices=true).
type ProductPrice struct {
	ProductID   string      `json:"ProductID"`
	ProductSKU  string      `json:"ProductSKU"`
	ProductName string      `json:"ProductName"`
	Price       json.Number `json:"Price"`
}

// Customer is a Cin7 Core customer document (GET /customer).
type Customer struct {
	ID                    string         `json:"ID"`
	Name                  string         `json:"Name"`
	Currency              string         `json:"Currency"`
	PaymentTerm           string         `json:"PaymentTerm"`
	Discount              float64        `json:"Discount"`
	TaxRule               string         `json:"TaxRule"`
	Carrier               *string        `json:"Carrier"`
	SalesRepresentative   *string        `json:"SalesRepresentative"`
	Location              string         `json:"Location"`
	Comments              *string        `json:"Comments"`
	AccountReceivable     string         `json:"AccountReceivable"`
	RevenueAccount        string         `json:"RevenueAccount"`
	PriceTier             string         `json:"PriceTier"`
	TaxNumber             *string        `json:"TaxNumber"`
	AdditionalAttribute1  *string        `json:"AdditionalAttribute1"`
	AdditionalAttribute2  *string        `json:"AdditionalAttribute2"`
	AdditionalAttribute3  *string        `json:"AdditionalAttribute3"`
	AdditionalAttribute4  *string        `json:"AdditionalAttribute4"`
	AdditionalAttribute5  *string        `json:"AdditionalAttribute5"`
	AdditionalAttribute6  *string        `json:"AdditionalAttribute6"`
	AdditionalAttribute7  *string        `json:"AdditionalAttribute7"`
	AdditionalAttribute8  *string        `json:"AdditionalAttribute8"`
	AdditionalAttribute9  *string        `json:"AdditionalAttribute9"`
	AdditionalAttribute10 *string        `json:"AdditionalAttribute10"`
	AttributeSet          *string        `json:"AttributeSet"`
	Tags                  *string        `json:"Tags"`
	CreditLimit           float64        `json:"CreditLimit"`
	IsOnCreditHold        bool           `json:"IsOnCreditHold"`
	Status                string         `json:"Status"`
	LastModifiedOn        string         `json:"LastModifiedOn"`
	Addresses             []Address      `json:"Addresses"`
	Contacts              []Contact      `json:"Contacts"`
	ProductPrices         []ProductPrice `json:"ProductPrices,omitempty"`
}

func strp(s string) *string { return &s }

// customerPrices indexes the special prices of the dataset by customer id,
// keeping one price per customer and product (the last one, as Cin7 Core
// keeps one custom price per pair).
func customerPrices(d *simkit.Dataset) map[string][]ProductPrice {
	out := map[string][]ProductPrice{}
	seen := map[[2]string]int{}
	for _, p := range d.Products {
		for _, sp := range p.SpecialPrices {
			k := [2]string{sp.CustomerID, p.ID}
			pp := ProductPrice{ProductID: p.ID, ProductSKU: p.SKU, ProductName: p.Name, Price: num(sp.Price)}
			if i, ok := seen[k]; ok {
				out[sp.CustomerID][i] = pp
				continue
			}
			seen[k] = len(out[sp.CustomerID])
			out[sp.CustomerID] = append(out[sp.CustomerID], pp)
		}
	}
	return out
}

func countPrices(m map[string][]ProductPrice) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}

func (s *Server) customers(req request) []byte {
	var items []Customer
	var total int
	s.data.View(func(d *simkit.Dataset) {
		includeDeprecated := truthy(req.q, "includedeprecated")
		var prices map[string][]ProductPrice
		if truthy(req.q, "includeproductprices") {
			prices = customerPrices(d)
		}
		reps := map[string]string{}
		for _, sp := range d.SalesPeople {
			reps[sp.Code] = sp.Name
		}
		var idx []int
		for i, c := range d.Customers {
			if c.Deleted && !includeDeprecated {
				continue
			}
			if id := req.q["id"]; id != "" && !strings.EqualFold(id, c.ID) {
				continue
			}
			if atOrAfter(c.Modified, req.since) {
				idx = append(idx, i)
			}
		}
		idx = s.Order(idx)
		total = len(idx)
		start, end, _ := simkit.PageOf(total, req.page, req.limit)
		items = make([]Customer, 0, end-start)
		for _, i := range idx[start:end] {
			c := d.Customers[i]
			status := "Active"
			if c.Deleted {
				status = "Deprecated"
			}
			out := Customer{ID: c.ID, Name: c.Name, Currency: c.Currency, PaymentTerm: "30 days", TaxRule: "GST on Income",
				SalesRepresentative: strp(reps[c.SalesPersonCode]), Location: "", AccountReceivable: "610", RevenueAccount: "200",
				PriceTier: c.PriceTier, TaxNumber: strp(c.TaxNumber), Status: status, LastModifiedOn: stamp(c.Modified),
				Addresses: []Address{{ID: c.ID[:24] + "adde00000001", Line1: c.Street, City: c.City, Postcode: c.PostalCode, Country: c.Country, Type: "Billing", DefaultForType: true}},
				Contacts:  []Contact{}}
			if len(d.Warehouses) > 0 {
				out.Location = d.Warehouses[0].Name
			}
			for j, ct := range c.Contacts {
				out.Contacts = append(out.Contacts, Contact{ID: ct.ID, Name: ct.FirstName + " " + ct.LastName, Phone: strp(ct.Phone), Email: strp(ct.Email), Default: j == 0})
			}
			if prices != nil {
				out.ProductPrices = prices[c.ID]
				if out.ProductPrices == nil {
					out.ProductPrices = []ProductPrice{}
				}
			}
			items = append(items, out)
		}
	})
	return envelope("CustomerList", total, req.page, items)
}

// Supplier is a Cin7 Core supplier document (GET /supplier).
type Supplier struct {
	ID                    string    `json:"ID"`
	Name                  string    `json:"Name"`
	Currency              string    `json:"Currency"`
	PaymentTerm           string    `json:"PaymentTerm"`
	Discount              float64   `json:"Discount"`
	TaxRule               string    `json:"TaxRule"`
	AccountPayable        string    `json:"AccountPayable"`
	TaxNumber             *string   `json:"TaxNumber"`
	Comments              *string   `json:"Comments"`
	AttributeSet          *string   `json:"AttributeSet"`
	AdditionalAttribute1  *string   `json:"AdditionalAttribute1"`
	AdditionalAttribute2  *string   `json:"AdditionalAttribute2"`
	AdditionalAttribute3  *string   `json:"AdditionalAttribute3"`
	AdditionalAttribute4  *string   `json:"AdditionalAttribute4"`
	AdditionalAttribute5  *string   `json:"AdditionalAttribute5"`
	AdditionalAttribute6  *string   `json:"AdditionalAttribute6"`
	AdditionalAttribute7  *string   `json:"AdditionalAttribute7"`
	AdditionalAttribute8  *string   `json:"AdditionalAttribute8"`
	AdditionalAttribute9  *string   `json:"AdditionalAttribute9"`
	AdditionalAttribute10 *string   `json:"AdditionalAttribute10"`
	Status                string    `json:"Status"`
	LastModifiedOn        string    `json:"LastModifiedOn"`
	Contacts              []Contact `json:"Contacts"`
	Addresses             []Address `json:"Addresses"`
}

func (s *Server) suppliers(req request) []byte {
	var items []Supplier
	var total int
	s.data.View(func(d *simkit.Dataset) {
		includeDeprecated := truthy(req.q, "includedeprecated")
		var idx []int
		for i, sp := range d.Suppliers {
			if (sp.Deleted && !includeDeprecated) || !atOrAfter(sp.Modified, req.since) {
				continue
			}
			if id := req.q["id"]; id != "" && !strings.EqualFold(id, sp.ID) {
				continue
			}
			idx = append(idx, i)
		}
		idx = s.Order(idx)
		total = len(idx)
		start, end, _ := simkit.PageOf(total, req.page, req.limit)
		items = make([]Supplier, 0, end-start)
		for _, i := range idx[start:end] {
			sp := d.Suppliers[i]
			status := "Active"
			if sp.Deleted {
				status = "Deprecated"
			}
			items = append(items, Supplier{ID: sp.ID, Name: sp.Name, Currency: sp.Currency, PaymentTerm: "20th Month of following month",
				TaxRule: "GST on Expenses", AccountPayable: "800", Status: status, LastModifiedOn: stamp(sp.Modified),
				Contacts: []Contact{{ID: sp.ID[:24] + "c0a000000001", Name: "Accounts", Phone: strp(sp.Phone), Email: strp(sp.Email), Default: true,
					MobilePhone: strp(""), Fax: strp(""), Website: strp(""), Comment: strp(""), JobTitle: strp("")}},
				Addresses: []Address{}})
		}
	})
	return envelope("SupplierList", total, req.page, items)
}

// Location is a Cin7 Core location (GET /ref/location).
type Location struct {
	ID                   string            `json:"ID"`
	Name                 string            `json:"Name"`
	IsDefault            bool              `json:"IsDefault"`
	IsDeprecated         bool              `json:"IsDeprecated"`
	ParentID             *string           `json:"ParentID"`
	ParentName           *string           `json:"ParentName"`
	ReferenceCount       int               `json:"ReferenceCount"`
	Bins                 []json.RawMessage `json:"Bins"`
	FixedAssetsLocation  bool              `json:"FixedAssetsLocation"`
	AddressLine1         string            `json:"AddressLine1"`
	AddressLine2         string            `json:"AddressLine2"`
	AddressCitySuburb    string            `json:"AddressCitySuburb"`
	AddressStateProvince string            `json:"AddressStateProvince"`
	AddressZipPostCode   string            `json:"AddressZipPostCode"`
	AddressCountry       string            `json:"AddressCountry"`
	PickZones            string            `json:"PickZones"`
	IsCoMan              bool              `json:"IsCoMan"`
	IsShopfloor          bool              `json:"IsShopfloor"`
	IsStaging            bool              `json:"IsStaging"`
}

func (s *Server) locations(req request) []byte {
	var items []Location
	var total int
	s.data.View(func(d *simkit.Dataset) {
		idx := s.Order(simkit.Sorted(d.Warehouses, nil, nil))
		total = len(idx)
		start, end, _ := simkit.PageOf(total, req.page, req.limit)
		items = make([]Location, 0, end-start)
		for _, i := range idx[start:end] {
			w := d.Warehouses[i]
			items = append(items, Location{ID: w.ID, Name: w.Name, IsDefault: i == 0, IsDeprecated: w.Deleted, Bins: []json.RawMessage{},
				AddressLine1: w.Code + " Depot Road", AddressCitySuburb: w.City, AddressCountry: "New Zealand"})
		}
	})
	return envelope("LocationList", total, req.page, items)
}

// TaxRule is a Cin7 Core tax rule (GET /ref/tax).
type TaxRule struct {
	ID               string         `json:"ID"`
	Name             string         `json:"Name"`
	Account          string         `json:"Account"`
	IsActive         bool           `json:"IsActive"`
	TaxInclusive     bool           `json:"TaxInclusive"`
	TaxPercent       float64        `json:"TaxPercent"`
	IsTaxForSale     bool           `json:"IsTaxForSale"`
	IsTaxForPurchase bool           `json:"IsTaxForPurchase"`
	Components       []TaxComponent `json:"Components"`
}

// TaxComponent is one component of a tax rule.
// Cin7 Core quotes the numbers of a component.
type TaxComponent struct {
	ID             string `json:"ID"`
	Name           string `json:"Name"`
	Percent        string `json:"Percent"`
	AccountCode    string `json:"AccountCode"`
	Compound       string `json:"Compound"`
	ComponentOrder string `json:"ComponentOrder"`
}

func (s *Server) taxes(req request) []byte {
	var items []TaxRule
	var total int
	s.data.View(func(d *simkit.Dataset) {
		idx := s.Order(simkit.Sorted(d.TaxRates, nil, nil))
		total = len(idx)
		start, end, _ := simkit.PageOf(total, req.page, req.limit)
		items = make([]TaxRule, 0, end-start)
		for _, i := range idx[start:end] {
			t := d.TaxRates[i]
			items = append(items, TaxRule{ID: t.ID, Name: t.Name, Account: "2200", IsActive: !t.Deleted, TaxPercent: t.Rate,
				IsTaxForSale: true, IsTaxForPurchase: true,
				Components: []TaxComponent{{ID: strings.ToUpper(t.ID[:24]) + "C0000000000" + fmt.Sprint(t.Seq%10), Name: t.Code,
					Percent: fmt.Sprintf("%.10f", t.Rate), AccountCode: "2200", Compound: "0", ComponentOrder: "1"}}})
		}
	})
	return envelope("TaxRuleList", total, req.page, items)
}

// Sale is one row of GET /saleList and GET /saleCreditNoteList.
type Sale struct {
	SaleID                  string      `json:"SaleID"`
	OrderNumber             string      `json:"OrderNumber"`
	Status                  string      `json:"Status"`
	OrderDate               *string     `json:"OrderDate"`
	InvoiceDate             *string     `json:"InvoiceDate"`
	InvoiceDueDate          *string     `json:"InvoiceDueDate"`
	Customer                string      `json:"Customer"`
	CustomerID              string      `json:"CustomerID"`
	InvoiceNumber           *string     `json:"InvoiceNumber"`
	CustomerReference       string      `json:"CustomerReference"`
	InvoiceAmount           json.Number `json:"InvoiceAmount"`
	PaidAmount              json.Number `json:"PaidAmount"`
	ShipBy                  *string     `json:"ShipBy"`
	BaseCurrency            string      `json:"BaseCurrency"`
	CustomerCurrency        string      `json:"CustomerCurrency"`
	CreditNoteNumber        *string     `json:"CreditNoteNumber"`
	Updated                 string      `json:"Updated"`
	QuoteStatus             string      `json:"QuoteStatus"`
	OrderStatus             string      `json:"OrderStatus"`
	CombinedPickingStatus   string      `json:"CombinedPickingStatus"`
	CombinedPaymentStatus   string      `json:"CombinedPaymentStatus"`
	CombinedTrackingNumbers string      `json:"CombinedTrackingNumbers"`
	CombinedPackingStatus   string      `json:"CombinedPackingStatus"`
	CombinedShippingStatus  string      `json:"CombinedShippingStatus"`
	CombinedInvoiceStatus   string      `json:"CombinedInvoiceStatus"`
	CreditNoteStatus        string      `json:"CreditNoteStatus"`
	FulFilmentStatus        string      `json:"FulFilmentStatus"`
	RestockStatus           string      `json:"RestockStatus"`
	Type                    string      `json:"Type"`
	SourceChannel           *string     `json:"SourceChannel"`
	ExternalID              *string     `json:"ExternalID"`
	OrderLocationID         string      `json:"OrderLocationID"`
}

// salesIndex links the dataset's orders, invoices and credit notes.
type salesIndex struct {
	order           map[string]*simkit.Document // by order number
	invoice         map[string]*simkit.Document // by order number
	invoiceByNumber map[string]*simkit.Document
	credit          map[string]*simkit.Document // by order number: the sale's last credit note
}

func indexSales(d *simkit.Dataset) salesIndex {
	ix := salesIndex{order: map[string]*simkit.Document{}, invoice: map[string]*simkit.Document{},
		invoiceByNumber: map[string]*simkit.Document{}, credit: map[string]*simkit.Document{}}
	for _, o := range d.Orders {
		ix.order[o.Number] = o
	}
	for _, inv := range d.Invoices {
		if ix.order[inv.OrderNumber] != nil {
			ix.invoice[inv.OrderNumber] = inv
			ix.invoiceByNumber[inv.Number] = inv
		}
	}
	for _, cn := range d.CreditNotes {
		if inv := ix.invoiceByNumber[cn.OrderNumber]; inv != nil {
			ix.credit[inv.OrderNumber] = cn
		}
	}
	return ix
}

func shipped(o *simkit.Document) bool { return o.Status == "Completed" && !o.Deleted }

var saleStatus = map[string]string{"Parked": "DRAFT", "Placed": "ORDERED", "Completed": "COMPLETED", "Backordered": "BACKORDERED"}

func (s *Server) sale(ix salesIndex, o *simkit.Document, locations map[string]string, names map[string]string) (Sale, time.Time) {
	status := saleStatus[o.Status]
	if status == "" {
		status = strings.ToUpper(o.Status)
	}
	orderStatus := "AUTHORISED"
	if status == "DRAFT" {
		orderStatus = "DRAFT"
	}
	if o.Deleted {
		status, orderStatus = "VOIDED", "VOIDED"
	}
	updated := o.Modified
	out := Sale{SaleID: o.ID, OrderNumber: o.Number, Status: status, OrderDate: date(o.Date), Customer: names[o.CustomerID], CustomerID: o.CustomerID,
		InvoiceAmount: "0", PaidAmount: "0", BaseCurrency: "NZD", CustomerCurrency: o.Currency,
		QuoteStatus: "NOT AVAILABLE", OrderStatus: orderStatus, CombinedPickingStatus: "NOT PICKED", CombinedPaymentStatus: "UNPAID",
		CombinedPackingStatus: "NOT PACKED", CombinedShippingStatus: "NOT SHIPPED", CombinedInvoiceStatus: "NOT INVOICED",
		CreditNoteStatus: "NOT AVAILABLE", FulFilmentStatus: "NOT FULFILLED", RestockStatus: "NOT AVAILABLE", Type: "Simple Sale",
		OrderLocationID: locations[o.WarehouseCode]}
	if s.isAdvanced(o.ID) {
		out.Type = "Advanced Sale"
	}
	if shipped(o) {
		out.CombinedPickingStatus, out.CombinedPackingStatus, out.CombinedShippingStatus, out.FulFilmentStatus = "PICKED", "PACKED", "SHIPPED", "FULFILLED"
		out.CombinedTrackingNumbers = fmt.Sprintf("TRK%09d", o.Seq)
		out.ShipBy = date(o.Date.Add(48 * time.Hour))
	}
	if inv := ix.invoice[o.Number]; inv != nil {
		_, _, total := inv.Totals()
		out.InvoiceNumber = strp(inv.Number)
		out.InvoiceDate = date(inv.Date)
		out.InvoiceDueDate = date(inv.DueDate)
		out.InvoiceAmount = num(total)
		switch {
		case inv.Deleted:
			out.CombinedInvoiceStatus = "VOIDED"
		case inv.Status == "DRAFT":
			out.CombinedInvoiceStatus = "DRAFT"
		default:
			out.CombinedInvoiceStatus = "INVOICED"
		}
		if inv.Status == "PAID" {
			out.PaidAmount = out.InvoiceAmount
			out.CombinedPaymentStatus = "PAID"
		}
		if inv.Modified.After(updated) {
			updated = inv.Modified
		}
	}
	if cn := ix.credit[o.Number]; cn != nil {
		out.CreditNoteNumber = strp(cn.Number)
		out.CreditNoteStatus = "AUTHORISED"
		if cn.Deleted {
			out.CreditNoteStatus = "VOIDED"
		}
		out.CombinedInvoiceStatus = "INVOICED / CREDITED"
		if cn.Modified.After(updated) {
			updated = cn.Modified
		}
	}
	out.Updated = stamp(updated)
	return out, updated
}

func (s *Server) saleRows(req request, creditsOnly bool) []byte {
	var items []Sale
	var total int
	s.data.View(func(d *simkit.Dataset) {
		ix := indexSales(d)
		locations := map[string]string{}
		for _, w := range d.Warehouses {
			locations[w.Code] = w.ID
		}
		names := map[string]string{}
		for _, c := range d.Customers {
			names[c.ID] = c.Name
		}
		var rows []Sale
		for _, o := range d.Orders {
			if creditsOnly && ix.credit[o.Number] == nil {
				continue
			}
			row, updated := s.sale(ix, o, locations, names)
			if creditsOnly {
				// The credit note list sends "" where the sale list sends null.
				row.SourceChannel, row.ExternalID = strp(""), strp("")
			}
			if search := req.q["search"]; search != "" && !row.matches(search) {
				continue
			}
			if after(updated, req.since) {
				rows = append(rows, row)
			}
		}
		idx := s.Order(simkit.Sorted(rows, nil, nil))
		total = len(idx)
		start, end, _ := simkit.PageOf(total, req.page, req.limit)
		items = make([]Sale, 0, end-start)
		for _, i := range idx[start:end] {
			items = append(items, rows[i])
		}
	})
	if items == nil {
		items = []Sale{}
	}
	return envelope("SaleList", total, req.page, items)
}

// matches is the sale lists' Search: the value contained in one of
// OrderNumber, Status, Customer, InvoiceNumber, CustomerReference or
// CreditNoteNumber (help.core.cin7.com "SaleList"; case-insensitive here,
// which the documentation does not say).
func (r *Sale) matches(search string) bool {
	search = strings.ToLower(search)
	for _, f := range []*string{&r.OrderNumber, &r.Status, &r.Customer, r.InvoiceNumber, &r.CustomerReference, r.CreditNoteNumber} {
		if f != nil && strings.Contains(strings.ToLower(*f), search) {
			return true
		}
	}
	return false
}

// SaleDetail is the part of a GET /sale?ID= document the simulator serves:
// the sale's identity, statuses and order header (lines, invoices,
// fulfilments and credit notes are served empty).
type SaleDetail struct {
	ID                     string            `json:"ID"`
	Customer               string            `json:"Customer"`
	CustomerID             string            `json:"CustomerID"`
	Status                 string            `json:"Status"`
	Type                   string            `json:"Type"`
	BaseCurrency           string            `json:"BaseCurrency"`
	CustomerCurrency       string            `json:"CustomerCurrency"`
	CombinedInvoiceStatus  string            `json:"CombinedInvoiceStatus"`
	CombinedShippingStatus string            `json:"CombinedShippingStatus"`
	LastModifiedOn         string            `json:"LastModifiedOn"`
	Order                  SaleOrder         `json:"Order"`
	Invoices               []json.RawMessage `json:"Invoices"`
	CreditNotes            []json.RawMessage `json:"CreditNotes"`
	Fulfilments            []json.RawMessage `json:"Fulfilments"`
}

// SaleOrder is the order header of a sale.
type SaleOrder struct {
	SaleOrderNumber   string            `json:"SaleOrderNumber"`
	Status            string            `json:"Status"`
	Memo              string            `json:"Memo"`
	Lines             []json.RawMessage `json:"Lines"`
	AdditionalCharges []json.RawMessage `json:"AdditionalCharges"`
}

// saleDetail answers GET /sale?ID=: the sale, or 400 for an id the account
// does not have (Cin7 Core's status for a request that fails validation;
// which status it really sends is not documented).
func (s *Server) saleDetail(req request) (int, []byte) {
	var out *SaleDetail
	s.data.View(func(d *simkit.Dataset) {
		ix := indexSales(d)
		for _, o := range d.Orders {
			if !strings.EqualFold(o.ID, req.q["id"]) {
				continue
			}
			names := map[string]string{}
			for _, c := range d.Customers {
				names[c.ID] = c.Name
			}
			row, updated := s.sale(ix, o, map[string]string{}, names)
			out = &SaleDetail{ID: row.SaleID, Customer: row.Customer, CustomerID: row.CustomerID, Status: row.Status, Type: row.Type,
				BaseCurrency: row.BaseCurrency, CustomerCurrency: row.CustomerCurrency, CombinedInvoiceStatus: row.CombinedInvoiceStatus,
				CombinedShippingStatus: row.CombinedShippingStatus, LastModifiedOn: stamp(updated),
				Order:    SaleOrder{SaleOrderNumber: row.OrderNumber, Status: row.OrderStatus, Lines: []json.RawMessage{}, AdditionalCharges: []json.RawMessage{}},
				Invoices: []json.RawMessage{}, CreditNotes: []json.RawMessage{}, Fulfilments: []json.RawMessage{}}
			return
		}
	})
	if out == nil {
		return http.StatusBadRequest, nil
	}
	b, err := json.Marshal(out)
	if err != nil {
		panic(fmt.Sprintf("cin7core sim: rendering a sale: %v", err)) // only our own types are rendered
	}
	return http.StatusOK, b
}

func (s *Server) saleList(req request) []byte           { return s.saleRows(req, false) }
func (s *Server) saleCreditNoteList(req request) []byte { return s.saleRows(req, true) }

// cents parses a decimal string into cents.
func cents(dec string) int64 {
	var whole, frac int64
	neg := strings.HasPrefix(dec, "-")
	dec = strings.TrimPrefix(dec, "-")
	w, f, _ := strings.Cut(dec, ".")
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
