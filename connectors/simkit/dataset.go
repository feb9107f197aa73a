package simkit

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"time"
)

// Options sizes and seeds a dataset.
type Options struct {
	// Seed makes the dataset deterministic; equal options give equal data.
	Seed uint64
	// Products, Customers and Orders size the dataset. Invoices are made for
	// half the orders and credit notes for a tenth of the invoices.
	Products  int
	Customers int
	Orders    int
	// Warehouses is the number of stock locations (default 3); every product
	// has stock in each.
	Warehouses int
	// SpecialPricesPerProduct is how many customer-specific prices each
	// product has (default 1).
	SpecialPricesPerProduct int
	// Now is the dataset's "present": every record was modified before it.
	// Zero means 2026-01-01T00:00:00Z.
	Now time.Time
}

func (o *Options) defaults() {
	if o.Warehouses <= 0 {
		o.Warehouses = 3
	}
	if o.SpecialPricesPerProduct < 0 {
		o.SpecialPricesPerProduct = 0
	} else if o.SpecialPricesPerProduct == 0 {
		o.SpecialPricesPerProduct = 1
	}
	if o.Now.IsZero() {
		o.Now = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
}

// Meta is what every dataset record carries.
type Meta struct {
	// ID is the vendor-neutral identity: a GUID-shaped string, stable for a
	// seed. Simulators may derive their own ids from it (Seq for numeric ids).
	ID  string
	Seq int
	// Created and Modified are UTC, with millisecond precision.
	Created  time.Time
	Modified time.Time
	// Deleted marks an obsolete, archived, voided or deleted record.
	Deleted bool
}

// Warehouse is a stock location.
type Warehouse struct {
	Meta
	Code, Name, City string
}

// TaxRate is a tax code.
type TaxRate struct {
	Meta
	Code, Name string
	Rate       float64 // percent
}

// Currency is a traded currency.
type Currency struct {
	Meta
	Code, Name string
	Rate       float64
}

// SalesPerson sells.
type SalesPerson struct {
	Meta
	Code, Name, Email string
}

// Supplier supplies products.
type Supplier struct {
	Meta
	Code, Name, Email, Phone, Currency string
}

// Contact is a person at a customer.
type Contact struct {
	ID                                string
	FirstName, LastName, Email, Phone string
}

// Customer buys.
type Customer struct {
	Meta
	Code, Name, Email, Phone, Currency, TaxNumber, PriceTier string
	SalesPersonCode                                          string
	Street, City, PostalCode, Country                        string
	Contacts                                                 []Contact
}

// Stock is a product's stock in one warehouse.
type Stock struct {
	WarehouseCode string
	OnHand        float64
	Allocated     float64
	Modified      time.Time
}

// SpecialPrice is a customer-specific price of a product.
type SpecialPrice struct {
	CustomerID   string
	CustomerCode string
	Price        string
	MinQuantity  float64
}

// Product is a sellable item.
type Product struct {
	Meta
	SKU, Name, Description, Category, Barcode, Unit string
	SellPrice, CostPrice                            string
	Tier2Price                                      string
	SupplierCode                                    string
	Stock                                           []Stock
	SpecialPrices                                   []SpecialPrice
}

// Line is one line of an order, invoice or credit note.
type Line struct {
	ProductID, SKU, Description string
	Quantity                    float64
	UnitPrice                   string
	TaxCode                     string
	TaxRate                     float64
}

// Document is a sales order, invoice or credit note.
type Document struct {
	Meta
	Number        string
	CustomerID    string
	CustomerCode  string
	Status        string
	Date          time.Time
	DueDate       time.Time
	WarehouseCode string
	Currency      string
	OrderNumber   string // invoices and credit notes: the order or invoice they refer to
	Lines         []Line
}

// Totals returns the document's sub total, tax and total as decimals.
func (d *Document) Totals() (sub, tax, total string) {
	var s, t int64 // cents
	for _, l := range d.Lines {
		lineCents := int64(l.Quantity) * cents(l.UnitPrice)
		s += lineCents
		t += lineCents * int64(l.TaxRate) / 100
	}
	return fmtCents(s), fmtCents(t), fmtCents(s + t)
}

// Dataset is one company's business, safe for concurrent use. Simulators read
// it with View; tests change it with the Touch/Delete/Add methods.
type Dataset struct {
	mu   sync.RWMutex
	opts Options
	now  func() time.Time
	rng  *rand.Rand
	// subs are told of every change (see Subscribe).
	subs   map[int]ChangeFunc
	subSeq int

	Warehouses  []*Warehouse
	TaxRates    []*TaxRate
	Currencies  []*Currency
	SalesPeople []*SalesPerson
	Suppliers   []*Supplier
	Customers   []*Customer
	Products    []*Product
	Orders      []*Document
	Invoices    []*Document
	CreditNotes []*Document
}

// NewDataset builds a deterministic dataset.
func NewDataset(o Options) *Dataset {
	o.defaults()
	d := &Dataset{opts: o, rng: rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))}
	base := o.Now.Add(-365 * 24 * time.Hour)
	span := int64(364 * 24 * time.Hour / time.Millisecond)
	at := func() time.Time { return base.Add(time.Duration(d.rng.Int64N(span)) * time.Millisecond).UTC() }
	meta := func(kind string, seq int) Meta {
		c := at()
		m := c.Add(time.Duration(d.rng.Int64N(int64(o.Now.Sub(c)/time.Millisecond))) * time.Millisecond)
		return Meta{ID: guid(o.Seed, kind, seq), Seq: seq, Created: c, Modified: m.UTC()}
	}
	cities := []string{"Auckland", "Sydney", "London", "Denver", "Toronto", "Dublin"}
	for i := 1; i <= o.Warehouses; i++ {
		d.Warehouses = append(d.Warehouses, &Warehouse{Meta: meta("warehouse", i), Code: fmt.Sprintf("WH%d", i), Name: fmt.Sprintf("Warehouse %d", i), City: cities[i%len(cities)]})
	}
	for i, t := range []struct {
		code string
		rate float64
	}{{"GST", 15}, {"VAT", 20}, {"EXEMPT", 0}, {"REDUCED", 5}} {
		d.TaxRates = append(d.TaxRates, &TaxRate{Meta: meta("tax", i+1), Code: t.code, Name: t.code + " rate", Rate: t.rate})
	}
	for i, c := range []struct {
		code, name string
		rate       float64
	}{{"NZD", "New Zealand Dollar", 1}, {"AUD", "Australian Dollar", 0.92}, {"USD", "US Dollar", 0.6}, {"GBP", "Pound Sterling", 0.48}} {
		d.Currencies = append(d.Currencies, &Currency{Meta: meta("currency", i+1), Code: c.code, Name: c.name, Rate: c.rate})
	}
	for i := 1; i <= 5; i++ {
		d.SalesPeople = append(d.SalesPeople, &SalesPerson{Meta: meta("salesperson", i), Code: fmt.Sprintf("SP%02d", i), Name: fmt.Sprintf("Sales Person %d", i), Email: fmt.Sprintf("sales%d@example.com", i)})
	}
	for i := 1; i <= 10; i++ {
		d.Suppliers = append(d.Suppliers, &Supplier{Meta: meta("supplier", i), Code: fmt.Sprintf("SUP%03d", i), Name: fmt.Sprintf("Supplier %d Ltd", i), Email: fmt.Sprintf("orders@supplier%d.example.com", i), Phone: fmt.Sprintf("+64 9 555 %04d", i), Currency: "NZD"})
	}
	for i := 1; i <= o.Customers; i++ {
		c := &Customer{Meta: meta("customer", i), Code: fmt.Sprintf("CUST%05d", i), Name: fmt.Sprintf("Customer %d Limited", i),
			Email: fmt.Sprintf("accounts@customer%d.example.com", i), Phone: fmt.Sprintf("+64 9 444 %04d", i%10000),
			Currency: d.Currencies[i%2].Code, TaxNumber: fmt.Sprintf("%03d-%03d-%03d", i%1000, (i*7)%1000, (i*13)%1000),
			PriceTier: fmt.Sprintf("Tier %d", 1+i%3), SalesPersonCode: d.SalesPeople[i%len(d.SalesPeople)].Code,
			Street: fmt.Sprintf("%d Queen Street", i), City: cities[i%len(cities)], PostalCode: fmt.Sprintf("%04d", 1000+i%9000), Country: "New Zealand"}
		for j := 1; j <= 1+i%2; j++ {
			c.Contacts = append(c.Contacts, Contact{ID: guid(o.Seed, fmt.Sprintf("contact%d", j), i), FirstName: fmt.Sprintf("Pat%d", j), LastName: fmt.Sprintf("Buyer%d", i), Email: fmt.Sprintf("pat%d@customer%d.example.com", j, i), Phone: fmt.Sprintf("+64 21 %06d", i*10+j)})
		}
		d.Customers = append(d.Customers, c)
	}
	units := []string{"EA", "BOX", "KG", "M"}
	cats := []string{"Hardware", "Apparel", "Food", "Electronics", "Garden"}
	for i := 1; i <= o.Products; i++ {
		sell := 500 + d.rng.Int64N(100000)
		p := &Product{Meta: meta("product", i), SKU: fmt.Sprintf("SKU-%06d", i), Name: fmt.Sprintf("Product %d", i),
			Description: fmt.Sprintf("Description of product %d", i), Category: cats[i%len(cats)], Barcode: fmt.Sprintf("94%011d", i),
			Unit: units[i%len(units)], SellPrice: fmtCents(sell), CostPrice: fmtCents(sell * 6 / 10), Tier2Price: fmtCents(sell * 9 / 10),
			SupplierCode: d.Suppliers[i%len(d.Suppliers)].Code}
		p.Deleted = i%50 == 0 // some obsolete products
		for _, w := range d.Warehouses {
			onHand := float64(d.rng.IntN(500))
			p.Stock = append(p.Stock, Stock{WarehouseCode: w.Code, OnHand: onHand, Allocated: float64(d.rng.IntN(int(onHand) + 1)), Modified: p.Modified})
		}
		for j := 0; j < o.SpecialPricesPerProduct && len(d.Customers) > 0; j++ {
			c := d.Customers[(i*7+j*13)%len(d.Customers)]
			p.SpecialPrices = append(p.SpecialPrices, SpecialPrice{CustomerID: c.ID, CustomerCode: c.Code, Price: fmtCents(sell * 85 / 100), MinQuantity: float64(1 + j*10)})
		}
		d.Products = append(d.Products, p)
	}
	statuses := []string{"Parked", "Placed", "Completed", "Backordered"}
	for i := 1; i <= o.Orders && len(d.Customers) > 0 && len(d.Products) > 0; i++ {
		c := d.Customers[d.rng.IntN(len(d.Customers))]
		doc := &Document{Meta: meta("order", i), Number: fmt.Sprintf("SO-%06d", i), CustomerID: c.ID, CustomerCode: c.Code,
			Status: statuses[i%len(statuses)], WarehouseCode: d.Warehouses[i%len(d.Warehouses)].Code, Currency: c.Currency}
		doc.Date = doc.Created.Truncate(24 * time.Hour)
		doc.DueDate = doc.Date.Add(30 * 24 * time.Hour)
		for j := 0; j < 1+i%4; j++ {
			p := d.Products[d.rng.IntN(len(d.Products))]
			tr := d.TaxRates[(i+j)%2]
			doc.Lines = append(doc.Lines, Line{ProductID: p.ID, SKU: p.SKU, Description: p.Name, Quantity: float64(1 + d.rng.IntN(20)), UnitPrice: p.SellPrice, TaxCode: tr.Code, TaxRate: tr.Rate})
		}
		d.Orders = append(d.Orders, doc)
	}
	for i, o2 := range d.Orders {
		if i%2 != 0 {
			continue
		}
		inv := *o2
		inv.Meta = meta("invoice", len(d.Invoices)+1)
		inv.Number = fmt.Sprintf("INV-%06d", len(d.Invoices)+1)
		inv.OrderNumber = o2.Number
		inv.Status = []string{"AUTHORISED", "PAID", "DRAFT"}[i%3]
		inv.Lines = append([]Line(nil), o2.Lines...)
		d.Invoices = append(d.Invoices, &inv)
	}
	for i, inv := range d.Invoices {
		if i%10 != 0 {
			continue
		}
		cn := *inv
		cn.Meta = meta("credit", len(d.CreditNotes)+1)
		cn.Number = fmt.Sprintf("CN-%06d", len(d.CreditNotes)+1)
		cn.OrderNumber = inv.Number
		cn.Status = "AUTHORISED"
		cn.Lines = append([]Line(nil), inv.Lines[:1]...)
		d.CreditNotes = append(d.CreditNotes, &cn)
	}
	d.now = func() time.Time { return o.Now }
	return d
}

