package sim

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/simkit"
)

// stampLayout is how the simulator renders Cin7 Omni dates: ISO 8601 with
// the fraction trimmed, in UTC ("2026-01-05T22:41:07.5Z") or with the
// account's offset ("2024-03-20T13:30:44.518+13:00").
const stampLayout = "2006-01-02T15:04:05.999999Z07:00"

func (s *Server) stamp(t time.Time) string { return t.In(s.loc).Format(stampLayout) }

func (s *Server) stampP(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	v := s.stamp(t)
	return &v
}

// num renders a decimal string as a JSON number.
func num(dec string) json.Number { return simkit.Money(dec) }

// Ids: Cin7 Omni ids are integers; the simulator derives them from the
// dataset's sequence numbers, one range per record type.
const (
	branchBase    = 900
	userBase      = 10
	customerBase  = 20000
	supplierBase  = 30000
	contactBase   = 400000
	productBase   = 1000
	optionBase    = 500000
	orderBase     = 700000
	creditBase    = 800000
	lineBase      = 9000000
	invoiceOffset = 10000
	archivedBase  = 300000
)

type handler func(s *Server, req request) ([]byte, error)

var routes = map[string]handler{
	"products":       (*Server).products,
	"productoptions": (*Server).productOptions,
	"stock":          (*Server).stock,
	"contacts":       (*Server).contacts,
	"branches":       (*Server).branches,
	"users":          (*Server).users,
	"salesorders":    (*Server).salesOrders,
	"creditnotes":    (*Server).creditNotes,
}

// list filters n records with the where clause, orders them (by Id unless
// order names another field; the simulator keeps its records in Id order)
// and renders the requested page as a bare array. The base serves the list
// in a fresh order when its unstable-order knob is on.
func list[T any](s *Server, req request, n int, field func(i int) fields, render func(i int) T) ([]byte, error) {
	if idx, ok, err := naturalPage(s, req, n, field); err != nil {
		return nil, err
	} else if ok {
		items := make([]T, 0, len(idx))
		for _, i := range idx {
			items = append(items, render(i))
		}
		return project(items, req.fields)
	}
	idx := make([]int, 0, n)
	for i := 0; i < n; i++ {
		if len(req.where) > 0 {
			ok, err := match(req.where, field(i))
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
		}
		idx = append(idx, i)
	}
	if o := strings.TrimSpace(req.order); o != "" && !strings.EqualFold(o, "Id ASC") && !strings.EqualFold(o, "Id") {
		name, dir, _ := strings.Cut(o, " ")
		desc := strings.EqualFold(strings.TrimSpace(dir), "DESC")
		key := strings.ToLower(name)
		if len(idx) > 0 {
			if _, ok := field(idx[0])[key]; !ok {
				return nil, fmt.Errorf("invalid order: unknown field %s", name)
			}
		}
		keys := make(map[int]any, len(idx))
		for _, i := range idx {
			keys[i] = field(i)[key]
		}
		sort.SliceStable(idx, func(a, b int) bool {
			c := compareAny(keys[idx[a]], keys[idx[b]])
			if desc {
				return c > 0
			}
			return c < 0
		})
	}
	idx = s.Order(idx)
	items := []T{}
	start, end, _ := simkit.PageOf(len(idx), req.page, req.rows)
	for _, i := range idx[start:end] {
		items = append(items, render(i))
	}
	return project(items, req.fields)
}

// project renders items as a bare array, each cut to the fields= names
// (matched case-insensitively, nested documents whole); a name the
// resource does not have is a 400, as an unknown where field is.
func project[T any](items []T, names []string) ([]byte, error) {
	if len(names) == 0 {
		return json.Marshal(items)
	}
	out := make([]map[string]json.RawMessage, 0, len(items))
	for _, it := range items {
		b, err := json.Marshal(it)
		if err != nil {
			return nil, err
		}
		var all map[string]json.RawMessage
		if err := json.Unmarshal(b, &all); err != nil {
			return nil, err
		}
		cut := make(map[string]json.RawMessage, len(names))
		for _, n := range names {
			found := false
			for k, v := range all {
				if strings.EqualFold(k, n) {
					cut[k], found = v, true
				}
			}
			if !found {
				return nil, fmt.Errorf("invalid fields: unknown field %s", n)
			}
		}
		out = append(out, cut)
	}
	return json.Marshal(out)
}

// naturalKeys are the fields every list of the simulator is kept in
// ascending order of (records are stored by id; stock rows by option).
var naturalKeys = []string{"id", "productoptionid"}

