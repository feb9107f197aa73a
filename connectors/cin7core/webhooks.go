package cin7core

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// Webhooks (see docs/connectors/cin7core.md, "Webhooks").
//
// Cin7 Core signs nothing. Each webhook is registered through the API
// (POST /webhooks) with an authorisation of the subscriber's choosing;
// the operator registers every webhook of an ErpSync with
// ExternalAuthorizationType "bearerauth" and the ErpSync's random
// credential (connectors.WebhookKeyCredential), so a delivery is
// authentic when its Authorization header is "Bearer <credential>".
// Deliveries are routed by path (one URL per ErpSync). A delivery names
// ids only: a JSON object with EventType and the id fields of its kind, or,
// for Stock/AvailableStockLevelChanged, a bare JSON array of availability
// rows whose ID is the product's.

// Webhooks is Cin7 Core's webhook codec (registered in connectors/all).
var Webhooks connectors.WebhookCodec = codec{}

// EventTypeHeader is the extra header (ExternalHeaders) every webhook the
// operator registers carries: the webhook's Type, so that a delivery whose
// body names no EventType (the stock event's bare array) is still known.
const EventTypeHeader = "X-Erpsync-Event-Type"

// Cin7 Core's webhook types (the Type of a webhook; a delivery's
// EventType). The blueprint's webhook reference lists them; the sources we
// could read name 32 (see the docs page).
const (
	EventSaleCreated                  = "Sale/Created"
	EventSaleQuoteAuthorised          = "Sale/QuoteAuthorised"
	EventSaleOrderAuthorised          = "Sale/OrderAuthorised"
	EventSaleVoided                   = "Sale/Voided"
	EventSaleBackordered              = "Sale/Backordered"
	EventSaleShipmentAuthorised       = "Sale/ShipmentAuthorised"
	EventSaleInvoiceAuthorised        = "Sale/InvoiceAuthorised"
	EventSalePickAuthorised           = "Sale/PickAuthorised"
	EventSalePackAuthorised           = "Sale/PackAuthorised"
	EventSaleCreditNoteAuthorised     = "Sale/CreditNoteAuthorised"
	EventSaleUndo                     = "Sale/Undo"
	EventSalePartialPaymentReceived   = "Sale/PartialPaymentReceived"
	EventSaleFullPaymentReceived      = "Sale/FullPaymentReceived"
	EventSaleAttachmentAdded          = "Sale/AttachmentAdded"
	EventSaleAdditionalAttributes     = "Sale/AdditionalAttributesChanged"
	EventSaleShipmentTrackingChanged  = "Sale/ShipmentTrackingNumberChanged"
	EventPurchaseOrderAuthorised      = "Purchase/OrderAuthorised"
	EventPurchaseInvoiceAuthorised    = "Purchase/InvoiceAuthorised"
	EventPurchaseStockReceived        = "Purchase/StockReceivedAuthorised"
	EventPurchaseCreditNoteAuthorised = "Purchase/CreditNoteAuthorised"
	EventPurchaseUpdated              = "Purchase/Updated"
	EventCustomerUpdated              = "Customer/Updated"
	EventSupplierUpdated              = "Supplier/Updated"
	EventProductUpdated               = "Product/Updated"
	EventStockAvailableChanged        = "Stock/AvailableStockLevelChanged"
	EventLeadUpdated                  = "Lead/Updated"
	EventLeadConverted                = "Lead/Converted"
	EventOpportunityAuthorized        = "Opportunity/Authorized"
	EventOpportunityAttachmentAdded   = "Opportunity/AttachmentAdded"
	EventOpportunityVoided            = "Opportunity/Voided"
	EventOpportunityConverted         = "Opportunity/Converted"
	EventTaskOverdue                  = "Task/Overdue"
)

const saleEventPrefix = "Sale/"

// EventTypes lists every webhook type Cin7 Core has (as far as the
// sources tell), in the blueprint's order.
var EventTypes = []string{
	EventSaleCreated, EventSaleQuoteAuthorised, EventSaleOrderAuthorised, EventSaleVoided, EventSaleBackordered,
	EventSaleShipmentAuthorised, EventSaleInvoiceAuthorised, EventSalePickAuthorised, EventSalePackAuthorised,
	EventSaleCreditNoteAuthorised, EventSaleUndo, EventSalePartialPaymentReceived, EventSaleFullPaymentReceived,
	EventSaleAttachmentAdded, EventSaleAdditionalAttributes, EventSaleShipmentTrackingChanged,
	EventPurchaseOrderAuthorised, EventPurchaseInvoiceAuthorised, EventPurchaseStockReceived, EventPurchaseCreditNoteAuthorised,
	EventPurchaseUpdated, EventCustomerUpdated, EventSupplierUpdated, EventProductUpdated, EventStockAvailableChanged,
	EventLeadUpdated, EventLeadConverted, EventOpportunityAuthorized, EventOpportunityAttachmentAdded,
	EventOpportunityVoided, EventOpportunityConverted, EventTaskOverdue,
}

