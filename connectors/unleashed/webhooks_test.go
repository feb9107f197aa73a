package unleashed_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/unleashed"
)

const (
	testKey  = "whk_3f9a1c2b7d8e4f60a1b2c3d4e5f60718"
	prodGUID = "5f0c2f4e-1b7a-4d3e-9a61-0c2d8e7b1a01"
	custGUID = "0d7f1c2a-3b4c-4d5e-8f90-a1b2c3d4e5f6"
)

var testNow = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func keys(k string) map[string][]byte {
	return map[string][]byte{"apiId": []byte("id"), "apiKey": []byte("api-key"), connectors.WebhookKeyToken: []byte(k)}
}

// signed returns the headers Unleashed sends with body at time at.
func signed(key string, at time.Time, body []byte) http.Header {
	ts := strconv.FormatInt(at.Unix(), 10)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set(unleashed.HeaderTimestamp, ts)
	h.Set(unleashed.HeaderSignature, unleashed.SignWebhook(key, ts, body))
	return h
}

func event(typ, data string) []byte {
	return []byte(`{"subscriptionId":"8b1f7c8e-0000-4000-8000-000000000001","eventNotificationId":"8b1f7c8e-0000-4000-8000-000000000002",` +
		`"eventType":"` + typ + `","createdOn":"2026-03-02T08:59:58.123Z","data":` + data + `}`)
}

func productEvent(typ string) []byte {
	return event(typ, strconv.Quote(`{"productGuid":"`+prodGUID+`"}`))
}

func TestWebhookVerify(t *testing.T) {
	body := productEvent("product.updated")
	good := signed(testKey, testNow, body)
	edit := func(f func(h http.Header)) http.Header {
		h := good.Clone()
		f(h)
		return h
	}
	tests := []struct {
		name    string
		h       http.Header
		body    []byte
		keys    map[string][]byte
		now     time.Time
		wantErr error // nil: authentic
		missing bool  // a missing key, not an inauthentic delivery
	}{
		{name: "good signature", h: good, body: body, keys: keys(testKey), now: testNow},
		{name: "key with a trailing newline in the Secret", h: good, body: body, keys: keys(testKey + "\n"), now: testNow},
		{name: "clock 4m59s ahead of the sender", h: good, body: body, keys: keys(testKey), now: testNow.Add(4*time.Minute + 59*time.Second)},
		{name: "sender 4m ahead of our clock", h: good, body: body, keys: keys(testKey), now: testNow.Add(-4 * time.Minute)},
		{name: "millisecond timestamp", h: signedMillis(testKey, testNow, body), body: body, keys: keys(testKey), now: testNow},
		{name: "wrong key", h: good, body: body, keys: keys("another-key"), now: testNow, wantErr: connectors.ErrWebhookSignature},
		{name: "API key is not the signing key", h: signed("api-key", testNow, body), body: body, keys: keys(testKey), now: testNow, wantErr: connectors.ErrWebhookSignature},
		{name: "tampered body", h: good, body: productEvent("product.deleted"), keys: keys(testKey), now: testNow, wantErr: connectors.ErrWebhookSignature},
		{name: "body signed without the timestamp", h: edit(func(h http.Header) {
			h.Set(unleashed.HeaderSignature, b64HMAC(testKey, string(body)))
		}), body: body, keys: keys(testKey), now: testNow, wantErr: connectors.ErrWebhookSignature},
		{name: "timestamp changed after signing", h: edit(func(h http.Header) {
			h.Set(unleashed.HeaderTimestamp, strconv.FormatInt(testNow.Unix()+1, 10))
		}), body: body, keys: keys(testKey), now: testNow, wantErr: connectors.ErrWebhookSignature},
		{name: "no signature header", h: edit(func(h http.Header) { h.Del(unleashed.HeaderSignature) }), body: body, keys: keys(testKey), now: testNow, wantErr: connectors.ErrWebhookSignature},
		{name: "no timestamp header", h: edit(func(h http.Header) { h.Del(unleashed.HeaderTimestamp) }), body: body, keys: keys(testKey), now: testNow, wantErr: connectors.ErrWebhookSignature},
		{name: "hex instead of base64", h: edit(func(h http.Header) {
			m := hmac.New(sha256.New, []byte(testKey))
			m.Write([]byte(h.Get(unleashed.HeaderTimestamp) + "." + string(body)))
			h.Set(unleashed.HeaderSignature, hex.EncodeToString(m.Sum(nil)))
		}), body: body, keys: keys(testKey), now: testNow, wantErr: connectors.ErrWebhookSignature},
		{name: "truncated signature", h: edit(func(h http.Header) { h.Set(unleashed.HeaderSignature, h.Get(unleashed.HeaderSignature)[:20]) }), body: body, keys: keys(testKey), now: testNow, wantErr: connectors.ErrWebhookSignature},
		{name: "timestamp not a number", h: edit(func(h http.Header) { h.Set(unleashed.HeaderTimestamp, "2026-03-02T09:00:00Z") }), body: body, keys: keys(testKey), now: testNow, wantErr: connectors.ErrWebhookSignature},
		{name: "timestamp absurdly long", h: edit(func(h http.Header) { h.Set(unleashed.HeaderTimestamp, strings.Repeat("9", 40)) }), body: body, keys: keys(testKey), now: testNow, wantErr: connectors.ErrWebhookSignature},
		{name: "replayed after 5 minutes", h: good, body: body, keys: keys(testKey), now: testNow.Add(5*time.Minute + time.Second), wantErr: connectors.ErrWebhookSignature},
		{name: "from 6 minutes in the future", h: good, body: body, keys: keys(testKey), now: testNow.Add(-6 * time.Minute), wantErr: connectors.ErrWebhookSignature},
		{name: "no signing key in the Secret", h: good, body: body, keys: map[string][]byte{"apiKey": []byte("api-key")}, now: testNow, missing: true},
		{name: "empty signing key", h: good, body: body, keys: keys("  "), now: testNow, missing: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := unleashed.Webhooks.Verify(tc.h, tc.body, tc.keys, tc.now)
			switch {
			case tc.missing:
				var ce *connectors.Error
				if !errors.As(err, &ce) || ce.Kind != connectors.KindSecretKeyMissing || errors.Is(err, connectors.ErrWebhookSignature) ||
					!strings.Contains(err.Error(), connectors.WebhookKeyToken) {
					t.Fatalf("err = %v, want SecretKeyMissing naming %q", err, connectors.WebhookKeyToken)
				}
			case tc.wantErr == nil:
				if err != nil {
					t.Fatalf("authentic delivery refused: %v", err)
				}
			default:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), testKey) {
					t.Fatalf("the error shows the key: %v", err)
				}
			}
		})
	}
}