// naturalPage serves a page without filtering and sorting the whole list,
// where the list is already in the order asked for (ascending on a
// natural key, the unstable knob off): it finds the first row a lower
// bound on that key admits by binary search and scans from there until
// the page is full. ok is false where the slow path must serve.
func naturalPage(s *Server, req request, n int, field func(i int) fields) (idx []int, ok bool, err error) {
	key, desc := "id", false
	if o := strings.TrimSpace(req.order); o != "" {
		name, dir, _ := strings.Cut(o, " ")
		key, desc = strings.ToLower(name), strings.EqualFold(strings.TrimSpace(dir), "DESC")
	}
	if desc || !s.wholeLists() || !slices.Contains(naturalKeys, key) || n == 0 {
		return nil, false, nil
	}
	if _, has := field(0)[key]; !has {
		return nil, false, nil
	}
	// The clause's errors (an unknown field, a bad literal) still answer
	// 400, whatever rows the scan reaches.
	if _, err := match(req.where, field(0)); err != nil {
		return nil, false, err
	}
	start := 0
	for _, c := range req.where {
		if strings.ToLower(c.field) != key || (c.op != ">" && c.op != ">=") {
			continue
		}
		lit, err := strconv.Atoi(c.lit)
		if err != nil {
			continue
		}
		strict := c.op == ">"
		start = max(start, sort.Search(n, func(i int) bool {
			v, _ := field(i)[key].(int)
			return v > lit || (!strict && v == lit)
		}))
	}
	skip, want := (req.page-1)*req.rows, req.rows
	for i := start; i < n && len(idx) < want; i++ {
		if len(req.where) > 0 {
			m, err := match(req.where, field(i))
			if err != nil {
				return nil, false, err
			}
			if !m {
				continue
			}
		}
		if skip > 0 {
			skip--
			continue
		}
		idx = append(idx, i)
	}
	return idx, true, nil
}

// wholeLists reports whether the base serves every list whole and in the
// order given (neither unstable nor cut by the list-share knob), which the
// fast path needs: otherwise the list goes through Base.Order.
func (s *Server) wholeLists() bool {
	if s.Unstable() {
		return false
	}
	probe := make([]int, 100)
	for i := range probe {
		probe[i] = i
	}
	return len(s.Order(probe)) == len(probe)
}

func compareAny(a, b any) int {
	switch x := a.(type) {
	case time.Time:
		return x.Compare(b.(time.Time))
	case int:
		return compareInt(x, b.(int))
	case string:
		return strings.Compare(x, b.(string))
	case bool:
		if x == b.(bool) {
			return 0
		}
		if x {
			return 1
		}
		return -1
	}
	return 0
}

// ProductOption is one SKU of a product, with its prices.
type ProductOption struct {
	ID                   int                    `json:"Id"`
	CreatedDate          string                 `json:"CreatedDate"`
	ModifiedDate         string                 `json:"ModifiedDate"`
	Status               string                 `json:"Status"`
	ProductID            int                    `json:"ProductId"`
	Code                 string                 `json:"Code"`
	ProductOptionCode    string                 `json:"ProductOptionCode"`
	ProductOptionBarcode string                 `json:"ProductOptionBarcode"`
	Option1              string                 `json:"Option1"`
	Option2              string                 `json:"Option2"`
	Option3              string                 `json:"Option3"`
	SupplierCode         string                 `json:"SupplierCode"`
	RetailPrice          json.Number            `json:"RetailPrice"`
	WholesalePrice       json.Number            `json:"WholesalePrice"`
	VIPPrice             json.Number            `json:"VIPPrice"`
	SpecialPrice         json.Number            `json:"SpecialPrice"`
	SpecialsStartDate    *string                `json:"SpecialsStartDate"`
	SpecialDays          int                    `json:"SpecialDays"`
	StockAvailable       float64                `json:"StockAvailable"`
	StockOnHand          float64                `json:"StockOnHand"`
	PriceColumns         map[string]json.Number `json:"PriceColumns"`
}

// Product is a Cin7 Omni product (a style with its options).
type Product struct {
	ID             int             `json:"Id"`
	Status         string          `json:"Status"`
	CreatedDate    string          `json:"CreatedDate"`
	ModifiedDate   string          `json:"ModifiedDate"`
	StyleCode      string          `json:"StyleCode"`
	Name           string          `json:"Name"`
	Description    string          `json:"Description"`
	Brand          string          `json:"Brand"`
	Category       string          `json:"Category"`
	UnitOfMeasure  string          `json:"UnitOfMeasure"`
	SupplierID     int             `json:"SupplierId"`
	Weight         float64         `json:"Weight"`
	ProductOptions []ProductOption `json:"ProductOptions"`
}

