package model

import "time"

// Price is one price of a product at a named tier or list.
type Price struct {
	Tier     string  `json:"tier"`
	Amount   Decimal `json:"amount"`
	Currency string  `json:"currency,omitempty"`
}

// Product is an item the company sells or buys.
type Product struct {
	SKU           string  `json:"sku"`
	Name          string  `json:"name"`
	Description   string  `json:"description,omitempty"`
	Category      string  `json:"category,omitempty"`
	Barcode       string  `json:"barcode,omitempty"`
	UnitOfMeasure string  `json:"unitOfMeasure,omitempty"`
	SellPrice     Decimal `json:"sellPrice,omitempty"`
	CostPrice     Decimal `json:"costPrice,omitempty"`
	Currency      string  `json:"currency,omitempty"`
	Prices        []Price `json:"prices,omitempty"`
	// ParentVendorID links a variant to its parent product, where the vendor
	// has one.
	ParentVendorID string `json:"parentVendorId,omitempty"`
	IsSold         bool   `json:"isSold"`
	IsPurchased    bool   `json:"isPurchased"`
	// Tracked is set when the vendor tracks stock for the product.
	Tracked bool `json:"tracked"`
	// Obsolete mirrors the vendor's obsolete/inactive/archived marker; the
	// record's Deleted flag is set too.
	Obsolete bool `json:"obsolete"`
}

// StockLevel is the stock of one product in one warehouse.
type StockLevel struct {
	ProductVendorID string  `json:"productVendorId"`
	SKU             string  `json:"sku"`
	Warehouse       string  `json:"warehouse"`
	WarehouseName   string  `json:"warehouseName,omitempty"`
	OnHand          float64 `json:"onHand"`
	Allocated       float64 `json:"allocated"`
	Available       float64 `json:"available"`
	OnOrder         float64 `json:"onOrder,omitempty"`
}

// PriceRule is a special price: for one customer, one price tier or price
// list, optionally from a minimum quantity and within dates.
type PriceRule struct {
	ProductVendorID  string     `json:"productVendorId"`
	SKU              string     `json:"sku"`
	CustomerVendorID string     `json:"customerVendorId,omitempty"`
	CustomerCode     string     `json:"customerCode,omitempty"`
	PriceTier        string     `json:"priceTier,omitempty"`
	PriceList        string     `json:"priceList,omitempty"`
	Price            Decimal    `json:"price"`
	Currency         string     `json:"currency,omitempty"`
	MinQuantity      float64    `json:"minQuantity,omitempty"`
	ValidFrom        *time.Time `json:"validFrom,omitempty"`
	ValidTo          *time.Time `json:"validTo,omitempty"`
}

// Address is a postal address.
type Address struct {
	Type       string `json:"type,omitempty"`
	Line1      string `json:"line1,omitempty"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city,omitempty"`
	Region     string `json:"region,omitempty"`
	PostalCode string `json:"postalCode,omitempty"`
	Country    string `json:"country,omitempty"`
}

// Customer is a party the company sells to.
type Customer struct {
	Code        string    `json:"code"`
	Name        string    `json:"name"`
	Email       string    `json:"email,omitempty"`
	Phone       string    `json:"phone,omitempty"`
	Currency    string    `json:"currency,omitempty"`
	TaxNumber   string    `json:"taxNumber,omitempty"`
	PriceTier   string    `json:"priceTier,omitempty"`
	SalesPerson string    `json:"salesPerson,omitempty"`
	Status      string    `json:"status,omitempty"`
	Addresses   []Address `json:"addresses,omitempty"`
}

// Contact is a person at a customer or supplier.
type Contact struct {
	CustomerVendorID string `json:"customerVendorId"`
	FirstName        string `json:"firstName,omitempty"`
	LastName         string `json:"lastName,omitempty"`
	Email            string `json:"email,omitempty"`
	Phone            string `json:"phone,omitempty"`
	Role             string `json:"role,omitempty"`
}

// Line is one line of an order, invoice or credit note.
type Line struct {
	LineNo          int     `json:"lineNo"`
	ProductVendorID string  `json:"productVendorId,omitempty"`
	SKU             string  `json:"sku,omitempty"`
	Description     string  `json:"description,omitempty"`
	Quantity        float64 `json:"quantity"`
	UnitPrice       Decimal `json:"unitPrice,omitempty"`
	Discount        Decimal `json:"discount,omitempty"`
	Tax             Decimal `json:"tax,omitempty"`
	LineTotal       Decimal `json:"lineTotal,omitempty"`
	TaxCode         string  `json:"taxCode,omitempty"`
}

