package unleashed

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// mapEnv is what mapping needs besides the document.
type mapEnv struct {
	Company string
	// Fetched stamps records whose document has no modification time.
	Fetched time.Time
}

// pageDoc is one decoded page.
type pageDoc struct {
	Records []model.Record
	Items   int
	// PageNumber and NumberOfPages come from the Pagination object; Total
	// is NumberOfItems.
	PageNumber, NumberOfPages, Total int
}

type itemMapper func(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record)

// decodePage decodes {"Pagination": {...}, "Items": [...]} and maps each
// item. A malformed document fails with KindInvalidResponse naming the
// entity, page, item and field.
func decodePage(kind model.Kind, mapItem itemMapper, page int, body []byte, env mapEnv) (*pageDoc, error) {
	fail := func(format string, args ...any) error {
		return connectors.Errorf(connectors.KindInvalidResponse, "unleashed %s page %d: "+format, append([]any{kind, page}, args...)...)
	}
	if !json.Valid(body) {
		return nil, fail("the body is not JSON")
	}
	o, err := newObj(body)
	if err != nil {
		return nil, fail("the body is not a JSON object")
	}
	pg := o.get("Pagination")
	if pg == nil {
		return nil, fail("field Pagination: missing")
	}
	po, err := newObj(pg)
	if err != nil {
		return nil, fail("field Pagination: not an object")
	}
	doc := &pageDoc{}
	for _, f := range []struct {
		name string
		dst  *int
	}{{"NumberOfItems", &doc.Total}, {"PageNumber", &doc.PageNumber}, {"NumberOfPages", &doc.NumberOfPages}} {
		d := po.dec(f.name)
		n, err := strconv.Atoi(string(d))
		if po.err != nil || err != nil || n < 0 {
			return nil, fail("field Pagination.%s: not a count", f.name)
		}
		*f.dst = n
	}
	itemsRaw := o.get("Items")
	if itemsRaw == nil {
		return nil, fail("field Items: missing")
	}
	items, ok := splitArray(itemsRaw)
	if !ok {
		return nil, fail("field Items: not an array")
	}
	doc.Items = len(items)
	doc.Records = make([]model.Record, 0, len(items))
	for i, raw := range items {
		ro, err := newObj(raw)
		if err != nil {
			return nil, fail("Items[%d]: not a JSON object", i)
		}
		mapItem(ro, raw, env, &doc.Records)
		if ro.err != nil {
			return nil, fail("Items[%d]: %v", i, ro.err)
		}
	}
	return doc, nil
}

func record(env mapEnv, kind model.Kind, id string, mod time.Time, deleted bool, raw json.RawMessage, data model.Payload) model.Record {
	return model.Record{Company: env.Company, Vendor: Type, Kind: kind, VendorID: id, ModifiedAt: mod, Deleted: deleted, Raw: raw, Data: data}
}

// sub reads a nested object field; absent or null gives an empty object.
func (o *obj) sub(field string) *obj {
	v := o.get(field)
	if v == nil {
		return &obj{}
	}
	c, err := newObj(v)
	if err != nil {
		o.fail(field, "not an object")
		return &obj{}
	}
	return c
}

// modTime reads LastModifiedOn; documents without it fall back to the
// response time.
func modTime(o *obj, env mapEnv, required bool) time.Time {
	if t := o.time("LastModifiedOn", required); !t.IsZero() {
		return t
	}
	return env.Fetched
}

func deleted(status string) bool {
	switch strings.ToLower(status) {
	case "deleted", "voided", "void", "cancelled", "obsolete":
		return true
	}
	return false
}

func mapTax(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.reqStr("Guid")
	t := &model.TaxRate{Code: o.reqStr("TaxCode"), Name: o.str("Description"), Rate: percent(o.dec("TaxRate"))}
	*out = append(*out, record(env, model.KindTaxRate, id, modTime(o, env, false), o.boolean("Obsolete"), raw, t))
}