func productFields(p *simkit.Product) fields {
	return fields{"id": productBase + p.Seq, "modifieddate": p.Modified, "createddate": p.Created, "stylecode": p.SKU, "status": productStatus(p)}
}

func optionStatus(p *simkit.Product) string {
	if p.Deleted {
		return "Disabled"
	}
	return "Primary"
}

func productStatus(p *simkit.Product) string {
	if p.Deleted {
		return "Inactive"
	}
	return "Public"
}

func (s *Server) products(req request) ([]byte, error) {
	archived := s.archivedProducts()
	var body []byte
	var err error
	s.data.View(func(d *simkit.Dataset) {
		sups := map[string]int{}
		for _, sp := range d.Suppliers {
			sups[sp.Code] = supplierBase + sp.Seq
		}
		// The archived products (ServeArchivedProduct) follow the dataset's,
		// with higher ids.
		np := len(d.Products)
		body, err = list(s, req, np+len(archived), func(i int) fields {
			if i >= np {
				a := archived[i-np]
				return fields{"id": a.id, "modifieddate": a.modified, "createddate": a.modified, "stylecode": a.code, "status": "Archived"}
			}
			return productFields(d.Products[i])
		}, func(i int) Product {
			if i >= np {
				a := archived[i-np]
				return Product{ID: a.id, Status: "Archived", CreatedDate: s.stamp(a.modified), ModifiedDate: s.stamp(a.modified), StyleCode: a.code,
					Name: "Archived " + a.code, Brand: "Acme", Category: "Old", UnitOfMeasure: "EA", ProductOptions: []ProductOption{}}
			}
			p := d.Products[i]
			return Product{ID: productBase + p.Seq, Status: productStatus(p), CreatedDate: s.stamp(p.Created), ModifiedDate: s.stamp(p.Modified),
				StyleCode: p.SKU, Name: p.Name, Description: p.Description, Brand: "Acme", Category: p.Category, UnitOfMeasure: p.Unit,
				SupplierID: sups[p.SupplierCode], ProductOptions: []ProductOption{s.option(p)}}
		})
	})
	return body, err
}

// option renders a product's one option (its SKU).
func (s *Server) option(p *simkit.Product) ProductOption {
	stockAvail, stockOnHand := 0.0, 0.0
	for _, st := range p.Stock {
		stockOnHand += st.OnHand
		stockAvail += st.OnHand - st.Allocated
	}
	opt := ProductOption{ID: optionBase + p.Seq, CreatedDate: s.stamp(p.Created), ModifiedDate: s.stamp(p.Modified),
		ProductID: productBase + p.Seq, Code: p.SKU, ProductOptionCode: p.SKU, ProductOptionBarcode: p.Barcode, Option1: p.Unit,
		SupplierCode: p.SupplierCode, RetailPrice: num(p.SellPrice), WholesalePrice: num(p.Tier2Price), VIPPrice: "0", SpecialPrice: "0",
		StockAvailable: stockAvail, StockOnHand: stockOnHand,
		PriceColumns: map[string]json.Number{"RetailNZD": num(p.SellPrice), "WholesaleNZD": num(p.Tier2Price), "CostNZD": num(p.CostPrice)}}
	opt.Status = optionStatus(p)
	if len(p.SpecialPrices) > 0 {
		// Omni's special price is a promotion for everyone, from a
		// start date for a number of days.
		opt.SpecialPrice = num(p.SpecialPrices[0].Price)
		opt.SpecialsStartDate = s.stampP(p.Created.Truncate(24 * time.Hour))
		opt.SpecialDays = 30
	}
	return opt
}

// productOptions serves GET /v1/ProductOptions: every product's options,
// in option Id order (the archived products have none).
func (s *Server) productOptions(req request) ([]byte, error) {
	var body []byte
	var err error
	s.data.View(func(d *simkit.Dataset) {
		body, err = list(s, req, len(d.Products), func(i int) fields {
			p := d.Products[i]
			return fields{"id": optionBase + p.Seq, "productid": productBase + p.Seq, "modifieddate": p.Modified, "createddate": p.Created,
				"code": p.SKU, "status": optionStatus(p)}
		}, func(i int) ProductOption { return s.option(d.Products[i]) })
	})
	return body, err
}

