package katana

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

// Katana's documents, as far as the connector reads them. Numbers that are
// money or quantities are num: Katana sends some as numbers and some
// as strings ("12.00000"), and money must not pass through a float.

type kVariant struct {
	ID                int64         `json:"id"`
	ProductID         *int64        `json:"product_id"`
	MaterialID        *int64        `json:"material_id"`
	SKU               *string       `json:"sku"`
	SalesPrice        num           `json:"sales_price"`
	PurchasePrice     num           `json:"purchase_price"`
	Type              string        `json:"type"`
	InternalBarcode   *string       `json:"internal_barcode"`
	RegisteredBarcode *string       `json:"registered_barcode"`
	ConfigAttributes  []kConfigAttr `json:"config_attributes"`
	UpdatedAt         string        `json:"updated_at"`
	DeletedAt         *string       `json:"deleted_at"`
}

type kConfigAttr struct {
	ConfigName  string `json:"config_name"`
	ConfigValue string `json:"config_value"`
}

// kItem is a product or a material (same shape; type says which).
type kItem struct {
	ID             int64      `json:"id"`
	Name           string     `json:"name"`
	UOM            string     `json:"uom"`
	CategoryName   string     `json:"category_name"`
	IsSellable     *bool      `json:"is_sellable"`
	IsPurchasable  *bool      `json:"is_purchasable"`
	Type           string     `json:"type"`
	AdditionalInfo string     `json:"additional_info"`
	UpdatedAt      string     `json:"updated_at"`
	ArchivedAt     *string    `json:"archived_at"`
	DeletedAt      *string    `json:"deleted_at"`
	Variants       []kVariant `json:"variants"`
}

type kAddress struct {
	ID         int64   `json:"id"`
	EntityType string  `json:"entity_type"`
	Line1      *string `json:"line_1"`
	Line2      *string `json:"line_2"`
	City       *string `json:"city"`
	State      *string `json:"state"`
	Zip        *string `json:"zip"`
	Country    *string `json:"country"`
	DeletedAt  *string `json:"deleted_at"`
}

type kCustomer struct {
	ID          int64      `json:"id"`
	Name        string     `json:"name"`
	FirstName   *string    `json:"first_name"`
	LastName    *string    `json:"last_name"`
	Email       *string    `json:"email"`
	Phone       *string    `json:"phone"`
	Currency    string     `json:"currency"`
	ReferenceID *string    `json:"reference_id"`
	UpdatedAt   string     `json:"updated_at"`
	DeletedAt   *string    `json:"deleted_at"`
	Addresses   []kAddress `json:"addresses"`
}

type kLocationAddress struct {
	Line1   *string `json:"line_1"`
	Line2   *string `json:"line_2"`
	City    *string `json:"city"`
	State   *string `json:"state"`
	Zip     *string `json:"zip"`
	Country *string `json:"country"`
}

type kLocation struct {
	ID        int64             `json:"id"`
	Name      string            `json:"name"`
	Address   *kLocationAddress `json:"address"`
	UpdatedAt string            `json:"updated_at"`
	DeletedAt *string           `json:"deleted_at"`
}

type kInventory struct {
	VariantID         int64      `json:"variant_id"`
	LocationID        int64      `json:"location_id"`
	QuantityInStock   num        `json:"quantity_in_stock"`
	QuantityCommitted num        `json:"quantity_committed"`
	QuantityExpected  num        `json:"quantity_expected"`
	ArchivedAt        *string    `json:"archived_at"`
	Variant           *kVariant  `json:"variant"`
	Location          *kLocation `json:"location"`
}

type kTaxRate struct {
	ID          int64  `json:"id"`
	Name        string `json:"name"`
	DisplayName string `json:"display_name"`
	Rate        num    `json:"rate"`
	UpdatedAt   string `json:"updated_at"`
}

