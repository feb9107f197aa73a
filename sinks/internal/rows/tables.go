package rows

import (
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
)

// Tables describes every kind's table, in sync order (model.Kinds). Adding a
// typed column means a new migration in each database sink and a column here
// with that migration's version as Since.
var Tables = []Table{
	table[model.TaxRate](model.KindTaxRate,
		text("code", 1, func(p *model.TaxRate) string { return p.Code }),
		text("name", 1, func(p *model.TaxRate) string { return p.Name }),
		float("rate", 1, func(p *model.TaxRate) float64 { return p.Rate }),
	),
	table[model.Currency](model.KindCurrency,
		text("code", 1, func(p *model.Currency) string { return p.Code }),
		text("name", 1, func(p *model.Currency) string { return p.Name }),
		float("exchange_rate", 1, func(p *model.Currency) float64 { return p.ExchangeRate }),
	),
	table[model.Warehouse](model.KindWarehouse,
		text("code", 1, func(p *model.Warehouse) string { return p.Code }),
		text("name", 1, func(p *model.Warehouse) string { return p.Name }),
	),
	table[model.SalesPerson](model.KindSalesPerson,
		text("code", 1, func(p *model.SalesPerson) string { return p.Code }),
		text("name", 1, func(p *model.SalesPerson) string { return p.Name }),
		text("email", 1, func(p *model.SalesPerson) string { return p.Email }),
	),
	table[model.Supplier](model.KindSupplier,
		text("code", 1, func(p *model.Supplier) string { return p.Code }),
		text("name", 1, func(p *model.Supplier) string { return p.Name }),
		text("email", 1, func(p *model.Supplier) string { return p.Email }),
		text("phone", 1, func(p *model.Supplier) string { return p.Phone }),
		text("currency", 1, func(p *model.Supplier) string { return p.Currency }),
	),
	table[model.Customer](model.KindCustomer,
		text("code", 1, func(p *model.Customer) string { return p.Code }),
		text("name", 1, func(p *model.Customer) string { return p.Name }),
		text("email", 1, func(p *model.Customer) string { return p.Email }),
		text("phone", 1, func(p *model.Customer) string { return p.Phone }),
		text("currency", 1, func(p *model.Customer) string { return p.Currency }),
		text("price_tier", 1, func(p *model.Customer) string { return p.PriceTier }),
		text("sales_person", 1, func(p *model.Customer) string { return p.SalesPerson }),
		text("status", 1, func(p *model.Customer) string { return p.Status }),
		text("tax_number", 2, func(p *model.Customer) string { return p.TaxNumber }),
	),
	table[model.Contact](model.KindContact,
		text("customer_vendor_id", 1, func(p *model.Contact) string { return p.CustomerVendorID }),
		text("first_name", 1, func(p *model.Contact) string { return p.FirstName }),
		text("last_name", 1, func(p *model.Contact) string { return p.LastName }),
		text("email", 1, func(p *model.Contact) string { return p.Email }),
		text("phone", 1, func(p *model.Contact) string { return p.Phone }),
		text("role", 1, func(p *model.Contact) string { return p.Role }),
	),
	table[model.Product](model.KindProduct,
		text("sku", 1, func(p *model.Product) string { return p.SKU }),
		text("name", 1, func(p *model.Product) string { return p.Name }),
		text("category", 1, func(p *model.Product) string { return p.Category }),
		text("unit_of_measure", 1, func(p *model.Product) string { return p.UnitOfMeasure }),
		money("sell_price", 1, func(p *model.Product) model.Decimal { return p.SellPrice }),
		money("cost_price", 1, func(p *model.Product) model.Decimal { return p.CostPrice }),
		text("currency", 1, func(p *model.Product) string { return p.Currency }),
		text("parent_vendor_id", 1, func(p *model.Product) string { return p.ParentVendorID }),
		boolean("is_sold", 1, func(p *model.Product) bool { return p.IsSold }),
		boolean("is_purchased", 1, func(p *model.Product) bool { return p.IsPurchased }),
		boolean("tracked", 1, func(p *model.Product) bool { return p.Tracked }),
		boolean("obsolete", 1, func(p *model.Product) bool { return p.Obsolete }),
		text("barcode", 2, func(p *model.Product) string { return p.Barcode }),
	),
	table[model.StockLevel](model.KindStockLevel,
		text("product_vendor_id", 1, func(p *model.StockLevel) string { return p.ProductVendorID }),
		text("sku", 1, func(p *model.StockLevel) string { return p.SKU }),
		text("warehouse", 1, func(p *model.StockLevel) string { return p.Warehouse }),
		text("warehouse_name", 1, func(p *model.StockLevel) string { return p.WarehouseName }),
		float("on_hand", 1, func(p *model.StockLevel) float64 { return p.OnHand }),
		float("allocated", 1, func(p *model.StockLevel) float64 { return p.Allocated }),
		float("available", 1, func(p *model.StockLevel) float64 { return p.Available }),
		float("on_order", 1, func(p *model.StockLevel) float64 { return p.OnOrder }),
	),
	table[model.PriceRule](model.KindPriceRule,
		text("product_vendor_id", 1, func(p *model.PriceRule) string { return p.ProductVendorID }),
		text("sku", 1, func(p *model.PriceRule) string { return p.SKU }),
		text("customer_vendor_id", 1, func(p *model.PriceRule) string { return p.CustomerVendorID }),
		text("customer_code", 1, func(p *model.PriceRule) string { return p.CustomerCode }),
		text("price_tier", 1, func(p *model.PriceRule) string { return p.PriceTier }),
		text("price_list", 1, func(p *model.PriceRule) string { return p.PriceList }),
		money("price", 1, func(p *model.PriceRule) model.Decimal { return p.Price }),
		text("currency", 1, func(p *model.PriceRule) string { return p.Currency }),
		float("min_quantity", 1, func(p *model.PriceRule) float64 { return p.MinQuantity }),
		timestamp("valid_from", 1, func(p *model.PriceRule) *time.Time { return p.ValidFrom }),
		timestamp("valid_to", 1, func(p *model.PriceRule) *time.Time { return p.ValidTo }),
	),
	table[model.SalesOrder](model.KindSalesOrder,
		text("number", 1, func(p *model.SalesOrder) string { return p.Number }),
		text("customer_vendor_id", 1, func(p *model.SalesOrder) string { return p.CustomerVendorID }),
		text("customer_code", 1, func(p *model.SalesOrder) string { return p.CustomerCode }),
		text("status", 1, func(p *model.SalesOrder) string { return p.Status }),
		timestamp("order_date", 1, func(p *model.SalesOrder) *time.Time { return p.OrderDate }),
		timestamp("required_date", 1, func(p *model.SalesOrder) *time.Time { return p.RequiredDate }),
		text("warehouse", 1, func(p *model.SalesOrder) string { return p.Warehouse }),
		text("currency", 1, func(p *model.SalesOrder) string { return p.Currency }),
		money("sub_total", 1, func(p *model.SalesOrder) model.Decimal { return p.SubTotal }),
		money("tax_total", 1, func(p *model.SalesOrder) model.Decimal { return p.TaxTotal }),
		money("total", 1, func(p *model.SalesOrder) model.Decimal { return p.Total }),
	),
	table[model.Invoice](model.KindInvoice,
		text("number", 1, func(p *model.Invoice) string { return p.Number }),
		text("type", 1, func(p *model.Invoice) string { return p.Type }),
		text("customer_vendor_id", 1, func(p *model.Invoice) string { return p.CustomerVendorID }),
		text("customer_code", 1, func(p *model.Invoice) string { return p.CustomerCode }),
		text("sales_order_number", 1, func(p *model.Invoice) string { return p.SalesOrderNumber }),
		text("status", 1, func(p *model.Invoice) string { return p.Status }),
		timestamp("issue_date", 1, func(p *model.Invoice) *time.Time { return p.IssueDate }),
		timestamp("due_date", 1, func(p *model.Invoice) *time.Time { return p.DueDate }),
		text("currency", 1, func(p *model.Invoice) string { return p.Currency }),
		money("sub_total", 1, func(p *model.Invoice) model.Decimal { return p.SubTotal }),
		money("tax_total", 1, func(p *model.Invoice) model.Decimal { return p.TaxTotal }),
		money("total", 1, func(p *model.Invoice) model.Decimal { return p.Total }),
		money("amount_due", 1, func(p *model.Invoice) model.Decimal { return p.AmountDue }),
	),
	table[model.CreditNote](model.KindCreditNote,
		text("number", 1, func(p *model.CreditNote) string { return p.Number }),
		text("type", 1, func(p *model.CreditNote) string { return p.Type }),
		text("customer_vendor_id", 1, func(p *model.CreditNote) string { return p.CustomerVendorID }),
		text("customer_code", 1, func(p *model.CreditNote) string { return p.CustomerCode }),
		text("invoice_number", 1, func(p *model.CreditNote) string { return p.InvoiceNumber }),
		text("status", 1, func(p *model.CreditNote) string { return p.Status }),
		timestamp("issue_date", 1, func(p *model.CreditNote) *time.Time { return p.IssueDate }),
		text("currency", 1, func(p *model.CreditNote) string { return p.Currency }),
		money("sub_total", 1, func(p *model.CreditNote) model.Decimal { return p.SubTotal }),
		money("tax_total", 1, func(p *model.CreditNote) model.Decimal { return p.TaxTotal }),
		money("total", 1, func(p *model.CreditNote) model.Decimal { return p.Total }),
	),
	table[model.Shipment](model.KindShipment,
		text("number", 1, func(p *model.Shipment) string { return p.Number }),
		text("sales_order_number", 1, func(p *model.Shipment) string { return p.SalesOrderNumber }),
		text("status", 1, func(p *model.Shipment) string { return p.Status }),
		timestamp("shipped_date", 1, func(p *model.Shipment) *time.Time { return p.ShippedDate }),
		text("carrier", 1, func(p *model.Shipment) string { return p.Carrier }),
		text("tracking_number", 1, func(p *model.Shipment) string { return p.TrackingNumber }),
		text("warehouse", 1, func(p *model.Shipment) string { return p.Warehouse }),
	),
}

