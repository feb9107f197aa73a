package katana

import (
	"context"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/go-logr/logr/testr"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/katana/sim"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
)

// hookRig is a connector on a simulator, for the registrar.
type hookRig struct {
	sim  *sim.Server
	srv  *httptest.Server
	conn connectors.Connector
}

func newHookRig(t *testing.T, o sim.Options) *hookRig {
	t.Helper()
	clock := httpapi.NewFakeClock(testStart)
	o.Dataset = simkit.Options{Seed: 3, Products: 20, Customers: 5, Orders: 5}
	o.Now = clock.Now
	s := sim.New(o)
	t.Cleanup(s.Close)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	creds := map[string][]byte{"apiKey": []byte(s.Credentials()["apiKey"])}
	c, err := NewWithOptions(context.Background(), connectors.Config{Type: Type, CompanyID: "acme", BaseURL: srv.URL + sim.BasePath,
		Credentials: creds, HTTPClient: srv.Client(), Log: testr.New(t)}, Options{Clock: clock, Registry: httpapi.NewRegistry(nil)})
	if err != nil {
		t.Fatal(err)
	}
	return &hookRig{sim: s, srv: srv, conn: c}
}

func (h *hookRig) ensure(t *testing.T, url string, keys map[string][]byte, entities ...model.Kind) *connectors.WebhookRegistration {
	t.Helper()
	before := h.sim.Stats().Served.Load()
	reg, err := h.conn.(connectors.WebhookRegistrar).EnsureWebhooks(context.Background(), connectors.WebhookTarget{URL: url, Keys: keys, Entities: entities})
	if err != nil {
		t.Fatalf("EnsureWebhooks: %v", err)
	}
	if served := h.sim.Stats().Served.Load() - before; served != int64(reg.Calls) {
		t.Errorf("%d calls reported, the simulator served %d", reg.Calls, served)
	}
	return reg
}

func (h *hookRig) subs(url string) []sim.WebhookSubscription {
	var out []sim.WebhookSubscription
	for _, s := range h.sim.WebhookSubscriptions() {
		if s.URL == url {
			out = append(out, s)
		}
	}
	return out
}

func keysWith(token string) map[string][]byte {
	k := map[string][]byte{"apiKey": []byte("x"), connectors.WebhookKeyCredential: []byte("random")}
	if token != "" {
		k[connectors.WebhookKeyToken] = []byte(token)
	}
	return k
}

var allStreams = []model.Kind{model.KindTaxRate, model.KindWarehouse, model.KindCustomer, model.KindProduct, model.KindStockLevel, model.KindPriceRule, model.KindSalesOrder}

// TestEnsureWebhooks registers, keeps and repairs the ErpSync's webhook
// against the simulator's /webhooks.
func TestEnsureWebhooks(t *testing.T) {
	const url = "https://operator.example/webhooks/katana/3f1c"
	h := newHookRig(t, sim.Options{})

	// A first call creates one webhook with the streams' events and
	// returns its token.
	reg := h.ensure(t, url, keysWith(""), allStreams...)
	subs := h.subs(url)
	if len(subs) != 1 || reg.Created != 1 || reg.Subscriptions != 1 || reg.Calls != 2 || string(reg.Keys[connectors.WebhookKeyToken]) != subs[0].Token {
		t.Fatalf("first call: %+v, subscriptions %+v", reg, subs)
	}
	if !slices.Equal(subs[0].Events, WebhookEvents(allStreams)) || !subs[0].Enabled {
		t.Errorf("events %v, want %v", subs[0].Events, WebhookEvents(allStreams))
	}
	token := subs[0].Token

	// Nothing changed: one list call, nothing made, no keys.
	reg = h.ensure(t, url, keysWith(token), allStreams...)
	if reg.Calls != 1 || reg.Created != 0 || reg.Reenabled != 0 || reg.Keys != nil || reg.Subscriptions != 1 {
		t.Errorf("second call: %+v", reg)
	}

	// The token was lost (the webhook Secret deleted): Katana's list shows
	// it, so it is adopted, not replaced.
	reg = h.ensure(t, url, keysWith(""), allStreams...)
	if reg.Calls != 1 || reg.Created != 0 || string(reg.Keys[connectors.WebhookKeyToken]) != token || len(h.subs(url)) != 1 {
		t.Errorf("lost token: %+v", reg)
	}
	// A token the operator holds that Katana does not know: the listed one.
	reg = h.ensure(t, url, keysWith("0123456789abcdef"), allStreams...)
	if string(reg.Keys[connectors.WebhookKeyToken]) != token || reg.Created != 0 {
		t.Errorf("stale token: %+v", reg)
	}

	// Switched off in Katana: switched back on.
	h.sim.DisableWebhook(subs[0].ID)
	reg = h.ensure(t, url, keysWith(token), allStreams...)
	if reg.Reenabled != 1 || reg.Calls != 2 || len(reg.Disabled) != 0 || !h.subs(url)[0].Enabled {
		t.Errorf("re-enable: %+v", reg)
	}

	// The ErpSync now syncs sales orders only: its events follow.
	reg = h.ensure(t, url, keysWith(token), model.KindSalesOrder, model.KindCustomer)
	if reg.Calls != 2 || !slices.Equal(h.subs(url)[0].Events, []string{"sales_order.created", "sales_order.deleted", "sales_order.updated"}) {
		t.Errorf("narrowed: %+v, events %v", reg, h.subs(url)[0].Events)
	}

	// A stray second webhook to the same URL (a create whose answer was
	// lost) and one to another URL: the stray goes, the other stays.
	other := "https://elsewhere.example/hook"
	for _, u := range []string{url, other} {
		if _, err := h.conn.(*connector).createWebhook(context.Background(), u, []string{"product.updated"}); err != nil {
			t.Fatal(err)
		}
	}
	reg = h.ensure(t, url, keysWith(token), allStreams...)
	if got := h.subs(url); len(got) != 1 || got[0].Token != token || reg.Calls != 3 || len(h.subs(other)) != 1 {
		t.Errorf("stray: %+v, subscriptions %+v", reg, got)
	}

	// Streams without events: nothing should deliver.
	reg = h.ensure(t, url, keysWith(token), model.KindCustomer, model.KindStockLevel)
	if len(h.subs(url)) != 0 || reg.Subscriptions != 0 || reg.Calls != 2 {
		t.Errorf("no events: %+v", reg)
	}

	// RemoveWebhooks deletes this URL's webhooks only.
	h.ensure(t, url, keysWith(""), allStreams...)
	calls, err := h.conn.(connectors.WebhookRegistrar).RemoveWebhooks(context.Background(), url)
	if err != nil || calls != 2 || len(h.subs(url)) != 0 || len(h.subs(other)) != 1 {
		t.Errorf("remove: %d calls, %v; left %d and %d", calls, err, len(h.subs(url)), len(h.subs(other)))
	}
	if calls, err := h.conn.(connectors.WebhookRegistrar).RemoveWebhooks(context.Background(), url); err != nil || calls != 1 {
		t.Errorf("remove again: %d calls, %v", calls, err)
	}
}

