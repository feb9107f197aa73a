package cin7omni

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

// key is a row's place in the order the connector reads a list in: the
// Id (b zero), or for stock the option's Id and the branch's.
type key struct{ a, b int64 }

// keyOf reads a row's key; ok is false for a row without one.
type keyOf func(o *obj) (key, bool)

func idKey(o *obj) (key, bool) {
	n, ok := intField(o, "Id")
	return key{a: n}, ok
}

func stockKey(o *obj) (key, bool) {
	a, ok1 := intField(o, "ProductOptionId")
	b, ok2 := intField(o, "BranchId")
	return key{a: a, b: b}, ok1 && ok2
}

// intField reads a required integer id, failing o with the field's name.
func intField(o *obj, field string) (int64, bool) {
	v := reqID(o, field)
	if o.Err() != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		o.Fail(field, "not an id")
		return 0, false
	}
	return n, true
}

// decoded is one decoded page.
type decoded struct {
	records []model.Record
	aside   []model.SetAside
	// items is the number of rows the page held, skipped ones included.
	items int
	// keys are the rows' keys in the order served, and docs their vendor
	// ids, skipped rows left out.
	keys []key
	docs []string
}

type itemMapper func(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record)

// decodePage decodes a bare JSON array (Cin7 Omni has no envelope) and maps
// each item, leaving out the rows skip names (rows a keyset pass has
// already read). A malformed document fails with KindInvalidResponse
// naming the entity, page, item and field.
func decodePage(kind model.Kind, mapItem itemMapper, page int, body []byte, env mapEnv, keyOf keyOf, skip func(key) bool) (*decoded, error) {
	fail := func(format string, args ...any) error {
		return connectors.Errorf(connectors.KindInvalidResponse, "cin7omni %s page %d: "+format, append([]any{kind, page}, args...)...)
	}
	if !json.Valid(body) {
		return nil, fail("the body is not JSON")
	}
	list, ok := vendorjson.SplitArray(bytes.TrimSpace(body))
	if !ok {
		return nil, fail("the body is not a JSON array")
	}
	d := &decoded{records: make([]model.Record, 0, len(list)), items: len(list)}
	env.aside = &d.aside
	for i, raw := range list {
		o, err := newObj(raw)
		if err != nil {
			return nil, fail("item %d: not a JSON object", i)
		}
		if keyOf == nil {
			keyOf = idKey
		}
		k, ok := keyOf(o)
		if !ok {
			return nil, fail("item %d: %v", i, firstErr(o.Err(), "field Id: missing or not an id"))
		}
		if skip != nil && skip(k) {
			continue
		}
		mapItem(o, raw, env, &d.records)
		if o.Err() != nil {
			return nil, fail("item %d: %v", i, o.Err())
		}
		d.keys = append(d.keys, k)
		if k.b != 0 {
			d.docs = append(d.docs, strconv.FormatInt(k.a, 10)+"/"+strconv.FormatInt(k.b, 10))
		} else {
			d.docs = append(d.docs, strconv.FormatInt(k.a, 10))
		}
	}
	return d, nil
}

func firstErr(err error, otherwise string) string {
	if err != nil {
		return err.Error()
	}
	return otherwise
}

func record(env mapEnv, kind model.Kind, id string, mod time.Time, deleted bool, raw json.RawMessage, data model.Payload) model.Record {
	return model.Record{Company: env.Company, Vendor: Type, Kind: kind, VendorID: id, ModifiedAt: mod, Deleted: deleted, Raw: raw, Data: data}
}

// reqID reads a required integer id as text.
func reqID(o *obj, field string) string {
	d := o.Dec(field)
	if d == "" || strings.ContainsAny(string(d), ".-") {
		if o.Err() == nil {
			o.Fail(field, "missing or not an id")
		}
		return ""
	}
	return string(d)
}

// optID reads an optional integer id; 0 and absent are "".
func optID(o *obj, field string) string {
	d := o.Dec(field)
	if isZero(d) {
		return ""
	}
	return string(d)
}

// modTime reads ModifiedDate, falling back to the response time when the
// record carries none.
func modTime(o *obj, env mapEnv, required bool) time.Time {
	if t := o.Time("ModifiedDate", required); !t.IsZero() {
		return t
	}
	return env.Fetched
}

func active(o *obj) bool { return o.Get("IsActive") == nil || o.Bool("IsActive") }

func mapBranch(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := reqID(o, "Id")
	name := firstNonEmpty(o.Str("Company"), o.Str("BranchName"), o.Str("Name"))
	w := &model.Warehouse{Code: name, Name: name}
	addr := model.Address{Line1: o.Str("Address1"), Line2: o.Str("Address2"), City: o.Str("City"), Region: o.Str("State"),
		PostalCode: o.Str("PostCode"), Country: o.Str("Country")}
	if addr != (model.Address{}) {
		w.Address = &addr
	}
	*out = append(*out, record(env, model.KindWarehouse, id, modTime(o, env, true), !active(o), raw, w))
}

