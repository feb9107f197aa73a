// Package sinktest is the conformance suite every sinks.Sink runs: the rules
// of the Sink contract (idempotent, never backwards, content decides, set
// aside until stored, atomic per batch, companies apart, safe for concurrent
// use, tombstones not removals, children follow their parent, Delete, Live
// and Purge) tested once and applied to each sink. It also builds the
// sample records the sinks' tests and benchmarks write.
package sinktest

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
)

// Base is the modified time of version 0 of a sample record.
var Base = time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)

// At returns the modified time of version v: Base plus v minutes and a few
// microseconds, so that times carry sub-second digits.
func At(v int) time.Time {
	return Base.Add(time.Duration(v)*time.Minute + time.Duration(v%7)*time.Microsecond*123)
}

// Record returns a sample record of a kind with every payload field filled.
// Its content is a function of (company, vendor, id, version), so two
// versions of a record differ and equal versions are equal.
func Record(kind model.Kind, company, vendor, id string, version int) model.Record {
	tag := fmt.Sprintf("%s-v%d", id, version)
	at := At(version)
	day := at.Truncate(24 * time.Hour)
	later := day.Add(72 * time.Hour)
	money := func(cents int) model.Decimal {
		return model.Decimal(fmt.Sprintf("%d.%02d", cents/100, cents%100))
	}
	n := version + len(id)
	lines := []model.Line{{LineNo: 1, ProductVendorID: "p-" + id, SKU: "SKU-" + tag, Description: "line " + tag, Quantity: float64(n) + 0.5, UnitPrice: money(1999 + n), Discount: "0", Tax: money(300), LineTotal: money(4300 + n), TaxCode: "GST"}}
	var data model.Payload
	switch kind {
	case model.KindTaxRate:
		data = &model.TaxRate{Code: "T" + tag, Name: "Tax " + tag, Rate: 15 + float64(version)/4}
	case model.KindCurrency:
		data = &model.Currency{Code: "C" + tag, Name: "Currency " + tag, ExchangeRate: 1.25 + float64(version)/100}
	case model.KindWarehouse:
		data = &model.Warehouse{Code: "W" + tag, Name: "Warehouse " + tag, Address: &model.Address{Line1: "1 Dock Rd", City: "Auckland", Country: "NZ"}}
	case model.KindSalesPerson:
		data = &model.SalesPerson{Code: "SP" + tag, Name: "Sales " + tag, Email: tag + "@example.com"}
	case model.KindSupplier:
		data = &model.Supplier{Code: "S" + tag, Name: "Supplier " + tag, Email: "s@example.com", Phone: "+64 9 555", Currency: "NZD"}
	case model.KindCustomer:
		data = &model.Customer{Code: "CU" + tag, Name: "Customer " + tag, Email: "c@example.com", Phone: "+64 9 556", Currency: "NZD", TaxNumber: "TN" + tag, PriceTier: "Tier 2", SalesPerson: "SP1", Status: "active", Addresses: []model.Address{{Type: "billing", Line1: "2 Queen St", City: "Auckland", PostalCode: "1010", Country: "NZ"}}}
	case model.KindContact:
		data = &model.Contact{CustomerVendorID: "cu-" + id, FirstName: "Ana", LastName: "Contact " + tag, Email: "a@example.com", Phone: "021", Role: "buyer"}
	case model.KindProduct:
		data = &model.Product{SKU: "SKU-" + tag, Name: "Product " + tag, Description: "A product", Category: "Widgets", Barcode: "94" + tag, UnitOfMeasure: "EA", SellPrice: money(2999 + n), CostPrice: money(1250 + n), Currency: "NZD", Prices: []model.Price{{Tier: "Tier 1", Amount: money(2899 + n), Currency: "NZD"}}, ParentVendorID: "", IsSold: true, IsPurchased: version%2 == 0, Tracked: true, Obsolete: false}
	case model.KindStockLevel:
		data = &model.StockLevel{ProductVendorID: "p-" + id, SKU: "SKU-" + tag, Warehouse: "MAIN", WarehouseName: "Main", OnHand: float64(n) * 2.5, Allocated: float64(n), Available: float64(n) * 1.5, OnOrder: 3}
	case model.KindPriceRule:
		data = &model.PriceRule{ProductVendorID: "p-" + id, SKU: "SKU-" + tag, CustomerVendorID: "cu-1", CustomerCode: "CU1", PriceTier: "Tier 2", PriceList: "Trade", Price: money(1899 + n), Currency: "NZD", MinQuantity: 10, ValidFrom: &day, ValidTo: &later}
	case model.KindSalesOrder:
		data = &model.SalesOrder{Number: "SO-" + tag, CustomerVendorID: "cu-1", CustomerCode: "CU1", Status: "Placed", OrderDate: &day, RequiredDate: &later, Warehouse: "MAIN", Currency: "NZD", SubTotal: money(4000 + n), TaxTotal: money(600), Total: money(4600 + n), Lines: lines}
	case model.KindInvoice:
		data = &model.Invoice{Number: "INV-" + tag, Type: "invoice", CustomerVendorID: "cu-1", CustomerCode: "CU1", SalesOrderNumber: "SO-" + tag, Status: "Open", IssueDate: &day, DueDate: &later, Currency: "NZD", SubTotal: money(4000 + n), TaxTotal: money(600), Total: money(4600 + n), AmountDue: money(4600 + n), Lines: lines}
	case model.KindCreditNote:
		data = &model.CreditNote{Number: "CN-" + tag, Type: "credit", CustomerVendorID: "cu-1", CustomerCode: "CU1", InvoiceNumber: "INV-1", Status: "Open", IssueDate: &day, Currency: "NZD", SubTotal: money(100 + n), TaxTotal: money(15), Total: money(115 + n), Lines: lines}
	case model.KindShipment:
		data = &model.Shipment{Number: "SH-" + tag, SalesOrderNumber: "SO-1", Status: "Shipped", ShippedDate: &day, Carrier: "NZ Post", TrackingNumber: "TRK" + tag, Warehouse: "MAIN"}
	default:
		// An unknown kind gets no payload: sinks reject it.
	}
	raw, _ := json.Marshal(map[string]any{"Guid": id, "Version": version, "Company": company, "LastModifiedOn": at.Format(time.RFC3339Nano), "Tag": tag})
	return model.Record{
		Company: company, Vendor: vendor, Kind: kind, VendorID: id,
		ModifiedAt: at, Deleted: version%5 == 4, Raw: raw, Data: data,
	}
}

// Products returns n products of one company, ids "p0000001"…, all at the
// given version: what the benchmarks write.
func Products(company, vendor string, n, version int) []model.Record {
	out := make([]model.Record, n)
	for i := range out {
		out[i] = Record(model.KindProduct, company, vendor, fmt.Sprintf("p%07d", i+1), version)
	}
	return out
}

// AllKinds returns one record of every kind for a company, with ids id-<kind>.
func AllKinds(company, vendor, id string, version int) []model.Record {
	out := make([]model.Record, 0, len(model.Kinds))
	for _, k := range model.Kinds {
		out = append(out, Record(k, company, vendor, id, version))
	}
	return out
}
