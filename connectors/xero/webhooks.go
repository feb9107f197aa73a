package xero

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// Xero's webhooks (developer.xero.com/documentation/webhooks/overview and
// configuring-your-server; the payload schema is XeroAPI/Xero-OpenAPI
// xero-webhooks.yaml). One subscription per app, made in the developer
// portal (no API), delivers the events of every organisation connected to
// the app: the receiver routes each event by its tenantId
// (connectors.RouteByTenant). A delivery is
//
//	{"events":[{"resourceUrl","resourceId","eventDateUtc","eventType",
//	  "eventCategory","tenantId","tenantType"}, ...],
//	 "firstEventSequence":n,"lastEventSequence":m,"entropy":"..."}
//
// signed in the x-xero-signature header: the base64 HMAC-SHA256 of the raw
// body keyed with the app's webhook key. Events name a document by id only;
// the targeted sync reads it. Xero sends CREATE and UPDATE only (archiving
// a contact, voiding or deleting a document arrive as UPDATE): no event is
// ever a deletion, and the read shows the document's status.

// SignatureHeader is the header that carries a delivery's signature.
const SignatureHeader = "x-xero-signature"

// MaxWebhookEvents bounds the events one delivery may name. Xero documents
// no batch size; a body within the receiver's cap (1 MiB by default, about
// 3,000 of Xero's events) stays far below it, so a delivery beyond it is
// refused as malformed rather than read in part.
const MaxWebhookEvents = 10000

// Webhooks is Xero's webhook codec (registered in connectors/all).
var Webhooks connectors.WebhookCodec = codec{}

type codec struct{}

// Routing implements connectors.WebhookCodec: Xero's one subscription per
// app names each event's organisation.
func (codec) Routing() connectors.WebhookRouting { return connectors.RouteByTenant }

// Verify implements connectors.WebhookCodec: x-xero-signature must be the
// base64 HMAC-SHA256 of body keyed with the credentials Secret's webhookKey,
// compared in constant time. Xero signs no timestamp, so there is no replay
// window: a replayed delivery costs at most one read per event it names
// (the targeted sync reads the current document).
func (codec) Verify(h http.Header, body []byte, keys map[string][]byte, _ time.Time) error {
	key := bytes.TrimSpace(keys[connectors.WebhookKeyXero])
	if len(key) == 0 {
		return connectors.Errorf(connectors.KindSecretKeyMissing,
			"xero webhooks: the credentials Secret has no key %q (the app's webhook key from the developer portal)", connectors.WebhookKeyXero)
	}
	sig := strings.TrimSpace(header(h, SignatureHeader))
	if sig == "" {
		return fmt.Errorf("xero webhook: no %s header: %w", SignatureHeader, connectors.ErrWebhookSignature)
	}
	got, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("xero webhook: the %s header is not a base64 HMAC-SHA256: %w", SignatureHeader, connectors.ErrWebhookSignature)
	}
	if !hmac.Equal(got, Sign(key, body)) {
		return fmt.Errorf("xero webhook: the signature does not match the body and the webhook key: %w", connectors.ErrWebhookSignature)
	}
	return nil
}

