package unleashed

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/internal/vendorjson"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// mapEnv is what mapping needs besides the document.
type mapEnv struct {
	Company string
	// Fetched stamps records whose document has no modification time.
	Fetched time.Time
	// aside collects the documents set aside (decodePage sets it).
	aside *[]model.SetAside
}

// setAside keeps a document the mapping cannot know instead of failing its
// page. reason must hold no vendor text beyond short quoted values.
func (env mapEnv) setAside(kind model.Kind, id string, mod time.Time, raw json.RawMessage, reason string) {
	if env.aside != nil {
		*env.aside = append(*env.aside, model.NewSetAside(env.Company, Type, kind, id, mod, raw, reason))
	}
}

// short quotes a vendor value for a reason.
func short(v string) string { return model.QuoteValue(v) }

// pageDoc is one decoded page.
type pageDoc struct {
	Records  []model.Record
	SetAside []model.SetAside
	Items    int
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
	pg := o.Get("Pagination")
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
		d := po.Dec(f.name)
		n, err := strconv.Atoi(string(d))
		if po.Err() != nil || err != nil || n < 0 {
			return nil, fail("field Pagination.%s: not a count", f.name)
		}
		*f.dst = n
	}
	itemsRaw := o.Get("Items")
	if itemsRaw == nil {
		return nil, fail("field Items: missing")
	}
	items, ok := vendorjson.SplitArray(itemsRaw)
	if !ok {
		return nil, fail("field Items: not an array")
	}
	doc.Items = len(items)
	doc.Records = make([]model.Record, 0, len(items))
	env.aside = &doc.SetAside
	for i, raw := range items {
		ro, err := newObj(raw)
		if err != nil {
			return nil, fail("Items[%d]: not a JSON object", i)
		}
		mapItem(ro, raw, env, &doc.Records)
		if ro.Err() != nil {
			return nil, fail("Items[%d]: %v", i, ro.Err())
		}
	}
	return doc, nil
}

func record(env mapEnv, kind model.Kind, id string, mod time.Time, deleted bool, raw json.RawMessage, data model.Payload) model.Record {
	return model.Record{Company: env.Company, Vendor: Type, Kind: kind, VendorID: id, ModifiedAt: mod, Deleted: deleted, Raw: raw, Data: data}
}

// sub reads a nested object field; absent or null gives an empty object.
func sub(o *obj, field string) *obj {
	v := o.Get(field)
	if v == nil {
		return &obj{}
	}
	c, err := newObj(v)
	if err != nil {
		o.Fail(field, "not an object")
		return &obj{}
	}
	return c
}

