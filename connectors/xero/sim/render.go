package sim

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
)

// query is a parsed list request.
type query struct {
	page, pageSize  int
	paged           bool
	since           time.Time
	includeArchived bool
	// order is the list order the request named: "" (none: creation
	// order), "asc" or "desc" (by UpdatedDateUTC).
	order string
	// summary is summaryOnly=true (Contacts, Invoices): Xero's lighter
	// documents.
	summary bool
	// ids is the IDs filter (Contacts, Invoices), nil without one.
	ids map[string]bool
}

// keepID says whether the IDs filter, if any, lets id through.
func (q query) keepID(id string) bool { return q.ids == nil || q.ids[strings.ToLower(id)] }

// parseQuery reads page, pageSize, includeArchived, summaryOnly, IDs,
// order and If-Modified-Since. If-Modified-Since is read as Xero reads it: to the
// second, in UTC; ISO 8601 with or without a zone and the HTTP date format
// are accepted.
func parseQuery(r *http.Request) (query, error) {
	v := r.URL.Query()
	q := query{page: 1, pageSize: 100}
	if p := v.Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			return q, fmt.Errorf("page must be a positive integer")
		}
		q.page, q.paged = n, true
	}
	if p := v.Get("pageSize"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			return q, fmt.Errorf("pageSize must be a positive integer")
		}
		q.pageSize = min(n, MaxPageSize)
	}
	q.includeArchived = strings.EqualFold(v.Get("includeArchived"), "true")
	q.summary = strings.EqualFold(v.Get("summaryOnly"), "true")
	if v.Has("IDs") {
		q.ids = map[string]bool{}
		for _, id := range strings.Split(v.Get("IDs"), ",") {
			id = strings.TrimSpace(id)
			if !isGUID(id) {
				return q, fmt.Errorf("IDs: %q is not a GUID", id)
			}
			q.ids[strings.ToLower(id)] = true
		}
	}
	if o := strings.TrimSpace(v.Get("order")); o != "" {
		f := strings.Fields(o)
		if !strings.EqualFold(f[0], "UpdatedDateUTC") || len(f) > 2 {
			return q, fmt.Errorf("the simulator orders lists by UpdatedDateUTC only, not by %q", o)
		}
		q.order = "asc"
		if len(f) == 2 {
			switch strings.ToUpper(f[1]) {
			case "ASC":
			case "DESC":
				q.order = "desc"
			default:
				return q, fmt.Errorf("order direction must be ASC or DESC")
			}
		}
	}
	if ims := r.Header.Get("If-Modified-Since"); ims != "" {
		t, err := parseSince(ims)
		if err != nil {
			return q, err
		}
		q.since = t
	}
	return q, nil
}

func parseSince(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04:05", http.TimeFormat, time.RFC1123Z} {
		if t, err := time.Parse(layout, strings.TrimSpace(s)); err == nil {
			return t.UTC().Truncate(time.Second), nil
		}
	}
	return time.Time{}, fmt.Errorf("If-Modified-Since %q is not a date", s)
}

// selectList returns the indexes of the items a list request gets, in the
// order it gets them: those keep accepts that changed at or after the
// request's If-Modified-Since (compared to the second, inclusive), ordered
// as the request's order parameter asks (by UpdatedDateUTC, ties by id) or
// in the given (creation) order without one; the base's unstable knob then
// reshuffles them.
func selectList[T any](s *Server, items []T, q query, meta func(T) simkit.Meta, keep func(T) bool) []int {
	accept := func(it T) bool {
		if keep != nil && !keep(it) {
			return false
		}
		return q.since.IsZero() || !meta(it).Modified.Truncate(time.Second).Before(q.since)
	}
	var less func(a, b T) bool
	switch q.order {
	case "asc":
		less = simkit.ByModified(meta)
	case "desc":
		asc := simkit.ByModified(meta)
		less = func(a, b T) bool { return asc(b, a) }
	}
	return s.Order(simkit.Sorted(items, accept, less))
}

// Xero's wire formats: /Date(ms+0000)/ and /Date(ms)/ dates, money as JSON
// numbers.
var (
	msDate      = simkit.MSDateZone
	msDatePlain = simkit.MSDate
	num         = simkit.Money
)