// saleSubscribed are the sale events the operator subscribes to for the
// sales stream: every stage that changes what a SaleList row shows
// (statuses, invoice, payment, shipping, tracking, credit note). A file
// attached or an additional attribute changed shows nowhere on the row,
// so those two are not subscribed (a delivery of them is still read).
var saleSubscribed = []string{
	EventSaleCreated, EventSaleQuoteAuthorised, EventSaleOrderAuthorised, EventSaleVoided, EventSaleBackordered,
	EventSaleShipmentAuthorised, EventSaleInvoiceAuthorised, EventSalePickAuthorised, EventSalePackAuthorised,
	EventSaleCreditNoteAuthorised, EventSaleUndo, EventSalePartialPaymentReceived, EventSaleFullPaymentReceived,
	EventSaleShipmentTrackingChanged,
}

// creditNoteEvents are the sale events that may change a sale's credit
// note row (saleCreditNoteList, keyed by the sale's id).
var creditNoteEvents = []string{EventSaleCreditNoteAuthorised, EventSaleVoided, EventSaleUndo}

// EventTypesFor returns the webhook types to subscribe to for the given
// entity streams, sorted. Streams without events (tax rules, locations)
// add none; purchases, CRM and tasks are not streams of the connector.
func EventTypesFor(entities []model.Kind) []string {
	set := map[string]bool{}
	for _, k := range entities {
		switch k {
		case model.KindSalesOrder, model.KindInvoice, model.KindShipment:
			for _, t := range saleSubscribed {
				set[t] = true
			}
		case model.KindCreditNote:
			for _, t := range creditNoteEvents {
				set[t] = true
			}
		case model.KindCustomer, model.KindContact, model.KindPriceRule:
			set[EventCustomerUpdated] = true
		case model.KindSupplier:
			set[EventSupplierUpdated] = true
		case model.KindProduct:
			set[EventProductUpdated] = true
		case model.KindStockLevel:
			set[EventStockAvailableChanged] = true
		}
	}
	out := make([]string, 0, len(set))
	for t := range set {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Bounds of Parse: an id longer than maxIDLen or with control characters
// is not one Cin7 Core sends (its ids are GUIDs) and is skipped; a
// delivery names at most maxEvents distinct documents (a stock event of a
// bulk adjustment may name many products; the receiver's body cap bounds
// it first).
const (
	maxIDLen  = 128
	maxEvents = 20000
)

type codec struct{}

// Routing implements connectors.WebhookCodec: one URL per ErpSync.
func (codec) Routing() connectors.WebhookRouting { return connectors.RouteByPath }

// Verify implements connectors.WebhookCodec: the Authorization header must
// be "Bearer <keys[webhookCredential]>" (scheme case-insensitive),
// compared in constant time. Cin7 Core sends no time stamp: there is no
// replay window (a replayed delivery costs one read of the documents it
// names).
func (codec) Verify(h http.Header, _ []byte, keys map[string][]byte, _ time.Time) error {
	want := keys[connectors.WebhookKeyCredential]
	if len(want) == 0 {
		return connectors.Errorf(connectors.KindSecretKeyMissing, "cin7core webhooks: the webhook Secret has no key %q", connectors.WebhookKeyCredential)
	}
	got := h.Values("Authorization")
	if len(got) != 1 {
		return fmt.Errorf("cin7core webhook: %d Authorization headers, want one: %w", len(got), connectors.ErrWebhookSignature)
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(got[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return fmt.Errorf("cin7core webhook: the Authorization header is not a bearer credential: %w", connectors.ErrWebhookSignature)
	}
	if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(token)), want) != 1 {
		return fmt.Errorf("cin7core webhook: wrong bearer credential: %w", connectors.ErrWebhookSignature)
	}
	return nil
}

// Parse implements connectors.WebhookCodec. The event type is the body's
// EventType, else the EventTypeHeader the operator registers, else (a bare
// array) the stock event. Sale events name the sales stream by SaleID (or
// SaleTaskID, the sale task's id, in invoice and tracking events); those
// that may change a credit note name the credit note stream too.
// Sale/Voided is the one delete-like event. Customer and supplier events
// name their document in CustomerDetailsList / SupplierDetailsList, the
// product event in ProductID (or ID, or a ProductDetailsList), the stock
// event in each row's ID. Purchase, CRM and task events, and unknown types,
// name no stream of the connector and give no event.
func (codec) Parse(h http.Header, body []byte) ([]connectors.WebhookEvent, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, connectors.Errorf(connectors.KindInvalidResponse, "cin7core webhook: empty body")
	}
	header := strings.TrimSpace(h.Get(EventTypeHeader))
	if trimmed[0] == '[' {
		var rows []idFields
		if err := json.Unmarshal(trimmed, &rows); err != nil {
			return nil, connectors.Errorf(connectors.KindInvalidResponse, "cin7core webhook: the body is not a JSON array of rows")
		}
		typ := EventStockAvailableChanged
		if header != "" && header != typ {
			// Only the stock event is an array; another type's header on
			// an array names nothing we can read.
			return nil, nil
		}
		ev := newEvents(typ)
		for _, r := range rows {
			if !ev.add(model.KindStockLevel, firstID(r.ID, r.ProductID), false) {
				break
			}
		}
		return ev.out, nil
	}
	var doc eventDoc
	if err := json.Unmarshal(trimmed, &doc); err != nil {
		return nil, connectors.Errorf(connectors.KindInvalidResponse, "cin7core webhook: the body is not a JSON object")
	}
	typ := strings.TrimSpace(doc.EventType)
	if typ == "" {
		typ = header
	}
	if !slices.Contains(EventTypes, typ) {
		// Unknown (or no) type: nothing to read; the poll stays.
		return nil, nil
	}
	ev := newEvents(typ)
	switch {
	case strings.HasPrefix(typ, saleEventPrefix):
		id := firstID(doc.SaleID, doc.SaleTaskID)
		ev.add(model.KindSalesOrder, id, typ == EventSaleVoided)
		if slices.Contains(creditNoteEvents, typ) {
			// Read, never tombstoned on this event: the credit note row
			// shows its own status, and a sale voided without one has none.
			ev.add(model.KindCreditNote, id, false)
		}
	case typ == EventCustomerUpdated:
		ev.addList(model.KindCustomer, doc.CustomerDetailsList, doc.CustomerID, doc.ID)
	case typ == EventSupplierUpdated:
		ev.addList(model.KindSupplier, doc.SupplierDetailsList, doc.SupplierID, doc.ID)
	case typ == EventProductUpdated:
		ev.addList(model.KindProduct, doc.ProductDetailsList, doc.ProductID, doc.ID)
	case typ == EventStockAvailableChanged:
		// An object where an array is documented: read its product.
		ev.add(model.KindStockLevel, firstID(doc.ProductID, doc.ID), false)
	}
	return ev.out, nil
}

// eventDoc is the fields of a delivery object Parse reads.
type eventDoc struct {
	EventType           string     `json:"EventType"`
	SaleID              string     `json:"SaleID"`
	SaleTaskID          string     `json:"SaleTaskID"`
	CustomerID          string     `json:"CustomerID"`
	SupplierID          string     `json:"SupplierID"`
	ProductID           string     `json:"ProductID"`
	ID                  string     `json:"ID"`
	CustomerDetailsList []idFields `json:"CustomerDetailsList"`
	SupplierDetailsList []idFields `json:"SupplierDetailsList"`
	ProductDetailsList  []idFields `json:"ProductDetailsList"`
}

// idFields is a row naming a document.
type idFields struct {
	ID        string `json:"ID"`
	ProductID string `json:"ProductID"`
}

// events collects a delivery's events, each document once.
type events struct {
	typ  string
	seen map[model.Kind]map[string]bool
	out  []connectors.WebhookEvent
}

func newEvents(typ string) *events {
	return &events{typ: typ, seen: map[model.Kind]map[string]bool{}}
}

// add adds one event unless id is not a Cin7 Core id or already added; it
// reports false once maxEvents are collected.
func (e *events) add(k model.Kind, id string, deleted bool) bool {
	if len(e.out) >= maxEvents {
		return false
	}
	if !validID(id) {
		return true
	}
	if e.seen[k] == nil {
		e.seen[k] = map[string]bool{}
	}
	if e.seen[k][id] {
		return true
	}
	e.seen[k][id] = true
	e.out = append(e.out, connectors.WebhookEvent{Entity: k, ID: id, Deleted: deleted, Type: e.typ})
	return true
}

// addList adds the documents of a *DetailsList, else the first id given.
func (e *events) addList(k model.Kind, list []idFields, ids ...string) {
	if len(list) > 0 {
		for _, r := range list {
			if !e.add(k, firstID(r.ID, r.ProductID), false) {
				return
			}
		}
		return
	}
	e.add(k, firstID(ids...), false)
}

func firstID(ids ...string) string {
	for _, id := range ids {
		if id = strings.TrimSpace(id); id != "" {
			return id
		}
	}
	return ""
}

// validID reports whether id can be a Cin7 Core id: not empty, bounded,
// printable.
func validID(id string) bool {
	if id == "" || len(id) > maxIDLen {
		return false
	}
	for _, r := range id {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

// Announces implements connectors.WebhookCoverage: the streams Cin7 Core's
// events name.
// Pace implements connectors.WebhookPace: Cin7 Core documents its
// deliveries about a minute after the change, and its 60 calls a minute
// (shared with the polls) bound how many targeted syncs can follow one
// another.
func (codec) Pace() string {
	return "Cin7 Core delivers about a minute after a change, and its 60 calls a minute allow about 20 targeted syncs a minute: a change reaches the CRM about a minute after it is made, and in a burst of hundreds of changes a minute some wait up to a minute more"
}

func (codec) Announces() []model.Kind {
	return []model.Kind{model.KindSalesOrder, model.KindCreditNote, model.KindCustomer, model.KindSupplier, model.KindProduct, model.KindStockLevel}
}
