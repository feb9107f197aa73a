package cin7omni

import (
	"bytes"
	"encoding/json"
	"fmt"
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

type itemMapper func(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record)

// decodePage decodes a bare JSON array (Cin7 Omni has no envelope) and maps
// each item. A malformed document fails with KindInvalidResponse naming the
// entity, page, item and field.
func decodePage(kind model.Kind, mapItem itemMapper, page int, body []byte, env mapEnv) (records []model.Record, items int, err error) {
	fail := func(format string, args ...any) error {
		return connectors.Errorf(connectors.KindInvalidResponse, "cin7omni %s page %d: "+format, append([]any{kind, page}, args...)...)
	}
	if !json.Valid(body) {
		return nil, 0, fail("the body is not JSON")
	}
	list, ok := splitArray(bytes.TrimSpace(body))
	if !ok {
		return nil, 0, fail("the body is not a JSON array")
	}
	records = make([]model.Record, 0, len(list))
	for i, raw := range list {
		o, err := newObj(raw)
		if err != nil {
			return nil, 0, fail("item %d: not a JSON object", i)
		}
		mapItem(o, raw, env, &records)
		if o.err != nil {
			return nil, 0, fail("item %d: %v", i, o.err)
		}
	}
	return records, len(list), nil
}

func record(env mapEnv, kind model.Kind, id string, mod time.Time, deleted bool, raw json.RawMessage, data model.Payload) model.Record {
	return model.Record{Company: env.Company, Vendor: Type, Kind: kind, VendorID: id, ModifiedAt: mod, Deleted: deleted, Raw: raw, Data: data}
}

// id reads a required integer id as text.
func (o *obj) id(field string) string {
	d := o.dec(field)
	if d == "" || strings.ContainsAny(string(d), ".-") {
		if o.err == nil {
			o.fail(field, "missing or not an id")
		}
		return ""
	}
	return string(d)
}

// optID reads an optional integer id; 0 and absent are "".
func (o *obj) optID(field string) string {
	d := o.dec(field)
	if isZero(d) {
		return ""
	}
	return string(d)
}

// modTime reads ModifiedDate, falling back to the response time when the
// record carries none.
func modTime(o *obj, env mapEnv, required bool) time.Time {
	if t := o.time("ModifiedDate", required); !t.IsZero() {
		return t
	}
	return env.Fetched
}

func active(o *obj) bool { return o.get("IsActive") == nil || o.boolean("IsActive") }

func mapBranch(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.id("Id")
	name := firstNonEmpty(o.str("Company"), o.str("BranchName"), o.str("Name"))
	w := &model.Warehouse{Code: name, Name: name}
	addr := model.Address{Line1: o.str("Address1"), Line2: o.str("Address2"), City: o.str("City"), Region: o.str("State"),
		PostalCode: o.str("PostCode"), Country: o.str("Country")}
	if addr != (model.Address{}) {
		w.Address = &addr
	}
	*out = append(*out, record(env, model.KindWarehouse, id, modTime(o, env, true), !active(o), raw, w))
}

func mapUser(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.id("Id")
	name := strings.TrimSpace(o.str("FirstName") + " " + o.str("LastName"))
	sp := &model.SalesPerson{Code: id, Name: name, Email: o.str("Email")}
	*out = append(*out, record(env, model.KindSalesPerson, id, modTime(o, env, false), !active(o), raw, sp))
}

func mapSupplier(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.id("Id")
	name := firstNonEmpty(o.str("Company"), strings.TrimSpace(o.str("FirstName")+" "+o.str("LastName")))
	s := &model.Supplier{Code: firstNonEmpty(o.str("AccountNumber"), id), Name: name, Email: o.str("Email"),
		Phone: firstNonEmpty(o.str("Phone"), o.str("Mobile")), Currency: o.str("CurrencyCode")}
	*out = append(*out, record(env, model.KindSupplier, id, modTime(o, env, true), !active(o), raw, s))
}

// mapCustomer maps a customer contact and its secondary contacts. The
// customer's price column (and percentage off) is its price tier.
func mapCustomer(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.id("Id")
	mod := modTime(o, env, true)
	deleted := !active(o)
	status := "Active"
	switch {
	case deleted:
		status = "Inactive"
	case o.boolean("OnHold"):
		status = "OnHold"
	}
	c := &model.Customer{Code: firstNonEmpty(o.str("AccountNumber"), id), Name: firstNonEmpty(o.str("Company"), strings.TrimSpace(o.str("FirstName")+" "+o.str("LastName"))),
		Email: o.str("Email"), Phone: firstNonEmpty(o.str("Phone"), o.str("Mobile")), Currency: o.str("CurrencyCode"), TaxNumber: o.str("TaxNumber"),
		PriceTier: o.str("PriceColumn"), SalesPerson: o.optID("SalesPersonId"), Status: status}
	addr := model.Address{Type: "Physical", Line1: o.str("Address1"), Line2: o.str("Address2"), City: o.str("City"), Region: o.str("State"),
		PostalCode: o.str("PostCode"), Country: o.str("Country")}
	if addr != (model.Address{Type: "Physical"}) {
		c.Addresses = append(c.Addresses, addr)
	}
	*out = append(*out, record(env, model.KindCustomer, id, mod, deleted, raw, c))
	for i, craw := range o.arr("SecondaryContacts") {
		co := o.child("SecondaryContacts", i, craw)
		ct := &model.Contact{CustomerVendorID: id, FirstName: co.str("FirstName"), LastName: co.str("LastName"), Email: co.str("Email"),
			Phone: firstNonEmpty(co.str("Phone"), co.str("Mobile")), Role: co.str("JobTitle")}
		*out = append(*out, record(env, model.KindContact, co.id("Id"), mod, deleted, craw, ct))
		o.adopt(fmt.Sprintf("SecondaryContacts[%d]", i), co)
	}
}

// mapProduct maps a product (a style) into one canonical product per
// option (the SKU, which stock and orders reference), with the style as
// its parent, and the option's special price into a price rule. A style
// without options becomes one product of its own ("style/<id>").
func mapProduct(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.id("Id")
	mod := modTime(o, env, true)
	status := o.str("Status")
	inactive := strings.EqualFold(status, "Inactive")
	base := model.Product{Name: o.str("Name"), Description: o.str("Description"), Category: o.str("Category"),
		UnitOfMeasure: o.str("UnitOfMeasure"), IsSold: !strings.EqualFold(status, "Internal"), IsPurchased: true, Tracked: true}
	options := o.arr("ProductOptions")
	if len(options) == 0 {
		p := base
		p.SKU, p.Obsolete = o.str("StyleCode"), inactive
		*out = append(*out, record(env, model.KindProduct, "style/"+id, mod, inactive, raw, &p))
		return
	}
	for i, oraw := range options {
		po := o.child("ProductOptions", i, oraw)
		oid := po.id("Id")
		omod := po.time("ModifiedDate", false)
		if omod.Before(mod) {
			omod = mod
		}
		optStatus := po.str("Status")
		del := inactive || strings.EqualFold(optStatus, "Disabled")
		p := base
		p.SKU = firstNonEmpty(po.str("ProductOptionCode"), po.str("Code"))
		p.Barcode = po.str("ProductOptionBarcode")
		p.ParentVendorID = id
		p.Obsolete = del
		p.SellPrice = po.dec("RetailPrice")
		for _, t := range []struct{ field, tier string }{{"RetailPrice", "Retail"}, {"WholesalePrice", "Wholesale"}, {"VIPPrice", "VIP"}} {
			if d := po.dec(t.field); !isZero(d) {
				p.Prices = append(p.Prices, model.Price{Tier: t.tier, Amount: d})
			}
		}
		if cols := po.get("PriceColumns"); cols != nil {
			keys, vals, ok := orderedObject(cols)
			if !ok {
				po.fail("PriceColumns", "not an object")
			}
			for k, name := range keys {
				d, err := decimal(json.Number(bytes.Trim(bytes.TrimSpace(vals[k]), `"`)))
				if err != nil {
					po.fail("PriceColumns."+name, "not a number")
					break
				}
				if !isZero(d) {
					p.Prices = append(p.Prices, model.Price{Tier: name, Amount: d})
				}
			}
		}
		*out = append(*out, record(env, model.KindProduct, oid, omod, del, oraw, &p))
		if sp := po.dec("SpecialPrice"); !isZero(sp) {
			pr := &model.PriceRule{ProductVendorID: oid, SKU: p.SKU, PriceList: "Special", Price: sp, ValidFrom: po.optTime("SpecialsStartDate")}
			if days := po.float("SpecialDays"); pr.ValidFrom != nil && days > 0 {
				to := pr.ValidFrom.Add(time.Duration(days) * 24 * time.Hour)
				pr.ValidTo = &to
			}
			*out = append(*out, record(env, model.KindPriceRule, oid+"/special", omod, del, oraw, pr))
		}
		o.adopt(fmt.Sprintf("ProductOptions[%d]", i), po)
	}
}

// mapStock maps a /v1/Stock row: an option's stock in one branch.
// ModifiedDate is the option's last transaction in the branch.
func mapStock(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	oid := o.id("ProductOptionId")
	bid := o.id("BranchId")
	branch := o.str("BranchName")
	st := &model.StockLevel{ProductVendorID: oid, SKU: o.str("Code"), Warehouse: firstNonEmpty(branch, bid), WarehouseName: branch,
		OnHand: o.float("StockOnHand"), Allocated: o.float("OpenSales"), Available: o.float("Available"), OnOrder: o.float("Incoming")}
	*out = append(*out, record(env, model.KindStockLevel, oid+"/"+bid, modTime(o, env, false), false, raw, st))
}

func mapLines(o *obj) []model.Line {
	var out []model.Line
	for i, lraw := range o.arr("LineItems") {
		l := o.child("LineItems", i, lraw)
		n := i + 1
		if l.get("SortOrder") != nil {
			n = int(l.float("SortOrder"))
		}
		out = append(out, model.Line{LineNo: n, ProductVendorID: l.optID("ProductOptionId"), SKU: l.str("Code"), Description: l.str("Name"),
			Quantity: l.float("Qty"), UnitPrice: l.dec("UnitPrice"), Discount: l.dec("Discount")})
		o.adopt(fmt.Sprintf("LineItems[%d]", i), l)
	}
	return out
}

// mapSalesOrder maps a sales order and, where it carries them, its invoice
// (Omni keeps InvoiceNumber and InvoiceDate on the order) and its dispatch.
func mapSalesOrder(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.id("Id")
	mod := modTime(o, env, true)
	void := o.boolean("IsVoid")
	number := firstNonEmpty(o.str("Reference"), id)
	customer, company := o.optID("MemberId"), o.str("Company")
	currency := o.str("CurrencyCode")
	status := o.str("Status")
	lines := mapLines(o)
	so := &model.SalesOrder{Number: number, CustomerVendorID: customer, CustomerCode: company, Status: status,
		OrderDate: o.optTime("OrderDate"), RequiredDate: o.optTime("EstimatedDeliveryDate"), Warehouse: o.optID("BranchId"), Currency: currency,
		SubTotal: o.dec("ProductTotal"), TaxTotal: o.dec("TaxTotal"), Total: o.dec("Total"), Lines: lines}
	*out = append(*out, record(env, model.KindSalesOrder, id, mod, void, raw, so))
	if inv := o.optID("InvoiceNumber"); inv != "" {
		in := &model.Invoice{Number: inv, Type: "sale", CustomerVendorID: customer, CustomerCode: company, SalesOrderNumber: number, Status: status,
			IssueDate: o.optTime("InvoiceDate"), Currency: currency, SubTotal: so.SubTotal, TaxTotal: so.TaxTotal, Total: so.Total, Lines: lines}
		*out = append(*out, record(env, model.KindInvoice, id+"/invoice", mod, void, raw, in))
	}
	if shipped := o.optTime("DispatchedDate"); shipped != nil {
		sh := &model.Shipment{Number: number, SalesOrderNumber: number, Status: o.str("Stage"), ShippedDate: shipped,
			Carrier: o.str("LogisticsCarrier"), TrackingNumber: o.str("TrackingCode"), Warehouse: so.Warehouse}
		*out = append(*out, record(env, model.KindShipment, id+"/dispatch", mod, void, raw, sh))
	}
}

func mapCreditNote(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := o.id("Id")
	cn := &model.CreditNote{Number: firstNonEmpty(o.str("Reference"), o.str("CreditNoteNumber"), id), Type: "sale", CustomerVendorID: o.optID("MemberId"),
		CustomerCode: o.str("Company"), InvoiceNumber: o.optID("InvoiceNumber"), Status: o.str("Status"), IssueDate: o.optTime("CreditNoteDate"),
		Currency: o.str("CurrencyCode"), SubTotal: o.dec("ProductTotal"), TaxTotal: o.dec("TaxTotal"), Total: o.dec("Total"), Lines: mapLines(o)}
	*out = append(*out, record(env, model.KindCreditNote, id, modTime(o, env, true), o.boolean("IsVoid"), raw, cn))
}