// write answers JSON in Xero's envelope, or XML when the client did not ask
// for JSON (Xero's default format).
func (s *Server) write(w http.ResponseWriter, r *http.Request, status int, body map[string]any) {
	s.SetDate(w)
	if !strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		w.WriteHeader(status)
		_, _ = fmt.Fprintf(w, "<Response xmlns:i=\"http://www.w3.org/2001/XMLSchema-instance\"><Status>%d</Status></Response>", status)
		return
	}
	b, err := json.Marshal(body)
	if err != nil {
		http.Error(w, "simulator could not encode its answer", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
	if status < 300 {
		s.Stats().Served.Add(1)
	}
}

func (s *Server) envelope(list string, items any, pag map[string]int) map[string]any {
	out := map[string]any{"Id": newUUID(), "Status": "OK", "ProviderName": s.opts.ProviderName, "DateTimeUTC": msDatePlain(s.Now()), list: items}
	if pag != nil {
		out["pagination"] = pag
	}
	return out
}

func newUUID() string {
	t := newToken("")
	h := sha256.Sum256([]byte(t))
	return uuidOf(h[:])
}

func uuidOf(b []byte) string {
	x := fmt.Sprintf("%x", b)
	return fmt.Sprintf("%s-%s-4%s-8%s-%s", x[:8], x[8:12], x[13:16], x[17:20], x[20:32])
}

// derivedID makes a stable GUID for records the simulator adds to the
// dataset (bills, line items).
func derivedID(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "/")))
	return uuidOf(h[:])
}

// page returns the page's slice bounds and Xero's pagination object.
func page(n int, q query) (start, end int, pag map[string]int) {
	start, end, _ = simkit.PageOf(n, q.page, q.pageSize)
	return start, end, map[string]int{"page": q.page, "pageSize": q.pageSize, "pageCount": (n + q.pageSize - 1) / q.pageSize, "itemCount": n}
}

// ids maps dataset references to what Xero documents need.
type ids struct {
	products  int
	product   map[string]*simkit.Product
	supplier  map[string]*simkit.Supplier
	customer  map[string]*simkit.Customer
	invoiceBy map[string]*simkit.Document
}

func (s *Server) idx(d *simkit.Dataset) *ids {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.index != nil && s.index.products == len(d.Products) {
		return s.index
	}
	x := &ids{products: len(d.Products), product: map[string]*simkit.Product{}, supplier: map[string]*simkit.Supplier{},
		customer: map[string]*simkit.Customer{}, invoiceBy: map[string]*simkit.Document{}}
	for _, p := range d.Products {
		x.product[p.ID] = p
	}
	for _, sp := range d.Suppliers {
		x.supplier[sp.Code] = sp
	}
	for _, c := range d.Customers {
		x.customer[c.ID] = c
	}
	for _, inv := range d.Invoices {
		x.invoiceBy[inv.Number] = inv
	}
	s.index = x
	return x
}

// isTracked says which items Xero tracks as inventory: all but every fifth,
// which the simulator renders as an untracked service item.
func isTracked(p *simkit.Product) bool { return p.Seq%5 != 0 }

type purchase struct {
	UnitPrice       json.Number `json:"UnitPrice"`
	AccountCode     string      `json:"AccountCode,omitempty"`
	COGSAccountCode string      `json:"COGSAccountCode,omitempty"`
	TaxType         string      `json:"TaxType,omitempty"`
}

type item struct {
	ItemID                    string   `json:"ItemID"`
	Code                      string   `json:"Code"`
	Name                      string   `json:"Name"`
	Description               string   `json:"Description"`
	PurchaseDescription       string   `json:"PurchaseDescription"`
	IsSold                    bool     `json:"IsSold"`
	IsPurchased               bool     `json:"IsPurchased"`
	IsTrackedAsInventory      bool     `json:"IsTrackedAsInventory"`
	InventoryAssetAccountCode string   `json:"InventoryAssetAccountCode,omitempty"`
	QuantityOnHand            *float64 `json:"QuantityOnHand,omitempty"`
	TotalCostPool             *float64 `json:"TotalCostPool,omitempty"`
	PurchaseDetails           purchase `json:"PurchaseDetails"`
	SalesDetails              purchase `json:"SalesDetails"`
	UpdatedDateUTC            string   `json:"UpdatedDateUTC"`
}