func mapCurrency(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.reqStr("Guid")
	c := &model.Currency{Code: o.reqStr("CurrencyCode"), Name: o.str("Description"), ExchangeRate: o.float("DefaultSellRate")}
	*out = append(*out, record(env, model.KindCurrency, id, modTime(o, env, false), o.boolean("Obsolete"), raw, c))
}

func mapWarehouse(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.reqStr("Guid")
	w := &model.Warehouse{Code: o.reqStr("WarehouseCode"), Name: o.str("WarehouseName")}
	line1 := strings.TrimSpace(o.str("StreetNo") + " " + o.str("AddressLine1"))
	addr := model.Address{Line1: line1, Line2: o.str("AddressLine2"), City: firstNonEmpty(o.str("City"), o.str("Suburb")),
		Region: o.str("Region"), PostalCode: o.str("PostCode"), Country: o.str("Country")}
	if addr != (model.Address{}) {
		w.Address = &addr
	}
	*out = append(*out, record(env, model.KindWarehouse, id, modTime(o, env, true), o.boolean("Obsolete"), raw, w))
}

func mapSalesperson(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.reqStr("Guid")
	name := o.str("FullName")
	// Unleashed sales persons have no code; the name is what documents show.
	sp := &model.SalesPerson{Code: name, Name: name, Email: o.str("Email")}
	*out = append(*out, record(env, model.KindSalesPerson, id, modTime(o, env, false), o.boolean("Obsolete"), raw, sp))
}

func mapSupplier(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.reqStr("Guid")
	s := &model.Supplier{Code: o.reqStr("SupplierCode"), Name: o.str("SupplierName"), Email: o.str("Email"),
		Phone: firstNonEmpty(o.str("PhoneNumber"), o.str("MobileNumber")), Currency: o.sub("Currency").str("CurrencyCode")}
	*out = append(*out, record(env, model.KindSupplier, id, modTime(o, env, false), o.boolean("Obsolete"), raw, s))
}

// mapCustomer maps a customer and its inline contacts (includeAllContacts).
func mapCustomer(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.reqStr("Guid")
	mod := modTime(o, env, true)
	obsolete := o.boolean("Obsolete")
	c := &model.Customer{Code: o.reqStr("CustomerCode"), Name: o.str("CustomerName"), Email: o.str("Email"),
		Phone: firstNonEmpty(o.str("PhoneNumber"), o.str("MobileNumber")), Currency: o.sub("Currency").str("CurrencyCode"),
		TaxNumber: o.str("GSTVATNumber"), PriceTier: o.str("SellPriceTier"), SalesPerson: o.sub("Salesperson").str("FullName")}
	if obsolete {
		c.Status = "Obsolete"
	} else {
		c.Status = "Active"
	}
	for i, araw := range o.arr("Addresses") {
		a := o.child("Addresses", i, araw)
		c.Addresses = append(c.Addresses, model.Address{Type: a.str("AddressType"), Line1: a.str("StreetAddress"), Line2: a.str("StreetAddress2"),
			City: firstNonEmpty(a.str("City"), a.str("Suburb")), Region: a.str("Region"), PostalCode: a.str("PostalCode"), Country: a.str("Country")})
		o.adopt(fmt.Sprintf("Addresses[%d]", i), a)
	}
	*out = append(*out, record(env, model.KindCustomer, id, mod, obsolete, raw, c))
	for i, craw := range o.arr("Contacts") {
		co := o.child("Contacts", i, craw)
		ct := &model.Contact{CustomerVendorID: id, FirstName: co.str("FirstName"), LastName: co.str("LastName"),
			Email: co.str("EmailAddress"), Phone: firstNonEmpty(co.str("PhoneNumber"), co.str("OfficePhone"), co.str("MobilePhone"))}
		*out = append(*out, record(env, model.KindContact, co.reqStr("Guid"), mod, obsolete, craw, ct))
		o.adopt(fmt.Sprintf("Contacts[%d]", i), co)
	}
}

