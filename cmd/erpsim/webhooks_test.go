package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"

	unleashedsim "github.com/erpsync/erpsync-operator/connectors/unleashed/sim"
)

// capture is a webhook receiver that records what it is sent and answers
// with answer (200 by default).
type capture struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []delivery
	answer func(h http.Header, body []byte) int
}

type delivery struct {
	header http.Header
	body   []byte
	at     time.Time
}

func newCapture(t *testing.T, answer func(h http.Header, body []byte) int) *capture {
	t.Helper()
	c := &capture{answer: answer}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		c.mu.Lock()
		c.got = append(c.got, delivery{header: r.Header.Clone(), body: b, at: time.Now()})
		c.mu.Unlock()
		code := http.StatusOK
		if c.answer != nil {
			code = c.answer(r.Header, b)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// wait returns the deliveries once match holds for one of them.
func (c *capture) wait(t *testing.T, what string, match func(d delivery) bool) delivery {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		for _, d := range c.got {
			if match(d) {
				c.mu.Unlock()
				return d
			}
		}
		c.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no delivery %s arrived in 10s", what)
	return delivery{}
}

func (c *capture) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

func xeroSign(key string, body []byte) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func webhookList(t *testing.T, srv *httptest.Server, vendor string) []WebhookState {
	t.Helper()
	code, b := call(t, srv, "GET", "/vendors/"+vendor+"/webhooks", "")
	if code != http.StatusOK {
		t.Fatalf("GET %s's webhooks: %d %s", vendor, code, b)
	}
	var ws []WebhookState
	if err := json.Unmarshal(b, &ws); err != nil {
		t.Fatal(err)
	}
	return ws
}

func vendorStats(t *testing.T, srv *httptest.Server, vendor string) VendorState {
	t.Helper()
	code, b := call(t, srv, "GET", "/vendors/"+vendor+"/stats", "")
	if code != http.StatusOK {
		t.Fatalf("GET %s's stats: %d %s", vendor, code, b)
	}
	var st VendorState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestXeroPortal plays the developer portal: the key PUT returns is the
// webhookKey erpsim publishes in Xero's credentials; nothing is delivered
// before the intent-to-receive check passes; a receiver that answers every
// delivery 200 fails it (409); one that checks the signature passes it and
// then gets every change of a contact signed with that key; DELETE stops
// the deliveries.
func TestXeroPortal(t *testing.T) {
	f, srv := testFleet(t)
	x, err := f.find("xero")
	if err != nil {
		t.Fatal(err)
	}
	key := x.state(false).Credentials[connectors.WebhookKeyXero]
	if key == "" {
		t.Fatalf("Xero's credentials have no %s: %v", connectors.WebhookKeyXero, x.state(false).Credentials)
	}
	verifying := newCapture(t, func(h http.Header, body []byte) int {
		if hmac.Equal([]byte(h.Get("x-xero-signature")), []byte(xeroSign(key, body))) {
			return http.StatusOK
		}
		return http.StatusUnauthorized
	})
	lenient := newCapture(t, nil)

	if code, b := call(t, srv, "POST", "/vendors/xero/webhook/intent", ""); code != http.StatusConflict {
		t.Errorf("the check without a webhook: %d %s, want 409", code, b)
	}
	if code, b := call(t, srv, "PUT", "/vendors/katana/webhook", `{"url": "`+verifying.srv.URL+`"}`); code != http.StatusNotFound {
		t.Errorf("a portal webhook for Katana: %d %s, want 404", code, b)
	}
	for _, bad := range []string{`{}`, `{"url": "not a url"}`, `{"url": "http://x", "categories": ["ITEM"]}`, `{"url": "http://x", "extra": 1}`} {
		if code, b := call(t, srv, "PUT", "/vendors/xero/webhook", bad); code != http.StatusBadRequest {
			t.Errorf("PUT %s: %d %s, want 400", bad, code, b)
		}
	}

	// A receiver that does not check signatures fails the check.
	code, b := call(t, srv, "PUT", "/vendors/xero/webhook", `{"url": "`+lenient.srv.URL+`/webhooks/xero"}`)
	if code != http.StatusOK {
		t.Fatalf("PUT: %d %s", code, b)
	}
	code, b = call(t, srv, "POST", "/vendors/xero/webhook/intent", "")
	var st xeroWebhook
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if code != http.StatusConflict || st.Status == "OK" || !strings.Contains(st.Error, "401") {
		t.Errorf("the check against a receiver that accepts anything: %d %+v, want 409 and a status other than OK", code, st)
	}

	// The real check passes against a verifying receiver.
	code, b = call(t, srv, "PUT", "/vendors/xero/webhook", `{"url": "`+verifying.srv.URL+`/webhooks/xero"}`)
	if code != http.StatusOK {
		t.Fatalf("PUT: %d %s", code, b)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if st.Key != key || st.Status == "OK" || st.Tenant == "" || len(st.Categories) != 3 {
		t.Errorf("PUT answered %+v: want the published key, a status awaiting the check, the tenant and three categories", st)
	}
	customers := refs(t, srv, "xero", "customers")
	if code, _ := call(t, srv, "PATCH", "/vendors/xero/records/customers/"+customers[0].ID, `{}`); code != http.StatusOK {
		t.Fatalf("touch: %d", code)
	}
	time.Sleep(500 * time.Millisecond)
	if n := verifying.count(); n != 0 {
		t.Errorf("%d deliveries before the intent-to-receive check", n)
	}
	code, b = call(t, srv, "POST", "/vendors/xero/webhook/intent", "")
	if code != http.StatusOK {
		t.Fatalf("the check: %d %s", code, b)
	}
	probes := verifying.count()
	if probes != 2 {
		t.Errorf("the check sent %d deliveries, want 2 (one signed, one not)", probes)
	}
	if code, _ := call(t, srv, "PATCH", "/vendors/xero/records/customers/"+customers[1].ID, `{}`); code != http.StatusOK {
		t.Fatalf("touch: %d", code)
	}
	d := verifying.wait(t, "naming the touched contact", func(d delivery) bool { return strings.Contains(string(d.body), customers[1].ID) })
	if got := d.header.Get("x-xero-signature"); got != xeroSign(key, d.body) {
		t.Errorf("the delivery is signed %q, want %q", got, xeroSign(key, d.body))
	}
	ws := webhookList(t, srv, "xero")
	if len(ws) != 1 || ws[0].Status != "OK" || ws[0].Delivered < 1 || ws[0].Failed != 0 {
		t.Errorf("GET webhooks: %+v, want one OK subscription with a delivery", ws)
	}
	if tot := vendorStats(t, srv, "xero").Webhooks; tot == nil || tot.Subscriptions != 1 || tot.Delivered < 1 {
		t.Errorf("stats' webhook totals %+v", tot)
	}
	if strings.Contains(string(mustJSON(t, ws)), key) {
		t.Errorf("GET webhooks shows the key")
	}

	if code, _ := call(t, srv, "DELETE", "/vendors/xero/webhook", ""); code != http.StatusNoContent {
		t.Fatalf("DELETE: %d", code)
	}
	n := verifying.count()
	call(t, srv, "PATCH", "/vendors/xero/records/customers/"+customers[2].ID, `{}`)
	time.Sleep(500 * time.Millisecond)
	if verifying.count() != n {
		t.Errorf("a delivery after the webhook was deleted")
	}
	if ws := webhookList(t, srv, "xero"); len(ws) != 0 {
		t.Errorf("webhooks after DELETE: %+v", ws)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSubscribedThroughTheAPI subscribes plain-http receivers through
// Katana's, Unleashed's and Cin7 Core's own APIs, as the operator does:
// each accepts an http URL in erpsim and delivers a product change, signed
// with the token or key it returned (Cin7 Core: with the bearer credential
// it was given), and the admin API counts the deliveries; Unleashed's
// timestamp is the wall clock even though the vendors' clocks run 1000
// times faster (the receiver allows five minutes of skew).
func TestSubscribedThroughTheAPI(t *testing.T) {
	f, srv := testFleet(t)
	rec := newCapture(t, nil)
	products := func(vendor string) []string {
		var ids []string
		for _, r := range refs(t, srv, vendor, "products") {
			ids = append(ids, r.ID)
		}
		return ids
	}

	t.Run("katana", func(t *testing.T) {
		k, _ := f.find("katana")
		api := httptest.NewServer(k.sim)
		defer api.Close()
		body := `{"url": "` + rec.srv.URL + `/webhooks/katana/x", "subscribed_events": ["product.updated"]}`
		req, _ := http.NewRequest("POST", k.apiRoot(api.URL)+"/webhooks", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+k.sim.Credentials()["apiKey"])
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var hook struct {
			ID    int    `json:"id"`
			Token string `json:"token"`
		}
		err = json.NewDecoder(resp.Body).Decode(&hook)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil || hook.Token == "" {
			t.Fatalf("creating an http webhook: %s %v %+v", resp.Status, err, hook)
		}
		ids := products("katana")
		call(t, srv, "PATCH", "/vendors/katana/records/products/"+ids[0], `{}`)
		d := rec.wait(t, "from Katana", func(d delivery) bool { return strings.Contains(string(d.body), "product.updated") })
		m := hmac.New(sha256.New, []byte(hook.Token))
		m.Write(d.body)
		if got := d.header.Get("X-Sha2-Signature"); got != hex.EncodeToString(m.Sum(nil)) {
			t.Errorf("signature %q", got)
		}
		eventually(t, func() bool {
			ws := webhookList(t, srv, "katana")
			return len(ws) == 1 && ws[0].ID == strconv.Itoa(hook.ID) && ws[0].Status == "active" && ws[0].Delivered >= 1
		})
	})

	t.Run("unleashed", func(t *testing.T) {
		u, _ := f.find("unleashed")
		api := httptest.NewServer(u.sim)
		defer api.Close()
		creds := u.sim.Credentials()
		body := `{"notificationUrl": "` + rec.srv.URL + `/webhooks/unleashed/y", "eventTypes": ["product.updated"], "description": "test"}`
		req, _ := http.NewRequest("POST", api.URL+"/webhooks/subscriptions", strings.NewReader(body))
		req.Header.Set("api-auth-id", creds["apiId"])
		req.Header.Set("api-auth-signature", unleashedsim.Sign("", creds["apiKey"]))
		req.Header.Set("client-type", "erpsync/test")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var sub struct {
			SubscriptionID string `json:"subscriptionId"`
			SignatureKey   string `json:"signatureKey"`
		}
		err = json.NewDecoder(resp.Body).Decode(&sub)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated || err != nil || sub.SignatureKey == "" {
			t.Fatalf("creating an http subscription: %s %v %+v", resp.Status, err, sub)
		}
		ids := products("unleashed")
		call(t, srv, "PATCH", "/vendors/unleashed/records/products/"+ids[0], `{}`)
		d := rec.wait(t, "from Unleashed", func(d delivery) bool { return d.header.Get("x-unleashed-signature") != "" })
		ts := d.header.Get("x-unleashed-timestamp")
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			t.Fatalf("timestamp %q", ts)
		}
		if skew := d.at.Sub(time.Unix(sec, 0)); skew < -2*time.Second || skew > 2*time.Second {
			t.Errorf("x-unleashed-timestamp is %s off the wall clock", skew)
		}
		if got := d.header.Get("x-unleashed-signature"); got != unleashedsim.WebhookSign(sub.SignatureKey, ts, d.body) {
			t.Errorf("signature %q", got)
		}
		eventually(t, func() bool {
			ws := webhookList(t, srv, "unleashed")
			return len(ws) == 1 && ws[0].ID == sub.SubscriptionID && ws[0].Status == "active" && ws[0].Delivered >= 1
		})
	})

	t.Run("cin7core", func(t *testing.T) {
		c, _ := f.find("cin7core")
		api := httptest.NewServer(c.sim)
		defer api.Close()
		creds := c.sim.Credentials()
		const bearer = "per-erpsync-secret"
		body := `{"Type": "Product/Updated", "ExternalURL": "` + rec.srv.URL + `/webhooks/cin7core/z", "ExternalAuthorizationType": "bearerauth", "ExternalBearerToken": "` + bearer + `", "IsActive": true}`
		req, _ := http.NewRequest("POST", c.apiRoot(api.URL)+"webhooks", strings.NewReader(body))
		req.Header.Set("api-auth-accountid", creds["accountId"])
		req.Header.Set("api-auth-applicationkey", creds["applicationKey"])
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("creating an http webhook: %s %s", resp.Status, b)
		}
		ids := products("cin7core")
		call(t, srv, "PATCH", "/vendors/cin7core/records/products/"+ids[0], `{}`)
		d := rec.wait(t, "from Cin7 Core", func(d delivery) bool { return strings.Contains(string(d.body), "Product/Updated") })
		if got := d.header.Get("Authorization"); got != "Bearer "+bearer {
			t.Errorf("Authorization %q", got)
		}
		eventually(t, func() bool {
			ws := webhookList(t, srv, "cin7core")
			return len(ws) == 1 && ws[0].Status == "active" && len(ws[0].Events) == 1 && ws[0].Events[0] == "Product/Updated" && ws[0].Delivered >= 1
		})
		if strings.Contains(string(mustJSON(t, webhookList(t, srv, "cin7core"))), bearer) {
			t.Errorf("GET webhooks shows the bearer credential")
		}
	})

	if code, b := call(t, srv, "GET", "/vendors/cin7omni/webhooks", ""); code != http.StatusNotFound {
		t.Errorf("Cin7 Omni's webhooks: %d %s, want 404", code, b)
	}
	if st := vendorStats(t, srv, "cin7omni"); st.Webhooks != nil {
		t.Errorf("Cin7 Omni has webhook totals %+v", st.Webhooks)
	}
}

func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("timed out")
}
