package unleashed

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/internal/vendorjson"
)

// The webhook subscription API (docs/connectors/unleashed.md, "Webhooks").
// Documented: it authenticates as the rest of the API, and an account holds
// at most 5 subscriptions. Assumed from public client code (not the vendor's
// page): GET /webhooks/subscriptions lists them, POST /webhooks/subscriptions
// {description, notificationUrl, eventTypes} makes one and answers with its
// subscriptionId and a signatureKey shown this once, and DELETE
// /webhooks/subscriptions/{id} removes one. Whether Unleashed disables a
// failing subscription, and how it says so, is not known: a subscription
// whose status is present and not active (or whose isActive is false) is
// taken as disabled and replaced.

var _ connectors.WebhookRegistrar = (*Connector)(nil)

// MaxWebhookSubscriptions is Unleashed's cap per account (documented).
const MaxWebhookSubscriptions = 5

const subscriptionsPath = "webhooks/subscriptions"

// subscription is one webhook subscription as Unleashed shows it (field
// names match in any case).
type subscription struct {
	SubscriptionID  string   `json:"subscriptionId"`
	ID              string   `json:"id"`
	NotificationURL string   `json:"notificationUrl"`
	EventTypes      []string `json:"eventTypes"`
	Description     string   `json:"description,omitempty"`
	Status          string   `json:"status,omitempty"`
	IsActive        *bool    `json:"isActive,omitempty"`
	// SignatureKey is in the answer to the create only.
	SignatureKey string `json:"signatureKey,omitempty"`
}

func (s *subscription) id() string { return firstNonEmpty(s.SubscriptionID, s.ID) }

// active reports whether the subscription delivers: no status means it
// does (a field we do not know never makes us churn subscriptions).
func (s *subscription) active() bool {
	if s.IsActive != nil && !*s.IsActive {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(s.Status)) {
	case "", "active", "enabled":
		return true
	default:
		return false
	}
}