// Stock is one row of GET /v1/Stock: an option's stock in one branch.
type Stock struct {
	ProductID       int     `json:"ProductId"`
	ProductOptionID int     `json:"ProductOptionId"`
	Code            string  `json:"Code"`
	Barcode         string  `json:"Barcode"`
	BranchID        int     `json:"BranchId"`
	BranchName      string  `json:"BranchName"`
	Available       float64 `json:"Available"`
	StockOnHand     float64 `json:"StockOnHand"`
	OpenSales       float64 `json:"OpenSales"`
	Incoming        float64 `json:"Incoming"`
	Virtual         float64 `json:"Virtual"`
	Holding         float64 `json:"Holding"`
	ModifiedDate    string  `json:"ModifiedDate"`
}

func (s *Server) stock(req request) ([]byte, error) {
	var body []byte
	var err error
	s.data.View(func(d *simkit.Dataset) {
		branches := map[string]*simkit.Warehouse{}
		for _, w := range d.Warehouses {
			branches[w.Code] = w
		}
		// Rows are products x branches, in product order.
		type row struct{ p, st int }
		rows := make([]row, 0, len(d.Products)*len(d.Warehouses))
		for i, p := range d.Products {
			for j := range p.Stock {
				rows = append(rows, row{i, j})
			}
		}
		field := func(i int) fields {
			p, st := d.Products[rows[i].p], d.Products[rows[i].p].Stock[rows[i].st]
			return fields{"modifieddate": st.Modified, "productid": productBase + p.Seq, "productoptionid": optionBase + p.Seq,
				"branchid": branchBase + branches[st.WarehouseCode].Seq, "code": p.SKU}
		}
		body, err = list(s, req, len(rows), field, func(i int) Stock {
			p, st := d.Products[rows[i].p], d.Products[rows[i].p].Stock[rows[i].st]
			b := branches[st.WarehouseCode]
			return Stock{ProductID: productBase + p.Seq, ProductOptionID: optionBase + p.Seq, Code: p.SKU, Barcode: p.Barcode,
				BranchID: branchBase + b.Seq, BranchName: b.Name, Available: st.OnHand - st.Allocated, StockOnHand: st.OnHand,
				OpenSales: st.Allocated, ModifiedDate: s.stamp(st.Modified)}
		})
	})
	return body, err
}

// SecondaryContact is a person at a customer or supplier.
type SecondaryContact struct {
	ID        int    `json:"Id"`
	Company   string `json:"Company"`
	FirstName string `json:"FirstName"`
	LastName  string `json:"LastName"`
	JobTitle  string `json:"JobTitle"`
	Email     string `json:"Email"`
	Phone     string `json:"Phone"`
	Mobile    string `json:"Mobile"`
}

// Contact is a Cin7 Omni contact: a customer, a supplier or a branch.
type Contact struct {
	ID                int                `json:"Id"`
	CreatedDate       string             `json:"CreatedDate"`
	ModifiedDate      string             `json:"ModifiedDate"`
	IsActive          bool               `json:"IsActive"`
	Type              string             `json:"Type"`
	AccountNumber     string             `json:"AccountNumber"`
	Company           string             `json:"Company"`
	FirstName         string             `json:"FirstName"`
	LastName          string             `json:"LastName"`
	JobTitle          string             `json:"JobTitle"`
	Email             string             `json:"Email"`
	Phone             string             `json:"Phone"`
	Mobile            string             `json:"Mobile"`
	Fax               string             `json:"Fax"`
	Website           string             `json:"Website"`
	Address1          string             `json:"Address1"`
	Address2          string             `json:"Address2"`
	City              string             `json:"City"`
	State             string             `json:"State"`
	PostCode          string             `json:"PostCode"`
	Country           string             `json:"Country"`
	CurrencyCode      string             `json:"CurrencyCode"`
	TaxNumber         string             `json:"TaxNumber"`
	PriceColumn       string             `json:"PriceColumn"`
	PercentageOff     float64            `json:"PercentageOff"`
	SalesPersonID     int                `json:"SalesPersonId"`
	OnHold            bool               `json:"OnHold"`
	SecondaryContacts []SecondaryContact `json:"SecondaryContacts"`
}

// priceColumns maps the dataset's price tiers to Omni's price columns.
var priceColumns = map[string]string{"Tier 1": "RetailPrice", "Tier 2": "WholesalePrice", "Tier 3": "VIPPrice"}

