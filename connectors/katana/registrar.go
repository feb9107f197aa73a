package katana

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
	"strconv"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
)

// Registration of Katana's webhooks through its API (the community OpenAPI
// document's /webhooks and /webhooks/{id}, matching Katana's reference):
// POST /webhooks {url, enabled, subscribed_events, description} answers the
// webhook with its token; GET /webhooks lists them (filters url, enabled,
// ids; pages of at most 250, newest first); PATCH /webhooks/{id} changes
// url, enabled or subscribed_events; DELETE /webhooks/{id} answers 204.
//
// One webhook per ErpSync: the URL is the ErpSync's own receiver path, and
// one webhook carries every event the ErpSync's streams need. Katana shows
// the token in the list too (the Webhook schema and the list example of
// both Katana's reference and the community document), so a webhook whose
// token the operator lost is adopted with the token the list shows; only
// one whose token the list does not show is deleted and made again.

var _ connectors.WebhookRegistrar = (*connector)(nil)

// kWebhook is Katana's Webhook object.
type kWebhook struct {
	ID          int64    `json:"id"`
	URL         string   `json:"url"`
	Token       string   `json:"token"`
	Enabled     bool     `json:"enabled"`
	Description *string  `json:"description"`
	Events      []string `json:"subscribed_events"`
}

// maxWebhookPages bounds the pages a listing of one URL's webhooks reads.
const maxWebhookPages = 20

// webhookDescription is the description of the webhooks the operator makes.
func (c *connector) webhookDescription() string {
	d := "erpsync-operator"
	if c.cfg.CompanyID != "" {
		d += ": " + c.cfg.CompanyID
	}
	return d
}

// EnsureWebhooks implements connectors.WebhookRegistrar: it lists the
// webhooks of target.URL (one call while nothing needs doing) and keeps
// exactly one: the one whose token target.Keys holds, else one whose token
// the list shows (adopted: Keys returns its token), else a new one; the
// others to that URL are deleted (they would deliver signed with tokens the
// receiver does not hold). The kept one is switched back on if it was
// disabled and its events set to those of target.Entities.
func (c *connector) EnsureWebhooks(ctx context.Context, target connectors.WebhookTarget) (*connectors.WebhookRegistration, error) {
	before := c.client.Calls()
	reg, err := c.ensureWebhooks(ctx, target)
	if reg == nil {
		reg = &connectors.WebhookRegistration{}
	}
	reg.Calls = int(c.client.Calls() - before)
	if err != nil {
		return reg, c.explainWebhooks(err)
	}
	return reg, nil
}

func (c *connector) ensureWebhooks(ctx context.Context, target connectors.WebhookTarget) (*connectors.WebhookRegistration, error) {
	if target.URL == "" {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "katana webhooks: no receiver URL to subscribe")
	}
	want := WebhookEvents(target.Entities)
	subs, err := c.listWebhooks(ctx, target.URL)
	if err != nil {
		return nil, err
	}
	reg := &connectors.WebhookRegistration{}
	if len(want) == 0 {
		// None of the streams has events: nothing should deliver here.
		for _, s := range subs {
			if err := c.deleteWebhook(ctx, s.ID); err != nil {
				return reg, err
			}
		}
		return reg, nil
	}
	keep, adopt := pickWebhook(subs, target.Keys[connectors.WebhookKeyToken])
	for i, s := range subs {
		if i == keep {
			continue
		}
		if err := c.deleteWebhook(ctx, s.ID); err != nil {
			return reg, err
		}
	}
	if keep < 0 {
		w, err := c.createWebhook(ctx, target.URL, want)
		if err != nil {
			return reg, err
		}
		reg.Keys = map[string][]byte{connectors.WebhookKeyToken: []byte(w.Token)}
		reg.Created, reg.Subscriptions = 1, 1
		if !w.Enabled {
			reg.Disabled = want
		}
		return reg, nil
	}
	w := subs[keep]
	if adopt {
		reg.Keys = map[string][]byte{connectors.WebhookKeyToken: []byte(w.Token)}
	}
	reg.Subscriptions = 1
	if w.Enabled && sameEvents(w.Events, want) {
		return reg, nil
	}
	upd, err := c.updateWebhook(ctx, w.ID, want)
	if err != nil {
		return reg, err
	}
	switch {
	case upd.Enabled && !w.Enabled:
		reg.Reenabled = 1
	case !upd.Enabled:
		reg.Disabled = want
	}
	return reg, nil
}