// kPriceList is a price list. The document's schema has id, name and
// is_active; its list example also shows currency, start_date, end_date and
// deleted_at, which are read where present.
type kPriceList struct {
	ID        int64   `json:"id"`
	Name      string  `json:"name"`
	IsActive  *bool   `json:"is_active"`
	Currency  *string `json:"currency"`
	StartDate *string `json:"start_date"`
	EndDate   *string `json:"end_date"`
	UpdatedAt string  `json:"updated_at"`
	DeletedAt *string `json:"deleted_at"`
}

type kPriceListCustomer struct {
	ID          int64  `json:"id"`
	PriceListID int64  `json:"price_list_id"`
	CustomerID  int64  `json:"customer_id"`
	UpdatedAt   string `json:"updated_at"`
}

// kPriceListRow is one row of a price list. Besides the schema's
// adjustment_method and amount, the document's list example shows the
// resulting price and its currency; the price is used where present, so
// percentage and markup rows get a price too.
type kPriceListRow struct {
	ID               int64   `json:"id"`
	PriceListID      int64   `json:"price_list_id"`
	VariantID        int64   `json:"variant_id"`
	AdjustmentMethod string  `json:"adjustment_method"`
	Amount           num     `json:"amount"`
	Price            num     `json:"price"`
	Currency         *string `json:"currency"`
	UpdatedAt        string  `json:"updated_at"`
}

type kSalesOrderRow struct {
	ID            int64   `json:"id"`
	VariantID     int64   `json:"variant_id"`
	Quantity      num     `json:"quantity"`
	PricePerUnit  num     `json:"price_per_unit"`
	TotalDiscount num     `json:"total_discount"`
	Total         num     `json:"total"`
	TaxRateID     *int64  `json:"tax_rate_id"`
	DeletedAt     *string `json:"deleted_at"`
}

type kSalesOrder struct {
	ID               int64            `json:"id"`
	CustomerID       int64            `json:"customer_id"`
	OrderNo          string           `json:"order_no"`
	OrderCreatedDate *string          `json:"order_created_date"`
	DeliveryDate     *string          `json:"delivery_date"`
	LocationID       int64            `json:"location_id"`
	Status           string           `json:"status"`
	Currency         string           `json:"currency"`
	Total            num              `json:"total"`
	UpdatedAt        string           `json:"updated_at"`
	DeletedAt        *string          `json:"deleted_at"`
	Rows             []kSalesOrderRow `json:"sales_order_rows"`
}

// num is a number Katana may send as a JSON number, a numeric string or
// null. It keeps the text; fields.dec and fields.qty check it and name the
// field when it is not a number.
type num string

// UnmarshalJSON implements json.Unmarshaler; it accepts any scalar so that
// the error, if any, comes later with the field's name.
func (n *num) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*n = ""
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*n = num(s)
	default:
		*n = num(b)
	}
	return nil
}

// mapper turns one page of Katana documents into canonical records.
type mapper struct {
	company string
	// now stamps records of lists that carry no modification time
	// (inventory): the vendor's clock at the response.
	now time.Time
	// lists and listCustomers resolve price-list rows (price_rules stream).
	lists         map[int64]kPriceList
	listCustomers map[int64][]kPriceListCustomer
}

func (m *mapper) record(kind model.Kind, id string, mod time.Time, deleted bool, raw json.RawMessage, data model.Payload) model.Record {
	return model.Record{Company: m.company, Vendor: Type, Kind: kind, VendorID: id, ModifiedAt: mod, Deleted: deleted, Raw: raw, Data: data}
}

// child returns r read as a child of the record parentID of kind
// parentKind: the sink marks it deleted with its parent.
func child(r model.Record, parentKind model.Kind, parentID string) model.Record {
	r.Parent, r.ParentKind = parentID, parentKind
	return r
}

