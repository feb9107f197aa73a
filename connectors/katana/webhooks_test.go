package katana

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

const testToken = "73f82127d57a2cea" // the token of Katana's own example

func signed(token, body string) http.Header {
	return http.Header{SignatureHeader: {hex.EncodeToString(Sign([]byte(token), []byte(body)))}}
}

// TestVerify checks Katana's signature exactly as its guide describes it:
// x-sha2-signature is the hexadecimal HMAC-SHA256 of the raw body, keyed
// with the webhook's token; anything else is ErrWebhookSignature, and a
// missing token is a configuration error that names its key.
func TestVerify(t *testing.T) {
	body := `{"resource_type":"sales_order","action":"sales_order.delivered","webhook_id":123,"object":{"id":"12345","status":"DELIVERED","href":"https://api.katanamrp.com/v1/sales_orders/12345"}}`
	mac := Sign([]byte(testToken), []byte(body))
	keys := map[string][]byte{connectors.WebhookKeyToken: []byte(testToken), "apiKey": []byte("k")}
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		h       http.Header
		body    string
		keys    map[string][]byte
		wantSig bool   // an ErrWebhookSignature
		wantErr string // another error containing this
	}{
		{name: "good signature", h: signed(testToken, body), body: body, keys: keys},
		{name: "upper-case hex", h: http.Header{SignatureHeader: {strings.ToUpper(hex.EncodeToString(mac))}}, body: body, keys: keys},
		{name: "sha256= prefix (the community document's example)", h: http.Header{SignatureHeader: {"sha256=" + hex.EncodeToString(mac)}}, body: body, keys: keys},
		{name: "non-canonical header map key (net/http never builds one)", h: http.Header{"x-sha2-signature": {hex.EncodeToString(mac)}}, body: body, keys: keys, wantSig: true},
		{name: "wrong key", h: signed("0000000000000000", body), body: body, keys: keys, wantSig: true},
		{name: "tampered body", h: signed(testToken, body), body: strings.Replace(body, "12345", "12346", 1), keys: keys, wantSig: true},
		{name: "body re-encoded", h: signed(testToken, body), body: strings.ReplaceAll(body, ",", ", "), keys: keys, wantSig: true},
		{name: "missing header", h: http.Header{}, body: body, keys: keys, wantSig: true},
		{name: "empty header", h: http.Header{SignatureHeader: {""}}, body: body, keys: keys, wantSig: true},
		{name: "two headers", h: http.Header{SignatureHeader: {hex.EncodeToString(mac), hex.EncodeToString(mac)}}, body: body, keys: keys, wantSig: true},
		{name: "base64 instead of hex", h: http.Header{SignatureHeader: {base64.StdEncoding.EncodeToString(mac)}}, body: body, keys: keys, wantSig: true},
		{name: "truncated hex", h: http.Header{SignatureHeader: {hex.EncodeToString(mac)[:32]}}, body: body, keys: keys, wantSig: true},
		{name: "not hex", h: http.Header{SignatureHeader: {strings.Repeat("zz", 32)}}, body: body, keys: keys, wantSig: true},
		{name: "token as the signature", h: http.Header{SignatureHeader: {testToken}}, body: body, keys: keys, wantSig: true},
		{name: "signed with the API key", h: signed("k", body), body: body, keys: keys, wantSig: true},
		{name: "no token in the Secret", h: signed(testToken, body), body: body, keys: map[string][]byte{"apiKey": []byte("k")}, wantErr: connectors.WebhookKeyToken},
		{name: "empty token in the Secret", h: signed("", body), body: body, keys: map[string][]byte{connectors.WebhookKeyToken: {}}, wantErr: connectors.WebhookKeyToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Webhooks.Verify(tc.h, []byte(tc.body), tc.keys, now)
			switch {
			case tc.wantSig:
				if !errors.Is(err, connectors.ErrWebhookSignature) {
					t.Fatalf("error %v, want ErrWebhookSignature", err)
				}
			case tc.wantErr != "":
				if err == nil || errors.Is(err, connectors.ErrWebhookSignature) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one naming %q that is not ErrWebhookSignature", err, tc.wantErr)
				}
			case err != nil:
				t.Fatalf("error %v, want none", err)
			}
			if err != nil && strings.Contains(err.Error(), testToken) {
				t.Errorf("the error shows the token: %v", err)
			}
		})
	}
	// Katana sends no time: the same delivery verifies at any later time
	// (a replay costs one read by id, which changes nothing).
	if err := Webhooks.Verify(signed(testToken, body), []byte(body), keys, now.Add(240*time.Hour)); err != nil {
		t.Errorf("a delivery ten days later: %v", err)
	}
	if Webhooks.Routing() != connectors.RouteByPath {
		t.Errorf("routing %v, want RouteByPath", Webhooks.Routing())
	}
}