func (s *Server) contacts(req request) ([]byte, error) {
	var body []byte
	var err error
	s.data.View(func(d *simkit.Dataset) {
		reps := map[string]int{}
		for _, sp := range d.SalesPeople {
			reps[sp.Code] = userBase + sp.Seq
		}
		nc := len(d.Customers)
		field := func(i int) fields {
			if i < nc {
				c := d.Customers[i]
				return fields{"id": customerBase + c.Seq, "type": "Customer", "modifieddate": c.Modified, "createddate": c.Created, "isactive": !c.Deleted, "accountnumber": c.Code}
			}
			sp := d.Suppliers[i-nc]
			return fields{"id": supplierBase + sp.Seq, "type": "Supplier", "modifieddate": sp.Modified, "createddate": sp.Created, "isactive": !sp.Deleted, "accountnumber": sp.Code}
		}
		body, err = list(s, req, nc+len(d.Suppliers), field, func(i int) Contact {
			if i < nc {
				c := d.Customers[i]
				out := Contact{ID: customerBase + c.Seq, CreatedDate: s.stamp(c.Created), ModifiedDate: s.stamp(c.Modified), IsActive: !c.Deleted, Type: "Customer",
					AccountNumber: c.Code, Company: c.Name, Email: c.Email, Phone: c.Phone, Address1: c.Street, City: c.City, PostCode: c.PostalCode,
					Country: c.Country, CurrencyCode: c.Currency, TaxNumber: c.TaxNumber, PriceColumn: priceColumns[c.PriceTier], SalesPersonID: reps[c.SalesPersonCode],
					SecondaryContacts: []SecondaryContact{}}
				if len(c.Contacts) > 0 {
					out.FirstName, out.LastName = c.Contacts[0].FirstName, c.Contacts[0].LastName
				}
				for j, ct := range c.Contacts {
					out.SecondaryContacts = append(out.SecondaryContacts, SecondaryContact{ID: contactBase + c.Seq*10 + j, Company: c.Name,
						FirstName: ct.FirstName, LastName: ct.LastName, JobTitle: "Buyer", Email: ct.Email, Phone: ct.Phone})
				}
				return out
			}
			sp := d.Suppliers[i-nc]
			return Contact{ID: supplierBase + sp.Seq, CreatedDate: s.stamp(sp.Created), ModifiedDate: s.stamp(sp.Modified), IsActive: !sp.Deleted, Type: "Supplier",
				AccountNumber: sp.Code, Company: sp.Name, Email: sp.Email, Phone: sp.Phone, Country: "New Zealand", CurrencyCode: sp.Currency,
				SecondaryContacts: []SecondaryContact{}}
		})
	})
	return body, err
}

// Branch is a Cin7 Omni branch (a warehouse or store).
type Branch struct {
	ID           int    `json:"Id"`
	CreatedDate  string `json:"CreatedDate"`
	ModifiedDate string `json:"ModifiedDate"`
	IsActive     bool   `json:"IsActive"`
	BranchType   string `json:"BranchType"`
	Company      string `json:"Company"`
	Address1     string `json:"Address1"`
	City         string `json:"City"`
	State        string `json:"State"`
	PostCode     string `json:"PostCode"`
	Country      string `json:"Country"`
	Phone        string `json:"Phone"`
	Email        string `json:"Email"`
}

func (s *Server) branches(req request) ([]byte, error) {
	var body []byte
	var err error
	s.data.View(func(d *simkit.Dataset) {
		body, err = list(s, req, len(d.Warehouses), func(i int) fields {
			w := d.Warehouses[i]
			return fields{"id": branchBase + w.Seq, "modifieddate": w.Modified, "createddate": w.Created, "isactive": !w.Deleted}
		}, func(i int) Branch {
			w := d.Warehouses[i]
			return Branch{ID: branchBase + w.Seq, CreatedDate: s.stamp(w.Created), ModifiedDate: s.stamp(w.Modified), IsActive: !w.Deleted, BranchType: "Warehouse",
				Company: w.Name, Address1: w.Code + " Depot Road", City: w.City, Country: "New Zealand", Phone: "+64 9 555 0000", Email: strings.ToLower(w.Code) + "@example.com"}
		})
	})
	return body, err
}

// User is a Cin7 Omni user (sales persons are users).
type User struct {
	ID        int    `json:"Id"`
	FirstName string `json:"FirstName"`
	LastName  string `json:"LastName"`
	Email     string `json:"Email"`
	IsActive  bool   `json:"IsActive"`
}