// SalesOrder is a customer's order.
type SalesOrder struct {
	Number           string     `json:"number"`
	CustomerVendorID string     `json:"customerVendorId,omitempty"`
	CustomerCode     string     `json:"customerCode,omitempty"`
	Status           string     `json:"status"`
	OrderDate        *time.Time `json:"orderDate,omitempty"`
	RequiredDate     *time.Time `json:"requiredDate,omitempty"`
	Warehouse        string     `json:"warehouse,omitempty"`
	Currency         string     `json:"currency,omitempty"`
	SubTotal         Decimal    `json:"subTotal,omitempty"`
	TaxTotal         Decimal    `json:"taxTotal,omitempty"`
	Total            Decimal    `json:"total,omitempty"`
	Lines            []Line     `json:"lines,omitempty"`
}

// Invoice is a sales invoice or, with Type "bill", a supplier bill.
type Invoice struct {
	Number           string     `json:"number"`
	Type             string     `json:"type,omitempty"`
	CustomerVendorID string     `json:"customerVendorId,omitempty"`
	CustomerCode     string     `json:"customerCode,omitempty"`
	SalesOrderNumber string     `json:"salesOrderNumber,omitempty"`
	Status           string     `json:"status"`
	IssueDate        *time.Time `json:"issueDate,omitempty"`
	DueDate          *time.Time `json:"dueDate,omitempty"`
	Currency         string     `json:"currency,omitempty"`
	SubTotal         Decimal    `json:"subTotal,omitempty"`
	TaxTotal         Decimal    `json:"taxTotal,omitempty"`
	Total            Decimal    `json:"total,omitempty"`
	AmountDue        Decimal    `json:"amountDue,omitempty"`
	Lines            []Line     `json:"lines,omitempty"`
}

// CreditNote is a credit issued to a customer (or received from a supplier).
type CreditNote struct {
	Number           string     `json:"number"`
	Type             string     `json:"type,omitempty"`
	CustomerVendorID string     `json:"customerVendorId,omitempty"`
	CustomerCode     string     `json:"customerCode,omitempty"`
	InvoiceNumber    string     `json:"invoiceNumber,omitempty"`
	Status           string     `json:"status"`
	IssueDate        *time.Time `json:"issueDate,omitempty"`
	Currency         string     `json:"currency,omitempty"`
	SubTotal         Decimal    `json:"subTotal,omitempty"`
	TaxTotal         Decimal    `json:"taxTotal,omitempty"`
	Total            Decimal    `json:"total,omitempty"`
	Lines            []Line     `json:"lines,omitempty"`
}

// Shipment is a dispatch of (part of) a sales order.
type Shipment struct {
	Number           string     `json:"number"`
	SalesOrderNumber string     `json:"salesOrderNumber,omitempty"`
	Status           string     `json:"status,omitempty"`
	ShippedDate      *time.Time `json:"shippedDate,omitempty"`
	Carrier          string     `json:"carrier,omitempty"`
	TrackingNumber   string     `json:"trackingNumber,omitempty"`
	Warehouse        string     `json:"warehouse,omitempty"`
}

// TaxRate is a tax code and its rate in percent.
type TaxRate struct {
	Code string  `json:"code"`
	Name string  `json:"name,omitempty"`
	Rate float64 `json:"rate"`
}

// Currency is a currency the company trades in.
type Currency struct {
	Code         string  `json:"code"`
	Name         string  `json:"name,omitempty"`
	ExchangeRate float64 `json:"exchangeRate,omitempty"`
}

// Warehouse is a stock location.
type Warehouse struct {
	Code    string   `json:"code"`
	Name    string   `json:"name"`
	Address *Address `json:"address,omitempty"`
}

// SalesPerson is an employee who sells.
type SalesPerson struct {
	Code  string `json:"code"`
	Name  string `json:"name"`
	Email string `json:"email,omitempty"`
}

// Supplier is a party the company buys from.
type Supplier struct {
	Code     string `json:"code"`
	Name     string `json:"name"`
	Email    string `json:"email,omitempty"`
	Phone    string `json:"phone,omitempty"`
	Currency string `json:"currency,omitempty"`
}

func (*Product) Kind() Kind     { return KindProduct }
func (*StockLevel) Kind() Kind  { return KindStockLevel }
func (*PriceRule) Kind() Kind   { return KindPriceRule }
func (*Customer) Kind() Kind    { return KindCustomer }
func (*Contact) Kind() Kind     { return KindContact }
func (*SalesOrder) Kind() Kind  { return KindSalesOrder }
func (*Invoice) Kind() Kind     { return KindInvoice }
func (*CreditNote) Kind() Kind  { return KindCreditNote }
func (*Shipment) Kind() Kind    { return KindShipment }
func (*TaxRate) Kind() Kind     { return KindTaxRate }
func (*Currency) Kind() Kind    { return KindCurrency }
func (*Warehouse) Kind() Kind   { return KindWarehouse }
func (*SalesPerson) Kind() Kind { return KindSalesPerson }
func (*Supplier) Kind() Kind    { return KindSupplier }
