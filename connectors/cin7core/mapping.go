package cin7core

import (
	"bytes"
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
	// Docs is the vendor id of every list item, in page order: the units
	// Total counts (a customer yields its contacts and prices too, but
	// counts once).
	Docs []string
	// SetAside holds the items the mapping cannot know.
	SetAside []model.SetAside
}

// item is what mapping one list item learnt besides its records.
type item struct {
	// ID is the item's vendor id (the unit the list's Total counts).
	ID string
	// Aside, when not empty, says why the item cannot be mapped: it yields
	// no record and is set aside with Modified and its raw document. It is
	// a fixed sentence, never vendor text.
	Aside    string
	Modified time.Time
}

// itemMapper maps one vendor list item into records.
type itemMapper func(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) item

// decodePage decodes a page of stream s: the envelope, then each item. A
// document that does not parse or breaks the contract fails with
// KindInvalidResponse naming the entity, page, record and field.
func decodePage(s *stream, page int, body []byte, env mapEnv) (*pageDoc, error) {
	items, total, fail, err := decodeEnvelope(s, page, body)
	if err != nil {
		return nil, err
	}
	doc := &pageDoc{Items: len(items), Total: total, Docs: make([]string, 0, len(items))}
	doc.Records = make([]model.Record, 0, len(items))
	for i, raw := range items {
		ro, err := newObj(raw)
		if err != nil {
			return nil, fail("%s[%d]: not a JSON object", s.listKey, i)
		}
		it := s.mapItem(ro, raw, env, &doc.Records)
		if ro.Err() != nil {
			return nil, fail("%s[%d]: %v", s.listKey, i, ro.Err())
		}
		doc.Docs = append(doc.Docs, it.ID)
		if it.Aside != "" {
			doc.SetAside = append(doc.SetAside, model.SetAside{Company: env.Company, Vendor: Type, Kind: s.kind, VendorID: it.ID,
				ModifiedAt: it.Modified, Reason: it.Aside, Raw: raw})
		}
	}
	return doc, nil
}

// decodeEnvelope splits a list page of stream s into its items and the
// envelope's Total (-1 when absent). fail builds the page's contract errors.
func decodeEnvelope(s *stream, page int, body []byte) ([]json.RawMessage, int, func(string, ...any) error, error) {
	fail := func(format string, args ...any) error {
		return connectors.Errorf(connectors.KindInvalidResponse, "cin7core %s page %d: "+format, append([]any{s.kind, page}, args...)...)
	}
	if !json.Valid(body) {
		return nil, -1, fail, fail("the body is not a JSON object")
	}
	o, err := newObj(body)
	if err != nil {
		return nil, -1, fail, fail("the body is not a JSON object")
	}
	listRaw := o.Get(s.listKey)
	if listRaw == nil {
		return nil, -1, fail, fail("field %s: missing", s.listKey)
	}
	items, ok := vendorjson.SplitArray(listRaw)
	if !ok {
		return nil, -1, fail, fail("field %s: not an array", s.listKey)
	}
	total := -1
	if o.Get("Total") != nil {
		t := o.Dec("Total")
		n, err := strconv.Atoi(string(t))
		if o.Err() != nil || err != nil || n < 0 {
			return nil, -1, fail, fail("field Total: not a count")
		}
		total = n
	}
	return items, total, fail, nil
}

// decodeIDs reads a list page of stream s as an id listing: each item's id
// and modified time, read from the fields and with the parser the item's
// mapper uses, so that they equal the VendorID and ModifiedAt a full read
// gives the item's record. It returns the documents, the number of items
// and the envelope's Total (-1 when absent).
func decodeIDs(s *stream, page int, body []byte) ([]connectors.DocVersion, int, int, error) {
	items, total, fail, err := decodeEnvelope(s, page, body)
	if err != nil {
		return nil, 0, -1, err
	}
	docs := make([]connectors.DocVersion, 0, len(items))
	for i, raw := range items {
		o, err := newObj(raw)
		if err != nil {
			return nil, 0, -1, fail("%s[%d]: not a JSON object", s.listKey, i)
		}
		d := connectors.DocVersion{ID: o.ReqStr(s.idField), ModifiedAt: o.Time(s.modField, true)}
		if o.Err() != nil {
			return nil, 0, -1, fail("%s[%d]: %v", s.listKey, i, o.Err())
		}
		docs = append(docs, d)
	}
	return docs, len(items), total, nil
}

