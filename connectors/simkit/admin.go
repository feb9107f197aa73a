package simkit

import (
	"errors"
	"fmt"
	"slices"
)

// Record-level access for admin tools (erpsim's admin API) and tests: read,
// change, mark deleted and hard-delete any record of the dataset by kind
// and dataset id, and remove one child (a contact, a customer price, a
// stock row) from its parent. Every simulator renders the same dataset, so
// these work for all five vendors.

// The dataset's record kinds, as the admin methods name them.
const (
	AdminTaxRates    = "tax_rates"
	AdminCurrencies  = "currencies"
	AdminWarehouses  = "warehouses"
	AdminSalesPeople = "sales_people"
	AdminSuppliers   = "suppliers"
	AdminCustomers   = "customers"
	AdminProducts    = "products"
	AdminOrders      = "orders"
	AdminInvoices    = "invoices"
	AdminCreditNotes = "credit_notes"
)

// AdminKinds lists the record kinds the admin methods take.
var AdminKinds = []string{AdminTaxRates, AdminCurrencies, AdminWarehouses, AdminSalesPeople, AdminSuppliers,
	AdminCustomers, AdminProducts, AdminOrders, AdminInvoices, AdminCreditNotes}

// ErrUnknownKind is returned for a kind not in AdminKinds.
var ErrUnknownKind = errors.New("unknown record kind")

// ErrNotFound is returned when no record (or child) has the id.
var ErrNotFound = errors.New("no such record")

// RecordRef names one record of a kind: its dataset id, sequence, natural
// key (code, SKU or number) and vendor marker.
type RecordRef struct {
	ID      string `json:"id"`
	Seq     int    `json:"seq"`
	Key     string `json:"key"`
	Deleted bool   `json:"deleted"`
}

// table is one kind's slice seen generically; its funcs run under d.mu.
type table struct {
	n      func() int
	meta   func(i int) *Meta
	key    func(i int) string
	copyOf func(i int) any
	remove func(i int)
}

func (d *Dataset) table(kind string) (table, error) {
	switch kind {
	case AdminTaxRates:
		return tableOf(&d.TaxRates, func(x *TaxRate) *Meta { return &x.Meta }, func(x *TaxRate) string { return x.Code }, plainCopy), nil
	case AdminCurrencies:
		return tableOf(&d.Currencies, func(x *Currency) *Meta { return &x.Meta }, func(x *Currency) string { return x.Code }, plainCopy), nil
	case AdminWarehouses:
		return tableOf(&d.Warehouses, func(x *Warehouse) *Meta { return &x.Meta }, func(x *Warehouse) string { return x.Code }, plainCopy), nil
	case AdminSalesPeople:
		return tableOf(&d.SalesPeople, func(x *SalesPerson) *Meta { return &x.Meta }, func(x *SalesPerson) string { return x.Code }, plainCopy), nil
	case AdminSuppliers:
		return tableOf(&d.Suppliers, func(x *Supplier) *Meta { return &x.Meta }, func(x *Supplier) string { return x.Code }, plainCopy), nil
	case AdminCustomers:
		return tableOf(&d.Customers, func(x *Customer) *Meta { return &x.Meta }, func(x *Customer) string { return x.Code },
			func(x *Customer) *Customer { c := *x; c.Contacts = slices.Clone(x.Contacts); return &c }), nil
	case AdminProducts:
		return tableOf(&d.Products, func(x *Product) *Meta { return &x.Meta }, func(x *Product) string { return x.SKU },
			func(x *Product) *Product {
				c := *x
				c.Stock, c.SpecialPrices = slices.Clone(x.Stock), slices.Clone(x.SpecialPrices)
				return &c
			}), nil
	case AdminOrders:
		return tableOf(&d.Orders, docMeta, docKey, docCopy), nil
	case AdminInvoices:
		return tableOf(&d.Invoices, docMeta, docKey, docCopy), nil
	case AdminCreditNotes:
		return tableOf(&d.CreditNotes, docMeta, docKey, docCopy), nil
	}
	return table{}, fmt.Errorf("%w %q (want one of %v)", ErrUnknownKind, kind, AdminKinds)
}

