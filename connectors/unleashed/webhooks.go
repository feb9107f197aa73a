package unleashed

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/internal/vendorjson"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// Unleashed webhooks (docs/connectors/unleashed.md, "Webhooks").
//
// Documented (apidocs.unleashedsoftware.com/Webhooks): Customer and Product
// created/updated/deleted events, at most 5 subscriptions per account, an
// HTTPS endpoint, the webhook API authenticated as the rest of the API, and
// a "Verifying Webhook Signatures" section whose text we have not seen.
// Everything below about the signature, the subscription API and the
// payload follows independent public client code, not the vendor's page:
// x-unleashed-signature = base64(HMAC-SHA256(signatureKey, timestamp + "."
// + raw body)), x-unleashed-timestamp in Unix seconds, a 5-minute replay
// window, and a signatureKey that POST /webhooks/subscriptions returns once.

// Webhook headers.
const (
	HeaderSignature = "x-unleashed-signature"
	HeaderTimestamp = "x-unleashed-timestamp"
)

// ReplayWindow is how far a delivery's timestamp may be from our clock,
// either way.
const ReplayWindow = 5 * time.Minute

// MaxWebhookEvents bounds the events one delivery may name (Unleashed is
// seen to send one event a delivery; an array is accepted up to this).
const MaxWebhookEvents = 1000

// KeyWebhookSubscription is the webhook Secret key under which the
// registrar keeps the id of the subscription whose signatureKey it holds
// (connectors.WebhookKeyToken): a subscription with another id is one whose
// key the operator does not hold.
const KeyWebhookSubscription = "webhookSubscriptionId"

// Webhooks is the Unleashed webhook codec (registered in connectors/all).
var Webhooks connectors.WebhookCodec = codec{}

type codec struct{}

var _ connectors.WebhookCodec = codec{}

// Routing implements connectors.WebhookCodec: each ErpSync has its own
// subscription, so its own path.
func (codec) Routing() connectors.WebhookRouting { return connectors.RouteByPath }

// Verify implements connectors.WebhookCodec.
func (codec) Verify(h http.Header, body []byte, keys map[string][]byte, now time.Time) error {
	key := bytes.TrimSpace(keys[connectors.WebhookKeyToken])
	if len(key) == 0 {
		return connectors.Errorf(connectors.KindSecretKeyMissing,
			"unleashed webhooks: the webhook Secret has no key %q (the signatureKey Unleashed returned when the subscription was made)", connectors.WebhookKeyToken)
	}
	sig, ts := strings.TrimSpace(h.Get(HeaderSignature)), strings.TrimSpace(h.Get(HeaderTimestamp))
	if sig == "" {
		return fmt.Errorf("%w: no %s header", connectors.ErrWebhookSignature, HeaderSignature)
	}
	if ts == "" {
		return fmt.Errorf("%w: no %s header", connectors.ErrWebhookSignature, HeaderTimestamp)
	}
	at, ok := parseUnix(ts)
	if !ok {
		return fmt.Errorf("%w: %s is not a Unix time", connectors.ErrWebhookSignature, HeaderTimestamp)
	}
	if d := now.Sub(at); d > ReplayWindow || d < -ReplayWindow {
		return fmt.Errorf("%w: the delivery's timestamp is %s from our clock, outside the %s replay window",
			connectors.ErrWebhookSignature, d.Round(time.Second), ReplayWindow)
	}
	got, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: %s is not a base64 HMAC-SHA256", connectors.ErrWebhookSignature, HeaderSignature)
	}
	if !hmac.Equal(got, webhookMAC(key, ts, body)) {
		return fmt.Errorf("%w: %s does not match the body", connectors.ErrWebhookSignature, HeaderSignature)
	}
	return nil
}