func (s *Server) users(req request) ([]byte, error) {
	var body []byte
	var err error
	s.data.View(func(d *simkit.Dataset) {
		body, err = list(s, req, len(d.SalesPeople), func(i int) fields {
			sp := d.SalesPeople[i]
			return fields{"id": userBase + sp.Seq, "isactive": !sp.Deleted}
		}, func(i int) User {
			sp := d.SalesPeople[i]
			first, last, _ := strings.Cut(sp.Name, " ")
			return User{ID: userBase + sp.Seq, FirstName: first, LastName: last, Email: sp.Email, IsActive: !sp.Deleted}
		})
	})
	return body, err
}

// LineItem is a line of a sales order or credit note.
type LineItem struct {
	ID              int         `json:"Id"`
	CreatedDate     string      `json:"CreatedDate"`
	TransactionID   int         `json:"TransactionId"`
	ProductID       int         `json:"ProductId"`
	ProductOptionID int         `json:"ProductOptionId"`
	SortOrder       int         `json:"SortOrder"`
	Code            string      `json:"Code"`
	Name            string      `json:"Name"`
	Option1         string      `json:"Option1"`
	Qty             float64     `json:"Qty"`
	UnitPrice       json.Number `json:"UnitPrice"`
	Discount        json.Number `json:"Discount"`
	TaxRate         float64     `json:"TaxRate"`
	LineComments    string      `json:"LineComments"`
}

// SalesOrder is a Cin7 Omni sales order, with its invoice and dispatch.
type SalesOrder struct {
	ID                    int         `json:"Id"`
	CreatedDate           string      `json:"CreatedDate"`
	ModifiedDate          string      `json:"ModifiedDate"`
	Reference             string      `json:"Reference"`
	MemberID              int         `json:"MemberId"`
	Company               string      `json:"Company"`
	Email                 string      `json:"Email"`
	BranchID              int         `json:"BranchId"`
	SalesPersonID         int         `json:"SalesPersonId"`
	CurrencyCode          string      `json:"CurrencyCode"`
	Status                string      `json:"Status"`
	Stage                 string      `json:"Stage"`
	IsVoid                bool        `json:"IsVoid"`
	OrderDate             *string     `json:"OrderDate"`
	EstimatedDeliveryDate *string     `json:"EstimatedDeliveryDate"`
	InvoiceNumber         *int        `json:"InvoiceNumber"`
	InvoiceDate           *string     `json:"InvoiceDate"`
	PaymentTerms          string      `json:"PaymentTerms"`
	DispatchedDate        *string     `json:"DispatchedDate"`
	LogisticsCarrier      string      `json:"LogisticsCarrier"`
	LogisticsStatus       int         `json:"LogisticsStatus"`
	TrackingCode          string      `json:"TrackingCode"`
	ProductTotal          json.Number `json:"ProductTotal"`
	DiscountTotal         json.Number `json:"DiscountTotal"`
	FreightTotal          json.Number `json:"FreightTotal"`
	TaxTotal              json.Number `json:"TaxTotal"`
	Total                 json.Number `json:"Total"`
	LineItems             []LineItem  `json:"LineItems"`
}

type docIndex struct {
	custs    map[string]*simkit.Customer
	branches map[string]*simkit.Warehouse
	reps     map[string]int
	invoice  map[string]*simkit.Document // by order number
	invByNum map[string]*simkit.Document
}

func indexDocs(d *simkit.Dataset) docIndex {
	ix := docIndex{custs: map[string]*simkit.Customer{}, branches: map[string]*simkit.Warehouse{}, reps: map[string]int{},
		invoice: map[string]*simkit.Document{}, invByNum: map[string]*simkit.Document{}}
	for _, c := range d.Customers {
		ix.custs[c.ID] = c
	}
	for _, w := range d.Warehouses {
		ix.branches[w.Code] = w
	}
	for _, sp := range d.SalesPeople {
		ix.reps[sp.Code] = userBase + sp.Seq
	}
	orders := map[string]bool{}
	for _, o := range d.Orders {
		orders[o.Number] = true
	}
	for _, inv := range d.Invoices {
		if orders[inv.OrderNumber] {
			ix.invoice[inv.OrderNumber] = inv
		}
		ix.invByNum[inv.Number] = inv
	}
	return ix
}

// dispatched: completed orders were dispatched.
func dispatched(o *simkit.Document) bool { return o.Status == "Completed" }