// SetClock sets the clock that stamps changes (default: the dataset's Now
// option, which does not move). Simulators pass their own clock.
func (d *Dataset) SetClock(now func() time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.now = now
}

// View runs f with the dataset locked for reading. f must not keep
// references to records after it returns.
func (d *Dataset) View(f func(d *Dataset)) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	f(d)
}

// Update runs f with the dataset locked for writing. f should stamp what it
// changes with Stamp().
func (d *Dataset) Update(f func(d *Dataset)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d)
}

// Stamp returns the modification time for a change made now (UTC,
// milliseconds). Call it inside Update.
func (d *Dataset) Stamp() time.Time { return d.now().UTC().Truncate(time.Millisecond) }

// TouchProducts changes n products chosen deterministically from the
// dataset's random stream (name, price and stock) and returns their ids.
func (d *Dataset) TouchProducts(n int) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ids []string
	for i := 0; i < n && len(d.Products) > 0; i++ {
		p := d.Products[d.rng.IntN(len(d.Products))]
		d.touchProduct(p)
		ids = append(ids, p.ID)
	}
	return ids
}

// TouchProduct changes the product with the given id; false if none.
func (d *Dataset) TouchProduct(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.Products {
		if p.ID == id {
			d.touchProduct(p)
			return true
		}
	}
	return false
}

