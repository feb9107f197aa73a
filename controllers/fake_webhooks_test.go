package controllers

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// fakeHooks is the fake ERP's webhook subscription: what EnsureWebhooks
// found and did, and what a test makes the vendor do to it.
type fakeHooks struct {
	url      string
	token    string
	disabled bool
	// stuck: a disabled subscription cannot be switched back on.
	stuck   bool
	ensures int
	removed []string
	// reads counts ReadDocs calls.
	reads int
}

// MaxDocsPerRead implements connectors.DocReader.
func (c *fakeConn) MaxDocsPerRead(model.Kind) int { return 50 }

// ReadDocs implements connectors.DocReader: the products with those ids
// the fake ERP still has.
func (c *fakeConn) ReadDocs(ctx context.Context, e model.Kind, ids []string) (*connectors.Page, error) {
	f := c.erp
	f.calls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hooks.reads++
	p := &connectors.Page{Calls: 1, Total: -1}
	if e != model.KindProduct {
		return p, nil
	}
	for _, r := range f.products {
		if slices.Contains(ids, r.id) {
			p.Records = append(p.Records, model.Record{Company: c.cfg.CompanyID, Vendor: c.cfg.Type, Kind: model.KindProduct, VendorID: r.id,
				ModifiedAt: r.modified, Data: &model.Product{SKU: r.id, Name: fmt.Sprintf("Product %s rev %d", r.id, r.rev)}})
		}
	}
	return p, nil
}

// EnsureWebhooks implements connectors.WebhookRegistrar: one subscription,
// whose token the vendor returns when it makes it.
func (c *fakeConn) EnsureWebhooks(ctx context.Context, t connectors.WebhookTarget) (*connectors.WebhookRegistration, error) {
	f := c.erp
	f.mu.Lock()
	defer f.mu.Unlock()
	h := &f.hooks
	h.ensures++
	if len(t.Keys[connectors.WebhookKeyCredential]) == 0 {
		return nil, fmt.Errorf("no webhook credential in the keys")
	}
	out := &connectors.WebhookRegistration{Calls: 1}
	if len(t.Entities) == 0 {
		// Events of no stream: a vendor subscribes nothing (an ErpSync
		// without spec.connector.entities syncs every stream: the
		// controller must say so).
		return out, nil
	}
	if h.url != t.URL || string(t.Keys[connectors.WebhookKeyToken]) != h.token {
		h.url, h.token, h.disabled = t.URL, fmt.Sprintf("tok-%d", h.ensures), false
		out.Created, out.Keys = 1, map[string][]byte{connectors.WebhookKeyToken: []byte(h.token)}
	}
	if h.disabled && !h.stuck {
		h.disabled = false
		out.Reenabled = 1
	}
	if h.disabled {
		out.Disabled = []string{"product.updated"}
	}
	out.Subscriptions = 1
	return out, nil
}

// RemoveWebhooks implements connectors.WebhookRegistrar.
func (c *fakeConn) RemoveWebhooks(ctx context.Context, url string) (int, error) {
	f := c.erp
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hooks.removed = append(f.hooks.removed, url)
	if f.hooks.url == url {
		f.hooks.url = ""
	}
	return 1, nil
}

// fakeCodec routes by path; the controller tests never deliver through it
// (the receiver has its own tests): they write status.webhooks.pending as
// the receiver does.
type fakeCodec struct{}

func (fakeCodec) Routing() connectors.WebhookRouting { return connectors.RouteByPath }
func (fakeCodec) Verify(http.Header, []byte, map[string][]byte, time.Time) error {
	return nil
}
func (fakeCodec) Parse(http.Header, []byte) ([]connectors.WebhookEvent, error) { return nil, nil }

// Announces implements connectors.WebhookCoverage: product events only.
func (fakeCodec) Announces() []model.Kind { return []model.Kind{model.KindProduct} }

// pacedCodec is fakeCodec with a vendor pace.
type pacedCodec struct{ fakeCodec }

func (pacedCodec) Pace() string { return "the vendor delivers a minute late" }

// An Active message says what the vendor's pace allows, for a vendor whose
// codec says it; no other message, and no other vendor's, changes.
func TestWebhooksActiveMessageSaysTheVendorsPace(t *testing.T) {
	reg := connectors.NewRegistry()
	reg.RegisterWebhooks("cin7core", pacedCodec{})
	reg.RegisterWebhooks("katana", fakeCodec{})
	r := &ErpSyncReconciler{Registry: reg}
	for _, tc := range []struct {
		typ, reason, want string
	}{
		{"cin7core", erpv1.ReasonWebhooksActive, "2 subscription(s); the vendor delivers a minute late"},
		{"cin7core", erpv1.ReasonWebhooksSilent, "2 subscription(s)"},
		{"katana", erpv1.ReasonWebhooksActive, "2 subscription(s)"},
		{"cin7omni", erpv1.ReasonWebhooksActive, "2 subscription(s)"},
	} {
		o := &erpv1.ErpSync{}
		o.Spec.Connector.Type = erpv1.ConnectorType(tc.typ)
		if got := r.withPace(o, tc.reason, "2 subscription(s)"); got != tc.want {
			t.Errorf("%s %s: %q, want %q", tc.typ, tc.reason, got, tc.want)
		}
	}
}