// serveItems answers GET /Items: every item in one answer (Xero does not
// page items). Deleted products are gone: Xero deletes items outright.
func (s *Server) serveItems(w http.ResponseWriter, r *http.Request, q query) {
	var out []item
	s.data.View(func(d *simkit.Dataset) {
		sel := selectList(s, d.Products, q, func(p *simkit.Product) simkit.Meta { return p.Meta }, func(p *simkit.Product) bool { return !p.Deleted })
		out = make([]item, 0, len(sel))
		for _, i := range sel {
			p := d.Products[i]
			it := item{ItemID: p.ID, Code: p.SKU, Name: p.Name, Description: p.Description, PurchaseDescription: p.Description + " (purchase)",
				IsSold: true, IsPurchased: true, IsTrackedAsInventory: isTracked(p),
				PurchaseDetails: purchase{UnitPrice: num(p.CostPrice), COGSAccountCode: "310", TaxType: "INPUT2"},
				SalesDetails:    purchase{UnitPrice: num(p.SellPrice), AccountCode: "200", TaxType: "OUTPUT2"},
				UpdatedDateUTC:  msDate(p.Modified)}
			if it.IsTrackedAsInventory {
				var onHand float64
				for _, st := range p.Stock {
					onHand += st.OnHand
				}
				cost, _ := strconv.ParseFloat(p.CostPrice, 64)
				pool := float64(int64(onHand*cost*100+0.5)) / 100
				it.QuantityOnHand, it.TotalCostPool = &onHand, &pool
				it.InventoryAssetAccountCode = "630"
				it.PurchaseDetails.AccountCode, it.PurchaseDetails.COGSAccountCode = "", "310"
			}
			out = append(out, it)
		}
	})
	s.write(w, r, http.StatusOK, s.envelope("Items", out, nil))
}

type address struct {
	AddressType  string `json:"AddressType"`
	AddressLine1 string `json:"AddressLine1,omitempty"`
	City         string `json:"City"`
	Region       string `json:"Region"`
	PostalCode   string `json:"PostalCode"`
	Country      string `json:"Country"`
}

type phone struct {
	PhoneType        string `json:"PhoneType"`
	PhoneNumber      string `json:"PhoneNumber"`
	PhoneAreaCode    string `json:"PhoneAreaCode"`
	PhoneCountryCode string `json:"PhoneCountryCode"`
}

type person struct {
	FirstName       string `json:"FirstName"`
	LastName        string `json:"LastName"`
	EmailAddress    string `json:"EmailAddress"`
	IncludeInEmails bool   `json:"IncludeInEmails"`
}

type contact struct {
	ContactID        string    `json:"ContactID"`
	ContactNumber    string    `json:"ContactNumber,omitempty"`
	AccountNumber    string    `json:"AccountNumber,omitempty"`
	ContactStatus    string    `json:"ContactStatus"`
	Name             string    `json:"Name"`
	FirstName        string    `json:"FirstName,omitempty"`
	LastName         string    `json:"LastName,omitempty"`
	EmailAddress     string    `json:"EmailAddress,omitempty"`
	TaxNumber        string    `json:"TaxNumber,omitempty"`
	Addresses        []address `json:"Addresses,omitempty"`
	Phones           []phone   `json:"Phones,omitempty"`
	ContactPersons   []person  `json:"ContactPersons,omitempty"`
	IsSupplier       bool      `json:"IsSupplier"`
	IsCustomer       bool      `json:"IsCustomer"`
	DefaultCurrency  string    `json:"DefaultCurrency,omitempty"`
	UpdatedDateUTC   string    `json:"UpdatedDateUTC"`
	ContactGroups    []any     `json:"ContactGroups"`
	HasAttachments   bool      `json:"HasAttachments"`
	HasValidationErr bool      `json:"HasValidationErrors"`
	modified         time.Time
	id               string
}

func phoneOf(p string) []phone {
	// "+64 9 444 0001" → country 64, area 9, number 444 0001
	f := strings.Fields(p)
	ph := phone{PhoneType: "DEFAULT", PhoneNumber: p}
	if len(f) >= 3 && strings.HasPrefix(f[0], "+") {
		ph.PhoneCountryCode, ph.PhoneAreaCode, ph.PhoneNumber = strings.TrimPrefix(f[0], "+"), f[1], strings.Join(f[2:], " ")
	}
	return []phone{ph, {PhoneType: "MOBILE"}, {PhoneType: "FAX"}, {PhoneType: "DDI"}}
}

func status(deleted bool) string {
	if deleted {
		return "ARCHIVED"
	}
	return "ACTIVE"
}