// typedCol is a column bound to the payload type P.
type typedCol[P any] struct {
	name  string
	typ   Type
	since int
	value func(*P) (any, error)
}

// payload is the constraint of the canonical payload types: a pointer to P
// implements model.Payload.
type payload[P any] interface {
	*P
	model.Payload
}

func table[P any, PP payload[P]](k model.Kind, cols ...typedCol[P]) Table {
	t := Table{
		Kind:       k,
		Name:       string(k),
		newPayload: func() model.Payload { return PP(new(P)) },
		is: func(p model.Payload) bool {
			q, ok := p.(PP)
			return ok && q != nil
		},
	}
	for _, c := range cols {
		f := c.value
		t.Columns = append(t.Columns, Column{
			Name: c.name, Type: c.typ, Since: c.since,
			value: func(p model.Payload) (any, error) { return f((*P)(p.(PP))) },
		})
	}
	return t
}

func text[P any](name string, since int, f func(*P) string) typedCol[P] {
	return typedCol[P]{name, Text, since, func(p *P) (any, error) {
		if s := f(p); s != "" {
			return s, nil
		}
		return nil, nil
	}}
}

func boolean[P any](name string, since int, f func(*P) bool) typedCol[P] {
	return typedCol[P]{name, Bool, since, func(p *P) (any, error) { return f(p), nil }}
}

func float[P any](name string, since int, f func(*P) float64) typedCol[P] {
	return typedCol[P]{name, Float, since, func(p *P) (any, error) { return f(p), nil }}
}

func money[P any](name string, since int, f func(*P) model.Decimal) typedCol[P] {
	return typedCol[P]{name, Money, since, func(p *P) (any, error) {
		d := f(p)
		if d == "" {
			return nil, nil
		}
		if err := ValidDecimal(d); err != nil {
			return nil, err
		}
		return string(d), nil
	}}
}

func timestamp[P any](name string, since int, f func(*P) *time.Time) typedCol[P] {
	return typedCol[P]{name, Time, since, func(p *P) (any, error) {
		t := f(p)
		if t == nil || t.IsZero() {
			return nil, nil
		}
		if y := t.UTC().Year(); y < 1 || y > 9999 {
			return nil, errTimeRange
		}
		return StoredTime(*t), nil
	}}
}