// record builds a record read on its own; a deleted one carries the
// vendor's own marker (model.DeletedByVendor).
func record(env mapEnv, kind model.Kind, id string, mod time.Time, deleted bool, raw json.RawMessage, data model.Payload) model.Record {
	r := model.Record{Company: env.Company, Vendor: Type, Kind: kind, VendorID: id, ModifiedAt: mod, Deleted: deleted,
		Raw: raw, Data: data}
	if deleted {
		r.DeletedVia = model.DeletedByVendor
	}
	return r
}

// child builds a record read inside the document of parent (kind
// parentKind). It is deleted with its parent (model.DeletedWithParent) or
// by a marker of its own (own).
func child(env mapEnv, kind model.Kind, id string, mod time.Time, parent string, parentKind model.Kind, parentDeleted, own bool,
	raw json.RawMessage, data model.Payload) model.Record {
	r := record(env, kind, id, mod, own || parentDeleted, raw, data)
	r.Parent, r.ParentKind = parent, parentKind
	if parentDeleted && !own {
		r.DeletedVia = model.DeletedWithParent
	}
	return r
}

// childIDs names the records of kind among recs (an empty, non-nil slice
// when there is none: the parent has no child of that kind now).
func childIDs(kind model.Kind, recs []model.Record) model.ChildSet {
	set := model.ChildSet{Kind: kind, IDs: []string{}}
	for _, r := range recs {
		if r.Kind == kind {
			set.IDs = append(set.IDs, r.VendorID)
		}
	}
	return set
}

func deprecated(status string) bool {
	return strings.EqualFold(status, "Deprecated") || strings.EqualFold(status, "Inactive")
}

func voided(status string) bool { return strings.EqualFold(status, "VOIDED") }

// mapTaxRule maps a /ref/tax TaxRuleList item. Tax rules have no
// modification time: they are stamped with the response time.
func mapTaxRule(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) item {
	id := o.ReqStr("ID")
	name := o.Str("Name")
	rate := o.Float("TaxPercent")
	active := o.Get("IsActive") == nil || o.Bool("IsActive")
	*out = append(*out, record(env, model.KindTaxRate, id, env.Fetched, !active, raw, &model.TaxRate{Code: name, Name: name, Rate: rate}))
	return item{ID: id}
}

// mapLocation maps a /ref/location LocationList item.
func mapLocation(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) item {
	id := o.ReqStr("ID")
	name := o.Str("Name")
	w := &model.Warehouse{Code: name, Name: name}
	addr := model.Address{Line1: o.Str("AddressLine1"), Line2: o.Str("AddressLine2"), City: o.Str("AddressCitySuburb"),
		Region: o.Str("AddressStateProvince"), PostalCode: o.Str("AddressZipPostCode"), Country: o.Str("AddressCountry")}
	if addr != (model.Address{}) {
		w.Address = &addr
	}
	del := o.Bool("IsDeprecated") || o.Bool("Deprecated")
	*out = append(*out, record(env, model.KindWarehouse, id, env.Fetched, del, raw, w))
	return item{ID: id}
}

// defaultContact returns the default (or first) contact of a customer or
// supplier.
func defaultContact(o *obj, contacts []json.RawMessage) *obj {
	var first *obj
	for i, raw := range contacts {
		c := o.Child("Contacts", i, raw)
		if first == nil {
			first = c
		}
		if c.Bool("Default") {
			return c
		}
	}
	return first
}