// latest returns the latest of mod and the given marker times. A record's
// version is its updated_at, or a later deleted_at or archived_at: Katana
// is reported to set deleted_at without moving updated_at (issue 13), and
// a deletion must make a new version, so that reconciliation's listing
// (which compares versions) sees the record changed and reads it again.
func latest(mod time.Time, markers ...*time.Time) time.Time {
	for _, t := range markers {
		if t != nil && t.After(mod) {
			mod = *t
		}
	}
	return mod
}

// decode unmarshals one record strictly enough to name the field that is
// wrong.
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

func (m *mapper) taxRate(raw json.RawMessage) ([]model.Record, error) {
	var t kTaxRate
	if err := decode(raw, &t); err != nil {
		return nil, err
	}
	var f fields
	id := f.id("id", t.ID)
	mod := f.time("updated_at", t.UpdatedAt)
	rate := f.qty("rate", t.Rate)
	if f.Err != nil {
		return nil, f.Err
	}
	name := t.DisplayName
	if name == "" {
		name = t.Name
	}
	return []model.Record{m.record(model.KindTaxRate, id, mod, false, raw, &model.TaxRate{Code: t.Name, Name: name, Rate: rate})}, nil
}

func (m *mapper) location(raw json.RawMessage) ([]model.Record, error) {
	var l kLocation
	if err := decode(raw, &l); err != nil {
		return nil, err
	}
	var f fields
	id := f.id("id", l.ID)
	mod := f.time("updated_at", l.UpdatedAt)
	deletedAt := f.optTime("deleted_at", l.DeletedAt)
	deleted := deletedAt != nil
	mod = latest(mod, deletedAt)
	if f.Err != nil {
		return nil, f.Err
	}
	w := &model.Warehouse{Code: id, Name: l.Name}
	if a := l.Address; a != nil {
		w.Address = &model.Address{Line1: str(a.Line1), Line2: str(a.Line2), City: str(a.City), Region: str(a.State), PostalCode: str(a.Zip), Country: str(a.Country)}
	}
	return []model.Record{m.record(model.KindWarehouse, id, mod, deleted, raw, w)}, nil
}

func (m *mapper) customer(raw json.RawMessage) ([]model.Record, error) {
	var c kCustomer
	if err := decode(raw, &c); err != nil {
		return nil, err
	}
	var f fields
	id := f.id("id", c.ID)
	mod := f.time("updated_at", c.UpdatedAt)
	deletedAt := f.optTime("deleted_at", c.DeletedAt)
	deleted := deletedAt != nil
	mod = latest(mod, deletedAt)
	for i, a := range c.Addresses {
		mod = latest(mod, f.optTime(fmt.Sprintf("addresses[%d].deleted_at", i), a.DeletedAt))
	}
	if f.Err != nil {
		return nil, f.Err
	}
	code := str(c.ReferenceID)
	if code == "" {
		code = id
	}
	cu := &model.Customer{Code: code, Name: c.Name, Email: str(c.Email), Phone: str(c.Phone), Currency: c.Currency}
	if deleted {
		cu.Status = "deleted"
	}
	for _, a := range c.Addresses {
		if a.DeletedAt != nil && *a.DeletedAt != "" {
			continue
		}
		cu.Addresses = append(cu.Addresses, model.Address{Type: a.EntityType, Line1: str(a.Line1), Line2: str(a.Line2), City: str(a.City),
			Region: str(a.State), PostalCode: str(a.Zip), Country: str(a.Country)})
	}
	// Katana keeps one contact person on the customer itself, keyed by the
	// customer's id: the customer's document is the complete set of its
	// contacts (one, or none when the name is cleared), so the customer
	// names it in Children and a cleared name deletes the contact.
	cust := m.record(model.KindCustomer, id, mod, deleted, raw, cu)
	contacts := model.ChildSet{Kind: model.KindContact, IDs: []string{}}
	out := []model.Record{cust}
	if str(c.FirstName) != "" || str(c.LastName) != "" {
		contacts.IDs = append(contacts.IDs, id)
		out = append(out, child(m.record(model.KindContact, id, mod, deleted, nil, &model.Contact{CustomerVendorID: id,
			FirstName: str(c.FirstName), LastName: str(c.LastName), Email: str(c.Email), Phone: str(c.Phone)}), model.KindCustomer, id))
	}
	out[0].Children = []model.ChildSet{contacts}
	return out, nil
}