// pickWebhook chooses the webhook to keep among those of one URL: the one
// whose token is held (compared in constant time), else the first (newest)
// enabled one whose token the list shows, else the first whose token it
// shows (adopt: the caller must store that token). Should the list show no
// tokens (Katana's documents say it does), the only webhook of the URL is
// kept while a token is held, the one stored when it was made; without a
// held token, or with several webhooks whose tokens cannot be told apart,
// none will do (-1: they are replaced).
func pickWebhook(subs []kWebhook, held []byte) (keep int, adopt bool) {
	if len(held) > 0 {
		for i, s := range subs {
			if s.Token != "" && subtle.ConstantTimeCompare([]byte(s.Token), held) == 1 {
				return i, false
			}
		}
	}
	for _, enabled := range []bool{true, false} {
		for i, s := range subs {
			if s.Token != "" && len(s.Token) <= maxTokenLen && s.Enabled == enabled {
				return i, true
			}
		}
	}
	if len(held) > 0 && len(subs) == 1 && subs[0].Token == "" {
		return 0, false
	}
	return -1, false
}

// sameEvents reports whether two event lists hold the same events.
func sameEvents(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// RemoveWebhooks implements connectors.WebhookRegistrar: it deletes every
// webhook that delivers to url.
func (c *connector) RemoveWebhooks(ctx context.Context, u string) (int, error) {
	before := c.client.Calls()
	err := func() error {
		if u == "" {
			return connectors.Errorf(connectors.KindInvalidConfig, "katana webhooks: no receiver URL to unsubscribe")
		}
		subs, err := c.listWebhooks(ctx, u)
		if err != nil {
			return err
		}
		for _, s := range subs {
			if err := c.deleteWebhook(ctx, s.ID); err != nil {
				return err
			}
		}
		return nil
	}()
	calls := int(c.client.Calls() - before)
	if err != nil {
		return calls, c.explainWebhooks(err)
	}
	return calls, nil
}

// explainWebhooks adds what a person needs to a registration error.
func (c *connector) explainWebhooks(err error) error {
	if connectors.KindOf(err) == connectors.KindAuthenticationFailed {
		return connectors.Wrap(connectors.KindAuthenticationFailed, err, "katana webhooks: Katana refused the API key; put a valid key (Settings → API → API keys) in the credentials Secret under apiKey")
	}
	return fmt.Errorf("katana webhooks: %w", err)
}

func (c *connector) headers(body bool) http.Header {
	h := http.Header{"Authorization": {c.auth}, "Accept": {"application/json"}}
	if body {
		h.Set("Content-Type", "application/json")
	}
	return h
}

// listWebhooks reads the webhooks that deliver to u: GET /webhooks with the
// documented url filter, every page; the URL is compared again here, so a
// filter Katana matched loosely (or ignored) keeps no other URL's webhook.
func (c *connector) listWebhooks(ctx context.Context, u string) ([]kWebhook, error) {
	var out []kWebhook
	for page := 1; page <= maxWebhookPages; page++ {
		q := url.Values{"url": {u}, "limit": {strconv.Itoa(PageSize)}, "page": {strconv.Itoa(page)}}
		resp, err := c.client.Get(ctx, "list_webhooks", c.base+"/webhooks?"+q.Encode(), c.headers(false))
		if err != nil {
			return nil, err
		}
		var body struct {
			Data *[]kWebhook `json:"data"`
		}
		if err := json.Unmarshal(resp.Body, &body); err != nil || body.Data == nil {
			return nil, connectors.Errorf(connectors.KindInvalidResponse, "GET /webhooks page %d: the response is not a list of webhooks", page)
		}
		for _, w := range *body.Data {
			if w.ID <= 0 {
				return nil, connectors.Errorf(connectors.KindInvalidResponse, "GET /webhooks page %d: a webhook without an id", page)
			}
			if w.URL == u {
				out = append(out, w)
			}
		}
		pag, err := parsePagination(resp.Header.Get("X-Pagination"))
		if err != nil {
			return nil, connectors.Wrap(connectors.KindInvalidResponse, err, fmt.Sprintf("GET /webhooks page %d: X-Pagination", page))
		}
		more := len(*body.Data) >= PageSize
		switch {
		case pag.lastPage != nil:
			more = !*pag.lastPage
		case pag.totalPages >= 0:
			more = page < pag.totalPages
		}
		if !more || len(*body.Data) == 0 {
			return out, nil
		}
	}
	return nil, connectors.Errorf(connectors.KindInvalidResponse, "GET /webhooks: more than %d pages of webhooks for one URL", maxWebhookPages)
}

// send makes a request with a JSON body and decodes a Webhook answer.
func (c *connector) send(ctx context.Context, op, method, path string, in any) (*kWebhook, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("%s %s: encoding the request: %w", method, path, err)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(b))
	if err != nil {
		return nil, connectors.Wrap(connectors.KindInvalidConfig, err, method+" "+path)
	}
	req.Header = c.headers(true)
	resp, err := c.client.Do(ctx, op, req)
	if err != nil {
		return nil, err
	}
	var w kWebhook
	if err := json.Unmarshal(resp.Body, &w); err != nil || w.ID <= 0 {
		return nil, connectors.Errorf(connectors.KindInvalidResponse, "%s %s: the response is not a webhook", method, path)
	}
	return &w, nil
}

