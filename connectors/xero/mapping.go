package xero

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
)

// Xero's documents, as far as the connector reads them (schemas of
// xero_accounting.yaml). Money is num: JSON numbers kept as text.

type xPurchase struct {
	UnitPrice num    `json:"UnitPrice"`
	TaxType   string `json:"TaxType"`
}

type xItem struct {
	ItemID               string     `json:"ItemID"`
	Code                 string     `json:"Code"`
	Name                 string     `json:"Name"`
	Description          string     `json:"Description"`
	IsSold               *bool      `json:"IsSold"`
	IsPurchased          *bool      `json:"IsPurchased"`
	IsTrackedAsInventory bool       `json:"IsTrackedAsInventory"`
	QuantityOnHand       num        `json:"QuantityOnHand"`
	PurchaseDetails      *xPurchase `json:"PurchaseDetails"`
	SalesDetails         *xPurchase `json:"SalesDetails"`
	UpdatedDateUTC       string     `json:"UpdatedDateUTC"`
}

type xAddress struct {
	AddressType  string `json:"AddressType"`
	AddressLine1 string `json:"AddressLine1"`
	AddressLine2 string `json:"AddressLine2"`
	AddressLine3 string `json:"AddressLine3"`
	AddressLine4 string `json:"AddressLine4"`
	City         string `json:"City"`
	Region       string `json:"Region"`
	PostalCode   string `json:"PostalCode"`
	Country      string `json:"Country"`
}

type xPhone struct {
	PhoneType        string `json:"PhoneType"`
	PhoneNumber      string `json:"PhoneNumber"`
	PhoneAreaCode    string `json:"PhoneAreaCode"`
	PhoneCountryCode string `json:"PhoneCountryCode"`
}

type xPerson struct {
	FirstName    string `json:"FirstName"`
	LastName     string `json:"LastName"`
	EmailAddress string `json:"EmailAddress"`
}

type xContact struct {
	ContactID         string     `json:"ContactID"`
	MergedToContactID string     `json:"MergedToContactID"`
	ContactNumber     string     `json:"ContactNumber"`
	AccountNumber     string     `json:"AccountNumber"`
	ContactStatus     string     `json:"ContactStatus"`
	Name              string     `json:"Name"`
	FirstName         string     `json:"FirstName"`
	LastName          string     `json:"LastName"`
	EmailAddress      string     `json:"EmailAddress"`
	TaxNumber         string     `json:"TaxNumber"`
	Addresses         []xAddress `json:"Addresses"`
	Phones            []xPhone   `json:"Phones"`
	ContactPersons    []xPerson  `json:"ContactPersons"`
	IsSupplier        bool       `json:"IsSupplier"`
	IsCustomer        bool       `json:"IsCustomer"`
	DefaultCurrency   string     `json:"DefaultCurrency"`
	UpdatedDateUTC    string     `json:"UpdatedDateUTC"`
}

type xLineItemItem struct {
	ItemID string `json:"ItemID"`
	Code   string `json:"Code"`
}

type xLineItem struct {
	Description    string         `json:"Description"`
	Quantity       num            `json:"Quantity"`
	UnitAmount     num            `json:"UnitAmount"`
	ItemCode       string         `json:"ItemCode"`
	Item           *xLineItemItem `json:"Item"`
	TaxType        string         `json:"TaxType"`
	TaxAmount      num            `json:"TaxAmount"`
	LineAmount     num            `json:"LineAmount"`
	DiscountAmount num            `json:"DiscountAmount"`
}

type xContactRef struct {
	ContactID     string `json:"ContactID"`
	ContactNumber string `json:"ContactNumber"`
	AccountNumber string `json:"AccountNumber"`
}

type xAllocation struct {
	Invoice *struct {
		InvoiceNumber string `json:"InvoiceNumber"`
	} `json:"Invoice"`
}

// xDocument is an invoice or a credit note (the fields they share; the
// number and id differ by name).
type xDocument struct {
	Type             string        `json:"Type"`
	InvoiceID        string        `json:"InvoiceID"`
	InvoiceNumber    string        `json:"InvoiceNumber"`
	CreditNoteID     string        `json:"CreditNoteID"`
	CreditNoteNumber string        `json:"CreditNoteNumber"`
	Reference        string        `json:"Reference"`
	Contact          *xContactRef  `json:"Contact"`
	Date             *string       `json:"Date"`
	DueDate          *string       `json:"DueDate"`
	Status           string        `json:"Status"`
	LineItems        []xLineItem   `json:"LineItems"`
	SubTotal         num           `json:"SubTotal"`
	TotalTax         num           `json:"TotalTax"`
	Total            num           `json:"Total"`
	AmountDue        num           `json:"AmountDue"`
	CurrencyCode     string        `json:"CurrencyCode"`
	UpdatedDateUTC   string        `json:"UpdatedDateUTC"`
	Allocations      []xAllocation `json:"Allocations"`
}

