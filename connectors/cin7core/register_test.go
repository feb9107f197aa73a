package cin7core_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/cin7core"
	"github.com/erpsync/erpsync-operator/connectors/cin7core/sim"
	"github.com/erpsync/erpsync-operator/connectors/contracttest"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
)

// allStreams are the connector's entity streams.
var allStreams = []model.Kind{model.KindTaxRate, model.KindWarehouse, model.KindSupplier, model.KindCustomer, model.KindProduct,
	model.KindStockLevel, model.KindSalesOrder, model.KindCreditNote}

func webhookTarget(url, cred string, entities ...model.Kind) connectors.WebhookTarget {
	if len(entities) == 0 {
		entities = allStreams
	}
	return connectors.WebhookTarget{URL: url, Entities: entities,
		Keys: map[string][]byte{connectors.WebhookKeyCredential: []byte(cred), "accountId": []byte("ignored")}}
}

func ensure(t *testing.T, c connectors.Connector, target connectors.WebhookTarget) *connectors.WebhookRegistration {
	t.Helper()
	reg, err := c.(connectors.WebhookRegistrar).EnsureWebhooks(context.Background(), target)
	if err != nil {
		t.Fatalf("EnsureWebhooks: %v", err)
	}
	return reg
}

// ofURL returns the simulator's webhooks that deliver to url, by type.
func ofURL(s *sim.Server, url string) map[string][]sim.Webhook {
	out := map[string][]sim.Webhook{}
	for _, h := range s.WebhookSubscriptions() {
		if h.ExternalURL == url {
			out[h.Type] = append(out[h.Type], h)
		}
	}
	return out
}

// TestEnsureWebhooks: the first call makes one bearer webhook per type the
// streams need; a second costs one list call and changes nothing; webhooks
// the vendor disabled are switched back on (Reenabled); a new credential,
// fewer streams, duplicates and foreign webhooks are handled; everything
// goes through the connector's rate limiter and counts in Calls.
func TestEnsureWebhooks(t *testing.T) {
	e := newEnv(t, envOpts{})
	t.Cleanup(e.sim.Close)
	const url = "https://crm.example/webhooks/cin7core/6f1c0d7e-uid"
	types := cin7core.EventTypesFor(allStreams)
	if len(types) != 18 {
		t.Fatalf("%d types for every stream: %v", len(types), types)
	}
	reg := ensure(t, e.conn, webhookTarget(url, "cred-1"))
	if reg.Created != len(types) || reg.Subscriptions != len(types) || reg.Reenabled != 0 || len(reg.Disabled) != 0 || reg.Keys != nil || reg.Calls != 1+len(types) {
		t.Fatalf("first EnsureWebhooks = %+v, want %d created in %d calls", reg, len(types), 1+len(types))
	}
	got := ofURL(e.sim, url)
	for _, typ := range types {
		hs := got[typ]
		if len(hs) != 1 {
			t.Fatalf("%s: %d webhooks", typ, len(hs))
		}
		h := hs[0]
		if !h.IsActive || h.ExternalAuthorizationType != "bearerauth" || h.ExternalBearerToken != "cred-1" ||
			len(h.ExternalHeaders) != 1 || h.ExternalHeaders[0] != (sim.HeaderPair{Key: cin7core.EventTypeHeader, Value: typ}) {
			t.Errorf("%s: %+v", typ, h)
		}
	}

	// Nothing changed: one list call.
	reg = ensure(t, e.conn, webhookTarget(url, "cred-1"))
	if reg.Created != 0 || reg.Reenabled != 0 || reg.Calls != 1 || reg.Subscriptions != len(types) {
		t.Errorf("second EnsureWebhooks = %+v, want one call and nothing made", reg)
	}

	// Cin7 Core disabled them after failed deliveries.
	if n := e.sim.DisableWebhooks(url); n != len(types) {
		t.Fatalf("disabled %d", n)
	}
	reg = ensure(t, e.conn, webhookTarget(url, "cred-1"))
	if reg.Reenabled != len(types) || reg.Created != 0 || reg.Subscriptions != len(types) || reg.Calls != 1+len(types) {
		t.Errorf("after the vendor disabled them: %+v", reg)
	}
	for typ, hs := range ofURL(e.sim, url) {
		if !hs[0].IsActive {
			t.Errorf("%s still inactive", typ)
		}
	}
	if d := e.sim.WebhookDeliverer(url); d == nil || d.Disabled() {
		t.Errorf("the deliverer is still disabled")
	}

	// A new credential (the webhook Secret was recreated): updated in place.
	reg = ensure(t, e.conn, webhookTarget(url, "cred-2"))
	if reg.Created != 0 || reg.Reenabled != 0 || reg.Subscriptions != len(types) || reg.Calls != 1+len(types) {
		t.Errorf("with a new credential: %+v", reg)
	}
	for typ, hs := range ofURL(e.sim, url) {
		if hs[0].ExternalBearerToken != "cred-2" {
			t.Errorf("%s keeps the old credential", typ)
		}
	}

	// Fewer streams: the webhooks of the others go; a foreign webhook and
	// a duplicate of ours are handled.
	foreign := cin7core.Webhook{Type: "Customer/Updated", ExternalURL: "https://other.example/hook", IsActive: true, ExternalAuthorizationType: "noauth"}
	dup := cin7core.Webhook{Type: "Customer/Updated", ExternalURL: url, IsActive: true, ExternalAuthorizationType: "bearerauth", ExternalBearerToken: "cred-2",
		ExternalHeaders: []cin7core.HeaderPair{{Key: cin7core.EventTypeHeader, Value: "Customer/Updated"}}}
	postHook(t, e, foreign)
	postHook(t, e, dup)
	reg = ensure(t, e.conn, webhookTarget(url, "cred-2", model.KindCustomer, model.KindTaxRate))
	got = ofURL(e.sim, url)
	if len(got) != 1 || len(got["Customer/Updated"]) != 1 || reg.Subscriptions != 1 || reg.Created != 0 {
		t.Errorf("customers only: %+v, webhooks %v", reg, got)
	}
	if len(ofURL(e.sim, foreign.ExternalURL)["Customer/Updated"]) != 1 {
		t.Error("the foreign webhook was touched")
	}

	// RemoveWebhooks removes ours only.
	calls, err := e.conn.(connectors.WebhookRegistrar).RemoveWebhooks(context.Background(), url)
	if err != nil || calls != 2 {
		t.Errorf("RemoveWebhooks = %d calls, %v", calls, err)
	}
	if len(ofURL(e.sim, url)) != 0 || len(e.sim.WebhookSubscriptions()) != 1 {
		t.Errorf("after RemoveWebhooks: %+v", e.sim.WebhookSubscriptions())
	}
	for _, q := range e.rec.Queries() {
		if strings.Contains(q, "cred-") {
			t.Errorf("a credential in a URL: %s", q)
		}
	}
}

