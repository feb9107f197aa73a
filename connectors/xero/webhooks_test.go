package xero

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

const (
	hookTenant = "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f"
	hookKey    = "Pr0mIsEdWebh00kKey+/=="
)

// xeroEvent renders one event as Xero's documents show it.
func xeroEvent(category, typ, id string) string {
	return fmt.Sprintf(`{"resourceUrl":"https://api.xero.com/api.xro/2.0/X/%s","resourceId":%q,"eventDateUtc":"2024-06-21T01:15:39.902",`+
		`"eventType":%q,"eventCategory":%q,"tenantId":%q,"tenantType":"ORGANISATION"}`, id, id, typ, category, hookTenant)
}

func delivery(events ...string) []byte {
	return []byte(`{"events":[` + strings.Join(events, ",") + `],"firstEventSequence":1,"lastEventSequence":` +
		fmt.Sprint(max(1, len(events))) + `,"entropy":"S0m3r4Nd0mt3xt"}`)
}

func signed(key string, body []byte) http.Header {
	return http.Header{"X-Xero-Signature": {SignatureOf([]byte(key), body)}}
}

// TestWebhookVerify: the signature is the base64 HMAC-SHA256 of the raw
// body keyed with the credentials Secret's webhookKey (checked here
// against an HMAC computed independently, in hex and re-encoded); anything
// else is ErrWebhookSignature, and a missing key is an error that names it.
func TestWebhookVerify(t *testing.T) {
	body := delivery(xeroEvent("CONTACT", "UPDATE", "717f2bfc-c6d4-41fd-b238-3f2f0c0cf777"))
	m := hmac.New(sha256.New, []byte(hookKey))
	m.Write(body)
	want := base64.StdEncoding.EncodeToString(m.Sum(nil))
	if got := SignatureOf([]byte(hookKey), body); got != want {
		t.Fatalf("SignatureOf = %s, want %s", got, want)
	}
	raw, _ := hex.DecodeString(hex.EncodeToString(m.Sum(nil)))
	keys := map[string][]byte{connectors.WebhookKeyXero: []byte(hookKey), "clientId": []byte("x")}
	now := time.Now()
	tests := []struct {
		name    string
		header  http.Header
		body    []byte
		keys    map[string][]byte
		wantErr error // nil: authentic
		missing bool  // an error naming the key, not ErrWebhookSignature
	}{
		{name: "good", header: http.Header{"X-Xero-Signature": {want}}, body: body, keys: keys},
		{name: "header name in any case", header: http.Header{"x-xero-signature": {want}}, body: body, keys: keys},
		{name: "key with a trailing newline (a Secret made from a file)", header: signed(hookKey, body), body: body,
			keys: map[string][]byte{connectors.WebhookKeyXero: []byte(hookKey + "\n")}},
		{name: "intent-to-receive body", header: signed(hookKey, delivery()), body: delivery(), keys: keys},
		{name: "wrong key", header: signed("another key", body), body: body, keys: keys, wantErr: connectors.ErrWebhookSignature},
		{name: "tampered body", header: signed(hookKey, body), body: append([]byte(nil), body[:len(body)-2]...), keys: keys, wantErr: connectors.ErrWebhookSignature},
		{name: "one byte changed", header: signed(hookKey, body), body: []byte(strings.Replace(string(body), "UPDATE", "CREATE", 1)), keys: keys, wantErr: connectors.ErrWebhookSignature},
		{name: "missing header", header: http.Header{}, body: body, keys: keys, wantErr: connectors.ErrWebhookSignature},
		{name: "empty header", header: http.Header{"X-Xero-Signature": {""}}, body: body, keys: keys, wantErr: connectors.ErrWebhookSignature},
		{name: "hex instead of base64", header: http.Header{"X-Xero-Signature": {hex.EncodeToString(raw)}}, body: body, keys: keys, wantErr: connectors.ErrWebhookSignature},
		{name: "url-safe base64", header: http.Header{"X-Xero-Signature": {base64.URLEncoding.EncodeToString(raw) + "*"}}, body: body, keys: keys, wantErr: connectors.ErrWebhookSignature},
		{name: "truncated signature", header: http.Header{"X-Xero-Signature": {base64.StdEncoding.EncodeToString(raw[:16])}}, body: body, keys: keys, wantErr: connectors.ErrWebhookSignature},
		{name: "signature of the empty body", header: signed(hookKey, nil), body: body, keys: keys, wantErr: connectors.ErrWebhookSignature},
		{name: "no webhookKey", header: signed(hookKey, body), body: body, keys: map[string][]byte{"clientId": []byte("x")}, missing: true},
		{name: "blank webhookKey", header: signed(hookKey, body), body: body, keys: map[string][]byte{connectors.WebhookKeyXero: []byte(" \n")}, missing: true},
		{name: "nil keys", header: signed(hookKey, body), body: body, missing: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Webhooks.Verify(tc.header, tc.body, tc.keys, now)
			switch {
			case tc.missing:
				if err == nil || errors.Is(err, connectors.ErrWebhookSignature) || !strings.Contains(err.Error(), `"webhookKey"`) ||
					connectors.KindOf(err) != connectors.KindSecretKeyMissing {
					t.Fatalf("Verify = %v, want a SecretKeyMissing error naming webhookKey", err)
				}
			case tc.wantErr == nil:
				if err != nil {
					t.Fatalf("Verify = %v, want authentic", err)
				}
			default:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Verify = %v, want %v", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), hookKey) || strings.Contains(err.Error(), want) {
					t.Fatalf("the error quotes the key or the signature: %v", err)
				}
			}
		})
	}
}