// item maps a product or material to one canonical product per variant. The
// variant is what has a SKU and prices; its parent (product or material)
// names it, files it and says whether it is sold or bought.
func (m *mapper) item(raw json.RawMessage) ([]model.Record, error) {
	var it kItem
	if err := decode(raw, &it); err != nil {
		return nil, err
	}
	var f fields
	parentID := f.id("id", it.ID)
	parentMod := f.time("updated_at", it.UpdatedAt)
	archivedAt := f.optTime("archived_at", it.ArchivedAt)
	deletedAt := f.optTime("deleted_at", it.DeletedAt)
	archived, parentDeleted := archivedAt != nil, deletedAt != nil
	parentMod = latest(parentMod, archivedAt, deletedAt)
	if f.Err != nil {
		return nil, f.Err
	}
	kind := it.Type
	if kind == "" {
		kind = "product"
	}
	out := make([]model.Record, 0, len(it.Variants))
	for i, v := range it.Variants {
		var vf fields
		vid := vf.id("id", v.ID)
		mod := parentMod
		if v.UpdatedAt != "" {
			if vm := vf.time("updated_at", v.UpdatedAt); vm.After(mod) {
				mod = vm
			}
		}
		vDeletedAt := vf.optTime("deleted_at", v.DeletedAt)
		vDeleted := vDeletedAt != nil
		mod = latest(mod, vDeletedAt)
		sell := vf.dec("sales_price", v.SalesPrice)
		cost := vf.dec("purchase_price", v.PurchasePrice)
		if vf.Err != nil {
			return nil, fmt.Errorf("variants[%d]: %w", i, vf.Err)
		}
		name := it.Name
		var attrs []string
		for _, a := range v.ConfigAttributes {
			if a.ConfigValue != "" {
				attrs = append(attrs, a.ConfigValue)
			}
		}
		if len(attrs) > 0 {
			name += " / " + strings.Join(attrs, " / ")
		}
		barcode := str(v.InternalBarcode)
		if barcode == "" {
			barcode = str(v.RegisteredBarcode)
		}
		p := &model.Product{SKU: str(v.SKU), Name: name, Description: it.AdditionalInfo, Category: it.CategoryName, Barcode: barcode,
			UnitOfMeasure: it.UOM, SellPrice: sell, CostPrice: cost, ParentVendorID: kind + "/" + parentID,
			IsSold: it.IsSellable != nil && *it.IsSellable, IsPurchased: it.IsPurchasable == nil || *it.IsPurchasable,
			Tracked: kind != "service", Obsolete: archived}
		if kind == "material" && it.IsPurchasable == nil {
			p.IsPurchased = true
		}
		out = append(out, m.record(model.KindProduct, vid, mod, archived || parentDeleted || vDeleted, rawVariant(raw, i), p))
	}
	return out, nil
}

// rawVariant keeps the whole parent document as Raw for its first variant
// and nothing for the others, so a page does not carry the parent N times.
func rawVariant(raw json.RawMessage, i int) json.RawMessage {
	if i == 0 {
		return raw
	}
	return nil
}