func (d *Dataset) touchProduct(p *Product) {
	defer d.emit(AdminProducts, p.ID, p.Seq, ChangeUpdated)
	now := d.Stamp()
	p.Modified = now
	p.Name = fmt.Sprintf("Product %d (rev %d)", p.Seq, now.UnixMilli()%100000)
	p.SellPrice = fmtCents(cents(p.SellPrice) + 1)
	for i := range p.Stock {
		p.Stock[i].OnHand++
		p.Stock[i].Modified = now
	}
}

// TouchCustomers changes n customers and returns their ids.
func (d *Dataset) TouchCustomers(n int) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ids []string
	for i := 0; i < n && len(d.Customers) > 0; i++ {
		c := d.Customers[d.rng.IntN(len(d.Customers))]
		c.Modified = d.Stamp()
		c.Phone = fmt.Sprintf("+64 9 777 %04d", d.rng.IntN(10000))
		ids = append(ids, c.ID)
		d.emit(AdminCustomers, c.ID, c.Seq, ChangeUpdated)
	}
	return ids
}

// TouchOrders changes the status of n orders and returns their ids.
func (d *Dataset) TouchOrders(n int) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ids []string
	for i := 0; i < n && len(d.Orders) > 0; i++ {
		o := d.Orders[d.rng.IntN(len(d.Orders))]
		o.Modified = d.Stamp()
		o.Status = "Completed"
		ids = append(ids, o.ID)
		d.emit(AdminOrders, o.ID, o.Seq, ChangeUpdated)
	}
	return ids
}