// TestWebhookVerifyHasNoReplayWindow: Xero signs no time, so an old
// delivery still verifies (the docs page says so; a replay costs at most a
// read per event).
func TestWebhookVerifyHasNoReplayWindow(t *testing.T) {
	body := delivery(xeroEvent("INVOICE", "UPDATE", "717f2bfc-c6d4-41fd-b238-3f2f0c0cf777"))
	keys := map[string][]byte{connectors.WebhookKeyXero: []byte(hookKey)}
	for _, now := range []time.Time{time.Now(), time.Now().Add(30 * 24 * time.Hour), {}} {
		if err := Webhooks.Verify(signed(hookKey, body), body, keys, now); err != nil {
			t.Fatalf("Verify at %v = %v", now, err)
		}
	}
}

// TestWebhookParse: every category the connector reads maps to its
// stream, with the id lower-cased, the tenant, the time and a bounded
// type; everything else is skipped, and what is not a delivery is an
// error.
func TestWebhookParse(t *testing.T) {
	const id = "717f2bfc-c6d4-41fd-b238-3f2f0c0cf777"
	at := time.Date(2024, 6, 21, 1, 15, 39, 902_000_000, time.UTC)
	ev := func(kind model.Kind, typ string) connectors.WebhookEvent {
		return connectors.WebhookEvent{Entity: kind, ID: id, Tenant: hookTenant, At: at, Type: typ}
	}
	tests := []struct {
		name    string
		body    string
		want    []connectors.WebhookEvent
		wantErr bool
	}{
		{name: "contact update", body: string(delivery(xeroEvent("CONTACT", "UPDATE", id))), want: []connectors.WebhookEvent{ev(model.KindCustomer, "CONTACT.UPDATE")}},
		{name: "contact create", body: string(delivery(xeroEvent("CONTACT", "CREATE", id))), want: []connectors.WebhookEvent{ev(model.KindCustomer, "CONTACT.CREATE")}},
		{name: "invoice update", body: string(delivery(xeroEvent("INVOICE", "UPDATE", id))), want: []connectors.WebhookEvent{ev(model.KindInvoice, "INVOICE.UPDATE")}},
		{name: "invoice create", body: string(delivery(xeroEvent("INVOICE", "CREATE", id))), want: []connectors.WebhookEvent{ev(model.KindInvoice, "INVOICE.CREATE")}},
		{name: "credit note with its data", body: `{"events":[{"resourceUrl":"https://api.xero.com/api.xro/2.0/CreditNotes/55d84274-a3da-4829-a7c0-0cab601b95cc",` +
			`"resourceId":"55d84274-a3da-4829-a7c0-0cab601b95cc","tenantId":"aef86862-2015-4b6b-88bc-d89032cecc50","tenantType":"ORGANISATION",` +
			`"eventCategory":"CREDITNOTE","eventType":"CREATE","eventDateUtc":"2025-12-02T00:44:09.923","data":{"Type":"ACCPAYCREDIT","Status":"DRAFT"}}],` +
			`"firstEventSequence":76,"lastEventSequence":76,"entropy":"FXNGWLCCGVANWHKILRUB"}`,
			want: []connectors.WebhookEvent{{Entity: model.KindCreditNote, ID: "55d84274-a3da-4829-a7c0-0cab601b95cc", Tenant: "aef86862-2015-4b6b-88bc-d89032cecc50",
				At: time.Date(2025, 12, 2, 0, 44, 9, 923_000_000, time.UTC), Type: "CREDITNOTE.CREATE"}}},
		{name: "type in title case (Xero's pages)", body: string(delivery(xeroEvent("CONTACT", "Update", id))), want: []connectors.WebhookEvent{ev(model.KindCustomer, "CONTACT.UPDATE")}},
		{name: "upper-case id", body: string(delivery(xeroEvent("INVOICE", "UPDATE", strings.ToUpper(id)))), want: []connectors.WebhookEvent{ev(model.KindInvoice, "INVOICE.UPDATE")}},
		{name: "time with a zone", body: strings.Replace(string(delivery(xeroEvent("INVOICE", "UPDATE", id))), "39.902", "39.902Z", 1), want: []connectors.WebhookEvent{ev(model.KindInvoice, "INVOICE.UPDATE")}},
		{name: "time that does not parse", body: strings.Replace(string(delivery(xeroEvent("INVOICE", "UPDATE", id))), "2024-06-21T01:15:39.902", "yesterday", 1),
			want: []connectors.WebhookEvent{{Entity: model.KindInvoice, ID: id, Tenant: hookTenant, Type: "INVOICE.UPDATE"}}},
		{name: "intent to receive", body: `{"events":[],"lastEventSequence":0,"firstEventSequence":0,"entropy":"S0m3r4Nd0mt3xt"}`},
		{name: "events null", body: `{"events":null,"entropy":"x"}`},
		{name: "several events, some skipped", body: string(delivery(
			xeroEvent("CONTACT", "UPDATE", id),
			xeroEvent("SUBSCRIPTION", "UPDATE", id),
			xeroEvent("PAYMENT", "CREATE", id),
			xeroEvent("INVOICE", "DELETE", id),
			xeroEvent("INVOICE", "", id),
			xeroEvent("", "UPDATE", id),
			xeroEvent("INVOICE", "UPDATE", "not-a-guid"),
			xeroEvent("INVOICE", "UPDATE", ""),
			strings.Replace(xeroEvent("INVOICE", "UPDATE", id), hookTenant, "", 1),
			strings.Replace(xeroEvent("INVOICE", "UPDATE", id), "ORGANISATION", "APPLICATION", 1),
			xeroEvent("INVOICE", "UPDATE", id),
		)), want: []connectors.WebhookEvent{ev(model.KindCustomer, "CONTACT.UPDATE"), ev(model.KindInvoice, "INVOICE.UPDATE")}},
		{name: "unknown fields anywhere", body: `{"v":[1,{"a":2}],"events":[` + strings.Replace(xeroEvent("INVOICE", "UPDATE", id), "{", `{"extra":{"deep":[1,2]},`, 1) + `],"entropy":"x"}`,
			want: []connectors.WebhookEvent{ev(model.KindInvoice, "INVOICE.UPDATE")}},
		{name: "empty body", body: ``, wantErr: true},
		{name: "garbage", body: `not json`, wantErr: true},
		{name: "an array", body: `[{"events":[]}]`, wantErr: true},
		{name: "a string", body: `"events"`, wantErr: true},
		{name: "no events", body: `{"entropy":"x"}`, wantErr: true},
		{name: "events not an array", body: `{"events":{"resourceId":"x"}}`, wantErr: true},
		{name: "event not an object", body: `{"events":[1]}`, wantErr: true},
		{name: "field of the wrong type", body: `{"events":[{"resourceId":7}]}`, wantErr: true},
		{name: "truncated", body: string(delivery(xeroEvent("CONTACT", "UPDATE", id)))[:60], wantErr: true},
		{name: "two events arrays", body: `{"events":[],"events":[]}`, wantErr: true},
		{name: "trailing data", body: `{"events":[]} {"events":[]}`, wantErr: true},
		{name: "too many events", body: string(delivery(repeat(`{}`, MaxWebhookEvents+1)...)), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Webhooks.Parse(nil, []byte(tc.body))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("Parse = %v, want an error", got)
				}
				if len(err.Error()) > 300 {
					t.Fatalf("the error is unbounded: %d bytes", len(err.Error()))
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("Parse = %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("event %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// TestWebhookParseBigDeliveries: the largest delivery allowed parses
// whole; a huge array of events is refused without decoding every event.
func TestWebhookParseBigDeliveries(t *testing.T) {
	const id = "717f2bfc-c6d4-41fd-b238-3f2f0c0cf777"
	events := repeat(xeroEvent("INVOICE", "UPDATE", id), MaxWebhookEvents)
	got, err := Webhooks.Parse(nil, delivery(events...))
	if err != nil || len(got) != MaxWebhookEvents {
		t.Fatalf("Parse of %d events = %d events, %v", MaxWebhookEvents, len(got), err)
	}
	huge := delivery(repeat(xeroEvent("INVOICE", "UPDATE", id), 10*MaxWebhookEvents)...)
	start := time.Now()
	if _, err := Webhooks.Parse(nil, huge); err == nil {
		t.Fatalf("Parse of %d events succeeded", 10*MaxWebhookEvents)
	}
	t.Logf("refused %d bytes in %v", len(huge), time.Since(start))
}

// FuzzWebhookParse: Parse never panics, and whatever it returns is an
// event of a stream the connector reads, with a GUID id and tenant.
func FuzzWebhookParse(f *testing.F) {
	const id = "717f2bfc-c6d4-41fd-b238-3f2f0c0cf777"
	for _, s := range []string{
		string(delivery(xeroEvent("CONTACT", "UPDATE", id), xeroEvent("CREDITNOTE", "CREATE", id))),
		`{"events":[],"lastEventSequence":0,"firstEventSequence":0,"entropy":"S0m3r4Nd0mt3xt"}`,
		`{"events":[{"resourceId":"` + id + `","eventCategory":"INVOICE","eventType":"UPDATE","tenantId":"` + hookTenant + `"}]}`,
		`{"events":[[[[[]]]]]}`, `{`, `{"events":[{}`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	streams := map[model.Kind]bool{}
	for _, e := range entities {
		streams[e.Name] = true
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := Webhooks.Parse(nil, body)
		if err != nil {
			return
		}
		for _, e := range got {
			if !streams[e.Entity] || !isGUID(e.ID) || !isGUID(e.Tenant) || e.Deleted || len(e.Type) > 20 {
				t.Fatalf("Parse returned %+v", e)
			}
		}
	})
}