type xTaxRate struct {
	Name           string `json:"Name"`
	TaxType        string `json:"TaxType"`
	Status         string `json:"Status"`
	EffectiveRate  num    `json:"EffectiveRate"`
	DisplayTaxRate num    `json:"DisplayTaxRate"`
}

type xCurrency struct {
	Code        string `json:"Code"`
	Description string `json:"Description"`
}

// stockWarehouse names Xero's single, implicit stock location.
const stockWarehouse = "default"

// mapper turns one page of Xero documents into canonical records.
type mapper struct {
	company string
	// now stamps records of lists that carry no modification time (tax
	// rates, currencies): the vendor's clock at the response.
	now time.Time
}

func (m *mapper) record(kind model.Kind, id string, mod time.Time, deleted bool, raw json.RawMessage, data model.Payload) model.Record {
	return model.Record{Company: m.company, Vendor: Type, Kind: kind, VendorID: id, ModifiedAt: mod.UTC(), Deleted: deleted, Raw: raw, Data: data}
}

func decode(raw json.RawMessage, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return &fieldErr{Field: te.Field, Err: fmt.Errorf("got JSON %s, want %s", te.Value, te.Type)}
		}
		return err
	}
	return nil
}

func boolOr(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}

func (m *mapper) item(raw json.RawMessage) ([]model.Record, error) {
	var it xItem
	if err := decode(raw, &it); err != nil {
		return nil, err
	}
	var f fields
	id := f.id("ItemID", it.ItemID)
	mod := f.time("UpdatedDateUTC", it.UpdatedDateUTC)
	p := &model.Product{SKU: it.Code, Name: it.Name, Description: it.Description, IsSold: boolOr(it.IsSold, true),
		IsPurchased: boolOr(it.IsPurchased, true), Tracked: it.IsTrackedAsInventory}
	if it.SalesDetails != nil {
		p.SellPrice = f.dec("SalesDetails.UnitPrice", it.SalesDetails.UnitPrice)
	}
	if it.PurchaseDetails != nil {
		p.CostPrice = f.dec("PurchaseDetails.UnitPrice", it.PurchaseDetails.UnitPrice)
	}
	onHand := f.qty("QuantityOnHand", it.QuantityOnHand)
	if f.Err != nil {
		return nil, f.Err
	}
	prod := m.record(model.KindProduct, id, mod, false, raw, p)
	// The item is the whole truth about its one stock row: tracked, it has
	// it; untracked (never, or no longer), it has none.
	stock := model.ChildSet{Kind: model.KindStockLevel, IDs: []string{}}
	var level *model.Record
	if it.IsTrackedAsInventory {
		// The quantity changes with invoices and bills without the item's
		// UpdatedDateUTC (unconfirmed): stamp it with the read time so that
		// every read lands.
		l := m.record(model.KindStockLevel, id, m.now, false, nil, &model.StockLevel{ProductVendorID: id, SKU: it.Code,
			Warehouse: stockWarehouse, OnHand: onHand, Available: onHand})
		l.Parent, l.ParentKind = id, model.KindProduct
		stock.IDs = append(stock.IDs, id)
		level = &l
	}
	prod.Children = []model.ChildSet{stock}
	out := []model.Record{prod}
	if level != nil {
		out = append(out, *level)
	}
	return out, nil
}

// phone formats the DEFAULT phone (or the first with a number).
func phone(ps []xPhone) string {
	pick := func(p xPhone) string {
		parts := []string{}
		if p.PhoneCountryCode != "" {
			parts = append(parts, "+"+strings.TrimPrefix(p.PhoneCountryCode, "+"))
		}
		for _, s := range []string{p.PhoneAreaCode, p.PhoneNumber} {
			if s != "" {
				parts = append(parts, s)
			}
		}
		return strings.Join(parts, " ")
	}
	for _, p := range ps {
		if p.PhoneType == "DEFAULT" && p.PhoneNumber != "" {
			return pick(p)
		}
	}
	for _, p := range ps {
		if p.PhoneNumber != "" {
			return pick(p)
		}
	}
	return ""
}