// contacts renders customers and suppliers as Xero contacts.
func contacts(d *simkit.Dataset) []contact {
	out := make([]contact, 0, len(d.Customers)+len(d.Suppliers))
	for _, c := range d.Customers {
		x := contact{ContactID: c.ID, ContactNumber: c.Code, AccountNumber: c.Code, ContactStatus: status(c.Deleted), Name: c.Name,
			EmailAddress: c.Email, TaxNumber: c.TaxNumber, IsCustomer: true, DefaultCurrency: c.Currency, UpdatedDateUTC: msDate(c.Modified),
			Addresses: []address{{AddressType: "STREET", AddressLine1: c.Street, City: c.City, PostalCode: c.PostalCode, Country: c.Country},
				{AddressType: "POBOX"}},
			Phones: phoneOf(c.Phone), ContactGroups: []any{}, modified: c.Modified, id: c.ID}
		for i, p := range c.Contacts {
			if i == 0 {
				x.FirstName, x.LastName = p.FirstName, p.LastName
				continue
			}
			x.ContactPersons = append(x.ContactPersons, person{FirstName: p.FirstName, LastName: p.LastName, EmailAddress: p.Email, IncludeInEmails: true})
		}
		out = append(out, x)
	}
	for _, sp := range d.Suppliers {
		out = append(out, contact{ContactID: sp.ID, ContactNumber: sp.Code, AccountNumber: sp.Code, ContactStatus: status(sp.Deleted), Name: sp.Name,
			EmailAddress: sp.Email, IsSupplier: true, DefaultCurrency: sp.Currency, UpdatedDateUTC: msDate(sp.Modified),
			Addresses: []address{{AddressType: "STREET"}, {AddressType: "POBOX"}}, Phones: phoneOf(sp.Phone), ContactGroups: []any{},
			modified: sp.Modified, id: sp.ID})
	}
	return out
}

func (s *Server) serveContacts(w http.ResponseWriter, r *http.Request, q query) {
	var body map[string]any
	s.data.View(func(d *simkit.Dataset) {
		all := contacts(d)
		sel := selectList(s, all, q, func(c contact) simkit.Meta { return simkit.Meta{ID: c.id, Modified: c.modified} },
			func(c contact) bool { return (q.includeArchived || c.ContactStatus != "ARCHIVED") && q.keepID(c.id) })
		body = pageRendered(s, "Contacts", sel, q, func(i int) contact {
			c := all[i]
			if q.summary {
				c = c.summary()
			}
			return c
		})
	})
	s.write(w, r, http.StatusOK, body)
}

// summary is the contact as summaryOnly=true serves it. Xero documents the
// mode as "lightweight fields, excluding computation-heavy fields" without
// naming them; the simulator assumes it keeps the contact's identity,
// status, names, e-mail, customer and supplier flags and UpdatedDateUTC,
// and drops addresses, phones, people, tax number and currency.
func (c contact) summary() contact {
	c.Addresses, c.Phones, c.ContactPersons = nil, nil, nil
	c.TaxNumber, c.DefaultCurrency = "", ""
	return c
}

// pageRendered renders the requested page of a selected list in Xero's
// envelope, with the pagination object when the request was paged
// (without page, Xero returns the whole list); only the requested page's
// items are rendered.
func pageRendered[T any](s *Server, list string, sel []int, q query, render func(i int) T) map[string]any {
	if !q.paged {
		q.pageSize = max(len(sel), 1)
	}
	start, end, pag := page(len(sel), q)
	if !q.paged {
		pag = nil
	}
	items := make([]T, 0, end-start)
	for _, i := range sel[start:end] {
		items = append(items, render(i))
	}
	return s.envelope(list, items, pag)
}

type lineItemItem struct {
	ItemID string `json:"ItemID"`
	Name   string `json:"Name"`
	Code   string `json:"Code"`
}

type lineItem struct {
	LineItemID  string        `json:"LineItemID"`
	Description string        `json:"Description"`
	Quantity    float64       `json:"Quantity"`
	UnitAmount  json.Number   `json:"UnitAmount"`
	ItemCode    string        `json:"ItemCode,omitempty"`
	Item        *lineItemItem `json:"Item,omitempty"`
	AccountCode string        `json:"AccountCode"`
	TaxType     string        `json:"TaxType"`
	TaxAmount   json.Number   `json:"TaxAmount"`
	LineAmount  json.Number   `json:"LineAmount"`
	Tracking    []any         `json:"Tracking"`
}

type contactRef struct {
	ContactID     string `json:"ContactID"`
	ContactNumber string `json:"ContactNumber,omitempty"`
	Name          string `json:"Name"`
}