// mapProduct maps a product: DefaultSellPrice is the sell price; the ten
// sell price tiers with a value become prices named as the account names
// them.
func mapProduct(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.reqStr("Guid")
	mod := modTime(o, env, true)
	obsolete := o.boolean("Obsolete")
	p := &model.Product{SKU: o.reqStr("ProductCode"), Name: o.str("ProductDescription"), Description: o.str("Notes"),
		Category: o.sub("ProductGroup").str("GroupName"), Barcode: o.str("Barcode"), UnitOfMeasure: o.sub("UnitOfMeasure").str("Name"),
		SellPrice: o.dec("DefaultSellPrice"), CostPrice: o.dec("DefaultPurchasePrice"),
		IsSold: o.get("IsSellable") == nil || o.boolean("IsSellable"), IsPurchased: o.get("IsPurchasable") == nil || o.boolean("IsPurchasable"),
		Tracked: !o.boolean("NeverDiminishing"), Obsolete: obsolete}
	for n := 1; n <= 10; n++ {
		f := fmt.Sprintf("SellPriceTier%d", n)
		t := o.sub(f)
		v := t.dec("Value")
		o.adopt(f, t)
		if !isZero(v) {
			p.Prices = append(p.Prices, model.Price{Tier: firstNonEmpty(t.str("Name"), fmt.Sprintf("Sell Price Tier %d", n)), Amount: v})
		}
	}
	*out = append(*out, record(env, model.KindProduct, id, mod, obsolete, raw, p))
}

// mapStock maps a StockOnHand row read with warehouseCode: the stock of
// one product in one warehouse.
func mapStock(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	pid := firstNonEmpty(o.str("ProductGuid"), o.str("Guid"))
	if pid == "" {
		o.fail("ProductGuid", "missing or empty")
	}
	wid := firstNonEmpty(o.str("WarehouseId"), o.str("WarehouseCode"))
	if wid == "" {
		o.fail("WarehouseId", "missing: rows must be read per warehouse")
	}
	st := &model.StockLevel{ProductVendorID: pid, SKU: o.str("ProductCode"), Warehouse: o.str("WarehouseCode"), WarehouseName: o.str("Warehouse"),
		OnHand: o.float("QtyOnHand"), Allocated: o.float("AllocatedQty"), Available: o.float("AvailableQty"), OnOrder: o.float("OnPurchase")}
	*out = append(*out, record(env, model.KindStockLevel, pid+"/"+wid, modTime(o, env, true), false, raw, st))
}

// mapPrice maps a ProductPrices row: a customer (or product group) price.
func mapPrice(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	prod, cust, group := o.sub("Product"), o.sub("Customer"), o.sub("ProductGroup")
	pid := prod.reqStr("Guid")
	o.adopt("Product", prod)
	id := o.str("Guid")
	if id == "" {
		id = pid + "/" + firstNonEmpty(cust.str("Guid"), group.str("Guid")) + "/" + string(o.dec("MinimumQuantity"))
	}
	pr := &model.PriceRule{ProductVendorID: pid, SKU: prod.str("ProductCode"), CustomerVendorID: cust.str("Guid"), CustomerCode: cust.str("CustomerCode"),
		PriceList: group.str("GroupName"), Price: o.dec("CustomerPrice"), MinQuantity: o.float("MinimumQuantity"),
		ValidFrom: o.optTime("ValidFrom"), ValidTo: o.optTime("ValidTo")}
	if pr.Price == "" {
		// A discount row carries no price: apply its percentage to the
		// default sell price.
		pr.Price = discounted(o.dec("DefaultSellPrice"), o.dec("DiscountValue"))
	}
	*out = append(*out, record(env, model.KindPriceRule, id, modTime(o, env, false), false, raw, pr))
}

func mapLines(o *obj, field, qtyField string) []model.Line {
	var out []model.Line
	for i, lraw := range o.arr(field) {
		l := o.child(field, i, lraw)
		prod := l.sub("Product")
		n := i + 1
		if v := l.get("LineNumber"); v != nil {
			n = int(l.float("LineNumber"))
		}
		out = append(out, model.Line{LineNo: n, ProductVendorID: prod.str("Guid"), SKU: prod.str("ProductCode"), Description: prod.str("ProductDescription"),
			Quantity: l.float(qtyField), UnitPrice: l.dec("UnitPrice"), Discount: l.dec("DiscountRate"), Tax: l.dec("LineTax"),
			LineTotal: l.dec("LineTotal"), TaxCode: l.str("LineTaxCode")})
		l.adopt("Product", prod)
		o.adopt(fmt.Sprintf("%s[%d]", field, i), l)
	}
	return out
}