func postHook(t *testing.T, e *env, h cin7core.Webhook) {
	t.Helper()
	b, _ := json.Marshal(h)
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/ExternalApi/v2/webhooks", strings.NewReader(string(b)))
	for k, v := range map[string]string{"api-auth-accountid": sim.DefaultAccountID, "api-auth-applicationkey": sim.DefaultApplicationKey} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST = %d", resp.StatusCode)
	}
}

// TestEnsureWebhooksErrors: a missing credential key, an account without
// the Automation module, the limit of 5 per type, and a bad receiver URL
// become errors the ErpSync's status can show.
func TestEnsureWebhooksErrors(t *testing.T) {
	const url = "https://crm.example/webhooks/cin7core/uid"
	t.Run("no credential", func(t *testing.T) {
		e := newEnv(t, envOpts{})
		target := webhookTarget(url, "x")
		delete(target.Keys, connectors.WebhookKeyCredential)
		_, err := e.conn.(connectors.WebhookRegistrar).EnsureWebhooks(context.Background(), target)
		if connectors.KindOf(err) != connectors.KindSecretKeyMissing || !strings.Contains(err.Error(), connectors.WebhookKeyCredential) {
			t.Errorf("err = %v", err)
		}
		if n := len(e.rec.Requests()); n != 0 {
			t.Errorf("%d requests before the key was checked", n)
		}
	})
	t.Run("bad URL", func(t *testing.T) {
		e := newEnv(t, envOpts{})
		for _, u := range []string{"", "/relative", "ftp://x/y", "https://user:pw@x/y"} {
			if _, err := e.conn.(connectors.WebhookRegistrar).EnsureWebhooks(context.Background(), webhookTarget(u, "x")); connectors.KindOf(err) != connectors.KindInvalidConfig {
				t.Errorf("%q: err = %v", u, err)
			}
		}
	})
	t.Run("no Automation module", func(t *testing.T) {
		e := newEnv(t, envOpts{sim: sim.Options{NoAutomation: true}})
		reg, err := e.conn.(connectors.WebhookRegistrar).EnsureWebhooks(context.Background(), webhookTarget(url, "x"))
		if connectors.KindOf(err) != connectors.KindInvalidConfig || !strings.Contains(err.Error(), "Automation module") {
			t.Errorf("err = %v, want InvalidConfig naming the Automation module", err)
		}
		if reg == nil || reg.Calls != 1 {
			t.Errorf("registration %+v", reg)
		}
		if _, err := e.conn.(connectors.WebhookRegistrar).RemoveWebhooks(context.Background(), url); err == nil || !strings.Contains(err.Error(), "Automation module") {
			t.Errorf("RemoveWebhooks: %v", err)
		}
	})
	t.Run("five per type", func(t *testing.T) {
		e := newEnv(t, envOpts{})
		t.Cleanup(e.sim.Close)
		for i := range cin7core.MaxWebhooksPerType {
			postHook(t, e, cin7core.Webhook{Type: "Customer/Updated", ExternalURL: "https://other.example/" + string(rune('a'+i)), IsActive: true})
		}
		reg, err := e.conn.(connectors.WebhookRegistrar).EnsureWebhooks(context.Background(), webhookTarget(url, "x", model.KindCustomer, model.KindProduct))
		if connectors.KindOf(err) != connectors.KindInvalidConfig || !strings.Contains(err.Error(), "Customer/Updated") || !strings.Contains(err.Error(), "at most 5") {
			t.Errorf("err = %v", err)
		}
		if reg.Created != 1 || reg.Subscriptions != 1 || len(ofURL(e.sim, url)["Product/Updated"]) != 1 {
			t.Errorf("the other type was not made: %+v", reg)
		}
	})
}