// DeleteProduct marks a product obsolete/deleted; false if none.
func (d *Dataset) DeleteProduct(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.Products {
		if p.ID == id {
			p.Deleted = true
			p.Modified = d.Stamp()
			d.emit(AdminProducts, p.ID, p.Seq, ChangeDeleted)
			return true
		}
	}
	return false
}

// AddProduct appends a new product modified now and returns it (a copy).
func (d *Dataset) AddProduct() Product {
	d.mu.Lock()
	defer d.mu.Unlock()
	seq := 1
	for _, p := range d.Products {
		seq = max(seq, p.Seq+1)
	}
	now := d.Stamp()
	p := &Product{Meta: Meta{ID: guid(d.opts.Seed, "product", seq), Seq: seq, Created: now, Modified: now},
		SKU: fmt.Sprintf("SKU-%06d", seq), Name: fmt.Sprintf("Product %d", seq), Description: "New product", Category: "New",
		Unit: "EA", SellPrice: "10.00", CostPrice: "6.00", Tier2Price: "9.00", SupplierCode: "SUP001"}
	for _, w := range d.Warehouses {
		p.Stock = append(p.Stock, Stock{WarehouseCode: w.Code, OnHand: 1, Modified: now})
	}
	d.Products = append(d.Products, p)
	d.emit(AdminProducts, p.ID, p.Seq, ChangeCreated)
	return *p
}

