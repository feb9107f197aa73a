package cin7core

import (
	"bytes"
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
	// Fetched stamps records whose vendor document has no modification
	// time (tax rules, locations, stock availability): the vendor's clock at
	// the response, so a later read always supersedes an earlier one.
	Fetched time.Time
}

// pageDoc is one decoded list page.
type pageDoc struct {
	Records []model.Record
	// Items is the number of vendor list items on the page.
	Items int
	// Total is the vendor's Total, or -1 when absent.
	Total int
}

// itemMapper maps one vendor list item into records.
type itemMapper func(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record)

// decodePage decodes a page of stream s: the envelope, then each item. A
// document that does not parse or breaks the contract fails with
// KindInvalidResponse naming the entity, page, record and field.
func decodePage(s *stream, page int, body []byte, env mapEnv) (*pageDoc, error) {
	fail := func(format string, args ...any) error {
		return connectors.Errorf(connectors.KindInvalidResponse, "cin7core %s page %d: "+format, append([]any{s.kind, page}, args...)...)
	}
	if !json.Valid(body) {
		return nil, fail("the body is not a JSON object")
	}
	o, err := newObj(body)
	if err != nil {
		return nil, fail("the body is not a JSON object")
	}
	listRaw := o.get(s.listKey)
	if listRaw == nil {
		return nil, fail("field %s: missing", s.listKey)
	}
	items, ok := splitArray(listRaw)
	if !ok {
		return nil, fail("field %s: not an array", s.listKey)
	}
	doc := &pageDoc{Items: len(items), Total: -1}
	if o.get("Total") != nil {
		t := o.dec("Total")
		n, err := strconv.Atoi(string(t))
		if o.err != nil || err != nil || n < 0 {
			return nil, fail("field Total: not a count")
		}
		doc.Total = n
	}
	doc.Records = make([]model.Record, 0, len(items))
	for i, raw := range items {
		ro, err := newObj(raw)
		if err != nil {
			return nil, fail("%s[%d]: not a JSON object", s.listKey, i)
		}
		s.mapItem(ro, raw, env, &doc.Records)
		if ro.err != nil {
			return nil, fail("%s[%d]: %v", s.listKey, i, ro.err)
		}
	}
	return doc, nil
}

func record(env mapEnv, kind model.Kind, id string, mod time.Time, deleted bool, raw json.RawMessage, data model.Payload) model.Record {
	return model.Record{Company: env.Company, Vendor: Type, Kind: kind, VendorID: id, ModifiedAt: mod, Deleted: deleted,
		Raw: raw, Data: data}
}

func deprecated(status string) bool {
	return strings.EqualFold(status, "Deprecated") || strings.EqualFold(status, "Inactive")
}

func voided(status string) bool { return strings.EqualFold(status, "VOIDED") }

// mapTaxRule maps a /ref/tax TaxRuleList item. Tax rules have no
// modification time: they are stamped with the response time.
func mapTaxRule(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.reqStr("ID")
	name := o.str("Name")
	rate := o.float("TaxPercent")
	active := o.get("IsActive") == nil || o.boolean("IsActive")
	*out = append(*out, record(env, model.KindTaxRate, id, env.Fetched, !active, raw, &model.TaxRate{Code: name, Name: name, Rate: rate}))
}

// mapLocation maps a /ref/location LocationList item.
func mapLocation(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.reqStr("ID")
	name := o.str("Name")
	w := &model.Warehouse{Code: name, Name: name}
	addr := model.Address{Line1: o.str("AddressLine1"), Line2: o.str("AddressLine2"), City: o.str("AddressCitySuburb"),
		Region: o.str("AddressStateProvince"), PostalCode: o.str("AddressZipPostCode"), Country: o.str("AddressCountry")}
	if addr != (model.Address{}) {
		w.Address = &addr
	}
	del := o.boolean("IsDeprecated") || o.boolean("Deprecated")
	*out = append(*out, record(env, model.KindWarehouse, id, env.Fetched, del, raw, w))
}

// defaultContact returns the default (or first) contact of a customer or
// supplier.
func defaultContact(o *obj, contacts []json.RawMessage) *obj {
	var first *obj
	for i, raw := range contacts {
		c := o.child("Contacts", i, raw)
		if first == nil {
			first = c
		}
		if c.boolean("Default") {
			return c
		}
	}
	return first
}