func mapUser(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := reqID(o, "Id")
	name := strings.TrimSpace(o.Str("FirstName") + " " + o.Str("LastName"))
	sp := &model.SalesPerson{Code: id, Name: name, Email: o.Str("Email")}
	*out = append(*out, record(env, model.KindSalesPerson, id, modTime(o, env, false), !active(o), raw, sp))
}

func mapSupplier(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := reqID(o, "Id")
	name := firstNonEmpty(o.Str("Company"), strings.TrimSpace(o.Str("FirstName")+" "+o.Str("LastName")))
	s := &model.Supplier{Code: firstNonEmpty(o.Str("AccountNumber"), id), Name: name, Email: o.Str("Email"),
		Phone: firstNonEmpty(o.Str("Phone"), o.Str("Mobile")), Currency: o.Str("CurrencyCode")}
	*out = append(*out, record(env, model.KindSupplier, id, modTime(o, env, true), !active(o), raw, s))
}

// mapCustomer maps a customer contact and its secondary contacts. The
// customer's price column (and percentage off) is its price tier.
func mapCustomer(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := reqID(o, "Id")
	mod := modTime(o, env, true)
	deleted := !active(o)
	status := "Active"
	switch {
	case deleted:
		status = "Inactive"
	case o.Bool("OnHold"):
		status = "OnHold"
	}
	c := &model.Customer{Code: firstNonEmpty(o.Str("AccountNumber"), id), Name: firstNonEmpty(o.Str("Company"), strings.TrimSpace(o.Str("FirstName")+" "+o.Str("LastName"))),
		Email: o.Str("Email"), Phone: firstNonEmpty(o.Str("Phone"), o.Str("Mobile")), Currency: o.Str("CurrencyCode"), TaxNumber: o.Str("TaxNumber"),
		PriceTier: o.Str("PriceColumn"), SalesPerson: optID(o, "SalesPersonId"), Status: status}
	addr := model.Address{Type: "Physical", Line1: o.Str("Address1"), Line2: o.Str("Address2"), City: o.Str("City"), Region: o.Str("State"),
		PostalCode: o.Str("PostCode"), Country: o.Str("Country")}
	if addr != (model.Address{Type: "Physical"}) {
		c.Addresses = append(c.Addresses, addr)
	}
	// The contact document embeds every secondary contact (the Contact
	// resource model's SecondaryContacts array; no separate endpoint or
	// paging), so the customer names its contacts completely.
	at := len(*out)
	*out = append(*out, record(env, model.KindCustomer, id, mod, deleted, raw, c))
	contacts := model.ChildSet{Kind: model.KindContact, IDs: []string{}}
	for i, craw := range o.Arr("SecondaryContacts") {
		co := o.Child("SecondaryContacts", i, craw)
		ct := &model.Contact{CustomerVendorID: id, FirstName: co.Str("FirstName"), LastName: co.Str("LastName"), Email: co.Str("Email"),
			Phone: firstNonEmpty(co.Str("Phone"), co.Str("Mobile")), Role: co.Str("JobTitle")}
		cid := reqID(co, "Id")
		*out = append(*out, child(record(env, model.KindContact, cid, mod, deleted, craw, ct), id, model.KindCustomer))
		contacts.IDs = append(contacts.IDs, cid)
		o.Adopt(fmt.Sprintf("SecondaryContacts[%d]", i), co)
	}
	(*out)[at].Children = []model.ChildSet{contacts}
}

// child marks a record as read inside the parent document of kind kind
// and vendor id parent.
func child(r model.Record, parent string, kind model.Kind) model.Record {
	r.Parent, r.ParentKind = parent, kind
	return r
}

