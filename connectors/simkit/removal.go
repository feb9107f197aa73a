package simkit

// Removals for the deletion scenarios: hard deletes the vendor does not
// signal, and children dropped from a parent document (the vendor stamps
// the parent modified, as an edit of the parent does).

// RemoveCustomers drops n customers starting at index at (a hard delete)
// and returns their ids.
func (d *Dataset) RemoveCustomers(at, n int) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ids []string
	var seqs []int
	d.Customers, ids, seqs = removeAt(d.Customers, at, n)
	d.emitAll(AdminCustomers, ids, seqs, ChangeRemoved)
	return ids
}

// RemoveOrders drops n sales orders starting at index at and returns their
// ids.
func (d *Dataset) RemoveOrders(at, n int) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ids []string
	var seqs []int
	d.Orders, ids, seqs = removeAt(d.Orders, at, n)
	d.emitAll(AdminOrders, ids, seqs, ChangeRemoved)
	return ids
}

// RemoveInvoices drops n invoices starting at index at and returns their
// ids. The orders they invoiced are stamped modified: where a vendor keeps
// the invoice inside its order (Cin7 Omni), removing it is an edit of the
// order; elsewhere the order's status changes with it.
func (d *Dataset) RemoveInvoices(at, n int) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if at >= 0 && at < len(d.Invoices) {
		for _, inv := range d.Invoices[at:min(at+max(n, 0), len(d.Invoices))] {
			for _, o := range d.Orders {
				if o.Number == inv.OrderNumber {
					o.Modified = d.Stamp()
					d.emit(AdminOrders, o.ID, o.Seq, ChangeUpdated)
				}
			}
		}
	}
	var ids []string
	var seqs []int
	d.Invoices, ids, seqs = removeAt(d.Invoices, at, n)
	d.emitAll(AdminInvoices, ids, seqs, ChangeRemoved)
	return ids
}

// RemoveTaxRates drops n tax rates starting at index at and returns their
// ids.
func (d *Dataset) RemoveTaxRates(at, n int) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ids []string
	var seqs []int
	d.TaxRates, ids, seqs = removeAt(d.TaxRates, at, n)
	d.emitAll(AdminTaxRates, ids, seqs, ChangeRemoved)
	return ids
}

// RemoveCurrencies drops n currencies starting at index at and returns
// their ids.
func (d *Dataset) RemoveCurrencies(at, n int) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ids []string
	var seqs []int
	d.Currencies, ids, seqs = removeAt(d.Currencies, at, n)
	d.emitAll(AdminCurrencies, ids, seqs, ChangeRemoved)
	return ids
}

// DropContact removes the last contact of the first customer (from index
// at) that has one, stamps the customer modified, and returns the
// customer's id and the contact's id ("" when none has a contact).
func (d *Dataset) DropContact(at int) (customerID, contactID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := max(at, 0); i < len(d.Customers); i++ {
		c := d.Customers[i]
		if n := len(c.Contacts); n > 0 {
			contactID = c.Contacts[n-1].ID
			c.Contacts = c.Contacts[:n-1]
			c.Modified = d.Stamp()
			d.emit(AdminCustomers, c.ID, c.Seq, ChangeUpdated)
			return c.ID, contactID
		}
	}
	return "", ""
}

// DropSpecialPrice removes the last customer price of the first product
// (from index at) that has one, stamps the product modified, and returns
// the product's id and the customer the price was for.
func (d *Dataset) DropSpecialPrice(at int) (productID, customerID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := max(at, 0); i < len(d.Products); i++ {
		p := d.Products[i]
		if n := len(p.SpecialPrices); n > 0 {
			customerID = p.SpecialPrices[n-1].CustomerID
			p.SpecialPrices = p.SpecialPrices[:n-1]
			p.Modified = d.Stamp()
			d.emit(AdminProducts, p.ID, p.Seq, ChangeUpdated)
			return p.ID, customerID
		}
	}
	return "", ""
}

// DropStock removes the last warehouse's stock row of the first product
// (from index at) that has more than one, stamps the product modified, and
// returns the product's id and the warehouse code.
func (d *Dataset) DropStock(at int) (productID, warehouse string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := max(at, 0); i < len(d.Products); i++ {
		p := d.Products[i]
		if n := len(p.Stock); n > 1 {
			warehouse = p.Stock[n-1].WarehouseCode
			p.Stock = p.Stock[:n-1]
			now := d.Stamp()
			p.Modified = now
			for j := range p.Stock {
				p.Stock[j].Modified = now
			}
			d.emit(AdminProducts, p.ID, p.Seq, ChangeUpdated)
			return p.ID, warehouse
		}
	}
	return "", ""
}

// ProductIDs returns the ids of every product, in list order.
func (d *Dataset) ProductIDs() []string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]string, len(d.Products))
	for i, p := range d.Products {
		out[i] = p.ID
	}
	return out
}

// removeAt drops n items from index at and returns the rest and the
// dropped items' ids.
func removeAt[T interface {
	id() string
	seq() int
}](items []T, at, n int) ([]T, []string, []int) {
	if at < 0 || at >= len(items) || n <= 0 {
		return items, nil, nil
	}
	end := min(at+n, len(items))
	ids := make([]string, 0, end-at)
	seqs := make([]int, 0, end-at)
	for _, it := range items[at:end] {
		ids = append(ids, it.id())
		seqs = append(seqs, it.seq())
	}
	return append(items[:at], items[end:]...), ids, seqs
}

func (m *Meta) id() string { return m.ID }
func (m *Meta) seq() int   { return m.Seq }