// sameEvents reports whether a and b name the same event types (any case,
// any order).
func sameEvents(a, b []string) bool {
	norm := func(v []string) []string {
		out := make([]string, 0, len(v))
		for _, s := range v {
			out = append(out, strings.ToLower(strings.TrimSpace(s)))
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	return slices.Equal(norm(a), norm(b))
}

// EnsureWebhooks implements connectors.WebhookRegistrar. One subscription
// per ErpSync (its URL) carries every event type of its entities, so five
// ErpSyncs can share an account. It lists the subscriptions (one call) and
// keeps the one whose signatureKey target.Keys holds (its id under
// KeyWebhookSubscription, the key under connectors.WebhookKeyToken) when it
// is active and names the wanted events; every other subscription to
// target.URL is deleted, and a new one is made whose key comes back in the
// registration's Keys. A disabled subscription is replaced the same way
// (Reenabled): no switch-on call is known.
func (c *Connector) EnsureWebhooks(ctx context.Context, target connectors.WebhookTarget) (reg *connectors.WebhookRegistration, err error) {
	before := c.client.Calls()
	reg = &connectors.WebhookRegistration{}
	defer func() { reg.Calls = int(c.client.Calls() - before) }()
	if strings.TrimSpace(target.URL) == "" {
		return reg, connectors.Errorf(connectors.KindInvalidConfig, "unleashed webhooks: no receiver URL to subscribe")
	}
	want := WebhookEventTypes(target.Entities)
	subs, err := c.listSubscriptions(ctx)
	if err != nil {
		return reg, err
	}
	heldID := strings.TrimSpace(string(target.Keys[KeyWebhookSubscription]))
	token := len(bytes.TrimSpace(target.Keys[connectors.WebhookKeyToken])) > 0
	var keep *subscription
	var mine []*subscription
	replacesDisabled := false
	for i := range subs {
		s := &subs[i]
		if s.NotificationURL != target.URL {
			continue
		}
		if keep == nil && len(want) > 0 && token && heldID != "" && s.id() == heldID && sameEvents(s.EventTypes, want) {
			if s.active() {
				keep = s
				continue
			}
			replacesDisabled = true
		}
		mine = append(mine, s)
	}
	// Everything else delivering to URL goes: duplicates, subscriptions
	// whose key we lost, ones for other entities, a disabled one.
	for _, s := range mine {
		if err := c.deleteSubscription(ctx, s.id()); err != nil {
			return reg, err
		}
	}
	if keep != nil {
		reg.Subscriptions = 1
		return reg, nil
	}
	if len(want) == 0 {
		return reg, nil // none of the ErpSync's entities has events
	}
	if others := len(subs) - len(mine); others >= MaxWebhookSubscriptions {
		if replacesDisabled {
			reg.Disabled = want
		}
		return reg, connectors.Errorf(connectors.KindInvalidConfig,
			"unleashed webhooks: the account already has %d webhook subscriptions for other receivers, and Unleashed allows %d; remove one or turn webhooks off for this ErpSync",
			others, MaxWebhookSubscriptions)
	}
	made, err := c.createSubscription(ctx, target.URL, want)
	if err != nil {
		if replacesDisabled {
			reg.Disabled = want
		}
		return reg, err
	}
	if made.id() == "" || strings.TrimSpace(made.SignatureKey) == "" {
		// A subscription whose key we cannot hold would deliver what we
		// can only refuse: take it back.
		if made.id() != "" {
			if derr := c.deleteSubscription(ctx, made.id()); derr != nil {
				return reg, derr
			}
		}
		return reg, connectors.Errorf(connectors.KindInvalidResponse, "unleashed webhooks: the new subscription came back without its id or signatureKey")
	}
	reg.Keys = map[string][]byte{connectors.WebhookKeyToken: []byte(made.SignatureKey), KeyWebhookSubscription: []byte(made.id())}
	reg.Subscriptions = 1
	if replacesDisabled {
		reg.Reenabled = 1
	} else {
		reg.Created = 1
	}
	return reg, nil
}

// RemoveWebhooks implements connectors.WebhookRegistrar.
func (c *Connector) RemoveWebhooks(ctx context.Context, target string) (int, error) {
	before := c.client.Calls()
	calls := func() int { return int(c.client.Calls() - before) }
	subs, err := c.listSubscriptions(ctx)
	if err != nil {
		return calls(), err
	}
	for i := range subs {
		if subs[i].NotificationURL == target {
			if err := c.deleteSubscription(ctx, subs[i].id()); err != nil {
				return calls(), err
			}
		}
	}
	return calls(), nil
}

// listSubscriptions reads GET /webhooks/subscriptions. The list's shape is
// not documented: an array, or an object with the array under items (any
// case), subscriptions or data.
func (c *Connector) listSubscriptions(ctx context.Context) ([]subscription, error) {
	resp, err := c.get(ctx, "webhooks_list", subscriptionsPath, nil)
	if err != nil {
		return nil, fmt.Errorf("unleashed webhooks: listing subscriptions: %w", err)
	}
	body := bytes.TrimSpace(resp.Body)
	var raw []json.RawMessage
	if arr, ok := vendorjson.SplitArray(body); ok {
		raw = arr
	} else {
		var env map[string]json.RawMessage
		if err := json.Unmarshal(body, &env); err != nil {
			return nil, connectors.Errorf(connectors.KindInvalidResponse, "unleashed webhooks: the subscription list is not JSON")
		}
		for k, v := range env {
			switch strings.ToLower(k) {
			case "items", "subscriptions", "data":
				if arr, ok := vendorjson.SplitArray(v); ok {
					raw = arr
				}
			}
		}
	}
	out := make([]subscription, 0, len(raw))
	for _, r := range raw {
		var s subscription
		if err := json.Unmarshal(r, &s); err != nil || s.id() == "" {
			return nil, connectors.Errorf(connectors.KindInvalidResponse, "unleashed webhooks: a subscription in the list has no id")
		}
		out = append(out, s)
	}
	return out, nil
}

// createSubscription makes a subscription of events delivering to target.
func (c *Connector) createSubscription(ctx context.Context, target string, events []string) (*subscription, error) {
	desc := "erpsync-operator"
	if c.cfg.CompanyID != "" {
		desc += " " + c.cfg.CompanyID
	}
	if len(desc) > 100 {
		desc = desc[:100]
	}
	body, err := json.Marshal(struct {
		Description     string   `json:"description"`
		NotificationURL string   `json:"notificationUrl"`
		EventTypes      []string `json:"eventTypes"`
	}{desc, target, events})
	if err != nil {
		return nil, fmt.Errorf("unleashed webhooks: encoding the subscription: %w", err)
	}
	resp, err := c.send(ctx, "webhooks_create", http.MethodPost, subscriptionsPath, body)
	if err != nil {
		return nil, fmt.Errorf("unleashed webhooks: creating a subscription: %w", err)
	}
	var s subscription
	if err := json.Unmarshal(resp.Body, &s); err != nil {
		return nil, connectors.Errorf(connectors.KindInvalidResponse, "unleashed webhooks: the new subscription is not JSON")
	}
	return &s, nil
}

// deleteSubscription removes one subscription; one already gone is fine.
func (c *Connector) deleteSubscription(ctx context.Context, id string) error {
	_, err := c.send(ctx, "webhooks_delete", http.MethodDelete, subscriptionsPath+"/"+url.PathEscape(id), nil)
	if err != nil && httpapi.StatusCode(err) != http.StatusNotFound {
		return fmt.Errorf("unleashed webhooks: deleting a subscription: %w", err)
	}
	return nil
}

// send makes one signed request with a JSON body (the signature covers the
// query string, empty here).
func (c *Connector) send(ctx context.Context, op, method, path string, body []byte) (*httpapi.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("building %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("api-auth-id", c.id)
	req.Header.Set("api-auth-signature", sign("", c.key))
	req.Header.Set("client-type", c.clientType)
	return c.client.Do(ctx, op, req)
}