// webhookMAC is HMAC-SHA256(key, timestamp + "." + body), the timestamp
// exactly as the header carries it.
func webhookMAC(key []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// SignWebhook returns x-unleashed-signature for a delivery: base64 of
// HMAC-SHA256(key, timestamp + "." + body). For simulators and tests.
func SignWebhook(key, ts string, body []byte) string {
	return base64.StdEncoding.EncodeToString(webhookMAC([]byte(key), ts, body))
}

// parseUnix reads x-unleashed-timestamp: Unix seconds (public code also
// accepts milliseconds, so a value of 13 digits is read as such).
func parseUnix(v string) (time.Time, bool) {
	if len(v) == 0 || len(v) > 13 {
		return time.Time{}, false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return time.Time{}, false
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	if len(v) == 13 {
		return time.UnixMilli(n).UTC(), true
	}
	return time.Unix(n, 0).UTC(), true
}

// webhookObjects maps the object of an event type ("product" in
// "product.updated") to the entity stream its events name and the data
// field that carries the document's Guid. Customer and Product are the
// documented objects; salesorder is seen in public client code
// (salesorder.created with data.salesOrderGuid) and is parsed, never
// subscribed to.
var webhookObjects = map[string]struct {
	kind  model.Kind
	field string
}{
	"product":    {model.KindProduct, "productguid"},
	"customer":   {model.KindCustomer, "customerguid"},
	"salesorder": {model.KindSalesOrder, "salesorderguid"},
}

// webhookActions are the event actions; deleted sets WebhookEvent.Deleted.
var webhookActions = map[string]bool{"created": false, "updated": false, "deleted": true}

// WebhookEventTypes returns the event types a subscription for entities
// names (sorted: customers first): created, updated and deleted of each
// documented object whose stream is among entities.
func WebhookEventTypes(entities []model.Kind) []string {
	var out []string
	for _, o := range []string{"customer", "product"} {
		for _, e := range entities {
			if e == webhookObjects[o].kind {
				out = append(out, o+".created", o+".deleted", o+".updated")
				break
			}
		}
	}
	return out
}

// maxEventType bounds the event type kept for counters and logs.
const maxEventType = 64

// Parse implements connectors.WebhookCodec. A delivery is one event
// envelope ({subscriptionId, eventNotificationId, eventType, createdOn,
// data}) or an array of them; data is an object or a JSON-encoded string
// of one (public code sees both) holding the document's Guid. Unknown event
// types are skipped; a known one without a Guid is an error.
func (codec) Parse(_ http.Header, body []byte) ([]connectors.WebhookEvent, error) {
	body = bytes.TrimSpace(body)
	var raws []json.RawMessage
	if len(body) > 0 && body[0] == '[' {
		arr, ok := vendorjson.SplitArray(body)
		if !ok {
			return nil, fmt.Errorf("unleashed webhook: the body is not a JSON array of events")
		}
		raws = arr
	} else {
		raws = []json.RawMessage{body}
	}
	if len(raws) > MaxWebhookEvents {
		return nil, fmt.Errorf("unleashed webhook: %d events in one delivery, at most %d", len(raws), MaxWebhookEvents)
	}
	var out []connectors.WebhookEvent
	for i, raw := range raws {
		ev, ok, err := parseEvent(raw)
		if err != nil {
			return nil, fmt.Errorf("unleashed webhook: event %d: %w", i, err)
		}
		if ok {
			out = append(out, ev)
		}
	}
	return out, nil
}

// envelope is one Unleashed webhook event (field names match in any case).
type eventEnvelope struct {
	EventType    string          `json:"eventType"`
	CreatedOn    json.RawMessage `json:"createdOn"`
	Data         json.RawMessage `json:"data"`
	ResourceGUID string          `json:"resourceGuid"`
}

func parseEvent(raw json.RawMessage) (connectors.WebhookEvent, bool, error) {
	var env eventEnvelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return connectors.WebhookEvent{}, false, fmt.Errorf("not an event object: %w", jsonErr(err))
	}
	typ := strings.ToLower(strings.TrimSpace(env.EventType))
	if len(typ) > maxEventType {
		return connectors.WebhookEvent{}, false, nil
	}
	object, action, found := strings.Cut(typ, ".")
	obj, known := webhookObjects[object]
	deleted, knownAction := webhookActions[action]
	if !found || !known || !knownAction {
		return connectors.WebhookEvent{}, false, nil // not an event we sync
	}
	id, err := eventGUID(env.Data, obj.field)
	if err != nil {
		return connectors.WebhookEvent{}, false, fmt.Errorf("%s: %w", typ, err)
	}
	if id == "" {
		id = strings.TrimSpace(env.ResourceGUID)
	}
	if !isGUID(id) {
		return connectors.WebhookEvent{}, false, fmt.Errorf("%s names no document Guid", typ)
	}
	// The Guid as sent: the mapping keeps a document's Guid as Unleashed
	// serves it, and a tombstone must carry the same spelling.
	ev := connectors.WebhookEvent{Entity: obj.kind, ID: id, Deleted: deleted, Type: typ}
	var s string
	if json.Unmarshal(env.CreatedOn, &s) == nil && len(s) <= 64 {
		if t, err := parseTime(s); err == nil {
			ev.At = t
		}
	}
	return ev, true, nil
}

// eventGUID reads the Guid out of an event's data: an object, or a string
// holding one. field is the object's own Guid field (productguid); "guid"
// is read when it is absent. Names match in any case.
func eventGUID(data json.RawMessage, field string) (string, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || bytes.Equal(data, []byte("null")) {
		return "", nil
	}
	if data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return "", fmt.Errorf("data is not a string: %w", jsonErr(err))
		}
		data = bytes.TrimSpace([]byte(s))
		if len(data) == 0 {
			return "", nil
		}
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return "", fmt.Errorf("data is not an object: %w", jsonErr(err))
	}
	var own, plain string
	for k, v := range fields {
		var s string
		if json.Unmarshal(v, &s) != nil {
			continue
		}
		switch strings.ToLower(k) {
		case field:
			own = s
		case "guid":
			plain = s
		}
	}
	return strings.TrimSpace(firstNonEmpty(own, plain)), nil
}

// jsonErr keeps a JSON error's kind and offset, never the body's text.
func jsonErr(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("invalid JSON at offset %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Errorf("a %s where %s was expected", typ.Value, typ.Type)
	default:
		return errors.New("invalid JSON")
	}
}

// isGUID reports whether v has the shape of a GUID (36 characters, dashes
// at 8, 13, 18 and 23, hex digits elsewhere).
func isGUID(v string) bool {
	if len(v) != 36 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'):
		default:
			return false
		}
	}
	return true
}

// Announces implements connectors.WebhookCoverage: Unleashed's events
// name customers and products.
func (codec) Announces() []model.Kind {
	return []model.Kind{model.KindCustomer, model.KindProduct}
}
