// Package model holds the canonical CRM-side records: the shared vocabulary of
// the sync engine, the connectors (which map vendor documents into it) and the
// sinks (which store it). Change it deliberately: every connector's golden
// tests and every sink's schema follow it.
package model

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// Kind names a canonical record type. It is also the name users write in
// spec.connector.entities and the key of the per-entity status.
type Kind string

// The canonical kinds, in the order a run syncs them: reference data first,
// then parties, products and their stock and prices, then documents.
const (
	KindTaxRate     Kind = "tax_rates"
	KindCurrency    Kind = "currencies"
	KindWarehouse   Kind = "warehouses"
	KindSalesPerson Kind = "sales_people"
	KindSupplier    Kind = "suppliers"
	KindCustomer    Kind = "customers"
	KindContact     Kind = "contacts"
	KindProduct     Kind = "products"
	KindStockLevel  Kind = "stock_levels"
	KindPriceRule   Kind = "price_rules"
	KindSalesOrder  Kind = "sales_orders"
	KindInvoice     Kind = "invoices"
	KindCreditNote  Kind = "credit_notes"
	KindShipment    Kind = "shipments"
)

// Kinds lists every canonical kind in sync order.
var Kinds = []Kind{
	KindTaxRate, KindCurrency, KindWarehouse, KindSalesPerson, KindSupplier,
	KindCustomer, KindContact, KindProduct, KindStockLevel, KindPriceRule,
	KindSalesOrder, KindInvoice, KindCreditNote, KindShipment,
}

// Order returns the position of k in the sync order, or len(Kinds) for an
// unknown kind.
func (k Kind) Order() int {
	for i, x := range Kinds {
		if x == k {
			return i
		}
	}
	return len(Kinds)
}

// Valid reports whether k is a canonical kind.
func (k Kind) Valid() bool { return k.Order() < len(Kinds) }

// Decimal is an exact decimal number in its canonical text form ("12.5",
// "-0.01"), used for money so that no amount passes through a float. The
// empty Decimal means "not given".
type Decimal string

// Record is one canonical record with the metadata every sink stores.
type Record struct {
	// Company is the ErpSync's spec.companyId: records of different companies
	// never overwrite each other, even with equal vendor ids.
	Company string `json:"company"`
	// Vendor is the connector type (unleashed, cin7core, ...).
	Vendor string `json:"vendor"`
	// Kind is the canonical kind of Data.
	Kind Kind `json:"kind"`
	// VendorID is the record's identity in the vendor's system (a GUID, an id,
	// or a composite such as "<product>/<warehouse>" for stock levels).
	VendorID string `json:"vendorId"`
	// ModifiedAt is the vendor's last-modified time of the record; sinks never
	// replace a record with one whose ModifiedAt is older.
	ModifiedAt time.Time `json:"modifiedAt"`
	// Deleted is set for records the vendor marks deleted, obsolete, inactive,
	// archived or voided.
	Deleted bool `json:"deleted"`
	// Parent is the vendor id of the document this record was read inside
	// (the customer of a contact, the product of a stock level, price rule
	// or variant, the order of a line), empty for a record read on its own.
	// Sinks store it, so that children gone from a later version of the
	// parent (see Children) and children of a deleted parent can be marked
	// deleted.
	Parent string `json:"parent,omitempty"`
	// ParentKind is the kind of the Parent record (vendor ids are unique
	// only within a kind); set whenever Parent is.
	ParentKind Kind `json:"parentKind,omitempty"`
	// Children, on a record whose vendor document lists every child of some
	// kinds, names those children now (see ChildSet). Nil means the record
	// says nothing about children: none is deleted.
	Children []ChildSet `json:"children,omitempty"`
	// DeletedVia says how a deletion was learned; empty on a live record
	// and, for a record the vendor marks deleted, read as DeletedByVendor.
	DeletedVia DeletionSource `json:"deletedVia,omitempty"`
	// Raw is the vendor's own JSON document for the record.
	Raw json.RawMessage `json:"raw,omitempty"`
	// Data is the typed canonical payload: one of the types in this package
	// (*Product, *StockLevel, ...), matching Kind.
	Data Payload `json:"data"`
}