type invoice struct {
	Type                 string       `json:"Type"`
	InvoiceID            string       `json:"InvoiceID"`
	InvoiceNumber        string       `json:"InvoiceNumber"`
	Reference            string       `json:"Reference"`
	Contact              contactRef   `json:"Contact"`
	Date                 string       `json:"Date"`
	DateString           string       `json:"DateString"`
	DueDate              string       `json:"DueDate"`
	DueDateString        string       `json:"DueDateString"`
	Status               string       `json:"Status"`
	LineAmountTypes      string       `json:"LineAmountTypes"`
	LineItems            []lineItem   `json:"LineItems,omitempty"`
	SubTotal             json.Number  `json:"SubTotal"`
	TotalTax             json.Number  `json:"TotalTax"`
	Total                json.Number  `json:"Total"`
	AmountDue            json.Number  `json:"AmountDue"`
	AmountPaid           json.Number  `json:"AmountPaid"`
	AmountCredited       json.Number  `json:"AmountCredited"`
	CurrencyCode         string       `json:"CurrencyCode"`
	CurrencyRate         json.Number  `json:"CurrencyRate"`
	UpdatedDateUTC       string       `json:"UpdatedDateUTC"`
	UpdatedDateUTCString string       `json:"UpdatedDateUTCString"`
	HasAttachments       bool         `json:"HasAttachments"`
	IsDiscounted         bool         `json:"IsDiscounted"`
	Allocations          []allocation `json:"Allocations,omitempty"`
}

type allocation struct {
	AllocationID string      `json:"AllocationID"`
	Amount       json.Number `json:"Amount"`
	Date         string      `json:"Date"`
	Invoice      invoiceRef  `json:"Invoice"`
}

type invoiceRef struct {
	InvoiceID     string `json:"InvoiceID"`
	InvoiceNumber string `json:"InvoiceNumber"`
}

func docStatus(doc *simkit.Document) string {
	if doc.Deleted {
		if doc.Status == "DRAFT" {
			return "DELETED"
		}
		return "VOIDED"
	}
	switch doc.Status {
	case "DRAFT", "SUBMITTED", "AUTHORISED", "PAID", "VOIDED", "DELETED":
		return doc.Status
	}
	return "AUTHORISED"
}

// lines renders a document's lines; cost prices them at the product's cost
// (bills).
func lines(doc *simkit.Document, x *ids, cost bool, account string) ([]lineItem, int64, int64) {
	var sub, tax int64
	out := make([]lineItem, 0, len(doc.Lines))
	for i, l := range doc.Lines {
		price := l.UnitPrice
		p := x.product[l.ProductID]
		if cost && p != nil {
			price = p.CostPrice
		}
		amount := int64(l.Quantity) * cents(price)
		t := amount * int64(l.TaxRate) / 100
		sub += amount
		tax += t
		li := lineItem{LineItemID: derivedID(doc.ID, "line", strconv.Itoa(i)), Description: l.Description, Quantity: l.Quantity,
			UnitAmount: num(price), ItemCode: l.SKU, AccountCode: account, TaxType: l.TaxCode, TaxAmount: json.Number(fmtCents(t)),
			LineAmount: json.Number(fmtCents(amount)), Tracking: []any{}}
		if p != nil {
			li.Item = &lineItemItem{ItemID: p.ID, Name: p.Name, Code: p.SKU}
		}
		out = append(out, li)
	}
	return out, sub, tax
}

func renderInvoice(doc *simkit.Document, typ string, contact contactRef, x *ids) invoice {
	cost := typ == "ACCPAY"
	account := "200"
	if cost {
		account = "300"
	}
	ls, sub, tax := lines(doc, x, cost, account)
	st := docStatus(doc)
	due, paid := sub+tax, int64(0)
	if st == "PAID" {
		due, paid = 0, sub+tax
	}
	if st == "VOIDED" || st == "DELETED" {
		due = 0
	}
	return invoice{Type: typ, InvoiceID: doc.ID, InvoiceNumber: doc.Number, Reference: doc.OrderNumber, Contact: contact,
		Date: msDate(doc.Date), DateString: doc.Date.UTC().Format("2006-01-02T15:04:05"), DueDate: msDate(doc.DueDate),
		DueDateString: doc.DueDate.UTC().Format("2006-01-02T15:04:05"), Status: st, LineAmountTypes: "Exclusive", LineItems: ls,
		SubTotal: json.Number(fmtCents(sub)), TotalTax: json.Number(fmtCents(tax)), Total: json.Number(fmtCents(sub + tax)),
		AmountDue: json.Number(fmtCents(due)), AmountPaid: json.Number(fmtCents(paid)), AmountCredited: "0", CurrencyCode: doc.Currency,
		CurrencyRate: "1", UpdatedDateUTC: msDate(doc.Modified), UpdatedDateUTCString: doc.Modified.UTC().Format("2006-01-02T15:04:05Z")}
}