// modTime reads LastModifiedOn; documents without it fall back to the
// response time.
func modTime(o *obj, env mapEnv, required bool) time.Time {
	if t := o.Time("LastModifiedOn", required); !t.IsZero() {
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
	id := o.ReqStr("Guid")
	t := &model.TaxRate{Code: o.ReqStr("TaxCode"), Name: o.Str("Description"), Rate: percent(o.Dec("TaxRate"))}
	*out = append(*out, record(env, model.KindTaxRate, id, modTime(o, env, false), o.Bool("Obsolete"), raw, t))
}

func mapCurrency(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.ReqStr("Guid")
	c := &model.Currency{Code: o.ReqStr("CurrencyCode"), Name: o.Str("Description"), ExchangeRate: o.Float("DefaultSellRate")}
	*out = append(*out, record(env, model.KindCurrency, id, modTime(o, env, false), o.Bool("Obsolete"), raw, c))
}

func mapWarehouse(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.ReqStr("Guid")
	w := &model.Warehouse{Code: o.ReqStr("WarehouseCode"), Name: o.Str("WarehouseName")}
	line1 := strings.TrimSpace(o.Str("StreetNo") + " " + o.Str("AddressLine1"))
	addr := model.Address{Line1: line1, Line2: o.Str("AddressLine2"), City: firstNonEmpty(o.Str("City"), o.Str("Suburb")),
		Region: o.Str("Region"), PostalCode: o.Str("PostCode"), Country: o.Str("Country")}
	if addr != (model.Address{}) {
		w.Address = &addr
	}
	*out = append(*out, record(env, model.KindWarehouse, id, modTime(o, env, true), o.Bool("Obsolete"), raw, w))
}

func mapSalesperson(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.ReqStr("Guid")
	name := o.Str("FullName")
	// Unleashed sales persons have no code; the name is what documents show.
	sp := &model.SalesPerson{Code: name, Name: name, Email: o.Str("Email")}
	*out = append(*out, record(env, model.KindSalesPerson, id, modTime(o, env, false), o.Bool("Obsolete"), raw, sp))
}

func mapSupplier(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.ReqStr("Guid")
	s := &model.Supplier{Code: o.ReqStr("SupplierCode"), Name: o.Str("SupplierName"), Email: o.Str("Email"),
		Phone: firstNonEmpty(o.Str("PhoneNumber"), o.Str("MobileNumber")), Currency: sub(o, "Currency").Str("CurrencyCode")}
	*out = append(*out, record(env, model.KindSupplier, id, modTime(o, env, false), o.Bool("Obsolete"), raw, s))
}

// mapCustomer maps a customer and its inline contacts (includeAllContacts).
func mapCustomer(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.ReqStr("Guid")
	mod := modTime(o, env, true)
	obsolete := o.Bool("Obsolete")
	c := &model.Customer{Code: o.ReqStr("CustomerCode"), Name: o.Str("CustomerName"), Email: o.Str("Email"),
		Phone: firstNonEmpty(o.Str("PhoneNumber"), o.Str("MobileNumber")), Currency: sub(o, "Currency").Str("CurrencyCode"),
		TaxNumber: o.Str("GSTVATNumber"), PriceTier: o.Str("SellPriceTier"), SalesPerson: sub(o, "Salesperson").Str("FullName")}
	if obsolete {
		c.Status = "Obsolete"
	} else {
		c.Status = "Active"
	}
	for i, araw := range o.Arr("Addresses") {
		a := o.Child("Addresses", i, araw)
		c.Addresses = append(c.Addresses, model.Address{Type: a.Str("AddressType"), Line1: a.Str("StreetAddress"), Line2: a.Str("StreetAddress2"),
			City: firstNonEmpty(a.Str("City"), a.Str("Suburb")), Region: a.Str("Region"), PostalCode: a.Str("PostalCode"), Country: a.Str("Country")})
		o.Adopt(fmt.Sprintf("Addresses[%d]", i), a)
	}
	contacts := o.Arr("Contacts")
	cust := record(env, model.KindCustomer, id, mod, obsolete, raw, c)
	// The customer names its contacts now only when the document holds
	// the whole list: the Contacts array is there (includeAllContacts was
	// honoured) and shorter than the inline cap, past which Unleashed may
	// have cut it. Without the array, or at the cap, the record says
	// nothing about contacts and none is deleted from it.
	var ids []string
	complete := o.Get("Contacts") != nil && o.Err() == nil && len(contacts) < MaxInlineContacts
	if complete {
		ids = make([]string, 0, len(contacts))
	}
	at := len(*out)
	*out = append(*out, cust)
	for i, craw := range contacts {
		co := o.Child("Contacts", i, craw)
		ct := &model.Contact{CustomerVendorID: id, FirstName: co.Str("FirstName"), LastName: co.Str("LastName"),
			Email: co.Str("EmailAddress"), Phone: firstNonEmpty(co.Str("PhoneNumber"), co.Str("OfficePhone"), co.Str("MobilePhone"))}
		r := record(env, model.KindContact, co.ReqStr("Guid"), mod, obsolete, craw, ct)
		r.Parent, r.ParentKind = id, model.KindCustomer
		*out = append(*out, r)
		if complete {
			ids = append(ids, r.VendorID)
		}
		o.Adopt(fmt.Sprintf("Contacts[%d]", i), co)
	}
	if complete {
		(*out)[at].Children = []model.ChildSet{{Kind: model.KindContact, IDs: ids}}
	}
}

// MaxInlineContacts is how many contacts GET /Customers returns inline with
// includeAllContacts=true at most (Customers page: "up to 100"). A customer
// listing that many may have more, read only from /Customers/{guid}/Contacts.
const MaxInlineContacts = 100

// mapProduct maps a product: DefaultSellPrice is the sell price; the ten
// sell price tiers with a value become prices named as the account names
// them.
func mapProduct(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.ReqStr("Guid")
	mod := modTime(o, env, true)
	obsolete := o.Bool("Obsolete")
	p := &model.Product{SKU: o.ReqStr("ProductCode"), Name: o.Str("ProductDescription"), Description: o.Str("Notes"),
		Category: sub(o, "ProductGroup").Str("GroupName"), Barcode: o.Str("Barcode"), UnitOfMeasure: sub(o, "UnitOfMeasure").Str("Name"),
		SellPrice: o.Dec("DefaultSellPrice"), CostPrice: o.Dec("DefaultPurchasePrice"),
		IsSold: o.Get("IsSellable") == nil || o.Bool("IsSellable"), IsPurchased: o.Get("IsPurchasable") == nil || o.Bool("IsPurchasable"),
		Tracked: !o.Bool("NeverDiminishing"), Obsolete: obsolete}
	for n := 1; n <= 10; n++ {
		f := fmt.Sprintf("SellPriceTier%d", n)
		t := sub(o, f)
		v := t.Dec("Value")
		o.Adopt(f, t)
		if !isZero(v) {
			p.Prices = append(p.Prices, model.Price{Tier: firstNonEmpty(t.Str("Name"), fmt.Sprintf("Sell Price Tier %d", n)), Amount: v})
		}
	}
	*out = append(*out, record(env, model.KindProduct, id, mod, obsolete, raw, p))
}

// mapStock maps a StockOnHand row read with warehouseCode: the stock of
// one product in one warehouse.
func mapStock(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	pid := firstNonEmpty(o.Str("ProductGuid"), o.Str("Guid"))
	if pid == "" {
		o.Fail("ProductGuid", "missing or empty")
	}
	wid := firstNonEmpty(o.Str("WarehouseId"), o.Str("WarehouseCode"))
	if wid == "" {
		o.Fail("WarehouseId", "missing: rows must be read per warehouse")
	}
	st := &model.StockLevel{ProductVendorID: pid, SKU: o.Str("ProductCode"), Warehouse: o.Str("WarehouseCode"), WarehouseName: o.Str("Warehouse"),
		OnHand: o.Float("QtyOnHand"), Allocated: o.Float("AllocatedQty"), Available: o.Float("AvailableQty"), OnOrder: o.Float("OnPurchase")}
	*out = append(*out, record(env, model.KindStockLevel, pid+"/"+wid, modTime(o, env, true), false, raw, st))
}

// mapPrice maps a ProductPrices row: a customer price of one product. A
// row for a whole product group (ProductGroup and no Product), or one of a
// price type the connector does not know without a customer price, is set
// aside: the CRM's price rules name one product and a price.
func mapPrice(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	prod, cust, group := sub(o, "Product"), sub(o, "Customer"), sub(o, "ProductGroup")
	id := o.Str("Guid")
	if prod.Str("Guid") == "" && group.Str("Guid") != "" {
		if id == "" {
			id = "group/" + group.Str("Guid") + "/" + cust.Str("Guid") + "/" + string(o.Dec("MinimumQuantity"))
		}
		mod := o.Time("LastModifiedOn", false)
		if o.Err() == nil {
			env.setAside(model.KindPriceRule, id, mod, raw, "the price applies to product group "+short(group.Str("GroupName"))+", not to one product; the connector maps product prices only")
		}
		return
	}
	pid := prod.ReqStr("Guid")
	o.Adopt("Product", prod)
	if id == "" {
		id = pid + "/" + firstNonEmpty(cust.Str("Guid"), group.Str("Guid")) + "/" + string(o.Dec("MinimumQuantity"))
	}
	pr := &model.PriceRule{ProductVendorID: pid, SKU: prod.Str("ProductCode"), CustomerVendorID: cust.Str("Guid"), CustomerCode: cust.Str("CustomerCode"),
		PriceList: group.Str("GroupName"), Price: o.Dec("CustomerPrice"), MinQuantity: o.Float("MinimumQuantity"),
		ValidFrom: o.OptTime("ValidFrom"), ValidTo: o.OptTime("ValidTo")}
	if pr.Price == "" {
		switch pt := o.Str("PriceType"); strings.ToLower(pt) {
		case "", "discount", "fixed price":
			// A discount row carries no price: apply its percentage to the
			// default sell price.
			pr.Price = discounted(o.Dec("DefaultSellPrice"), o.Dec("DiscountValue"))
		default:
			mod := o.Time("LastModifiedOn", false)
			if o.Err() == nil {
				env.setAside(model.KindPriceRule, id, mod, raw, "price type "+short(pt)+" carries no customer price and is not one the connector can compute")
			}
			return
		}
	}
	*out = append(*out, record(env, model.KindPriceRule, id, modTime(o, env, false), false, raw, pr))
}

func mapLines(o *obj, field, qtyField string) []model.Line {
	var out []model.Line
	for i, lraw := range o.Arr(field) {
		l := o.Child(field, i, lraw)
		prod := sub(l, "Product")
		n := i + 1
		if v := l.Get("LineNumber"); v != nil {
			n = int(l.Float("LineNumber"))
		}
		out = append(out, model.Line{LineNo: n, ProductVendorID: prod.Str("Guid"), SKU: prod.Str("ProductCode"), Description: prod.Str("ProductDescription"),
			Quantity: l.Float(qtyField), UnitPrice: l.Dec("UnitPrice"), Discount: l.Dec("DiscountRate"), Tax: l.Dec("LineTax"),
			LineTotal: l.Dec("LineTotal"), TaxCode: l.Str("LineTaxCode")})
		l.Adopt("Product", prod)
		o.Adopt(fmt.Sprintf("%s[%d]", field, i), l)
	}
	return out
}

func mapSalesOrder(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.ReqStr("Guid")
	status := o.Str("OrderStatus")
	cust := sub(o, "Customer")
	so := &model.SalesOrder{Number: o.ReqStr("OrderNumber"), CustomerVendorID: cust.Str("Guid"), CustomerCode: cust.Str("CustomerCode"), Status: status,
		OrderDate: o.OptTime("OrderDate"), RequiredDate: o.OptTime("RequiredDate"), Warehouse: sub(o, "Warehouse").Str("WarehouseCode"),
		Currency: sub(o, "Currency").Str("CurrencyCode"), SubTotal: o.Dec("SubTotal"), TaxTotal: o.Dec("TaxTotal"), Total: o.Dec("Total"),
		Lines: mapLines(o, "SalesOrderLines", "OrderQuantity")}
	*out = append(*out, record(env, model.KindSalesOrder, id, modTime(o, env, true), deleted(status), raw, so))
}

func mapInvoice(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.ReqStr("Guid")
	status := o.Str("InvoiceStatus")
	cust := sub(o, "Customer")
	in := &model.Invoice{Number: o.ReqStr("InvoiceNumber"), Type: "sale", CustomerVendorID: cust.Str("Guid"), CustomerCode: cust.Str("CustomerCode"),
		SalesOrderNumber: o.Str("OrderNumber"), Status: status, IssueDate: o.OptTime("InvoiceDate"), DueDate: o.OptTime("DueDate"),
		Currency: sub(o, "Currency").Str("CurrencyCode"), SubTotal: o.Dec("SubTotal"), TaxTotal: o.Dec("TaxTotal"), Total: o.Dec("Total"),
		Lines: mapLines(o, "InvoiceLines", "InvoiceQuantity")}
	*out = append(*out, record(env, model.KindInvoice, id, modTime(o, env, true), deleted(status), raw, in))
}

func mapCreditNote(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.ReqStr("Guid")
	status := firstNonEmpty(o.Str("Status"), o.Str("CreditNoteStatus"))
	cust := sub(o, "Customer")
	cn := &model.CreditNote{Number: o.ReqStr("CreditNoteNumber"), Type: "sale", CustomerVendorID: cust.Str("Guid"), CustomerCode: cust.Str("CustomerCode"),
		InvoiceNumber: o.Str("InvoiceNumber"), Status: status, IssueDate: o.OptTime("CreditDate"), Currency: sub(o, "Currency").Str("CurrencyCode"),
		SubTotal: o.Dec("SubTotal"), TaxTotal: o.Dec("TaxTotal"), Total: o.Dec("Total"), Lines: mapLines(o, "CreditLines", "CreditQuantity")}
	*out = append(*out, record(env, model.KindCreditNote, id, modTime(o, env, true), deleted(status), raw, cn))
}

func mapShipment(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.ReqStr("Guid")
	status := o.Str("ShipmentStatus")
	sh := &model.Shipment{Number: o.ReqStr("ShipmentNumber"), SalesOrderNumber: o.Str("OrderNumber"), Status: status,
		ShippedDate: o.OptTime("DispatchDate"), Carrier: nameOf(o, "ShippingCompany", "ShippingCompanyName"), TrackingNumber: o.Str("TrackingNumber"),
		Warehouse: sub(o, "Warehouse").Str("WarehouseCode")}
	*out = append(*out, record(env, model.KindShipment, id, modTime(o, env, true), deleted(status), raw, sh))
}

// nameOf reads a field that is either a string or an object carrying the
// name in nameField.
func nameOf(o *obj, field, nameField string) string {
	if v := o.Get(field); v != nil && v[0] == '{' {
		return sub(o, field).Str(nameField)
	}
	return o.Str(field)
}