func (m *mapper) inventory(raw json.RawMessage) ([]model.Record, error) {
	var r kInventory
	if err := decode(raw, &r); err != nil {
		return nil, err
	}
	var f fields
	vid := f.id("variant_id", r.VariantID)
	lid := f.id("location_id", r.LocationID)
	onHand := f.qty("quantity_in_stock", r.QuantityInStock)
	committed := f.qty("quantity_committed", r.QuantityCommitted)
	expected := f.qty("quantity_expected", r.QuantityExpected)
	archived := f.optTime("archived_at", r.ArchivedAt) != nil
	if f.Err != nil {
		return nil, f.Err
	}
	st := &model.StockLevel{ProductVendorID: vid, Warehouse: lid, OnHand: onHand, Allocated: committed, Available: onHand - committed, OnOrder: expected}
	if r.Variant != nil {
		st.SKU = str(r.Variant.SKU)
	}
	if r.Location != nil {
		st.WarehouseName = r.Location.Name
	}
	// The row is the variant's stock: it goes with the variant (a deleted
	// or archived product's rows leave the list, and the sink marks them
	// deleted with it). The variant's record does not list its rows
	// (/inventory is its own list), so it carries no Children.
	return []model.Record{child(m.record(model.KindStockLevel, vid+"/"+lid, m.now, archived, raw, st), model.KindProduct, vid)}, nil
}

func (m *mapper) priceRow(raw json.RawMessage) ([]model.Record, error) {
	var r kPriceListRow
	if err := decode(raw, &r); err != nil {
		return nil, err
	}
	var f fields
	id := f.id("id", r.ID)
	f.id("price_list_id", r.PriceListID)
	vid := f.id("variant_id", r.VariantID)
	mod := f.time("updated_at", r.UpdatedAt)
	amount := f.dec("amount", r.Amount)
	price := f.dec("price", r.Price)
	if f.Err != nil {
		return nil, f.Err
	}
	list, ok := m.lists[r.PriceListID]
	if !ok {
		// A list created after the lists were read (or one the key may not
		// see): the row is kept aside and read again by later passes.
		return nil, &asideError{kind: model.KindPriceRule, id: id, mod: mod,
			reason: fmt.Sprintf("price_list_id %d names a price list that GET /price_lists did not return (created after the lists were read?)", r.PriceListID)}
	}
	if t, err := timestamp(list.UpdatedAt); err == nil && t.After(mod) {
		mod = t
	}
	from, errFrom := optTime(list.StartDate)
	to, errTo := optTime(list.EndDate)
	if err := errors.Join(errFrom, errTo); err != nil {
		return nil, &fieldErr{Field: "price list dates", Err: err}
	}
	listDeleted := list.DeletedAt != nil && *list.DeletedAt != ""
	inactive := (list.IsActive != nil && !*list.IsActive) || listDeleted
	rule := model.PriceRule{ProductVendorID: vid, PriceList: list.Name, Currency: str(r.Currency), ValidFrom: from, ValidTo: to}
	if rule.Currency == "" {
		rule.Currency = str(list.Currency)
	}
	switch {
	case price != "":
		rule.Price = price
	case r.AdjustmentMethod == "fixed" || r.AdjustmentMethod == "":
		rule.Price = amount
	}
	if r.AdjustmentMethod != "fixed" && r.AdjustmentMethod != "" {
		// A percentage or markup is relative to the variant's own price;
		// the canonical rule has no field for it, so it says what it is.
		rule.PriceTier = r.AdjustmentMethod + " " + string(amount)
	}
	// A rule is a price of the variant: it goes with the variant (the
	// sink marks it deleted when the variant is). The variant's record
	// does not list its rows (/price_list_rows is its own list), so it
	// carries no Children.
	custs := m.listCustomers[r.PriceListID]
	if len(custs) == 0 {
		return []model.Record{child(m.record(model.KindPriceRule, id, mod, inactive, raw, &rule), model.KindProduct, vid)}, nil
	}
	out := make([]model.Record, 0, len(custs))
	for _, c := range custs {
		rc := rule
		rc.CustomerVendorID = strconv.FormatInt(c.CustomerID, 10)
		cm := mod
		if t, err := timestamp(c.UpdatedAt); err == nil && t.After(cm) {
			cm = t
		}
		out = append(out, child(m.record(model.KindPriceRule, id+"/"+rc.CustomerVendorID, cm, inactive, raw, &rc), model.KindProduct, vid))
	}
	return out, nil
}