func docMeta(x *Document) *Meta { return &x.Meta }
func docKey(x *Document) string { return x.Number }
func docCopy(x *Document) *Document {
	c := *x
	c.Lines = slices.Clone(x.Lines)
	return &c
}

func plainCopy[T any](x *T) *T {
	c := *x
	return &c
}

func tableOf[T any](items *[]*T, meta func(*T) *Meta, key func(*T) string, cp func(*T) *T) table {
	return table{
		n:      func() int { return len(*items) },
		meta:   func(i int) *Meta { return meta((*items)[i]) },
		key:    func(i int) string { return key((*items)[i]) },
		copyOf: func(i int) any { return cp((*items)[i]) },
		// A fresh slice: a reader that kept the old header (against View's
		// rule) still sees the old list, never a shifted one.
		remove: func(i int) { *items = slices.Concat((*items)[:i:i], (*items)[i+1:]) },
	}
}

func (t table) find(id string) int {
	for i := range t.n() {
		if t.meta(i).ID == id {
			return i
		}
	}
	return -1
}

// Refs lists every record of a kind, in list order.
func (d *Dataset) Refs(kind string) ([]RecordRef, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	t, err := d.table(kind)
	if err != nil {
		return nil, err
	}
	out := make([]RecordRef, t.n())
	for i := range out {
		m := t.meta(i)
		out[i] = RecordRef{ID: m.ID, Seq: m.Seq, Key: t.key(i), Deleted: m.Deleted}
	}
	return out, nil
}

// Record returns a copy of the record of a kind with the dataset id (a
// *Product, *Customer, *Document, ...).
func (d *Dataset) Record(kind, id string) (any, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	t, err := d.table(kind)
	if err != nil {
		return nil, err
	}
	i := t.find(id)
	if i < 0 {
		return nil, fmt.Errorf("%w: %s %q", ErrNotFound, kind, id)
	}
	return t.copyOf(i), nil
}

// Remove hard-deletes the record of a kind with the dataset id, the way a
// vendor that does not signal deletions does: it is gone from every list.
// It returns a copy of the removed record. What the vendor changes with it:
//   - an invoice: its order is stamped modified (as RemoveInvoices);
//   - a customer: its special prices leave every product, each such product
//     stamped modified (orders that name it stay: history);
//   - a warehouse: its stock rows leave every product, each stamped
//     modified with its remaining rows (as DropStock).
//
// Records that name the removed one by code (orders, customers' sales
// person, products' supplier, lines' tax code) stay as they are.
func (d *Dataset) Remove(kind, id string) (any, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, err := d.table(kind)
	if err != nil {
		return nil, err
	}
	i := t.find(id)
	if i < 0 {
		return nil, fmt.Errorf("%w: %s %q", ErrNotFound, kind, id)
	}
	removed := t.copyOf(i)
	switch kind {
	case AdminInvoices:
		inv := d.Invoices[i]
		for _, o := range d.Orders {
			if o.Number == inv.OrderNumber {
				o.Modified = d.Stamp()
				d.emit(AdminOrders, o.ID, o.Seq, ChangeUpdated)
			}
		}
	case AdminCustomers:
		c := d.Customers[i]
		for _, p := range d.Products {
			if kept := slices.DeleteFunc(slices.Clone(p.SpecialPrices), func(sp SpecialPrice) bool { return sp.CustomerID == c.ID }); len(kept) != len(p.SpecialPrices) {
				p.SpecialPrices = kept
				p.Modified = d.Stamp()
				d.emit(AdminProducts, p.ID, p.Seq, ChangeUpdated)
			}
		}
	case AdminWarehouses:
		code := d.Warehouses[i].Code
		for _, p := range d.Products {
			if j := slices.IndexFunc(p.Stock, func(s Stock) bool { return s.WarehouseCode == code }); j >= 0 {
				d.dropStockRow(p, j)
			}
		}
	}
	m := t.meta(i)
	d.emit(kind, m.ID, m.Seq, ChangeRemoved)
	t.remove(i)
	return removed, nil
}