// mapSupplier maps a /supplier SupplierList item. Cin7 Core suppliers have
// no code: the name identifies them in the UI and in documents.
func mapSupplier(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.reqStr("ID")
	mod := o.time("LastModifiedOn", true)
	s := &model.Supplier{Code: o.str("Name"), Name: o.str("Name"), Currency: o.str("Currency")}
	if c := defaultContact(o, o.arr("Contacts")); c != nil {
		s.Email, s.Phone = c.str("Email"), firstNonEmpty(c.str("Phone"), c.str("MobilePhone"))
		o.adopt("Contacts", c)
	}
	*out = append(*out, record(env, model.KindSupplier, id, mod, deprecated(o.str("Status")), raw, s))
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

// mapCustomer maps a /customer CustomerList item into the customer, its
// contacts and (IncludeProductPrices=true) its customer-specific prices.
// Contacts and prices share the customer's modification time and deleted
// flag: Cin7 Core keeps neither apart from the customer.
func mapCustomer(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.reqStr("ID")
	mod := o.time("LastModifiedOn", true)
	status := o.str("Status")
	del := deprecated(status)
	name := o.str("Name")
	c := &model.Customer{Code: name, Name: name, Currency: o.str("Currency"), TaxNumber: o.str("TaxNumber"),
		PriceTier: o.str("PriceTier"), SalesPerson: o.str("SalesRepresentative"), Status: status}
	for i, araw := range o.arr("Addresses") {
		a := o.child("Addresses", i, araw)
		c.Addresses = append(c.Addresses, model.Address{Type: a.str("Type"), Line1: a.str("Line1"), Line2: a.str("Line2"),
			City: a.str("City"), Region: a.str("State"), PostalCode: a.str("Postcode"), Country: a.str("Country")})
		o.adopt(fmt.Sprintf("Addresses[%d]", i), a)
	}
	contacts := o.arr("Contacts")
	if dc := defaultContact(o, contacts); dc != nil {
		c.Email, c.Phone = dc.str("Email"), firstNonEmpty(dc.str("Phone"), dc.str("MobilePhone"))
	}
	var extra []model.Record
	for i, craw := range contacts {
		co := o.child("Contacts", i, craw)
		cid := co.reqStr("ID")
		first, last := splitName(co.str("Name"))
		extra = append(extra, record(env, model.KindContact, cid, mod, del, craw, &model.Contact{CustomerVendorID: id,
			FirstName: first, LastName: last, Email: co.str("Email"), Phone: firstNonEmpty(co.str("Phone"), co.str("MobilePhone")), Role: co.str("JobTitle")}))
		o.adopt(fmt.Sprintf("Contacts[%d]", i), co)
	}
	for i, praw := range o.arr("ProductPrices") {
		po := o.child("ProductPrices", i, praw)
		pid := po.reqStr("ProductID")
		price := po.dec("Price")
		extra = append(extra, record(env, model.KindPriceRule, id+"/"+pid, mod, del, praw, &model.PriceRule{ProductVendorID: pid,
			SKU: po.str("ProductSKU"), CustomerVendorID: id, CustomerCode: name, Price: price, Currency: c.Currency}))
		o.adopt(fmt.Sprintf("ProductPrices[%d]", i), po)
	}
	*out = append(*out, record(env, model.KindCustomer, id, mod, del, raw, c))
	*out = append(*out, extra...)
}

// splitName splits "Pat Buyer" into first and last name at the first space.
func splitName(full string) (string, string) {
	full = strings.TrimSpace(full)
	first, last, _ := strings.Cut(full, " ")
	return first, strings.TrimSpace(last)
}

// mapProduct maps a /product Products item. Price tier 1 is Cin7 Core's
// default sell price; every non-zero tier of PriceTiers (named as the
// account names them) becomes a Price.
func mapProduct(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.reqStr("ID")
	mod := o.time("LastModifiedOn", true)
	status := o.str("Status")
	typ := o.str("Type")
	p := &model.Product{SKU: o.reqStr("SKU"), Name: o.str("Name"), Description: firstNonEmpty(o.str("Description"), o.str("ShortDescription")),
		Category: o.str("Category"), Barcode: o.str("Barcode"), UnitOfMeasure: o.str("UOM"),
		SellPrice: o.dec("PriceTier1"), CostPrice: o.dec("AverageCost"),
		IsSold: o.get("Sellable") == nil || o.boolean("Sellable"), IsPurchased: !strings.EqualFold(typ, "Service"),
		Tracked: strings.EqualFold(typ, "Stock"), Obsolete: deprecated(status)}
	if tiers := o.get("PriceTiers"); tiers != nil {
		keys, vals, ok := orderedObject(tiers)
		if !ok {
			o.fail("PriceTiers", "not an object")
		}
		for i, k := range keys {
			amount, err := decimal(json.Number(bytes.TrimSpace(vals[i])))
			if err != nil {
				o.fail("PriceTiers."+k, "not a number")
				break
			}
			if !isZero(amount) {
				p.Prices = append(p.Prices, model.Price{Tier: k, Amount: amount})
			}
		}
	} else {
		for n := 1; n <= 10; n++ {
			f := fmt.Sprintf("PriceTier%d", n)
			if d := o.dec(f); !isZero(d) {
				p.Prices = append(p.Prices, model.Price{Tier: fmt.Sprintf("Tier %d", n), Amount: d})
			}
		}
	}
	*out = append(*out, record(env, model.KindProduct, id, mod, p.Obsolete, raw, p))
}

// mapAvailability maps a /ref/productavailability row: the stock of one
// product in one location (and bin and batch, where the account uses them).
// Availability has no modification time and no modified filter.
func mapAvailability(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	pid := o.reqStr("ID")
	loc := o.reqStr("Location")
	key := pid + "/" + loc
	if bin := o.str("Bin"); bin != "" {
		key += "/bin:" + bin
	}
	if batch := o.str("Batch"); batch != "" {
		key += "/batch:" + batch
	}
	st := &model.StockLevel{ProductVendorID: pid, SKU: o.str("SKU"), Warehouse: loc, WarehouseName: loc,
		OnHand: o.float("OnHand"), Allocated: o.float("Allocated"), Available: o.float("Available"), OnOrder: o.float("OnOrder")}
	*out = append(*out, record(env, model.KindStockLevel, key, env.Fetched, false, raw, st))
}

var notShipped = map[string]bool{"": true, "NOT SHIPPED": true, "NOT AVAILABLE": true, "VOIDED": true}

// mapSale maps a /saleList row into the sales order and, where the row
// carries them, the sale's invoice and its shipping summary. Lines need one
// GET /sale per sale and are not read (see docs/connectors/cin7core.md).
func mapSale(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.reqStr("SaleID")
	mod := o.time("Updated", true)
	status := o.str("Status")
	del := voided(status)
	number := o.str("OrderNumber")
	customerID, customer := o.str("CustomerID"), o.str("Customer")
	currency := firstNonEmpty(o.str("CustomerCurrency"), o.str("BaseCurrency"))
	so := &model.SalesOrder{Number: number, CustomerVendorID: customerID, CustomerCode: customer, Status: status,
		OrderDate: o.optTime("OrderDate"), RequiredDate: o.optTime("ShipBy"), Warehouse: o.str("OrderLocationID"), Currency: currency}
	invoiceAmount, paid := o.dec("InvoiceAmount"), o.dec("PaidAmount")
	if o.err != nil {
		return
	}
	*out = append(*out, record(env, model.KindSalesOrder, id, mod, del, raw, so))
	if inv := o.str("InvoiceNumber"); inv != "" {
		istatus := o.str("CombinedInvoiceStatus")
		in := &model.Invoice{Number: inv, Type: "sale", CustomerVendorID: customerID, CustomerCode: customer, SalesOrderNumber: number,
			Status: istatus, IssueDate: o.optTime("InvoiceDate"), DueDate: o.optTime("InvoiceDueDate"), Currency: currency,
			Total: invoiceAmount}
		if invoiceAmount != "" {
			in.AmountDue = subDecimal(invoiceAmount, firstDecimal(paid, "0"))
		}
		*out = append(*out, record(env, model.KindInvoice, id+"/"+inv, mod, del || voided(istatus), raw, in))
	}
	if ship := strings.ToUpper(o.str("CombinedShippingStatus")); !notShipped[ship] {
		sh := &model.Shipment{Number: number, SalesOrderNumber: number, Status: ship,
			TrackingNumber: o.str("CombinedTrackingNumbers"), Warehouse: o.str("OrderLocationID")}
		*out = append(*out, record(env, model.KindShipment, id+"/shipment", mod, del, raw, sh))
	}
}

func firstDecimal(v ...model.Decimal) model.Decimal {
	for _, d := range v {
		if d != "" {
			return d
		}
	}
	return ""
}

// mapCreditNote maps a /saleCreditNoteList row: one sale's credit note.
func mapCreditNote(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.reqStr("SaleID")
	mod := o.time("Updated", true)
	status := o.str("CreditNoteStatus")
	cn := &model.CreditNote{Number: o.str("CreditNoteNumber"), Type: "sale", CustomerVendorID: o.str("CustomerID"),
		CustomerCode: o.str("Customer"), InvoiceNumber: o.str("InvoiceNumber"), Status: status,
		Currency: firstNonEmpty(o.str("CustomerCurrency"), o.str("BaseCurrency"))}
	*out = append(*out, record(env, model.KindCreditNote, id, mod, voided(status) || voided(o.str("Status")), raw, cn))
}
