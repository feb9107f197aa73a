package katana

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// Katana's webhooks (docs/connectors/katana.md, "Webhooks").
//
// Katana signs every delivery with the x-sha2-signature header: the
// hexadecimal HMAC-SHA256 of the raw request body, keyed with the token
// Katana returned when the webhook was registered (developer.katanamrp.com,
// "Verifying a webhook signature"). A delivery is one JSON object,
// {resource_type, action, webhook_id, object: {id, status, href}}, naming
// one document by id and carrying no record data and no time
// (developer.katanamrp.com/reference/webhooks, "Event object"). Katana sends
// no timestamp, so there is no replay window: a replayed delivery costs one
// read by id, which writes nothing new.

// SignatureHeader is the header Katana puts the signature in.
const SignatureHeader = "X-Sha2-Signature"

// RetryHeader numbers Katana's repeats of a delivery (1, 2 or 3); it is not
// on the first attempt.
const RetryHeader = "X-Katana-Retry-Num"

// Webhooks is Katana's webhook codec (registered in connectors/all).
var Webhooks connectors.WebhookCodec = codec{}

type codec struct{}

// Routing implements connectors.WebhookCodec: every ErpSync registers its
// own webhook, with its own unguessable URL.
func (codec) Routing() connectors.WebhookRouting { return connectors.RouteByPath }

// maxTokenLen bounds the signing token the codec accepts from the Secret
// (Katana's are 16 hexadecimal characters).
const maxTokenLen = 256

// Verify implements connectors.WebhookCodec.
func (codec) Verify(h http.Header, body []byte, keys map[string][]byte, _ time.Time) error {
	token := keys[connectors.WebhookKeyToken]
	if len(token) == 0 {
		return connectors.Errorf(connectors.KindSecretKeyMissing, "katana webhooks: the webhook Secret has no key %q (the token Katana returned when the webhook was registered)", connectors.WebhookKeyToken)
	}
	if len(token) > maxTokenLen {
		return connectors.Errorf(connectors.KindInvalidConfig, "katana webhooks: the Secret key %q is longer than %d bytes", connectors.WebhookKeyToken, maxTokenLen)
	}
	vals := h.Values(SignatureHeader)
	if len(vals) == 0 {
		return fmt.Errorf("katana webhook: no %s header: %w", SignatureHeader, connectors.ErrWebhookSignature)
	}
	if len(vals) > 1 {
		return fmt.Errorf("katana webhook: %d %s headers: %w", len(vals), SignatureHeader, connectors.ErrWebhookSignature)
	}
	got, ok := decodeSignature(vals[0])
	if !ok {
		return fmt.Errorf("katana webhook: the %s header is not a hexadecimal SHA-256 signature: %w", SignatureHeader, connectors.ErrWebhookSignature)
	}
	if !hmac.Equal(got, Sign(token, body)) {
		return fmt.Errorf("katana webhook: the signature does not match the body: %w", connectors.ErrWebhookSignature)
	}
	return nil
}

// Sign returns the HMAC-SHA256 of body keyed with token, as Katana computes
// it (hex-encode it for the header).
func Sign(token, body []byte) []byte {
	m := hmac.New(sha256.New, token)
	m.Write(body)
	return m.Sum(nil)
}

// decodeSignature reads the header's value: 64 hexadecimal digits (either
// case), optionally after "sha256=" (the community OpenAPI document's
// example shows that prefix; Katana's guide shows the bare digits).
func decodeSignature(v string) ([]byte, bool) {
	v = strings.TrimSpace(v)
	if len(v) > 7 && strings.EqualFold(v[:7], "sha256=") {
		v = v[7:]
	}
	if len(v) != 2*sha256.Size {
		return nil, false
	}
	b, err := hex.DecodeString(v)
	return b, err == nil
}

// eventKinds maps the resource of an action (the part before the dot) to
// the stream its documents are read from, and how the object's id becomes
// an id ReadDocs takes: products and materials by their document name
// ("product/<id>", "material/<id>", one call each), variants by the variant
// id (the products stream's record id).
var eventKinds = map[string]struct {
	entity model.Kind
	prefix string
}{
	"sales_order": {model.KindSalesOrder, ""},
	"product":     {model.KindProduct, "product/"},
	"material":    {model.KindProduct, "material/"},
	"variant":     {model.KindProduct, ""},
}