func signedMillis(key string, at time.Time, body []byte) http.Header {
	ts := strconv.FormatInt(at.UnixMilli(), 10)
	h := http.Header{}
	h.Set(unleashed.HeaderTimestamp, ts)
	h.Set(unleashed.HeaderSignature, unleashed.SignWebhook(key, ts, body))
	return h
}

func b64HMAC(key, msg string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(msg))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestWebhookRoutesByPath(t *testing.T) {
	if unleashed.Webhooks.Routing() != connectors.RouteByPath {
		t.Fatalf("routing = %v, want RouteByPath", unleashed.Webhooks.Routing())
	}
}

func TestWebhookParse(t *testing.T) {
	at := time.Date(2026, 3, 2, 8, 59, 58, 123e6, time.UTC)
	ev := func(k model.Kind, id string, deleted bool, typ string) connectors.WebhookEvent {
		return connectors.WebhookEvent{Entity: k, ID: id, Deleted: deleted, At: at, Type: typ}
	}
	many := func(n int) []byte {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = string(productEvent("product.updated"))
		}
		return []byte("[" + strings.Join(parts, ",") + "]")
	}
	tests := []struct {
		name    string
		body    []byte
		want    []connectors.WebhookEvent
		wantErr bool
	}{
		{name: "product.created", body: productEvent("product.created"), want: []connectors.WebhookEvent{ev(model.KindProduct, prodGUID, false, "product.created")}},
		{name: "product.updated", body: productEvent("product.updated"), want: []connectors.WebhookEvent{ev(model.KindProduct, prodGUID, false, "product.updated")}},
		{name: "product.deleted", body: productEvent("product.deleted"), want: []connectors.WebhookEvent{ev(model.KindProduct, prodGUID, true, "product.deleted")}},
		{name: "customer.created", body: event("customer.created", strconv.Quote(`{"customerGuid":"`+custGUID+`"}`)), want: []connectors.WebhookEvent{ev(model.KindCustomer, custGUID, false, "customer.created")}},
		{name: "customer.updated, data an object", body: event("customer.updated", `{"customerGuid":"`+custGUID+`"}`), want: []connectors.WebhookEvent{ev(model.KindCustomer, custGUID, false, "customer.updated")}},
		{name: "customer.deleted", body: event("customer.deleted", `{"CustomerGuid":"`+custGUID+`"}`), want: []connectors.WebhookEvent{ev(model.KindCustomer, custGUID, true, "customer.deleted")}},
		{name: "event type in another case", body: event("Product.Updated", `{"ProductGuid":"`+prodGUID+`"}`), want: []connectors.WebhookEvent{ev(model.KindProduct, prodGUID, false, "product.updated")}},
		{name: "plain Guid field", body: event("product.updated", `{"Guid":"`+prodGUID+`"}`), want: []connectors.WebhookEvent{ev(model.KindProduct, prodGUID, false, "product.updated")}},
		{name: "Guid at the top as resourceGuid", body: []byte(`{"eventType":"product.updated","resourceGuid":"` + prodGUID + `","createdOn":"2026-03-02T08:59:58.123Z"}`), want: []connectors.WebhookEvent{ev(model.KindProduct, prodGUID, false, "product.updated")}},
		{name: "Microsoft JSON date", body: []byte(`{"eventType":"product.updated","createdOn":"/Date(1772441998123)/","data":{"productGuid":"` + prodGUID + `"}}`), want: []connectors.WebhookEvent{ev(model.KindProduct, prodGUID, false, "product.updated")}},
		{name: "no date", body: []byte(`{"eventType":"product.updated","data":{"productGuid":"` + prodGUID + `"}}`), want: []connectors.WebhookEvent{{Entity: model.KindProduct, ID: prodGUID, Type: "product.updated"}}},
		{name: "bad date is left out, not an error", body: []byte(`{"eventType":"product.updated","createdOn":"yesterday","data":{"productGuid":"` + prodGUID + `"}}`), want: []connectors.WebhookEvent{{Entity: model.KindProduct, ID: prodGUID, Type: "product.updated"}}},
		{name: "sales order (seen in public code)", body: event("salesorder.updated", strconv.Quote(`{"salesOrderGuid":"`+custGUID+`"}`)), want: []connectors.WebhookEvent{ev(model.KindSalesOrder, custGUID, false, "salesorder.updated")}},
		{name: "array of two", body: []byte("[" + string(productEvent("product.updated")) + "," + string(event("customer.deleted", `{"customerGuid":"`+custGUID+`"}`)) + "]"),
			want: []connectors.WebhookEvent{ev(model.KindProduct, prodGUID, false, "product.updated"), ev(model.KindCustomer, custGUID, true, "customer.deleted")}},
		{name: "unknown object skipped", body: event("purchaseorder.created", `{"purchaseOrderGuid":"`+prodGUID+`"}`)},
		{name: "unknown action skipped", body: event("product.archived", `{"productGuid":"`+prodGUID+`"}`)},
		{name: "no action skipped", body: event("product", `{"productGuid":"`+prodGUID+`"}`)},
		{name: "no event type skipped", body: []byte(`{"data":{"productGuid":"` + prodGUID + `"}}`)},
		{name: "overlong event type skipped", body: event(strings.Repeat("x", 500)+".updated", `{}`)},
		{name: "known type without a Guid", body: event("product.updated", `{}`), wantErr: true},
		{name: "known type, Guid not a Guid", body: event("product.updated", `{"productGuid":"../../Customers"}`), wantErr: true},
		{name: "data a string that is not JSON", body: event("product.updated", `"productGuid=`+prodGUID+`"`), wantErr: true},
		{name: "data a number", body: event("product.updated", `42`), wantErr: true},
		{name: "garbage", body: []byte(`{"eventType":`), wantErr: true},
		{name: "not JSON", body: []byte(`<xml/>`), wantErr: true},
		{name: "empty body", body: nil, wantErr: true},
		{name: "event type a number", body: []byte(`{"eventType":7}`), wantErr: true},
		{name: "broken array", body: []byte(`[{"eventType":"product.updated"},`), wantErr: true},
		{name: "array of 1000", body: many(unleashed.MaxWebhookEvents), want: nil},
		{name: "array over the cap", body: many(unleashed.MaxWebhookEvents + 1), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := unleashed.Webhooks.Parse(http.Header{}, tc.body)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("no error, events %+v", got)
				}
				if strings.Contains(err.Error(), "../../") {
					t.Fatalf("the error echoes the body: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tc.name == "array of 1000" {
				if len(got) != unleashed.MaxWebhookEvents {
					t.Fatalf("%d events, want %d", len(got), unleashed.MaxWebhookEvents)
				}
				return
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("events\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestWebhookEventTypes(t *testing.T) {
	tests := []struct {
		entities []model.Kind
		want     string
	}{
		{nil, ""},
		{[]model.Kind{model.KindSalesOrder, model.KindStockLevel}, ""},
		{[]model.Kind{model.KindProduct}, "product.created product.deleted product.updated"},
		{[]model.Kind{model.KindProduct, model.KindCustomer, model.KindContact},
			"customer.created customer.deleted customer.updated product.created product.deleted product.updated"},
	}
	for _, tc := range tests {
		if got := strings.Join(unleashed.WebhookEventTypes(tc.entities), " "); got != tc.want {
			t.Errorf("WebhookEventTypes(%v) = %q, want %q", tc.entities, got, tc.want)
		}
	}
}

func FuzzWebhookParse(f *testing.F) {
	f.Add(productEvent("product.updated"))
	f.Add(event("customer.deleted", `{"customerGuid":"`+custGUID+`"}`))
	f.Add([]byte(`[` + string(productEvent("product.created")) + `]`))
	f.Add([]byte(`{"eventType":"product.updated","data":"\"{\\\"productGuid\\\":1}\""}`))
	f.Add([]byte(`[[[[`))
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, err := unleashed.Webhooks.Parse(http.Header{}, body)
		if err != nil {
			return
		}
		if len(evs) > unleashed.MaxWebhookEvents {
			t.Fatalf("%d events", len(evs))
		}
		for _, e := range evs {
			if e.ID == "" || (e.Entity != model.KindProduct && e.Entity != model.KindCustomer && e.Entity != model.KindSalesOrder) {
				t.Fatalf("event %+v", e)
			}
		}
	})
}
