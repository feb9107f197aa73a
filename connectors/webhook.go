package connectors

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
)

// Webhooks are how a vendor tells us about a change as it happens. Each
// webhook vendor has a WebhookCodec (the receiving side: check a delivery
// and say what it names) registered beside its Factory; vendors whose API
// manages subscriptions also have connectors that implement
// WebhookRegistrar (the subscribing side, called inside a sync). A webhook
// never replaces polling: it starts a targeted sync that reads the named
// documents by id, and the interval poll and reconciliation still catch
// whatever a webhook misses.

// WebhookEvent is one change a verified delivery names.
type WebhookEvent struct {
	// Entity is the connector's entity stream whose documents the event
	// names (an EntityInfo.Name of the vendor's connector): the stream a
	// targeted sync reads ID from with DocReader.ReadDocs.
	Entity model.Kind
	// ID is the vendor id of the document, as ReadDocs takes it.
	ID string
	// Deleted is set when the vendor says the document was deleted (or
	// voided, where the vendor reports that as a deletion). A targeted
	// sync still reads it: a document the vendor no longer serves becomes
	// a tombstone, one it still serves is written as served (its marker
	// says it is deleted).
	Deleted bool
	// Tenant is the organisation the event is about, where the vendor
	// routes one subscription to many organisations (Xero's tenantId);
	// empty otherwise.
	Tenant string
	// At is the vendor's time of the event; zero when it sends none.
	At time.Time
	// Type is the vendor's event type (for counters and logs; bounded,
	// never record data).
	Type string
}

// WebhookRouting says how deliveries find their ErpSync.
type WebhookRouting int

const (
	// RouteByPath: each ErpSync has its own unguessable path (the vendor is
	// subscribed per ErpSync, with that URL).
	RouteByPath WebhookRouting = iota
	// RouteByTenant: one path for every ErpSync of the vendor; each event
	// names its tenant (WebhookEvent.Tenant), matched against the
	// ErpSync's spec.connector.tenantId (Xero: one subscription per app).
	RouteByTenant
)

// ErrWebhookSignature is what Verify returns (wrapped) for a delivery that
// is unsigned, wrongly signed, wrongly authenticated or too old: the
// receiver answers 401 and changes nothing.
var ErrWebhookSignature = errors.New("webhook delivery not authenticated")

// Keys of the operator-managed webhook Secret (one per ErpSync with
// webhooks enabled, named WebhookSecretName, owned by the ErpSync). Its
// data, merged over the credentials Secret's, is what Verify and the
// registrar get as keys.
const (
	// WebhookKeyCredential is a random value the operator generates for
	// the ErpSync: the basic or bearer credential of vendors without
	// signatures (Cin7 Core), and available to any vendor that lets the
	// subscriber choose a signing secret.
	WebhookKeyCredential = "webhookCredential" //nolint:gosec // G101: a Secret key's name, not a credential
	// WebhookKeyToken is a signing token the vendor returned when the
	// operator registered the subscription (Katana).
	WebhookKeyToken = "webhookToken"
	// WebhookKeyXero is the credentials Secret key that holds the Xero
	// app's webhook key (from the developer portal).
	WebhookKeyXero = "webhookKey"
)

// WebhookCodec is the receiving side of one vendor's webhooks. It must be
// safe for concurrent use, never panic on input, and never log or return
// record data or secrets.
type WebhookCodec interface {
	// Routing says how deliveries are routed.
	Routing() WebhookRouting
	// Verify authenticates a delivery with the ErpSync's keys (the
	// credentials Secret's data with the webhook Secret's data merged
	// over it): a constant-time comparison of the vendor's HMAC signature
	// or credential header, and the vendor's replay window where it has
	// one (now is our clock). It returns an error wrapping
	// ErrWebhookSignature when the delivery is not authentic, or one
	// naming the missing key when keys lack what the vendor signs with.
	Verify(h http.Header, body []byte, keys map[string][]byte, now time.Time) error
	// Parse decodes a delivery's events. It is called before Verify when
	// Routing is RouteByTenant (to find the candidate ErpSyncs), so it
	// must treat body as hostile: a malformed body is an error, never a
	// panic. Events of kinds the connector does not sync are left out. A
	// delivery that names no event (Xero's intent-to-receive) returns none.
	Parse(h http.Header, body []byte) ([]WebhookEvent, error)
}

// WebhookCoverage is implemented by codecs that can say which entity
// streams their events announce: when a poll finds changes in those and no
// delivery arrived over the whole window they were made in, the webhooks
// are silent (the WebhooksReady condition says so).
type WebhookCoverage interface {
	Announces() []model.Kind
}

// WebhookPace is implemented by codecs whose vendor cannot bring a change
// to the CRM within seconds (it delivers late, or its rate limit leaves
// targeted syncs little room): Pace says so in one sentence, which the
// WebhooksReady condition adds to its Active message.
type WebhookPace interface {
	Pace() string
}

// WebhookTarget is where a registrar subscribes the vendor to deliver.
type WebhookTarget struct {
	// URL is the ErpSync's public receiver URL (…/webhooks/<vendor>/<route>).
	URL string
	// Keys is the credentials Secret's data with the webhook Secret's
	// merged over it (WebhookKeyCredential is always set).
	Keys map[string][]byte
	// Entities are the streams the ErpSync syncs: subscribe to their events
	// only.
	Entities []model.Kind
}

// WebhookRegistration is what EnsureWebhooks found and did.
type WebhookRegistration struct {
	// Keys holds key material to store in the webhook Secret (a signing
	// token the vendor returned for a subscription it just made); nil when
	// nothing changed. The registrar must not make a subscription whose
	// token it cannot return.
	Keys map[string][]byte
	// Subscriptions is the number of the vendor's subscriptions that now
	// deliver to URL.
	Subscriptions int
	// Created and Reenabled count what this call made or switched back on.
	Created, Reenabled int
	// Disabled names the events whose subscription the vendor disabled and
	// that could not be switched back on (empty: every one is active).
	Disabled []string
	// Calls is the number of HTTP requests it cost.
	Calls int
}

// WebhookRegistrar is implemented by connectors whose vendor lets the
// operator manage its webhook subscriptions through the API. It is called
// inside a sync (with that sync's limiters), about once an hour and
// whenever the target changes.
type WebhookRegistrar interface {
	// EnsureWebhooks makes the vendor deliver the events of
	// target.Entities to target.URL: it lists the subscriptions, creates
	// the missing ones, switches back on those the vendor disabled, and
	// replaces one whose signing token it no longer has (one absent from
	// target.Keys). Subscriptions to other URLs are left alone.
	EnsureWebhooks(ctx context.Context, target WebhookTarget) (*WebhookRegistration, error)
	// RemoveWebhooks deletes the subscriptions that deliver to url.
	RemoveWebhooks(ctx context.Context, url string) (calls int, err error)
}

// WebhookSecretName names the operator-managed webhook Secret of an
// ErpSync.
func WebhookSecretName(erpsync string) string { return erpsync + "-erpsync-webhook" }