// header is h's value of name, also when h was built by hand with a key
// that is not in canonical form.
func header(h http.Header, name string) string {
	if v := h.Get(name); v != "" {
		return v
	}
	for k, v := range h {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// Sign returns the HMAC-SHA256 of body keyed with key: what x-xero-signature
// carries, base64-encoded (SignatureOf).
func Sign(key, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return m.Sum(nil)
}

// SignatureOf returns the x-xero-signature value of body under key.
func SignatureOf(key, body []byte) string { return base64.StdEncoding.EncodeToString(Sign(key, body)) }

// webhookStreams maps Xero's event categories to the connector's streams
// whose ReadDocs takes the resourceId: a contact is read as a customer (a
// contact that is a supplier only maps to a supplier record of the same
// read), invoices (sales invoices and bills) and credit notes.
var webhookStreams = map[string]model.Kind{
	"CONTACT":    model.KindCustomer,
	"INVOICE":    model.KindInvoice,
	"CREDITNOTE": model.KindCreditNote,
}

// webhookTypes are Xero's event types (CREATE, UPDATE); any other is
// skipped.
var webhookTypes = map[string]bool{"CREATE": true, "UPDATE": true}

// wireEvent is one event as Xero sends it. Unknown fields (a credit note
// event's data) are ignored.
type wireEvent struct {
	ResourceURL   string `json:"resourceUrl"`
	ResourceID    string `json:"resourceId"`
	EventDateUTC  string `json:"eventDateUtc"`
	EventType     string `json:"eventType"`
	EventCategory string `json:"eventCategory"`
	TenantID      string `json:"tenantId"`
	TenantType    string `json:"tenantType"`
}

var errNotDelivery = errors.New("not a Xero webhook delivery")

// Parse implements connectors.WebhookCodec. The body is read as a stream
// and never held twice: at most MaxWebhookEvents events are decoded (more is
// an error), and a body that is not a JSON object with an events array is
// an error. Events of categories the connector does not read
// (SUBSCRIPTION, anything new), of types other than CREATE and UPDATE, of
// an application rather than an organisation, and events whose resourceId
// or tenantId is no GUID are skipped. An intent-to-receive delivery (no
// events) returns none.
func (codec) Parse(_ http.Header, body []byte) ([]connectors.WebhookEvent, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("xero webhook: %w: the body is not a JSON object", errNotDelivery)
	}
	var out []connectors.WebhookEvent
	seen, sawEvents := 0, false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("xero webhook: %w: %s", errNotDelivery, bounded(err))
		}
		name, _ := tok.(string)
		if name != "events" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, fmt.Errorf("xero webhook: %w: %s", errNotDelivery, bounded(err))
			}
			continue
		}
		if sawEvents {
			return nil, fmt.Errorf("xero webhook: %w: two events arrays", errNotDelivery)
		}
		sawEvents = true
		tok, err = dec.Token()
		if err != nil {
			return nil, fmt.Errorf("xero webhook: %w: %s", errNotDelivery, bounded(err))
		}
		if tok == nil {
			continue // "events": null, as none
		}
		if tok != json.Delim('[') {
			return nil, fmt.Errorf("xero webhook: %w: events is not an array", errNotDelivery)
		}
		for dec.More() {
			if seen++; seen > MaxWebhookEvents {
				return nil, fmt.Errorf("xero webhook: %w: more than %d events in one delivery", errNotDelivery, MaxWebhookEvents)
			}
			var e wireEvent
			if err := dec.Decode(&e); err != nil {
				return nil, fmt.Errorf("xero webhook: %w: event %d: %s", errNotDelivery, seen, bounded(err))
			}
			if ev, ok := e.event(); ok {
				out = append(out, ev)
			}
		}
		if _, err := dec.Token(); err != nil { // ]
			return nil, fmt.Errorf("xero webhook: %w: %s", errNotDelivery, bounded(err))
		}
	}
	if _, err := dec.Token(); err != nil { // }
		return nil, fmt.Errorf("xero webhook: %w: %s", errNotDelivery, bounded(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("xero webhook: %w: data after the JSON object", errNotDelivery)
	}
	if !sawEvents {
		return nil, fmt.Errorf("xero webhook: %w: no events array", errNotDelivery)
	}
	return out, nil
}

// event maps one wire event, false when it is to be skipped. Category and
// type are compared without case: Xero's pages show "Update" where the
// OpenAPI document has UPDATE.
func (e wireEvent) event() (connectors.WebhookEvent, bool) {
	cat, typ := strings.ToUpper(strings.TrimSpace(e.EventCategory)), strings.ToUpper(strings.TrimSpace(e.EventType))
	stream, ok := webhookStreams[cat]
	if !ok || !webhookTypes[typ] {
		return connectors.WebhookEvent{}, false
	}
	if tt := strings.TrimSpace(e.TenantType); tt != "" && !strings.EqualFold(tt, "ORGANISATION") {
		return connectors.WebhookEvent{}, false
	}
	id, tenant := strings.ToLower(strings.TrimSpace(e.ResourceID)), strings.TrimSpace(e.TenantID)
	if !isGUID(id) || !isGUID(tenant) {
		return connectors.WebhookEvent{}, false
	}
	return connectors.WebhookEvent{Entity: stream, ID: id, Tenant: tenant, At: eventTime(e.EventDateUTC), Type: cat + "." + typ}, true
}

// eventTime reads eventDateUtc: ISO 8601 in UTC, with or without a zone
// and fraction (the OpenAPI document's examples have neither zone nor more
// than milliseconds); zero when it does not parse.
func eventTime(s string) time.Time {
	s = strings.TrimSpace(s)
	if len(s) > 40 {
		return time.Time{}
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

// bounded is an error's text cut short: a decoder's message may quote the
// input.
func bounded(err error) string {
	s := err.Error()
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

// Announces implements connectors.WebhookCoverage: Xero's events name
// contacts, invoices and credit notes.
func (codec) Announces() []model.Kind {
	return []model.Kind{model.KindCustomer, model.KindInvoice, model.KindCreditNote}
}