// contact maps a Xero contact to a customer (IsCustomer, or neither flag:
// Xero sets the flags only once a transaction exists), a supplier
// (IsSupplier) or both, plus one canonical contact per person: the primary
// person on the contact (FirstName/LastName, keyed <ContactID>/0) and each of
// ContactPersons (keyed <ContactID>/<n>). ARCHIVED, GDPRREQUEST and merged
// contacts are deleted. The persons name the contact as their parent (its
// customer record, or its supplier record for a supplier only), and that
// record lists them all in Children: a person removed in Xero is marked
// deleted when the contact is written.
func (m *mapper) contact(raw json.RawMessage) ([]model.Record, error) {
	var c xContact
	if err := decode(raw, &c); err != nil {
		return nil, err
	}
	var f fields
	id := f.id("ContactID", c.ContactID)
	mod := f.time("UpdatedDateUTC", c.UpdatedDateUTC)
	if f.Err != nil {
		return nil, f.Err
	}
	deleted := c.ContactStatus == "ARCHIVED" || c.ContactStatus == "GDPRREQUEST" || c.MergedToContactID != ""
	code := c.AccountNumber
	if code == "" {
		code = c.ContactNumber
	}
	ph := phone(c.Phones)
	// The contact's people hang off the customer record, or off the
	// supplier record when the contact is a supplier only. The document
	// holds every person (the paged list and the IDs filter return whole
	// contacts), so the parent names them all.
	parentKind := model.KindCustomer
	if !c.IsCustomer && c.IsSupplier {
		parentKind = model.KindSupplier
	}
	var persons []model.Record
	person := func(n int, ct *model.Contact) {
		r := m.record(model.KindContact, id+"/"+strconv.Itoa(n), mod, deleted, nil, ct)
		r.Parent, r.ParentKind = id, parentKind
		persons = append(persons, r)
	}
	if c.FirstName != "" || c.LastName != "" {
		person(0, &model.Contact{CustomerVendorID: id, FirstName: c.FirstName, LastName: c.LastName, Email: c.EmailAddress, Phone: ph})
	}
	for i, p := range c.ContactPersons {
		person(i+1, &model.Contact{CustomerVendorID: id, FirstName: p.FirstName, LastName: p.LastName, Email: p.EmailAddress})
	}
	children := []model.ChildSet{{Kind: model.KindContact, IDs: make([]string, 0, len(persons))}}
	for _, r := range persons {
		children[0].IDs = append(children[0].IDs, r.VendorID)
	}
	var out []model.Record
	if c.IsCustomer || !c.IsSupplier {
		cu := &model.Customer{Code: code, Name: c.Name, Email: c.EmailAddress, Phone: ph, Currency: c.DefaultCurrency, TaxNumber: c.TaxNumber, Status: c.ContactStatus}
		for _, a := range c.Addresses {
			if a.AddressLine1 == "" && a.City == "" && a.PostalCode == "" && a.Country == "" {
				continue // Xero lists both address types, often empty
			}
			line2 := strings.TrimSpace(strings.Join([]string{a.AddressLine2, a.AddressLine3, a.AddressLine4}, " "))
			cu.Addresses = append(cu.Addresses, model.Address{Type: a.AddressType, Line1: a.AddressLine1, Line2: line2, City: a.City, Region: a.Region, PostalCode: a.PostalCode, Country: a.Country})
		}
		r := m.record(model.KindCustomer, id, mod, deleted, raw, cu)
		if parentKind == model.KindCustomer {
			r.Children = children
		}
		out = append(out, r)
	}
	if c.IsSupplier {
		var supplierRaw json.RawMessage
		if len(out) == 0 {
			supplierRaw = raw
		}
		r := m.record(model.KindSupplier, id, mod, deleted, supplierRaw, &model.Supplier{Code: code, Name: c.Name, Email: c.EmailAddress, Phone: ph, Currency: c.DefaultCurrency})
		if parentKind == model.KindSupplier {
			r.Children = children
		}
		out = append(out, r)
	}
	return append(out, persons...), nil
}

func (m *mapper) lines(f *fields, items []xLineItem) []model.Line {
	out := make([]model.Line, 0, len(items))
	for i, li := range items {
		n := fmt.Sprintf("LineItems[%d].", i)
		l := model.Line{LineNo: i + 1, SKU: li.ItemCode, Description: li.Description, Quantity: f.qty(n+"Quantity", li.Quantity),
			UnitPrice: f.dec(n+"UnitAmount", li.UnitAmount), Discount: f.dec(n+"DiscountAmount", li.DiscountAmount),
			Tax: f.dec(n+"TaxAmount", li.TaxAmount), LineTotal: f.dec(n+"LineAmount", li.LineAmount), TaxCode: li.TaxType}
		if li.Item != nil {
			l.ProductVendorID = li.Item.ItemID
			if l.SKU == "" {
				l.SKU = li.Item.Code
			}
		}
		out = append(out, l)
	}
	return out
}