// bills derives supplier bills (ACCPAY invoices) from every fourth order:
// what the company bought from the supplier of the order's first product.
func bills(d *simkit.Dataset) []*simkit.Document {
	var out []*simkit.Document
	for _, o := range d.Orders {
		if !hasBill(o) {
			continue
		}
		b := *o
		b.ID = billID(o)
		b.Number = fmt.Sprintf("BILL-%06d", o.Seq)
		b.OrderNumber = o.Number
		b.Status = "AUTHORISED"
		if o.Status == "Completed" {
			b.Status = "PAID"
		}
		out = append(out, &b)
	}
	return out
}

// invoiceSource is one document GET /Invoices lists, before rendering.
type invoiceSource struct {
	doc *simkit.Document
	typ string
}

func (s *Server) serveInvoices(w http.ResponseWriter, r *http.Request, q query) {
	var body map[string]any
	s.data.View(func(d *simkit.Dataset) {
		x := s.idx(d)
		bs := bills(d)
		s.mu.Lock()
		odd := append([]oddInvoice(nil), s.odd...)
		s.mu.Unlock()
		all := make([]invoiceSource, 0, len(d.Invoices)+len(bs)+len(odd))
		for _, inv := range d.Invoices {
			all = append(all, invoiceSource{doc: inv, typ: "ACCREC"})
		}
		for _, b := range bs {
			all = append(all, invoiceSource{doc: b, typ: "ACCPAY"})
		}
		for i := range odd {
			all = append(all, invoiceSource{doc: &odd[i].doc, typ: odd[i].typ})
		}
		sel := selectList(s, all, q, func(i invoiceSource) simkit.Meta { return i.doc.Meta }, func(i invoiceSource) bool { return q.keepID(i.doc.ID) })
		body = pageRendered(s, "Invoices", sel, q, func(i int) invoice {
			src := all[i]
			ref := customerRef(src.doc, x)
			if src.typ == "ACCPAY" {
				ref = contactRef{}
				if p := x.product[src.doc.Lines[0].ProductID]; p != nil {
					if sp := x.supplier[p.SupplierCode]; sp != nil {
						ref = contactRef{ContactID: sp.ID, ContactNumber: sp.Code, Name: sp.Name}
					}
				}
			}
			inv := renderInvoice(src.doc, src.typ, ref, x)
			if q.summary {
				// Assumed, as for contacts: the summary keeps the header
				// (identity, type, status, contact, dates, totals,
				// UpdatedDateUTC) and drops the lines.
				inv.LineItems = nil
			}
			return inv
		})
	})
	s.write(w, r, http.StatusOK, body)
}

// DocState is what Xero says about one invoice or credit note: the fields
// a connector scenario checks.
type DocState struct {
	Kind    model.Kind // invoices or credit_notes
	ID      string
	Number  string
	Type    string // ACCREC, ACCPAY, ACCRECCREDIT
	Status  string
	Deleted bool // VOIDED or DELETED
}

// Documents returns the state of every invoice (sales invoices and the
// bills derived from orders) and credit note GET /Invoices and GET
// /CreditNotes serve now, without the invoices of AddInvoiceOfType.
func (s *Server) Documents() []DocState {
	var out []DocState
	s.data.View(func(d *simkit.Dataset) {
		add := func(kind model.Kind, doc *simkit.Document, typ string) {
			st := docStatus(doc)
			out = append(out, DocState{Kind: kind, ID: doc.ID, Number: doc.Number, Type: typ, Status: st, Deleted: st == "VOIDED" || st == "DELETED"})
		}
		for _, inv := range d.Invoices {
			add(model.KindInvoice, inv, "ACCREC")
		}
		for _, b := range bills(d) {
			add(model.KindInvoice, b, "ACCPAY")
		}
		for _, cn := range d.CreditNotes {
			add(model.KindCreditNote, cn, "ACCRECCREDIT")
		}
	})
	return out
}

// IsTracked says which products the simulator serves as items tracked as
// inventory, with a QuantityOnHand (a stock level).
func IsTracked(p *simkit.Product) bool { return isTracked(p) }

func customerRef(doc *simkit.Document, x *ids) contactRef {
	if c := x.customer[doc.CustomerID]; c != nil {
		return contactRef{ContactID: c.ID, ContactNumber: c.Code, Name: c.Name}
	}
	return contactRef{ContactID: doc.CustomerID, Name: doc.CustomerCode}
}

// oddInvoice is an invoice of a type beyond ACCREC and ACCPAY.
type oddInvoice struct {
	typ string
	doc simkit.Document
}

