package cin7core

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
)

// Webhook registration (connectors.WebhookRegistrar), through the
// connector's own HTTP client: the same limiter of 60 calls a minute per
// API application and the same treatment of 429 and 503.
//
// Cin7 Core has one webhook per event type (GET/POST/PUT /webhooks,
// DELETE /webhooks?ID=), each with its own URL, authorisation, extra
// headers and IsActive flag, at most 5 of one type per account, and only
// with the Automation module. EnsureWebhooks keeps, for the ErpSync's URL,
// exactly one active webhook of each type the ErpSync's streams need, each
// with bearerauth and the ErpSync's credential and the EventTypeHeader
// naming its type; it leaves webhooks of other URLs alone.

var _ connectors.WebhookRegistrar = (*Connector)(nil)

// MaxWebhooksPerType is Cin7 Core's documented limit of webhooks of one
// type in an account.
const MaxWebhooksPerType = 5

// Bearer is the ExternalAuthorizationType the operator registers with.
const Bearer = "bearerauth"

// Webhook is one webhook as the /webhooks endpoints read and write it.
type Webhook struct {
	ID                        string       `json:"ID,omitempty"`
	Type                      string       `json:"Type"`
	Name                      string       `json:"Name,omitempty"`
	ExternalURL               string       `json:"ExternalURL"`
	IsActive                  bool         `json:"IsActive"`
	ExternalAuthorizationType string       `json:"ExternalAuthorizationType"`
	ExternalBearerToken       string       `json:"ExternalBearerToken"`
	ExternalUserName          string       `json:"ExternalUserName"`
	ExternalPassword          string       `json:"ExternalPassword"`
	ExternalHeaders           []HeaderPair `json:"ExternalHeaders"`
}

// HeaderPair is one of a webhook's ExternalHeaders.
type HeaderPair struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

// webhookList is the envelope every /webhooks answer has.
type webhookList struct {
	Webhooks []Webhook `json:"Webhooks"`
}

// EnsureWebhooks implements connectors.WebhookRegistrar.
func (c *Connector) EnsureWebhooks(ctx context.Context, target connectors.WebhookTarget) (*connectors.WebhookRegistration, error) {
	before := c.client.Calls()
	reg := &connectors.WebhookRegistration{}
	defer func() { reg.Calls = int(c.client.Calls() - before) }()
	cred := target.Keys[connectors.WebhookKeyCredential]
	if len(cred) == 0 {
		return reg, connectors.Errorf(connectors.KindSecretKeyMissing, "cin7core webhooks: the webhook Secret has no key %q", connectors.WebhookKeyCredential)
	}
	if err := checkTargetURL(target.URL); err != nil {
		return reg, err
	}
	want := EventTypesFor(target.Entities)
	hooks, err := c.listWebhooks(ctx)
	if err != nil {
		return reg, err
	}
	kept := map[string]bool{}
	var failed []string
	for _, h := range hooks {
		if h.ExternalURL != target.URL {
			continue
		}
		if !slices.Contains(want, h.Type) || kept[h.Type] {
			// A type the ErpSync no longer needs, or a second webhook of a
			// type (each would deliver every event again).
			if err := c.deleteWebhook(ctx, h.ID); err != nil {
				return reg, err
			}
			continue
		}
		kept[h.Type] = true
		wasActive := h.IsActive
		if ours(h, cred) && wasActive {
			reg.Subscriptions++
			continue
		}
		// Switched off by failed deliveries (Cin7 Core does it silently),
		// or made with another credential: one PUT sets both right.
		got, err := c.putWebhook(ctx, desired(h.ID, h.Type, target.URL, cred))
		if err != nil {
			return reg, err
		}
		if !got.IsActive {
			reg.Disabled = append(reg.Disabled, h.Type)
			continue
		}
		if !wasActive {
			reg.Reenabled++
		}
		reg.Subscriptions++
	}
	for _, t := range want {
		if kept[t] {
			continue
		}
		got, err := c.postWebhook(ctx, desired("", t, target.URL, cred))
		if err != nil {
			if connectors.KindOf(err) == connectors.KindInvalidConfig && httpapi.StatusCode(err) == http.StatusBadRequest {
				// Most likely the limit of 5 per type; the others may
				// still be made.
				failed = append(failed, t)
				continue
			}
			return reg, err
		}
		reg.Created++
		if got.IsActive {
			reg.Subscriptions++
		} else {
			reg.Disabled = append(reg.Disabled, t)
		}
	}
	if len(failed) > 0 {
		return reg, connectors.Errorf(connectors.KindInvalidConfig,
			"cin7core webhooks: Cin7 Core refused to create the webhooks of %d types (%s): it allows at most %d webhooks of one type per account; remove unused ones in Cin7 Core (Integrations, Webhooks)",
			len(failed), strings.Join(failed[:min(3, len(failed))], ", "), MaxWebhooksPerType)
	}
	return reg, nil
}

// RemoveWebhooks implements connectors.WebhookRegistrar.
func (c *Connector) RemoveWebhooks(ctx context.Context, rawURL string) (int, error) {
	before := c.client.Calls()
	calls := func() int { return int(c.client.Calls() - before) }
	hooks, err := c.listWebhooks(ctx)
	if err != nil {
		return calls(), err
	}
	for _, h := range hooks {
		if h.ExternalURL != rawURL {
			continue
		}
		if err := c.deleteWebhook(ctx, h.ID); err != nil {
			return calls(), err
		}
	}
	return calls(), nil
}