// TestParse maps every event Katana documents for the connector's streams,
// skips the others, and refuses malformed bodies without panicking.
func TestParse(t *testing.T) {
	ev := func(e model.Kind, id string, deleted bool, typ string) []connectors.WebhookEvent {
		return []connectors.WebhookEvent{{Entity: e, ID: id, Deleted: deleted, Type: typ}}
	}
	payload := func(action, id string) string {
		return `{"resource_type":"` + strings.Split(action, ".")[0] + `","action":"` + action + `","webhook_id":7,"object":{"id":` + id + `,"status":"X","href":"https://api.katanamrp.com/v1/x/1"}}`
	}
	type tc struct {
		name, body string
		want       []connectors.WebhookEvent
		err        bool
	}
	cases := []tc{
		{name: "Katana's example (webhook_id as a string placeholder)", body: `{"resource_type":"sales_order","action":"sales_order.delivered","webhook_id":"<WEBHOOK_ID>","object":{"id":"12345","status":"DELIVERED","href":"https://api.katanamrp.com/v1/sales_orders/12345"}}`,
			want: ev(model.KindSalesOrder, "12345", false, "sales_order.delivered")},
		{name: "id as a number (third-party reports)", body: `{"action":"sales_order.updated","object":{"id":67890,"status":"CANCELLED"}}`, want: ev(model.KindSalesOrder, "67890", false, "sales_order.updated")},
		{name: "deleted order without href", body: `{"resource_type":"sales_order","action":"sales_order.deleted","webhook_id":1,"object":{"id":"5","status":"NOT_SHIPPED"}}`, want: ev(model.KindSalesOrder, "5", true, "sales_order.deleted")},
		{name: "unknown fields", body: `{"action":"product.updated","object":{"id":"3","extra":{"a":[1,2]}},"new":true}`, want: ev(model.KindProduct, "product/3", false, "product.updated")},
		{name: "id with leading zeros", body: payload("variant.updated", `"007"`), want: ev(model.KindProduct, "7", false, "variant.updated")},
		// Skipped: resources the connector does not sync and unknown verbs.
		{name: "purchase order", body: payload("purchase_order.received", `"1"`)},
		{name: "manufacturing order", body: payload("manufacturing_order.done", `"1"`)},
		{name: "current inventory", body: payload("current_inventory.product_updated", `"1"`)},
		{name: "product recipe row", body: payload("product_recipe_row.deleted", `"1"`)},
		{name: "unknown verb", body: payload("product.archived", `"1"`)},
		{name: "unknown resource", body: payload("customer.created", `"1"`)},
		{name: "action without a dot", body: `{"action":"sales_order","object":{"id":"1"}}`},
		{name: "Katana's test delivery without an action id", body: `{"action":"","object":{}}`},
		{name: "skipped event without an object", body: `{"action":"purchase_order.created"}`},
		// Errors.
		{name: "garbage", body: `not json`, err: true},
		{name: "empty body", body: ``, err: true},
		{name: "truncated", body: `{"action":"product.updated","object":{"id":"1"`, err: true},
		{name: "two values", body: `{"action":"product.updated","object":{"id":"1"}}{"action":"product.updated","object":{"id":"2"}}`, err: true},
		{name: "a top-level array", body: `[` + payload("product.updated", `"1"`) + `]`, err: true},
		{name: "a top-level string", body: `"product.updated"`, err: true},
		{name: "no action", body: `{"object":{"id":"1"}}`, err: true},
		{name: "action not a string", body: `{"action":5,"object":{"id":"1"}}`, err: true},
		{name: "mapped event without an object", body: `{"action":"sales_order.created"}`, err: true},
		{name: "object not an object", body: `{"action":"sales_order.created","object":"1"}`, err: true},
		{name: "no id", body: `{"action":"sales_order.created","object":{"status":"X"}}`, err: true},
		{name: "null id", body: payload("sales_order.created", `null`), err: true},
		{name: "empty id", body: payload("sales_order.created", `""`), err: true},
		{name: "negative id", body: payload("sales_order.created", `-4`), err: true},
		{name: "zero id", body: payload("sales_order.created", `"0"`), err: true},
		{name: "fractional id", body: payload("sales_order.created", `1.5`), err: true},
		{name: "id too large", body: payload("sales_order.created", `"99999999999999999999"`), err: true},
		{name: "id with a path", body: payload("product.updated", `"1/../2"`), err: true},
		{name: "id an object", body: payload("product.updated", `{"id":1}`), err: true},
		{name: "huge array in the object", body: `{"action":"sales_order.updated","object":{"id":"9","rows":[` + strings.Repeat(`{"a":1},`, 100000) + `{}]}}`, want: ev(model.KindSalesOrder, "9", false, "sales_order.updated")},
		{name: "huge array as the body", body: `[` + strings.Repeat(`{"action":"sales_order.updated","object":{"id":"1"}},`, 20000) + `{}]`, err: true},
		{name: "deeply nested", body: `{"action":"sales_order.updated","object":{"id":"1","x":` + strings.Repeat(`[`, 100000) + strings.Repeat(`]`, 100000) + `}}`, err: true},
	}
	for _, r := range []string{"product", "material", "variant", "sales_order"} {
		for _, verb := range eventVerbs[r] {
			action := r + "." + verb
			want := map[string]string{"product": "product/42", "material": "material/42", "variant": "42", "sales_order": "42"}[r]
			entity := model.KindProduct
			if r == "sales_order" {
				entity = model.KindSalesOrder
			}
			cases = append(cases, tc{name: action, body: payload(action, `"42"`), want: ev(entity, want, verb == "deleted", action)})
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Webhooks.Parse(http.Header{}, []byte(c.body))
			if c.err {
				if err == nil {
					t.Fatalf("events %v, want an error", got)
				}
				if strings.Contains(err.Error(), "not json") || len(err.Error()) > 200 {
					t.Errorf("the error quotes the body or is unbounded: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("error %v", err)
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("events %+v, want %+v", got, c.want)
			}
		})
	}
}

// TestParseSpecExample parses the example payload of the OpenAPI
// document's WebhookEventPayload.
func TestParseSpecExample(t *testing.T) {
	dir := os.Getenv("ERPSYNC_SPECS_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "specs")
	}
	raw, err := os.ReadFile(filepath.Join(dir, "katana-openapi.yaml"))
	if err != nil {
		t.Fatalf("reading the OpenAPI document (set ERPSYNC_SPECS_DIR): %v", err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Example any `json:"example"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("parsing the OpenAPI document: %v", err)
	}
	ex := doc.Components.Schemas["WebhookEventPayload"].Example
	if ex == nil {
		t.Fatal("the document has no WebhookEventPayload example")
	}
	body, err := jsonOf(ex)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Webhooks.Parse(http.Header{}, body)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := []connectors.WebhookEvent{{Entity: model.KindSalesOrder, ID: "12345", Type: "sales_order.delivered"}}
	if !slices.Equal(got, want) {
		t.Fatalf("events %+v, want %+v", got, want)
	}
	// Every event the connector subscribes to is one the document's enum
	// lists, and one Parse maps.
	var enum struct {
		Components struct {
			Schemas map[string]struct {
				Enum []string `json:"enum"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := yaml.Unmarshal(raw, &enum); err != nil {
		t.Fatal(err)
	}
	all := enum.Components.Schemas["WebhookEvent"].Enum
	for _, e := range WebhookEvents([]model.Kind{model.KindProduct, model.KindSalesOrder, model.KindCustomer}) {
		if !slices.Contains(all, e) {
			t.Errorf("%s is not a WebhookEvent of the document", e)
		}
		if evs, err := Webhooks.Parse(nil, []byte(`{"action":"`+e+`","object":{"id":"1"}}`)); err != nil || len(evs) != 1 {
			t.Errorf("%s: Parse gives %v, %v", e, evs, err)
		}
	}
}

func TestWebhookEvents(t *testing.T) {
	for _, tc := range []struct {
		entities []model.Kind
		want     int
	}{
		{nil, 0},
		{[]model.Kind{model.KindCustomer, model.KindTaxRate, model.KindWarehouse, model.KindStockLevel, model.KindPriceRule}, 0},
		{[]model.Kind{model.KindSalesOrder}, 3},
		{[]model.Kind{model.KindProduct}, 9},
		{[]model.Kind{model.KindProduct, model.KindSalesOrder, model.KindCustomer}, 12},
	} {
		got := WebhookEvents(tc.entities)
		if len(got) != tc.want || !slices.IsSorted(got) {
			t.Errorf("%v: %v, want %d sorted events", tc.entities, got, tc.want)
		}
	}
}

// FuzzParse feeds Parse arbitrary bodies: it must never panic, and what it
// returns must name a stream of the connector with a Katana id.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"resource_type":"sales_order","action":"sales_order.delivered","webhook_id":123,"object":{"id":"12345","status":"DELIVERED"}}`,
		`{"action":"variant.deleted","object":{"id":5}}`,
		`{"action":"material.created","object":{"id":"1e3"}}`,
		`{"action":"product.updated","object":{"id":"-0"}}`,
		`[{"action":"product.updated"}]`, `{}`, `null`, ``, `{"action":"x.y","object":{"id":"1"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, err := Webhooks.Parse(http.Header{}, body)
		if err != nil {
			return
		}
		if len(evs) > 1 {
			t.Fatalf("%d events from one delivery", len(evs))
		}
		for _, e := range evs {
			if e.Entity != model.KindProduct && e.Entity != model.KindSalesOrder {
				t.Fatalf("event of %q", e.Entity)
			}
			id := strings.TrimPrefix(strings.TrimPrefix(e.ID, "product/"), "material/")
			if _, err := katanaIDs([]string{id}); err != nil {
				t.Fatalf("id %q: %v", e.ID, err)
			}
		}
	})
}

func jsonOf(v any) ([]byte, error) { return json.Marshal(v) }