// Mark sets or clears the vendor's deleted marker (obsolete, archived,
// voided, deleted) of a record: a soft delete the vendor shows. With stamp
// the record is stamped modified, as an edit is; without, its modified
// time stays (a vendor that sets the marker quietly, which no
// modified-since read sees). It returns a copy of the changed record.
func (d *Dataset) Mark(kind, id string, deleted, stamp bool) (any, error) {
	op := ChangeUpdated
	if deleted {
		op = ChangeDeleted
	}
	return d.change(kind, id, stamp, op, func(m *Meta) { m.Deleted = deleted })
}

// Touch stamps a record modified (a product also changes name, price and
// stock, as TouchProduct) and returns a copy of it.
func (d *Dataset) Touch(kind, id string) (any, error) {
	if kind == AdminProducts {
		d.mu.Lock()
		for _, p := range d.Products {
			if p.ID == id {
				d.touchProduct(p)
				break
			}
		}
		d.mu.Unlock()
		return d.Record(kind, id)
	}
	return d.change(kind, id, true, ChangeUpdated, func(*Meta) {})
}

func (d *Dataset) change(kind, id string, stamp bool, op ChangeOp, f func(m *Meta)) (any, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, err := d.table(kind)
	if err != nil {
		return nil, err
	}
	i := t.find(id)
	if i < 0 {
		return nil, fmt.Errorf("%w: %s %q", ErrNotFound, kind, id)
	}
	m := t.meta(i)
	f(m)
	if stamp {
		m.Modified = d.Stamp()
	}
	d.emit(kind, m.ID, m.Seq, op)
	return t.copyOf(i), nil
}

// RemoveContact removes the contact with contactID from the customer with
// customerID and stamps the customer modified (as DropContact).
func (d *Dataset) RemoveContact(customerID, contactID string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.Customers {
		if c.ID != customerID {
			continue
		}
		j := slices.IndexFunc(c.Contacts, func(x Contact) bool { return x.ID == contactID })
		if j < 0 {
			return fmt.Errorf("%w: customer %q has no contact %q", ErrNotFound, customerID, contactID)
		}
		c.Contacts = slices.Concat(c.Contacts[:j:j], c.Contacts[j+1:])
		c.Modified = d.Stamp()
		d.emit(AdminCustomers, c.ID, c.Seq, ChangeUpdated)
		return nil
	}
	return fmt.Errorf("%w: customers %q", ErrNotFound, customerID)
}

// RemoveSpecialPrice removes the product's special prices for the customer
// and stamps the product modified (as DropSpecialPrice).
func (d *Dataset) RemoveSpecialPrice(productID, customerID string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.Products {
		if p.ID != productID {
			continue
		}
		kept := slices.DeleteFunc(slices.Clone(p.SpecialPrices), func(sp SpecialPrice) bool { return sp.CustomerID == customerID })
		if len(kept) == len(p.SpecialPrices) {
			return fmt.Errorf("%w: product %q has no special price for customer %q", ErrNotFound, productID, customerID)
		}
		p.SpecialPrices = kept
		p.Modified = d.Stamp()
		d.emit(AdminProducts, p.ID, p.Seq, ChangeUpdated)
		return nil
	}
	return fmt.Errorf("%w: products %q", ErrNotFound, productID)
}

// RemoveStock removes the product's stock row in the warehouse and stamps
// the product and its remaining rows modified (as DropStock).
func (d *Dataset) RemoveStock(productID, warehouse string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.Products {
		if p.ID != productID {
			continue
		}
		j := slices.IndexFunc(p.Stock, func(s Stock) bool { return s.WarehouseCode == warehouse })
		if j < 0 {
			return fmt.Errorf("%w: product %q has no stock in warehouse %q", ErrNotFound, productID, warehouse)
		}
		d.dropStockRow(p, j)
		return nil
	}
	return fmt.Errorf("%w: products %q", ErrNotFound, productID)
}

// dropStockRow removes p's stock row j and stamps p and its other rows.
// Call under d.mu.
func (d *Dataset) dropStockRow(p *Product, j int) {
	p.Stock = slices.Concat(p.Stock[:j:j], p.Stock[j+1:])
	now := d.Stamp()
	p.Modified = now
	for k := range p.Stock {
		p.Stock[k].Modified = now
	}
	d.emit(AdminProducts, p.ID, p.Seq, ChangeUpdated)
}