func (m *mapper) salesOrder(raw json.RawMessage) ([]model.Record, error) {
	var o kSalesOrder
	if err := decode(raw, &o); err != nil {
		return nil, err
	}
	var f fields
	id := f.id("id", o.ID)
	mod := f.time("updated_at", o.UpdatedAt)
	deletedAt := f.optTime("deleted_at", o.DeletedAt)
	deleted := deletedAt != nil
	mod = latest(mod, deletedAt)
	so := &model.SalesOrder{Number: o.OrderNo, CustomerVendorID: strconv.FormatInt(o.CustomerID, 10), Status: o.Status,
		OrderDate: f.optTime("order_created_date", o.OrderCreatedDate), RequiredDate: f.optTime("delivery_date", o.DeliveryDate),
		Currency: o.Currency, Total: f.dec("total", o.Total)}
	if o.LocationID > 0 {
		so.Warehouse = strconv.FormatInt(o.LocationID, 10)
	}
	n := 0
	for i, r := range o.Rows {
		name := fmt.Sprintf("sales_order_rows[%d].", i)
		if rd := f.optTime(name+"deleted_at", r.DeletedAt); rd != nil {
			// A row deleted without the order's updated_at moving still
			// makes a new version of the order (its lines changed).
			mod = latest(mod, rd)
			continue
		}
		n++
		l := model.Line{LineNo: n, ProductVendorID: f.id(name+"variant_id", r.VariantID), Quantity: f.qty(name+"quantity", r.Quantity),
			UnitPrice: f.dec(name+"price_per_unit", r.PricePerUnit), Discount: f.dec(name+"total_discount", r.TotalDiscount),
			LineTotal: f.dec(name+"total", r.Total)}
		if r.TaxRateID != nil {
			l.TaxCode = strconv.FormatInt(*r.TaxRateID, 10)
		}
		so.Lines = append(so.Lines, l)
	}
	if f.Err != nil {
		return nil, f.Err
	}
	return []model.Record{m.record(model.KindSalesOrder, id, mod, deleted, raw, so)}, nil
}

// asideError is a document the mapping cannot know although the vendor's
// documents allow it (a reference to a price list the connector has not
// read): it is set aside, never fatal to its page.
type asideError struct {
	kind   model.Kind
	id     string
	mod    time.Time
	reason string // without vendor text beyond ids (model.MaxReasonLen)
}

func (e *asideError) Error() string { return e.reason }

// aside is a set-aside document with its reason.
type aside struct {
	raw json.RawMessage
	err *asideError
}

// mapAll maps every document of a page with fn, naming the record that
// fails. Documents fn sets aside (an *asideError) are returned apart; any
// other error fails the page.
func mapAll(data []json.RawMessage, fn func(json.RawMessage) ([]model.Record, error)) ([]model.Record, []aside, error) {
	out := make([]model.Record, 0, len(data))
	var set []aside
	for i, raw := range data {
		recs, a, err := mapOne(raw, fn)
		if err != nil {
			return nil, nil, fmt.Errorf("record %d: %w", i, err)
		}
		if a != nil {
			set = append(set, *a)
		}
		out = append(out, recs...)
	}
	return out, set, nil
}

// mapOne maps one document: its records, or the document set aside, or the
// error that fails its page.
func mapOne(raw json.RawMessage, fn func(json.RawMessage) ([]model.Record, error)) ([]model.Record, *aside, error) {
	if t := bytes.TrimSpace(raw); len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return nil, nil, fmt.Errorf("empty document")
	}
	recs, err := fn(raw)
	var ae *asideError
	if errors.As(err, &ae) {
		if len(ae.reason) > model.MaxReasonLen {
			ae.reason = ae.reason[:model.MaxReasonLen]
		}
		return nil, &aside{raw: raw, err: ae}, nil
	}
	return recs, nil, err
}