// desired is the webhook the operator keeps for type t.
func desired(id, t, rawURL string, cred []byte) Webhook {
	return Webhook{ID: id, Type: t, ExternalURL: rawURL, IsActive: true, ExternalAuthorizationType: Bearer,
		ExternalBearerToken: string(cred), ExternalHeaders: []HeaderPair{{Key: EventTypeHeader, Value: t}}}
}

// ours reports whether h authenticates with cred and names its type in
// the EventTypeHeader (the rest of a webhook the operator made).
func ours(h Webhook, cred []byte) bool {
	if h.ExternalAuthorizationType != Bearer || subtle.ConstantTimeCompare([]byte(h.ExternalBearerToken), cred) != 1 {
		return false
	}
	n := 0
	for _, p := range h.ExternalHeaders {
		if strings.EqualFold(p.Key, EventTypeHeader) {
			if p.Value != h.Type {
				return false
			}
			n++
		}
	}
	return n == 1
}

// checkTargetURL accepts an absolute http(s) URL without credentials.
func checkTargetURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return connectors.Errorf(connectors.KindInvalidConfig, "cin7core webhooks: the receiver URL is not an absolute http(s) URL")
	}
	return nil
}

// automationMissing turns the refusal of the /webhooks endpoints into the
// error the ErpSync's status shows: Cin7 Core serves them only to accounts
// with the Automation module. How it refuses is not documented; an
// account's credentials that read everything else but are refused here
// (403, 402) is taken to mean the module is missing.
func automationMissing(err error) error {
	switch httpapi.StatusCode(err) {
	case http.StatusForbidden, http.StatusPaymentRequired, http.StatusUnauthorized:
		return connectors.Wrap(connectors.KindInvalidConfig, err,
			"cin7core webhooks: Cin7 Core refused the webhook endpoints; webhooks need the Automation module on the Cin7 Core subscription (or the API application's credentials are wrong)")
	}
	return err
}

// listWebhooks reads every webhook of the account.
func (c *Connector) listWebhooks(ctx context.Context) ([]Webhook, error) {
	resp, _, err := c.get(ctx, "webhooks_list", "webhooks", url.Values{})
	if err != nil {
		return nil, automationMissing(fmt.Errorf("cin7core listing webhooks: %w", err))
	}
	var l webhookList
	if err := json.Unmarshal(resp.Body, &l); err != nil {
		return nil, connectors.Errorf(connectors.KindInvalidResponse, "cin7core GET /webhooks: the body is not a webhook list")
	}
	return l.Webhooks, nil
}

// postWebhook creates a webhook and returns it as Cin7 Core answered.
func (c *Connector) postWebhook(ctx context.Context, h Webhook) (Webhook, error) {
	return c.sendWebhook(ctx, http.MethodPost, "webhooks_create", h)
}

// putWebhook updates a webhook (by its ID) and returns it as Cin7 Core
// answered.
func (c *Connector) putWebhook(ctx context.Context, h Webhook) (Webhook, error) {
	return c.sendWebhook(ctx, http.MethodPut, "webhooks_update", h)
}

func (c *Connector) sendWebhook(ctx context.Context, method, op string, h Webhook) (Webhook, error) {
	body, err := json.Marshal(h)
	if err != nil {
		return Webhook{}, fmt.Errorf("cin7core encoding a webhook: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+"webhooks", bytes.NewReader(body))
	if err != nil {
		return Webhook{}, fmt.Errorf("cin7core building %s /webhooks: %w", method, err)
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(ctx, op, req)
	if err != nil {
		err = automationMissing(fmt.Errorf("cin7core %s /webhooks (%s): %w", method, h.Type, err))
		if httpapi.StatusCode(err) == http.StatusBadRequest {
			return Webhook{}, connectors.Wrap(connectors.KindInvalidConfig, err, "cin7core webhooks: Cin7 Core refused the webhook")
		}
		return Webhook{}, err
	}
	got, err := oneWebhook(resp.Body)
	if err != nil {
		return Webhook{}, connectors.Errorf(connectors.KindInvalidResponse, "cin7core %s /webhooks: %s", method, err.Error())
	}
	return got, nil
}

// oneWebhook reads the webhook an answer to POST or PUT names: the
// documented {"Webhooks": [...]} envelope, or a bare webhook.
func oneWebhook(body []byte) (Webhook, error) {
	var l webhookList
	if err := json.Unmarshal(body, &l); err == nil && len(l.Webhooks) > 0 {
		return l.Webhooks[0], nil
	}
	var h Webhook
	if err := json.Unmarshal(body, &h); err == nil && h.ID != "" {
		return h, nil
	}
	return Webhook{}, errors.New("the answer names no webhook")
}

// deleteWebhook deletes one webhook by id.
func (c *Connector) deleteWebhook(ctx context.Context, id string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.base+"webhooks?"+url.Values{"ID": {id}}.Encode(), nil)
	if err != nil {
		return fmt.Errorf("cin7core building DELETE /webhooks: %w", err)
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	if _, err := c.client.Do(ctx, "webhooks_delete", req); err != nil {
		return automationMissing(fmt.Errorf("cin7core deleting a webhook: %w", err))
	}
	return nil
}
