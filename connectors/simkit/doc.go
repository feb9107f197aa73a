// Package simkit holds what every vendor simulator shares: a deterministic,
// seeded dataset of one company's business (products with stock in several
// warehouses and special prices, customers with contacts, orders, invoices,
// credit notes and reference data) that tests can change while a run is under
// way, a rate limiter with the vendors' window semantics on a compressible
// clock, fault injection, and request statistics.
//
// Each vendor simulator (connectors/<vendor>/sim) renders the dataset in its
// vendor's own documents, envelopes, paging and date formats. Sharing the
// dataset means every connector is tested against the same business, and the
// end-to-end tests know what the CRM must hold.
package simkit