// digits returns the number in "INV-000123" (123).
func digits(s string) int {
	i := strings.IndexAny(s, "0123456789")
	if i < 0 {
		return 0
	}
	n, _ := strconv.Atoi(s[i:])
	return n
}

func (s *Server) lineItems(doc *simkit.Document, txID int, seqBase int) []LineItem {
	out := make([]LineItem, 0, len(doc.Lines))
	for i, l := range doc.Lines {
		seq := 0
		// simkit numbers every SKU (SKU-%06d); any other would stay at seq 0.
		_, _ = fmt.Sscanf(strings.TrimPrefix(l.SKU, "SKU-"), "%d", &seq)
		out = append(out, LineItem{ID: lineBase + seqBase*10 + i, CreatedDate: s.stamp(doc.Created), TransactionID: txID, ProductID: productBase + seq,
			ProductOptionID: optionBase + seq, SortOrder: i + 1, Code: l.SKU, Name: l.Description, Qty: l.Quantity, UnitPrice: num(l.UnitPrice),
			Discount: "0", TaxRate: l.TaxRate})
	}
	return out
}

// orderModified is the order's last change, its invoice's included (the
// invoice lives on the order in Omni).
func orderModified(o *simkit.Document, ix docIndex) time.Time {
	m := o.Modified
	if inv := ix.invoice[o.Number]; inv != nil && inv.Modified.After(m) {
		m = inv.Modified
	}
	return m
}

func (s *Server) salesOrders(req request) ([]byte, error) {
	var body []byte
	var err error
	s.data.View(func(d *simkit.Dataset) {
		ix := indexDocs(d)
		body, err = list(s, req, len(d.Orders), func(i int) fields {
			o := d.Orders[i]
			return fields{"id": orderBase + o.Seq, "modifieddate": orderModified(o, ix), "createddate": o.Created, "reference": o.Number, "isvoid": o.Deleted}
		}, func(i int) SalesOrder {
			o := d.Orders[i]
			sub, tax, total := o.Totals()
			out := SalesOrder{ID: orderBase + o.Seq, CreatedDate: s.stamp(o.Created), ModifiedDate: s.stamp(orderModified(o, ix)), Reference: o.Number,
				CurrencyCode: o.Currency, Status: "APPROVED", Stage: "New", IsVoid: o.Deleted, OrderDate: s.stampP(o.Date),
				EstimatedDeliveryDate: s.stampP(o.DueDate), PaymentTerms: "20 days", ProductTotal: num(sub), DiscountTotal: "0", FreightTotal: "0",
				TaxTotal: num(tax), Total: num(total), LineItems: s.lineItems(o, orderBase+o.Seq, o.Seq)}
			if o.Status == "Parked" {
				out.Status = "DRAFT"
			}
			if c := ix.custs[o.CustomerID]; c != nil {
				out.MemberID, out.Company, out.Email, out.SalesPersonID = customerBase+c.Seq, c.Name, c.Email, ix.reps[c.SalesPersonCode]
			}
			if b := ix.branches[o.WarehouseCode]; b != nil {
				out.BranchID = branchBase + b.Seq
			}
			if inv := ix.invoice[o.Number]; inv != nil {
				n := invoiceOffset + digits(inv.Number)
				out.InvoiceNumber, out.InvoiceDate = &n, s.stampP(inv.Date)
			}
			if dispatched(o) {
				out.Stage, out.DispatchedDate = "Dispatched", s.stampP(o.Date.Add(48*time.Hour))
				out.LogisticsCarrier, out.LogisticsStatus, out.TrackingCode = "NZ Post", 3, fmt.Sprintf("NZP%09d", o.Seq)
			}
			return out
		})
	})
	return body, err
}

// CreditNote is a Cin7 Omni credit note.
type CreditNote struct {
	ID             int         `json:"Id"`
	CreatedDate    string      `json:"CreatedDate"`
	ModifiedDate   string      `json:"ModifiedDate"`
	Reference      string      `json:"Reference"`
	SalesOrderID   int         `json:"SalesOrderId"`
	InvoiceNumber  *int        `json:"InvoiceNumber"`
	MemberID       int         `json:"MemberId"`
	Company        string      `json:"Company"`
	CurrencyCode   string      `json:"CurrencyCode"`
	Status         string      `json:"Status"`
	IsVoid         bool        `json:"IsVoid"`
	CreditNoteDate *string     `json:"CreditNoteDate"`
	ProductTotal   json.Number `json:"ProductTotal"`
	TaxTotal       json.Number `json:"TaxTotal"`
	Total          json.Number `json:"Total"`
	LineItems      []LineItem  `json:"LineItems"`
}