// ModifiedSince returns the indexes of items whose modified time (per mod)
// is strictly after since (or all, for a zero since), in ascending order of
// modified time then id: the stable order a vendor's "orderBy modified"
// gives. It allocates one slice of ints.
func ModifiedSince[T any](items []T, since time.Time, mod func(T) time.Time, id func(T) string) []int {
	idx := make([]int, 0, len(items))
	for i, it := range items {
		if since.IsZero() || mod(it).After(since) {
			idx = append(idx, i)
		}
	}
	sort.SliceStable(idx, func(a, b int) bool {
		ma, mb := mod(items[idx[a]]), mod(items[idx[b]])
		if !ma.Equal(mb) {
			return ma.Before(mb)
		}
		return id(items[idx[a]]) < id(items[idx[b]])
	})
	return idx
}

// PageOf returns the [start, end) bounds of a 1-based page and whether more
// pages follow.
func PageOf(n, page, size int) (start, end int, more bool) {
	if page < 1 {
		page = 1
	}
	start = (page - 1) * size
	if start > n {
		start = n
	}
	end = min(start+size, n)
	return start, end, end < n
}

// guid makes a GUID-shaped, deterministic id.
func guid(seed uint64, kind string, seq int) string {
	h := uint64(14695981039346656037)
	for _, b := range []byte(kind) {
		h = (h ^ uint64(b)) * 1099511628211
	}
	h ^= seed * 0x9e3779b97f4a7c15
	a := h ^ uint64(seq)*0xbf58476d1ce4e5b9
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", uint32(a>>32), uint16(a>>16), uint16(a)&0xfff, uint16(seq>>12)&0xfff, uint64(seq)&0xffffffffffff)
}

func cents(dec string) int64 {
	var whole, frac int64
	var neg bool
	s := dec
	if len(s) > 0 && s[0] == '-' {
		neg, s = true, s[1:]
	}
	i := 0
	for ; i < len(s) && s[i] != '.'; i++ {
		whole = whole*10 + int64(s[i]-'0')
	}
	digits := 0
	for i++; i < len(s) && digits < 2; i++ {
		frac = frac*10 + int64(s[i]-'0')
		digits++
	}
	for ; digits < 2; digits++ {
		frac *= 10
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

// TieModified stamps n products (the first n in creation order) with one
// modified time, at, so that a list ordered by modified time holds a run of
// ties that crosses page boundaries. It returns their ids.
func (d *Dataset) TieModified(n int, at time.Time) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ids []string
	for i := 0; i < n && i < len(d.Products); i++ {
		p := d.Products[i]
		p.Modified = at.UTC()
		for j := range p.Stock {
			p.Stock[j].Modified = at.UTC()
		}
		ids = append(ids, p.ID)
		d.emit(AdminProducts, p.ID, p.Seq, ChangeUpdated)
	}
	return ids
}

// EditOldest changes the n products with the oldest modified time (those a
// list ordered by modified time serves first), so that such a list moves
// them to its end while it is being paged. It returns their ids.
func (d *Dataset) EditOldest(n int) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	idx := make([]int, len(d.Products))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return d.Products[idx[a]].Modified.Before(d.Products[idx[b]].Modified) })
	var ids []string
	for _, i := range idx[:min(n, len(idx))] {
		d.touchProduct(d.Products[i])
		ids = append(ids, d.Products[i].ID)
	}
	return ids
}

// RemoveProducts drops n products from the dataset (a hard delete the
// vendor does not signal), starting at the given index, and returns their
// ids: every later product shifts up in a list that pages by position.
func (d *Dataset) RemoveProducts(at, n int) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if at < 0 || at >= len(d.Products) {
		return nil
	}
	end := min(at+n, len(d.Products))
	var ids []string
	var seqs []int
	for _, p := range d.Products[at:end] {
		ids = append(ids, p.ID)
		seqs = append(seqs, p.Seq)
	}
	d.Products = append(d.Products[:at], d.Products[end:]...)
	d.emitAll(AdminProducts, ids, seqs, ChangeRemoved)
	return ids
}