// mapSupplier maps a /supplier SupplierList item. Cin7 Core suppliers have
// no code: the name identifies them in the UI and in documents.
func mapSupplier(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) item {
	id := o.ReqStr("ID")
	mod := o.Time("LastModifiedOn", true)
	s := &model.Supplier{Code: o.Str("Name"), Name: o.Str("Name"), Currency: o.Str("Currency")}
	if c := defaultContact(o, o.Arr("Contacts")); c != nil {
		s.Email, s.Phone = c.Str("Email"), firstNonEmpty(c.Str("Phone"), c.Str("MobilePhone"))
		o.Adopt("Contacts", c)
	}
	*out = append(*out, record(env, model.KindSupplier, id, mod, deprecated(o.Str("Status")), raw, s))
	return item{ID: id}
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
// flag: Cin7 Core keeps neither apart from the customer. Both are children
// of the customer (Parent), and the customer names them all (Children):
// its Contacts array is every contact it has, and ProductPrices, where the
// document carries the key, every custom price (neither is paged).
func mapCustomer(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) item {
	id := o.ReqStr("ID")
	mod := o.Time("LastModifiedOn", true)
	status := o.Str("Status")
	del := deprecated(status)
	name := o.Str("Name")
	c := &model.Customer{Code: name, Name: name, Currency: o.Str("Currency"), TaxNumber: o.Str("TaxNumber"),
		PriceTier: o.Str("PriceTier"), SalesPerson: o.Str("SalesRepresentative"), Status: status}
	for i, araw := range o.Arr("Addresses") {
		a := o.Child("Addresses", i, araw)
		c.Addresses = append(c.Addresses, model.Address{Type: a.Str("Type"), Line1: a.Str("Line1"), Line2: a.Str("Line2"),
			City: a.Str("City"), Region: a.Str("State"), PostalCode: a.Str("Postcode"), Country: a.Str("Country")})
		o.Adopt(fmt.Sprintf("Addresses[%d]", i), a)
	}
	contacts := o.Arr("Contacts")
	if dc := defaultContact(o, contacts); dc != nil {
		c.Email, c.Phone = dc.Str("Email"), firstNonEmpty(dc.Str("Phone"), dc.Str("MobilePhone"))
	}
	var extra []model.Record
	for i, craw := range contacts {
		co := o.Child("Contacts", i, craw)
		cid := co.ReqStr("ID")
		first, last := splitName(co.Str("Name"))
		extra = append(extra, child(env, model.KindContact, cid, mod, id, model.KindCustomer, del, false, craw, &model.Contact{CustomerVendorID: id,
			FirstName: first, LastName: last, Email: co.Str("Email"), Phone: firstNonEmpty(co.Str("Phone"), co.Str("MobilePhone")), Role: co.Str("JobTitle")}))
		o.Adopt(fmt.Sprintf("Contacts[%d]", i), co)
	}
	for i, praw := range o.Arr("ProductPrices") {
		po := o.Child("ProductPrices", i, praw)
		pid := po.ReqStr("ProductID")
		price := po.Dec("Price")
		extra = append(extra, child(env, model.KindPriceRule, id+"/"+pid, mod, id, model.KindCustomer, del, false, praw, &model.PriceRule{ProductVendorID: pid,
			SKU: po.Str("ProductSKU"), CustomerVendorID: id, CustomerCode: name, Price: price, Currency: c.Currency}))
		o.Adopt(fmt.Sprintf("ProductPrices[%d]", i), po)
	}
	cr := record(env, model.KindCustomer, id, mod, del, raw, c)
	cr.Children = []model.ChildSet{childIDs(model.KindContact, extra)}
	if o.Get("ProductPrices") != nil {
		// Without the key (IncludeProductPrices not set) the document says
		// nothing of the customer's prices.
		cr.Children = append(cr.Children, childIDs(model.KindPriceRule, extra))
	}
	*out = append(*out, cr)
	*out = append(*out, extra...)
	return item{ID: id}
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
func mapProduct(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) item {
	id := o.ReqStr("ID")
	mod := o.Time("LastModifiedOn", true)
	status := o.Str("Status")
	typ := o.Str("Type")
	p := &model.Product{SKU: o.ReqStr("SKU"), Name: o.Str("Name"), Description: firstNonEmpty(o.Str("Description"), o.Str("ShortDescription")),
		Category: o.Str("Category"), Barcode: o.Str("Barcode"), UnitOfMeasure: o.Str("UOM"),
		SellPrice: o.Dec("PriceTier1"), CostPrice: o.Dec("AverageCost"),
		IsSold: o.Get("Sellable") == nil || o.Bool("Sellable"), IsPurchased: !strings.EqualFold(typ, "Service"),
		Tracked: strings.EqualFold(typ, "Stock"), Obsolete: deprecated(status)}
	if tiers := o.Get("PriceTiers"); tiers != nil {
		keys, vals, ok := vendorjson.OrderedObject(tiers)
		if !ok {
			o.Fail("PriceTiers", "not an object")
		}
		for i, k := range keys {
			amount, err := vendorjson.Decimal(json.Number(bytes.TrimSpace(vals[i])))
			if err != nil {
				o.Fail("PriceTiers."+k, "not a number")
				break
			}
			if !isZero(amount) {
				p.Prices = append(p.Prices, model.Price{Tier: k, Amount: amount})
			}
		}
	} else {
		for n := 1; n <= 10; n++ {
			f := fmt.Sprintf("PriceTier%d", n)
			if d := o.Dec(f); !isZero(d) {
				p.Prices = append(p.Prices, model.Price{Tier: fmt.Sprintf("Tier %d", n), Amount: d})
			}
		}
	}
	*out = append(*out, record(env, model.KindProduct, id, mod, p.Obsolete, raw, p))
	return item{ID: id}
}

// mapAvailability maps a /ref/productavailability row: the stock of one
// product in one location (and bin and batch, where the account uses them).
// Availability has no modification time and no modified filter.
func mapAvailability(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) item {
	pid := o.ReqStr("ID")
	loc := o.ReqStr("Location")
	key := pid + "/" + loc
	if bin := o.Str("Bin"); bin != "" {
		key += "/bin:" + bin
	}
	if batch := o.Str("Batch"); batch != "" {
		key += "/batch:" + batch
	}
	st := &model.StockLevel{ProductVendorID: pid, SKU: o.Str("SKU"), Warehouse: loc, WarehouseName: loc,
		OnHand: o.Float("OnHand"), Allocated: o.Float("Allocated"), Available: o.Float("Available"), OnOrder: o.Float("OnOrder")}
	*out = append(*out, record(env, model.KindStockLevel, key, env.Fetched, false, raw, st))
	return item{ID: key}
}

var notShipped = map[string]bool{"": true, "NOT SHIPPED": true, "NOT AVAILABLE": true, "VOIDED": true}

// mapSale maps a /saleList row into the sales order and, where the row
// carries them, the sale's invoice and its shipping summary. Lines need one
// GET /sale per sale and are not read (see docs/connectors/cin7core.md).
//
// The invoice and the shipment are children of the sale (Parent). The
// order names its shipment summary always (the row's combined shipping
// status is the whole sale's) and its invoice unless the sale is an
// Advanced Sale: a simple or service sale has at most one invoice, which
// the row names, while an Advanced Sale may hold several and the row names
// one at most, so it says nothing of the others.
func mapSale(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) item {
	id := o.ReqStr("SaleID")
	mod := o.Time("Updated", true)
	status := o.Str("Status")
	del := voided(status)
	number := o.Str("OrderNumber")
	customerID, customer := o.Str("CustomerID"), o.Str("Customer")
	currency := firstNonEmpty(o.Str("CustomerCurrency"), o.Str("BaseCurrency"))
	so := &model.SalesOrder{Number: number, CustomerVendorID: customerID, CustomerCode: customer, Status: status,
		OrderDate: o.OptTime("OrderDate"), RequiredDate: o.OptTime("ShipBy"), Warehouse: o.Str("OrderLocationID"), Currency: currency}
	invoiceAmount, paid := o.Dec("InvoiceAmount"), o.Dec("PaidAmount")
	advanced := strings.EqualFold(strings.TrimSpace(o.Str("Type")), advancedSale)
	if o.Err() != nil {
		return item{ID: id}
	}
	var children []model.Record
	if inv := o.Str("InvoiceNumber"); inv != "" {
		istatus := o.Str("CombinedInvoiceStatus")
		in := &model.Invoice{Number: inv, Type: "sale", CustomerVendorID: customerID, CustomerCode: customer, SalesOrderNumber: number,
			Status: istatus, IssueDate: o.OptTime("InvoiceDate"), DueDate: o.OptTime("InvoiceDueDate"), Currency: currency,
			Total: invoiceAmount}
		if invoiceAmount != "" {
			in.AmountDue = subDecimal(invoiceAmount, firstDecimal(paid, "0"))
		}
		children = append(children, child(env, model.KindInvoice, id+"/"+inv, mod, id, model.KindSalesOrder, del, voided(istatus), raw, in))
	}
	if ship := strings.ToUpper(o.Str("CombinedShippingStatus")); !notShipped[ship] {
		sh := &model.Shipment{Number: number, SalesOrderNumber: number, Status: ship,
			TrackingNumber: o.Str("CombinedTrackingNumbers"), Warehouse: o.Str("OrderLocationID")}
		children = append(children, child(env, model.KindShipment, id+"/shipment", mod, id, model.KindSalesOrder, del, false, raw, sh))
	}
	sr := record(env, model.KindSalesOrder, id, mod, del, raw, so)
	sr.Children = []model.ChildSet{childIDs(model.KindShipment, children)}
	if !advanced {
		sr.Children = append([]model.ChildSet{childIDs(model.KindInvoice, children)}, sr.Children...)
	}
	*out = append(*out, sr)
	*out = append(*out, children...)
	return item{ID: id}
}

func firstDecimal(v ...model.Decimal) model.Decimal {
	for _, d := range v {
		if d != "" {
			return d
		}
	}
	return ""
}

// advancedSale is the sale type whose sales hold several invoices,
// fulfilments and credit notes (the spec's "Sale Types").
const advancedSale = "Advanced Sale"

// reasonAdvancedCredit is why a credit note row of an advanced sale is set
// aside.
const reasonAdvancedCredit = "credit note of an Advanced Sale: such a sale may hold several credit notes, " +
	"the list row names one, and the connector keys a sale's credit note by the sale"

// mapCreditNote maps a /saleCreditNoteList row: one sale's credit note. A
// simple or service sale holds at most one, keyed by the sale; a row of an
// Advanced Sale, which may hold several, is set aside rather than stored
// under a key that would merge them.
func mapCreditNote(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) item {
	id := o.ReqStr("SaleID")
	mod := o.Time("Updated", true)
	if strings.EqualFold(strings.TrimSpace(o.Str("Type")), advancedSale) {
		return item{ID: id, Aside: reasonAdvancedCredit, Modified: mod}
	}
	status := o.Str("CreditNoteStatus")
	cn := &model.CreditNote{Number: o.Str("CreditNoteNumber"), Type: "sale", CustomerVendorID: o.Str("CustomerID"),
		CustomerCode: o.Str("Customer"), InvoiceNumber: o.Str("InvoiceNumber"), Status: status,
		Currency: firstNonEmpty(o.Str("CustomerCurrency"), o.Str("BaseCurrency"))}
	*out = append(*out, record(env, model.KindCreditNote, id, mod, voided(status) || voided(o.Str("Status")), raw, cn))
	return item{ID: id}
}