func mapSalesOrder(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.reqStr("Guid")
	status := o.str("OrderStatus")
	cust := o.sub("Customer")
	so := &model.SalesOrder{Number: o.reqStr("OrderNumber"), CustomerVendorID: cust.str("Guid"), CustomerCode: cust.str("CustomerCode"), Status: status,
		OrderDate: o.optTime("OrderDate"), RequiredDate: o.optTime("RequiredDate"), Warehouse: o.sub("Warehouse").str("WarehouseCode"),
		Currency: o.sub("Currency").str("CurrencyCode"), SubTotal: o.dec("SubTotal"), TaxTotal: o.dec("TaxTotal"), Total: o.dec("Total"),
		Lines: mapLines(o, "SalesOrderLines", "OrderQuantity")}
	*out = append(*out, record(env, model.KindSalesOrder, id, modTime(o, env, true), deleted(status), raw, so))
}

func mapInvoice(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.reqStr("Guid")
	status := o.str("InvoiceStatus")
	cust := o.sub("Customer")
	in := &model.Invoice{Number: o.reqStr("InvoiceNumber"), Type: "sale", CustomerVendorID: cust.str("Guid"), CustomerCode: cust.str("CustomerCode"),
		SalesOrderNumber: o.str("OrderNumber"), Status: status, IssueDate: o.optTime("InvoiceDate"), DueDate: o.optTime("DueDate"),
		Currency: o.sub("Currency").str("CurrencyCode"), SubTotal: o.dec("SubTotal"), TaxTotal: o.dec("TaxTotal"), Total: o.dec("Total"),
		Lines: mapLines(o, "InvoiceLines", "InvoiceQuantity")}
	*out = append(*out, record(env, model.KindInvoice, id, modTime(o, env, true), deleted(status), raw, in))
}

func mapCreditNote(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.reqStr("Guid")
	status := firstNonEmpty(o.str("Status"), o.str("CreditNoteStatus"))
	cust := o.sub("Customer")
	cn := &model.CreditNote{Number: o.reqStr("CreditNoteNumber"), Type: "sale", CustomerVendorID: cust.str("Guid"), CustomerCode: cust.str("CustomerCode"),
		InvoiceNumber: o.str("InvoiceNumber"), Status: status, IssueDate: o.optTime("CreditDate"), Currency: o.sub("Currency").str("CurrencyCode"),
		SubTotal: o.dec("SubTotal"), TaxTotal: o.dec("TaxTotal"), Total: o.dec("Total"), Lines: mapLines(o, "CreditLines", "CreditQuantity")}
	*out = append(*out, record(env, model.KindCreditNote, id, modTime(o, env, true), deleted(status), raw, cn))
}

func mapShipment(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.reqStr("Guid")
	status := o.str("ShipmentStatus")
	sh := &model.Shipment{Number: o.reqStr("ShipmentNumber"), SalesOrderNumber: o.str("OrderNumber"), Status: status,
		ShippedDate: o.optTime("DispatchDate"), Carrier: nameOf(o, "ShippingCompany", "ShippingCompanyName"), TrackingNumber: o.str("TrackingNumber"),
		Warehouse: o.sub("Warehouse").str("WarehouseCode")}
	*out = append(*out, record(env, model.KindShipment, id, modTime(o, env, true), deleted(status), raw, sh))
}

// nameOf reads a field that is either a string or an object carrying the
// name in nameField.
func nameOf(o *obj, field, nameField string) string {
	if v := o.get(field); v != nil && v[0] == '{' {
		return o.sub(field).str(nameField)
	}
	return o.str(field)
}