// OddInvoiceTypes are the invoice types Xero's OpenAPI document allows
// beyond ACCREC and ACCPAY (schema Invoice, property Type).
var OddInvoiceTypes = []string{"ACCPAYCREDIT", "APOVERPAYMENT", "APPREPAYMENT", "ACCRECCREDIT", "AROVERPAYMENT", "ARPREPAYMENT"}

// AddInvoiceOfType makes GET /Invoices serve, from now on, one more invoice
// of Type typ (one of OddInvoiceTypes, or anything else: the simulator does
// not check), modelled on the dataset's first invoice and modified now. It
// returns its InvoiceID, or "" when the dataset has no invoice to model it
// on. The invoice is not in Expected: it is no record of a kind the
// connector maps.
func (s *Server) AddInvoiceOfType(typ string) string {
	var doc simkit.Document
	var ok bool
	s.data.View(func(d *simkit.Dataset) {
		if len(d.Invoices) > 0 {
			doc, ok = *d.Invoices[0], true
			doc.Lines = append([]simkit.Line(nil), doc.Lines...)
		}
	})
	if !ok {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.odd) + 1
	now := s.Now().Truncate(time.Millisecond)
	doc.Meta = simkit.Meta{ID: derivedID(doc.ID, "odd", typ, strconv.Itoa(n)), Seq: 1_000_000 + n, Created: now, Modified: now}
	doc.Number = fmt.Sprintf("%s-%06d", typ, n)
	s.odd = append(s.odd, oddInvoice{typ: typ, doc: doc})
	if w := s.webhook(); w != nil {
		w.changed(simkit.Change{Kind: oddInvoiceKind, ID: doc.ID, Seq: doc.Seq, Op: simkit.ChangeCreated, At: now})
	}
	return doc.ID
}

type creditNote struct {
	Type             string       `json:"Type"`
	CreditNoteID     string       `json:"CreditNoteID"`
	CreditNoteNumber string       `json:"CreditNoteNumber"`
	Reference        string       `json:"Reference"`
	Contact          contactRef   `json:"Contact"`
	Date             string       `json:"Date"`
	Status           string       `json:"Status"`
	LineAmountTypes  string       `json:"LineAmountTypes"`
	LineItems        []lineItem   `json:"LineItems"`
	SubTotal         json.Number  `json:"SubTotal"`
	TotalTax         json.Number  `json:"TotalTax"`
	Total            json.Number  `json:"Total"`
	RemainingCredit  json.Number  `json:"RemainingCredit"`
	CurrencyCode     string       `json:"CurrencyCode"`
	CurrencyRate     json.Number  `json:"CurrencyRate"`
	UpdatedDateUTC   string       `json:"UpdatedDateUTC"`
	Allocations      []allocation `json:"Allocations"`
	HasAttachments   bool         `json:"HasAttachments"`
}

// serveCreditNotes answers GET /CreditNotes and, with one, GET
// /CreditNotes/{CreditNoteID} (404 when there is no such credit note).
// Xero documents no summaryOnly nor IDs on credit notes: they are refused.
func (s *Server) serveCreditNotes(w http.ResponseWriter, r *http.Request, q query, one string) {
	if q.summary || q.ids != nil {
		s.validation(w, r, "summaryOnly and IDs are not parameters of GET /CreditNotes")
		return
	}
	if one != "" && !isGUID(one) {
		s.problem(w, r, http.StatusNotFound, "NotFound", "The resource you're looking for cannot be found")
		return
	}
	var body map[string]any
	found := true
	s.data.View(func(d *simkit.Dataset) {
		x := s.idx(d)
		sel := selectList(s, d.CreditNotes, q, func(cn *simkit.Document) simkit.Meta { return cn.Meta }, func(cn *simkit.Document) bool {
			return one == "" || strings.EqualFold(cn.ID, one)
		})
		if one != "" {
			// A document by id is answered whole, unpaged.
			q.paged, found = false, len(sel) > 0
		}
		body = pageRendered(s, "CreditNotes", sel, q, func(i int) creditNote {
			cn := d.CreditNotes[i]
			ls, sub, tax := lines(cn, x, false, "200")
			c := creditNote{Type: "ACCRECCREDIT", CreditNoteID: cn.ID, CreditNoteNumber: cn.Number, Reference: cn.OrderNumber, Contact: customerRef(cn, x),
				Date: msDate(cn.Date), Status: docStatus(cn), LineAmountTypes: "Exclusive", LineItems: ls, SubTotal: json.Number(fmtCents(sub)),
				TotalTax: json.Number(fmtCents(tax)), Total: json.Number(fmtCents(sub + tax)), RemainingCredit: "0", CurrencyCode: cn.Currency,
				CurrencyRate: "1", UpdatedDateUTC: msDatePlain(cn.Modified), Allocations: []allocation{}}
			if inv := x.invoiceBy[cn.OrderNumber]; inv != nil && c.Status == "AUTHORISED" {
				c.Allocations = append(c.Allocations, allocation{AllocationID: derivedID(cn.ID, "allocation"), Amount: c.Total, Date: msDate(cn.Date),
					Invoice: invoiceRef{InvoiceID: inv.ID, InvoiceNumber: inv.Number}})
			} else {
				c.RemainingCredit = c.Total
			}
			return c
		})
	})
	if !found {
		s.problem(w, r, http.StatusNotFound, "NotFound", "The resource you're looking for cannot be found")
		return
	}
	s.write(w, r, http.StatusOK, body)
}