// mapProduct maps a product (a style) into one canonical product per
// option (the SKU, which stock and orders reference), with the style as
// its parent, and the option's special price into a price rule. A style
// without options becomes one product of its own ("style/<id>").
func mapProduct(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := reqID(o, "Id")
	mod := modTime(o, env, true)
	status := o.Str("Status")
	if !knownProductStatus(status) {
		if o.Err() == nil {
			reason := "product status " + short(status) + " is not one of Inactive, Public, ShowInB2B and Internal, so the connector cannot tell whether it is sold or retired"
			env.setAside(model.KindProduct, "style/"+id, mod, raw, reason)
			// Its options are documents Omni still serves: set aside too,
			// so that no id listing or full read takes them for gone.
			for i, oraw := range o.Arr("ProductOptions") {
				po := o.Child("ProductOptions", i, oraw)
				if oid := reqID(po, "Id"); po.Err() == nil {
					env.setAside(model.KindProduct, oid, mod, oraw, "its product is set aside: "+reason)
				}
			}
		}
		return
	}
	inactive := strings.EqualFold(status, "Inactive")
	base := model.Product{Name: o.Str("Name"), Description: o.Str("Description"), Category: o.Str("Category"),
		UnitOfMeasure: o.Str("UnitOfMeasure"), IsSold: !strings.EqualFold(status, "Internal"), IsPurchased: true, Tracked: true}
	options := o.Arr("ProductOptions")
	if len(options) == 0 {
		p := base
		p.SKU, p.Obsolete = o.Str("StyleCode"), inactive
		*out = append(*out, record(env, model.KindProduct, "style/"+id, mod, inactive, raw, &p))
		return
	}
	for i, oraw := range options {
		po := o.Child("ProductOptions", i, oraw)
		oid := reqID(po, "Id")
		omod := po.Time("ModifiedDate", false)
		if omod.Before(mod) {
			omod = mod
		}
		optStatus := po.Str("Status")
		if !knownOptionStatus(optStatus) {
			if po.Err() == nil {
				env.setAside(model.KindProduct, oid, omod, oraw, "product option status "+short(optStatus)+" is not one of Primary, Active and Disabled")
			}
			o.Adopt(fmt.Sprintf("ProductOptions[%d]", i), po)
			continue
		}
		del := inactive || strings.EqualFold(optStatus, "Disabled")
		p := base
		p.SKU = firstNonEmpty(po.Str("ProductOptionCode"), po.Str("Code"))
		p.Barcode = po.Str("ProductOptionBarcode")
		p.ParentVendorID = id
		p.Obsolete = del
		p.SellPrice = po.Dec("RetailPrice")
		for _, t := range []struct{ field, tier string }{{"RetailPrice", "Retail"}, {"WholesalePrice", "Wholesale"}, {"VIPPrice", "VIP"}} {
			if d := po.Dec(t.field); !isZero(d) {
				p.Prices = append(p.Prices, model.Price{Tier: t.tier, Amount: d})
			}
		}
		if cols := po.Get("PriceColumns"); cols != nil {
			keys, vals, ok := vendorjson.OrderedObject(cols)
			if !ok {
				po.Fail("PriceColumns", "not an object")
			}
			for k, name := range keys {
				d, err := vendorjson.Decimal(json.Number(bytes.Trim(bytes.TrimSpace(vals[k]), `"`)))
				if err != nil {
					po.Fail("PriceColumns."+name, "not a number")
					break
				}
				if !isZero(d) {
					p.Prices = append(p.Prices, model.Price{Tier: name, Amount: d})
				}
			}
		}
		// An option holds at most one special price (SpecialPrice with its
		// start and days): the option names its price rules completely.
		rec := record(env, model.KindProduct, oid, omod, del, oraw, &p)
		rules := model.ChildSet{Kind: model.KindPriceRule, IDs: []string{}}
		var rule *model.Record
		if sp := po.Dec("SpecialPrice"); !isZero(sp) {
			pr := &model.PriceRule{ProductVendorID: oid, SKU: p.SKU, PriceList: "Special", Price: sp, ValidFrom: po.OptTime("SpecialsStartDate")}
			if days := po.Float("SpecialDays"); pr.ValidFrom != nil && days > 0 {
				to := pr.ValidFrom.Add(time.Duration(days) * 24 * time.Hour)
				pr.ValidTo = &to
			}
			r := child(record(env, model.KindPriceRule, oid+"/special", omod, del, oraw, pr), oid, model.KindProduct)
			rule = &r
			rules.IDs = append(rules.IDs, r.VendorID)
		}
		rec.Children = []model.ChildSet{rules}
		*out = append(*out, rec)
		if rule != nil {
			*out = append(*out, *rule)
		}
		o.Adopt(fmt.Sprintf("ProductOptions[%d]", i), po)
	}
}

// knownProductStatus: the product statuses the Products help page lists.
func knownProductStatus(s string) bool {
	switch strings.ToLower(s) {
	case "", "inactive", "public", "showinb2b", "internal":
		return true
	}
	return false
}

// knownOptionStatus: the product option statuses Omni documents.
func knownOptionStatus(s string) bool {
	switch strings.ToLower(s) {
	case "", "primary", "active", "disabled":
		return true
	}
	return false
}