// voided says whether a document status means the document is gone.
func voided(status string) bool { return status == "DELETED" || status == "VOIDED" }

func contactCode(c *xContactRef) (id, code string) {
	if c == nil {
		return "", ""
	}
	code = c.AccountNumber
	if code == "" {
		code = c.ContactNumber
	}
	return c.ContactID, code
}

// invoice maps ACCREC (sales invoice, type "sales") and ACCPAY (supplier
// bill, type "bill"). DELETED and VOIDED invoices are deleted. Reference,
// where Xero users usually put the customer's order number, becomes the
// sales order number of sales invoices.
func (m *mapper) invoice(raw json.RawMessage) ([]model.Record, error) {
	var d xDocument
	if err := decode(raw, &d); err != nil {
		return nil, err
	}
	var f fields
	id := f.id("InvoiceID", d.InvoiceID)
	mod := f.time("UpdatedDateUTC", d.UpdatedDateUTC)
	cid, code := contactCode(d.Contact)
	inv := &model.Invoice{Number: d.InvoiceNumber, CustomerVendorID: cid, CustomerCode: code, Status: d.Status,
		IssueDate: f.optTime("Date", d.Date), DueDate: f.optTime("DueDate", d.DueDate), Currency: d.CurrencyCode,
		SubTotal: f.dec("SubTotal", d.SubTotal), TaxTotal: f.dec("TotalTax", d.TotalTax), Total: f.dec("Total", d.Total),
		AmountDue: f.dec("AmountDue", d.AmountDue)}
	var unknown error
	switch d.Type {
	case "ACCREC":
		inv.Type = "sales"
		inv.SalesOrderNumber = d.Reference
	case "ACCPAY":
		inv.Type = "bill"
	default:
		// Xero's document allows ACCPAYCREDIT, APOVERPAYMENT, APPREPAYMENT,
		// ACCRECCREDIT, AROVERPAYMENT and ARPREPAYMENT too: set aside.
		unknown = &unknownValue{kind: model.KindInvoice, id: id, mod: mod, field: "Type", value: d.Type, what: "an invoice type the connector maps (ACCREC, ACCPAY)"}
	}
	inv.Lines = m.lines(&f, d.LineItems)
	if f.Err != nil {
		return nil, f.Err
	}
	if unknown != nil {
		return nil, unknown
	}
	return []model.Record{m.record(model.KindInvoice, id, mod, voided(d.Status), raw, inv)}, nil
}

// creditNote maps ACCRECCREDIT (type "sales") and ACCPAYCREDIT (type
// "purchase"); the invoice is the first allocation's.
func (m *mapper) creditNote(raw json.RawMessage) ([]model.Record, error) {
	var d xDocument
	if err := decode(raw, &d); err != nil {
		return nil, err
	}
	var f fields
	id := f.id("CreditNoteID", d.CreditNoteID)
	mod := f.time("UpdatedDateUTC", d.UpdatedDateUTC)
	cid, code := contactCode(d.Contact)
	cn := &model.CreditNote{Number: d.CreditNoteNumber, CustomerVendorID: cid, CustomerCode: code, Status: d.Status,
		IssueDate: f.optTime("Date", d.Date), Currency: d.CurrencyCode, SubTotal: f.dec("SubTotal", d.SubTotal),
		TaxTotal: f.dec("TotalTax", d.TotalTax), Total: f.dec("Total", d.Total)}
	var unknown error
	switch d.Type {
	case "ACCRECCREDIT":
		cn.Type = "sales"
	case "ACCPAYCREDIT":
		cn.Type = "purchase"
	default:
		unknown = &unknownValue{kind: model.KindCreditNote, id: id, mod: mod, field: "Type", value: d.Type, what: "a credit note type the connector maps (ACCRECCREDIT, ACCPAYCREDIT)"}
	}
	for _, a := range d.Allocations {
		if a.Invoice != nil && a.Invoice.InvoiceNumber != "" {
			cn.InvoiceNumber = a.Invoice.InvoiceNumber
			break
		}
	}
	cn.Lines = m.lines(&f, d.LineItems)
	if f.Err != nil {
		return nil, f.Err
	}
	if unknown != nil {
		return nil, unknown
	}
	return []model.Record{m.record(model.KindCreditNote, id, mod, voided(d.Status), raw, cn)}, nil
}