// TestEnsureWebhooksReplacesAnUnknownToken: should Katana show the token
// only at creation (its documents say the list shows it), the webhook made
// with the held token is kept, and one whose token the operator lost is
// unverifiable, so it is deleted and made again.
func TestEnsureWebhooksReplacesAnUnknownToken(t *testing.T) {
	const url = "https://operator.example/webhooks/katana/77"
	h := newHookRig(t, sim.Options{HideWebhookTokens: true})
	first := h.ensure(t, url, keysWith(""), model.KindProduct)
	token := string(first.Keys[connectors.WebhookKeyToken])
	if first.Created != 1 || token == "" || h.subs(url)[0].Token != token {
		t.Fatalf("create: %+v", first)
	}
	if reg := h.ensure(t, url, keysWith(token), model.KindProduct); reg.Calls != 1 || reg.Created != 0 || reg.Keys != nil {
		t.Errorf("held token: %+v", reg)
	}
	reg := h.ensure(t, url, keysWith(""), model.KindProduct)
	subs := h.subs(url)
	if reg.Created != 1 || reg.Calls != 3 || len(subs) != 1 || subs[0].Token == token || string(reg.Keys[connectors.WebhookKeyToken]) != subs[0].Token {
		t.Errorf("lost token: %+v, subscriptions %+v", reg, subs)
	}
	// Two webhooks whose tokens cannot be told apart: both replaced by one.
	if _, err := h.conn.(*connector).createWebhook(context.Background(), url, []string{"product.updated"}); err != nil {
		t.Fatal(err)
	}
	reg = h.ensure(t, url, keysWith(subs[0].Token), model.KindProduct)
	if now := h.subs(url); reg.Created != 1 || reg.Calls != 4 || len(now) != 1 || string(reg.Keys[connectors.WebhookKeyToken]) != now[0].Token {
		t.Errorf("two hidden: %+v, subscriptions %+v", reg, now)
	}
}

// TestEnsureWebhooksErrors: a refused key names the Secret key; a missing
// URL is a configuration error.
func TestEnsureWebhooksErrors(t *testing.T) {
	h := newHookRig(t, sim.Options{})
	bad, err := NewWithOptions(context.Background(), connectors.Config{Type: Type, CompanyID: "acme", BaseURL: h.srv.URL + sim.BasePath,
		Credentials: map[string][]byte{"apiKey": []byte("wrong")}, HTTPClient: h.srv.Client(), Log: testr.New(t)},
		Options{Clock: httpapi.NewFakeClock(testStart), Registry: httpapi.NewRegistry(nil)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.(connectors.WebhookRegistrar).EnsureWebhooks(context.Background(), connectors.WebhookTarget{URL: "https://x.example/a", Entities: allStreams})
	if connectors.KindOf(err) != connectors.KindAuthenticationFailed || !strings.Contains(err.Error(), "apiKey") || strings.Contains(err.Error(), "wrong") {
		t.Errorf("wrong key: %v, want AuthenticationFailed naming the Secret key, not the key", err)
	}
	if _, err := h.conn.(connectors.WebhookRegistrar).EnsureWebhooks(context.Background(), connectors.WebhookTarget{Entities: allStreams}); connectors.KindOf(err) != connectors.KindInvalidConfig {
		t.Errorf("no URL: %v, want InvalidConfig", err)
	}
	// Katana refuses a URL that is not https (the document's pattern).
	if _, err := h.conn.(connectors.WebhookRegistrar).EnsureWebhooks(context.Background(), connectors.WebhookTarget{URL: "http://x.example/a", Entities: allStreams}); connectors.KindOf(err) != connectors.KindInvalidResponse {
		t.Errorf("an http URL: %v, want the vendor's refusal", err)
	}
}