// eventVerbs are the verbs of each mapped resource that name a change of
// the document; a verb not listed is skipped. Katana documents
// created/updated/deleted for all four; a sales order also has status
// events (packed, delivered, approved, invoiced: "also considered an
// update") and availability_updated.
var eventVerbs = map[string][]string{
	"sales_order": {"created", "updated", "deleted", "packed", "delivered", "approved", "invoiced", "availability_updated"},
	"product":     {"created", "updated", "deleted"},
	"material":    {"created", "updated", "deleted"},
	"variant":     {"created", "updated", "deleted"},
}

// WebhookEvents returns the events the connector subscribes to for the
// given streams, sorted: created, updated and deleted of sales orders,
// products, materials and variants. The status events of sales orders are
// left out: Katana sends a sales_order.updated for each of them too, and
// subscribing to both doubles the deliveries. Katana has no events for
// customers, locations, tax rates, price lists or stock rows; those streams
// are polled only.
func WebhookEvents(entities []model.Kind) []string {
	var out []string
	if slices.Contains(entities, model.KindSalesOrder) {
		out = append(out, "sales_order.created", "sales_order.updated", "sales_order.deleted")
	}
	if slices.Contains(entities, model.KindProduct) {
		for _, r := range []string{"product", "material", "variant"} {
			out = append(out, r+".created", r+".updated", r+".deleted")
		}
	}
	slices.Sort(out)
	return out
}

// maxObjectID bounds an object id: Katana's ids are positive integers.
const maxObjectID = 1<<53 - 1

// Parse implements connectors.WebhookCodec. A Katana delivery is one event;
// actions of resources the connector does not sync (purchase orders,
// manufacturing orders, current_inventory, ...) and verbs it does not know
// give no event. resource_type and webhook_id are not needed (the action
// names the resource) and not required, since third-party reports show
// payloads without them.
func (codec) Parse(_ http.Header, body []byte) ([]connectors.WebhookEvent, error) {
	var p struct {
		Action *string          `json:"action"`
		Object *json.RawMessage `json:"object"`
	}
	d := json.NewDecoder(bytes.NewReader(body))
	if err := d.Decode(&p); err != nil {
		return nil, fmt.Errorf("katana webhook: the body is not a JSON object: %w", errNoDetail(err))
	}
	if d.More() {
		return nil, fmt.Errorf("katana webhook: the body holds more than one JSON value")
	}
	if p.Action == nil {
		return nil, fmt.Errorf("katana webhook: the body has no action")
	}
	resource, verb, ok := strings.Cut(*p.Action, ".")
	kind, known := eventKinds[resource]
	if !ok || !known || !slices.Contains(eventVerbs[resource], verb) {
		return nil, nil // an event of something the connector does not sync
	}
	if p.Object == nil {
		return nil, fmt.Errorf("katana webhook: %s has no object", *p.Action)
	}
	var obj struct {
		ID json.RawMessage `json:"id"`
	}
	if err := json.Unmarshal(*p.Object, &obj); err != nil {
		return nil, fmt.Errorf("katana webhook: %s: the object is not a JSON object: %w", *p.Action, errNoDetail(err))
	}
	id, err := objectID(obj.ID)
	if err != nil {
		return nil, fmt.Errorf("katana webhook: %s: %w", *p.Action, err)
	}
	return []connectors.WebhookEvent{{
		Entity:  kind.entity,
		ID:      kind.prefix + id,
		Deleted: verb == "deleted",
		Type:    resource + "." + verb,
	}}, nil
}

// objectID reads the object's id: a positive integer, sent as a string
// (Katana's example payload, the community OpenAPI document) or a number
// (third-party reports); either is accepted.
func objectID(raw json.RawMessage) (string, error) {
	s := string(bytes.TrimSpace(raw))
	if len(s) >= 2 && s[0] == '"' {
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return "", fmt.Errorf("the object's id is not a string")
		}
		s = strings.TrimSpace(v)
	}
	if s == "" || s == "null" {
		return "", fmt.Errorf("the object has no id")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > maxObjectID {
		return "", fmt.Errorf("the object's id is not a Katana id")
	}
	return strconv.FormatInt(n, 10), nil
}

// errNoDetail keeps a JSON error's kind without the body text it may quote.
func errNoDetail(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Errorf("a %s where %s was expected", te.Value, te.Type)
	}
	return fmt.Errorf("malformed JSON")
}

// Announces implements connectors.WebhookCoverage: the streams Katana's
// events name.
func (codec) Announces() []model.Kind {
	return []model.Kind{model.KindProduct, model.KindSalesOrder}
}