// isGUID reports whether s has the shape of a Xero id.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
				return false
			}
		}
	}
	return true
}

type taxRate struct {
	Name                  string         `json:"Name"`
	TaxType               string         `json:"TaxType"`
	ReportTaxType         string         `json:"ReportTaxType"`
	CanApplyToAssets      bool           `json:"CanApplyToAssets"`
	CanApplyToEquity      bool           `json:"CanApplyToEquity"`
	CanApplyToExpenses    bool           `json:"CanApplyToExpenses"`
	CanApplyToLiabilities bool           `json:"CanApplyToLiabilities"`
	CanApplyToRevenue     bool           `json:"CanApplyToRevenue"`
	DisplayTaxRate        float64        `json:"DisplayTaxRate"`
	EffectiveRate         float64        `json:"EffectiveRate"`
	Status                string         `json:"Status"`
	TaxComponents         []taxComponent `json:"TaxComponents"`
}

type taxComponent struct {
	Name             string  `json:"Name"`
	Rate             float64 `json:"Rate"`
	IsCompound       bool    `json:"IsCompound"`
	IsNonRecoverable bool    `json:"IsNonRecoverable"`
}

// serveTaxRates answers GET /TaxRates: all of them, without a modified time
// or If-Modified-Since.
func (s *Server) serveTaxRates(w http.ResponseWriter, r *http.Request) {
	var out []taxRate
	s.data.View(func(d *simkit.Dataset) {
		for _, t := range d.TaxRates {
			st := "ACTIVE"
			if t.Deleted {
				st = "DELETED"
			}
			out = append(out, taxRate{Name: t.Name, TaxType: t.Code, ReportTaxType: "OUTPUT", CanApplyToExpenses: true, CanApplyToRevenue: true,
				DisplayTaxRate: t.Rate, EffectiveRate: t.Rate, Status: st, TaxComponents: []taxComponent{{Name: t.Code, Rate: t.Rate}}})
		}
	})
	s.write(w, r, http.StatusOK, s.envelope("TaxRates", out, nil))
}

func (s *Server) serveCurrencies(w http.ResponseWriter, r *http.Request) {
	var out []map[string]string
	s.data.View(func(d *simkit.Dataset) {
		for _, c := range d.Currencies {
			out = append(out, map[string]string{"Code": c.Code, "Description": c.Name})
		}
	})
	s.write(w, r, http.StatusOK, s.envelope("Currencies", out, nil))
}

// serveConnections answers GET /connections: the organisations the access
// token reaches.
func (s *Server) serveConnections(w http.ResponseWriter, r *http.Request) {
	if !s.accessOK(bearer(r)) {
		s.Stats().AuthFails.Add(1)
		s.problem(w, r, http.StatusUnauthorized, "Unauthorized", "AuthenticationUnsuccessful")
		return
	}
	created := s.Now().Add(-30 * 24 * time.Hour).UTC().Format("2006-01-02T15:04:05.0000000")
	out := make([]map[string]any, 0, len(s.tenants))
	for i, t := range s.tenants {
		out = append(out, map[string]any{"id": derivedID(t, "connection"), "authEventId": derivedID(t, "auth"), "tenantId": t,
			"tenantType": "ORGANISATION", "tenantName": fmt.Sprintf("Demo Company %d", i+1), "createdDateUtc": created, "updatedDateUtc": created})
	}
	s.SetDate(w)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	b, _ := json.Marshal(out)
	_, _ = w.Write(b)
	s.Stats().Served.Add(1)
}

func cents(dec string) int64 {
	f, err := strconv.ParseFloat(dec, 64)
	if err != nil {
		return 0
	}
	if f < 0 {
		return int64(f*100 - 0.5)
	}
	return int64(f*100 + 0.5)
}

func fmtCents(c int64) string {
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s%d.%02d", sign, c/100, c%100)
}