// Payload is implemented by every canonical payload type.
type Payload interface {
	// Kind returns the canonical kind of the payload.
	Kind() Kind
}

// Key identifies a record in a sink.
type Key struct {
	Company  string
	Vendor   string
	Kind     Kind
	VendorID string
}

// ParentKey returns the identity of the record's parent, and false for a
// record read on its own.
func (r *Record) ParentKey() (Key, bool) {
	if r.Parent == "" || r.ParentKind == "" {
		return Key{}, false
	}
	return Key{Company: r.Company, Vendor: r.Vendor, Kind: r.ParentKind, VendorID: r.Parent}, true
}

// Key returns the record's identity.
func (r *Record) Key() Key {
	return Key{Company: r.Company, Vendor: r.Vendor, Kind: r.Kind, VendorID: r.VendorID}
}

// ContentHash returns a hash of what a record says: its kind, its deleted
// flag, its canonical payload and the vendor's document. Sinks store it and
// write a record whose ModifiedAt equals the stored one when the hash
// differs (a change the vendor did not stamp), and skip a newer record whose
// hash is equal (nothing changed; kinds without a vendor modified time are
// stamped with the response's date). It returns an error only for a payload
// that does not encode.
func (r *Record) ContentHash() (string, error) {
	data, err := json.Marshal(r.Data)
	if err != nil {
		return "", err
	}
	return HashContent(r.Kind, r.Deleted, data, r.Raw), nil
}

// HashContent is ContentHash for a sink that has already encoded the
// payload: data is the JSON of Record.Data, raw Record.Raw.
func HashContent(kind Kind, deleted bool, data, raw []byte) string {
	h := sha256.New()
	var n [8]byte
	for _, part := range [][]byte{[]byte(kind), data, raw} {
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	if deleted {
		h.Write([]byte{1})
	} else {
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// SetAside is a vendor document that the connector could not map: it is
// kept with its raw document and the reason, beside the records, until a
// later pass maps it (a sink's Write of the same key removes it).
type SetAside struct {
	Company  string `json:"company"`
	Vendor   string `json:"vendor"`
	Kind     Kind   `json:"kind"`
	VendorID string `json:"vendorId"`
	// ModifiedAt is the vendor's modified time of the document, zero where
	// it could not be read.
	ModifiedAt time.Time `json:"modifiedAt"`
	// Reason says why it was set aside, in a sentence without vendor text
	// longer than a field name or value (bounded by MaxReasonLen).
	Reason string          `json:"reason"`
	Raw    json.RawMessage `json:"raw,omitempty"`
}

// MaxReasonLen bounds SetAside.Reason.
const MaxReasonLen = 300

// Key returns the identity of the record it stands for.
func (s *SetAside) Key() Key {
	return Key{Company: s.Company, Vendor: s.Vendor, Kind: s.Kind, VendorID: s.VendorID}
}

// NewSetAside builds a set-aside document with its raw document copied and
// its reason cut to MaxReasonLen on a character boundary.
func NewSetAside(company, vendor string, kind Kind, vendorID string, modifiedAt time.Time, raw []byte, reason string) SetAside {
	return SetAside{Company: company, Vendor: vendor, Kind: kind, VendorID: vendorID, ModifiedAt: modifiedAt,
		Reason: cut(reason, MaxReasonLen), Raw: append(json.RawMessage(nil), raw...)}
}

// QuoteValue quotes a vendor value for a set-aside reason or a message, cut
// to a few dozen bytes on a character boundary: vendor text never reaches
// status or events unbounded.
func QuoteValue(v string) string {
	const limit = 40
	if len(v) > limit {
		v = cut(v, limit) + "..."
	}
	return strconv.Quote(v)
}

// cut shortens s to at most n bytes without splitting a character.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