// taxRate maps a tax rate, keyed by its TaxType code. DELETED and ARCHIVED
// rates are deleted. Xero gives no modification time: records are stamped
// with the response time.
func (m *mapper) taxRate(raw json.RawMessage) ([]model.Record, error) {
	var t xTaxRate
	if err := decode(raw, &t); err != nil {
		return nil, err
	}
	var f fields
	code := f.id("TaxType", t.TaxType)
	rate := t.EffectiveRate
	if rate == "" {
		rate = t.DisplayTaxRate
	}
	r := f.qty("EffectiveRate", rate)
	if f.Err != nil {
		return nil, f.Err
	}
	return []model.Record{m.record(model.KindTaxRate, code, m.now, t.Status == "DELETED" || t.Status == "ARCHIVED", raw, &model.TaxRate{Code: code, Name: t.Name, Rate: r})}, nil
}

func (m *mapper) currency(raw json.RawMessage) ([]model.Record, error) {
	var c xCurrency
	if err := decode(raw, &c); err != nil {
		return nil, err
	}
	var f fields
	code := f.id("Code", c.Code)
	if f.Err != nil {
		return nil, f.Err
	}
	return []model.Record{m.record(model.KindCurrency, code, m.now, false, raw, &model.Currency{Code: code, Name: c.Description})}, nil
}

// unknownValue is a document that decodes but holds a value the vendor's
// document allows and the connector does not map (an enum value beyond
// those it knows): it is set aside, not fatal.
type unknownValue struct {
	kind         model.Kind
	id           string
	mod          time.Time
	field, value string
	what         string
}

// maxValueLen bounds the vendor text quoted in a set-aside reason.
const maxValueLen = 40

func (e *unknownValue) Error() string {
	v := e.value
	if r := []rune(v); len(r) > maxValueLen {
		v = string(r[:maxValueLen]) + "…"
	}
	return fmt.Sprintf("field %s: %q is not %s", e.field, v, e.what)
}

// docMeta is one vendor document of a page: its id and modified time
// (UpdatedDateUTC, or the response time for lists without one), and
// whether it was dropped as already read.
type docMeta struct {
	id  string
	mod time.Time
	dup bool
}

// mapped is one page of documents mapped to records.
type mapped struct {
	recs  []model.Record
	docs  []docMeta // every document, in the order the page listed them
	aside []model.SetAside
}

// ids returns the ids of the documents the page contributed (not dropped
// as already read): Page.Docs.
func (p *mapped) ids() []string {
	out := make([]string, 0, len(p.docs))
	for _, d := range p.docs {
		if !d.dup {
			out = append(out, d.id)
		}
	}
	return out
}

// mapAll maps every document of a page with fn, naming the record that
// fails. A document the mapping does not know (unknownValue) is set aside
// with its reason and raw document; any other failure fails the page. seen,
// when not nil, says which documents were read already (a keyset page
// restarting inside the previous page's last second): their records are
// dropped.
func mapAll(company string, data []json.RawMessage, fn func(json.RawMessage) ([]model.Record, error), seen func(id string, mod time.Time) bool) (*mapped, error) {
	out := &mapped{recs: make([]model.Record, 0, len(data)), docs: make([]docMeta, 0, len(data))}
	for i, raw := range data {
		if t := bytes.TrimSpace(raw); len(t) == 0 || bytes.Equal(t, []byte("null")) {
			return nil, fmt.Errorf("record %d: empty document", i)
		}
		recs, err := fn(raw)
		var unknown *unknownValue
		switch {
		case errors.As(err, &unknown):
			out.docs = append(out.docs, docMeta{id: unknown.id, mod: unknown.mod})
			out.aside = append(out.aside, model.SetAside{Company: company, Vendor: Type, Kind: unknown.kind, VendorID: unknown.id,
				ModifiedAt: unknown.mod.UTC(), Reason: clipReason(unknown.Error()), Raw: append(json.RawMessage(nil), raw...)})
			continue
		case err != nil:
			return nil, fmt.Errorf("record %d: %w", i, err)
		case len(recs) == 0:
			return nil, fmt.Errorf("record %d: the document maps to no record", i)
		}
		d := docMeta{id: recs[0].VendorID, mod: recs[0].ModifiedAt}
		if seen != nil && seen(d.id, d.mod) {
			d.dup = true
			out.docs = append(out.docs, d)
			continue
		}
		out.docs = append(out.docs, d)
		out.recs = append(out.recs, recs...)
	}
	return out, nil
}

// clipReason bounds a set-aside reason to model.MaxReasonLen bytes.
func clipReason(s string) string {
	if len(s) <= model.MaxReasonLen {
		return s
	}
	r := []rune(s)
	for len(string(r)) > model.MaxReasonLen-len("…") {
		r = r[:len(r)-1]
	}
	return string(r) + "…"
}