// mapStock maps a /v1/Stock row: an option's stock in one branch.
// ModifiedDate is the option's last transaction in the branch. A row of a
// product without options (ProductOptionId 0) belongs to the product
// mapped as "style/<id>".
func mapStock(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	oid := reqID(o, "ProductOptionId")
	if oid == "0" {
		oid = "style/" + reqID(o, "ProductId")
	}
	bid := reqID(o, "BranchId")
	branch := o.Str("BranchName")
	st := &model.StockLevel{ProductVendorID: oid, SKU: o.Str("Code"), Warehouse: firstNonEmpty(branch, bid), WarehouseName: branch,
		OnHand: o.Float("StockOnHand"), Allocated: o.Float("OpenSales"), Available: o.Float("Available"), OnOrder: o.Float("Incoming")}
	*out = append(*out, record(env, model.KindStockLevel, oid+"/"+bid, modTime(o, env, false), false, raw, st))
}

func mapLines(o *obj) []model.Line {
	var out []model.Line
	for i, lraw := range o.Arr("LineItems") {
		l := o.Child("LineItems", i, lraw)
		n := i + 1
		if l.Get("SortOrder") != nil {
			n = int(l.Float("SortOrder"))
		}
		out = append(out, model.Line{LineNo: n, ProductVendorID: optID(l, "ProductOptionId"), SKU: l.Str("Code"), Description: l.Str("Name"),
			Quantity: l.Float("Qty"), UnitPrice: l.Dec("UnitPrice"), Discount: l.Dec("Discount")})
		o.Adopt(fmt.Sprintf("LineItems[%d]", i), l)
	}
	return out
}

// mapSalesOrder maps a sales order and, where it carries them, its invoice
// (Omni keeps InvoiceNumber and InvoiceDate on the order) and its dispatch.
func mapSalesOrder(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := reqID(o, "Id")
	mod := modTime(o, env, true)
	void := o.Bool("IsVoid")
	number := firstNonEmpty(o.Str("Reference"), id)
	customer, company := optID(o, "MemberId"), o.Str("Company")
	currency := o.Str("CurrencyCode")
	status := o.Str("Status")
	lines := mapLines(o)
	so := &model.SalesOrder{Number: number, CustomerVendorID: customer, CustomerCode: company, Status: status,
		OrderDate: o.OptTime("OrderDate"), RequiredDate: o.OptTime("EstimatedDeliveryDate"), Warehouse: optID(o, "BranchId"), Currency: currency,
		SubTotal: o.Dec("ProductTotal"), TaxTotal: o.Dec("TaxTotal"), Total: o.Dec("Total"), Lines: lines}
	// The order carries its one invoice and its one dispatch as fields, so
	// it names both child kinds completely (an empty set when it has none).
	at := len(*out)
	*out = append(*out, record(env, model.KindSalesOrder, id, mod, void, raw, so))
	invoices := model.ChildSet{Kind: model.KindInvoice, IDs: []string{}}
	shipments := model.ChildSet{Kind: model.KindShipment, IDs: []string{}}
	if inv := optID(o, "InvoiceNumber"); inv != "" {
		in := &model.Invoice{Number: inv, Type: "sale", CustomerVendorID: customer, CustomerCode: company, SalesOrderNumber: number, Status: status,
			IssueDate: o.OptTime("InvoiceDate"), Currency: currency, SubTotal: so.SubTotal, TaxTotal: so.TaxTotal, Total: so.Total, Lines: lines}
		*out = append(*out, child(record(env, model.KindInvoice, id+"/invoice", mod, void, raw, in), id, model.KindSalesOrder))
		invoices.IDs = append(invoices.IDs, id+"/invoice")
	}
	if shipped := o.OptTime("DispatchedDate"); shipped != nil {
		sh := &model.Shipment{Number: number, SalesOrderNumber: number, Status: o.Str("Stage"), ShippedDate: shipped,
			Carrier: o.Str("LogisticsCarrier"), TrackingNumber: o.Str("TrackingCode"), Warehouse: so.Warehouse}
		*out = append(*out, child(record(env, model.KindShipment, id+"/dispatch", mod, void, raw, sh), id, model.KindSalesOrder))
		shipments.IDs = append(shipments.IDs, id+"/dispatch")
	}
	(*out)[at].Children = []model.ChildSet{invoices, shipments}
}

func mapCreditNote(o *obj, raw json.RawMessage, env mapEnv, out *[]model.Record) {
	id := reqID(o, "Id")
	cn := &model.CreditNote{Number: firstNonEmpty(o.Str("Reference"), o.Str("CreditNoteNumber"), id), Type: "sale", CustomerVendorID: optID(o, "MemberId"),
		CustomerCode: o.Str("Company"), InvoiceNumber: optID(o, "InvoiceNumber"), Status: o.Str("Status"), IssueDate: o.OptTime("CreditNoteDate"),
		Currency: o.Str("CurrencyCode"), SubTotal: o.Dec("ProductTotal"), TaxTotal: o.Dec("TaxTotal"), Total: o.Dec("Total"), Lines: mapLines(o)}
	*out = append(*out, record(env, model.KindCreditNote, id, modTime(o, env, true), o.Bool("IsVoid"), raw, cn))
}