func (s *Server) creditNotes(req request) ([]byte, error) {
	var body []byte
	var err error
	s.data.View(func(d *simkit.Dataset) {
		ix := indexDocs(d)
		orderSeq := map[string]int{}
		for _, o := range d.Orders {
			orderSeq[o.Number] = o.Seq
		}
		body, err = list(s, req, len(d.CreditNotes), func(i int) fields {
			cn := d.CreditNotes[i]
			return fields{"id": creditBase + cn.Seq, "modifieddate": cn.Modified, "createddate": cn.Created, "reference": cn.Number, "isvoid": cn.Deleted}
		}, func(i int) CreditNote {
			cn := d.CreditNotes[i]
			sub, tax, total := cn.Totals()
			out := CreditNote{ID: creditBase + cn.Seq, CreatedDate: s.stamp(cn.Created), ModifiedDate: s.stamp(cn.Modified), Reference: cn.Number,
				CurrencyCode: cn.Currency, Status: "APPROVED", IsVoid: cn.Deleted, CreditNoteDate: s.stampP(cn.Date),
				ProductTotal: num(sub), TaxTotal: num(tax), Total: num(total), LineItems: s.lineItems(cn, creditBase+cn.Seq, 500000+cn.Seq)}
			if inv := ix.invByNum[cn.OrderNumber]; inv != nil {
				n := invoiceOffset + digits(inv.Number)
				out.InvoiceNumber = &n
				out.SalesOrderID = orderBase + orderSeq[inv.OrderNumber]
			}
			if c := ix.custs[cn.CustomerID]; c != nil {
				out.MemberID, out.Company = customerBase+c.Seq, c.Name
			}
			return out
		})
	})
	return body, err
}

// archivedProduct is a product whose Status is none of the four the help
// page lists (Inactive, Public, ShowInB2B, Internal).
type archivedProduct struct {
	id       int
	code     string
	modified time.Time
}

func (s *Server) archivedProducts() []archivedProduct {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]archivedProduct(nil), s.archived...)
}

// ServeArchivedProduct makes GET /v1/Products serve, from now on, one more
// product, modified now, whose Status is "Archived": a value beyond the four
// the Products help page lists, which the connector sets aside rather than
// guess whether it is sold or deleted. It returns the product's Id.
func (s *Server) ServeArchivedProduct() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.archived) + 1
	a := archivedProduct{id: archivedBase + n, code: fmt.Sprintf("OLD-%03d", n), modified: simkit.Stamp(s.Now(), time.Millisecond)}
	s.archived = append(s.archived, a)
	return a.id
}

// The ids the simulator gives the dataset's records, for tests that must
// know what the connector reads.

// BranchID is the Id of a warehouse.
func BranchID(w *simkit.Warehouse) int { return branchBase + w.Seq }

// UserID is the Id of a sales person.
func UserID(sp *simkit.SalesPerson) int { return userBase + sp.Seq }

// CustomerID is the Id of a customer contact.
func CustomerID(c *simkit.Customer) int { return customerBase + c.Seq }

// SupplierID is the Id of a supplier contact.
func SupplierID(sp *simkit.Supplier) int { return supplierBase + sp.Seq }

// SecondaryContactID is the Id of a customer's j-th person.
func SecondaryContactID(c *simkit.Customer, j int) int { return contactBase + c.Seq*10 + j }

// ProductID is the Id of a product (the style).
func ProductID(p *simkit.Product) int { return productBase + p.Seq }

// OptionID is the Id of a product's option (its one SKU).
func OptionID(p *simkit.Product) int { return optionBase + p.Seq }

// OrderID is the Id of a sales order.
func OrderID(o *simkit.Document) int { return orderBase + o.Seq }

// CreditNoteID is the Id of a credit note.
func CreditNoteID(cn *simkit.Document) int { return creditBase + cn.Seq }

// Invoiced returns a test of whether an order carries an invoice
// (InvoiceNumber); call it inside a View of d.
func Invoiced(d *simkit.Dataset) func(o *simkit.Document) bool {
	ix := indexDocs(d)
	return func(o *simkit.Document) bool { return ix.invoice[o.Number] != nil }
}

// Dispatched reports whether an order was dispatched.
func Dispatched(o *simkit.Document) bool { return dispatched(o) }