// createWebhook registers a webhook; Katana answers it with its token.
func (c *connector) createWebhook(ctx context.Context, u string, events []string) (*kWebhook, error) {
	w, err := c.send(ctx, "create_webhook", http.MethodPost, "/webhooks", map[string]any{
		"url": u, "enabled": true, "subscribed_events": events, "description": c.webhookDescription(),
	})
	if err != nil {
		return nil, err
	}
	if w.Token == "" || len(w.Token) > maxTokenLen {
		// Made, but it cannot be verified: delete it rather than leave a
		// webhook whose deliveries would all be refused.
		if derr := c.deleteWebhook(ctx, w.ID); derr != nil {
			return nil, connectors.Errorf(connectors.KindInvalidResponse, "POST /webhooks answered no usable token, and deleting webhook %d failed: %v", w.ID, derr)
		}
		return nil, connectors.Errorf(connectors.KindInvalidResponse, "POST /webhooks answered no usable token")
	}
	return w, nil
}

// updateWebhook switches a webhook on with the given events.
func (c *connector) updateWebhook(ctx context.Context, id int64, events []string) (*kWebhook, error) {
	return c.send(ctx, "update_webhook", http.MethodPatch, "/webhooks/"+strconv.FormatInt(id, 10), map[string]any{
		"enabled": true, "subscribed_events": events,
	})
}

// deleteWebhook deletes a webhook; one already gone (404) is not an error.
func (c *connector) deleteWebhook(ctx context.Context, id int64) error {
	path := "/webhooks/" + strconv.FormatInt(id, 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.base+path, nil)
	if err != nil {
		return connectors.Wrap(connectors.KindInvalidConfig, err, "DELETE "+path)
	}
	req.Header = c.headers(false)
	if _, err := c.client.Do(ctx, "delete_webhook", req); err != nil {
		var se *httpapi.StatusError
		if errors.As(err, &se) && se.StatusCode == http.StatusNotFound {
			return nil
		}
		return err
	}
	return nil
}