// TestEnsureWebhooksThrottled: with the vendor's limit nearly spent, the
// registration waits for it (the 503 and 429 the connector already
// handles) and still completes.
func TestEnsureWebhooksThrottled(t *testing.T) {
	e := newEnv(t, envOpts{sim: sim.Options{CallsPerMinute: 4}})
	t.Cleanup(e.sim.Close)
	reg := ensure(t, e.conn, webhookTarget("https://crm.example/h", "x", model.KindSalesOrder))
	if reg.Created != 14 || reg.Subscriptions != 14 {
		t.Errorf("registration %+v", reg)
	}
	if e.sim.Stats().Throttled.Load() == 0 {
		t.Error("the simulator never throttled: the test proves nothing")
	}
}

// TestWebhookRequestsMatchSpec: what the registrar sends (POST and PUT
// bodies) and what the simulator answers validate against the saved
// spec's webhook schemas.
func TestWebhookRequestsMatchSpec(t *testing.T) {
	specPath, err := contracttest.SpecPath("cin7-core-openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	s := sim.New(sim.Options{Dataset: simkit.Options{Seed: 1, Products: 5, Customers: 5, Orders: 5}, CallsPerMinute: -1})
	t.Cleanup(s.Close)
	var mu sync.Mutex
	seen := map[string]int{}
	check := func(schema string, body []byte) {
		t.Helper()
		ref := doc.Components.Schemas[schema]
		if ref == nil {
			t.Fatalf("no schema %s", schema)
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Errorf("%s: %v", schema, err)
			return
		}
		if err := ref.Value.VisitJSON(v, openapi3.MultiErrors()); err != nil {
			t.Errorf("%s: %v", schema, err)
		}
		mu.Lock()
		seen[schema]++
		mu.Unlock()
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in []byte
		if r.Body != nil {
			in, _ = io.ReadAll(r.Body)
		}
		switch r.Method {
		case http.MethodPost:
			check("webhooks_post_request", in)
		case http.MethodPut:
			check("webhooks_put_request", in)
		}
		r.Body = io.NopCloser(strings.NewReader(string(in)))
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, r)
		if strings.Contains(strings.ToLower(r.URL.Path), "webhooks") && rec.Code == 200 {
			check(map[string]string{http.MethodGet: "webhooks_get_200_response", http.MethodPost: "webhooks_post_200_response",
				http.MethodPut: "webhooks_put_200_response", http.MethodDelete: "webhooks_Id__delete_200_response"}[r.Method], rec.Body.Bytes())
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(srv.Close)
	c, err := cin7core.NewWithOptions(context.Background(), connectors.Config{Type: cin7core.Type, CompanyID: company, BaseURL: srv.URL + "/ExternalApi/v2/",
		Credentials: map[string][]byte{"accountId": []byte(sim.DefaultAccountID), "applicationKey": []byte(sim.DefaultApplicationKey)}},
		cin7core.Options{TimeScale: testScale, BackoffBase: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	const url = "https://crm.example/h"
	ensure(t, c, webhookTarget(url, "a", model.KindCustomer, model.KindProduct))
	s.DisableWebhooks(url)
	ensure(t, c, webhookTarget(url, "a", model.KindCustomer))
	for _, schema := range []string{"webhooks_post_request", "webhooks_put_request", "webhooks_get_200_response", "webhooks_post_200_response",
		"webhooks_put_200_response", "webhooks_Id__delete_200_response"} {
		if seen[schema] == 0 {
			t.Errorf("%s never checked", schema)
		}
	}
}
