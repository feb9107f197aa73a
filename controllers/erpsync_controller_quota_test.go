package controllers

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
)

// quotaConn is the fake connector sending one real request per page
// through an httpapi.Client with a monthly quota (as Unleashed's
// connector does), keyed by the Secret's apiKey.
type quotaConn struct {
	connectors.Connector
	client *httpapi.Client
	url    string
}

func (c *quotaConn) ListPage(ctx context.Context, req connectors.PageRequest) (*connectors.Page, error) {
	if _, err := c.client.Get(ctx, "list", c.url, nil); err != nil {
		return nil, err
	}
	return c.Connector.ListPage(ctx, req)
}

// quotaClient builds the client quotaConn uses for an API key.
func quotaClient(reg *httpapi.Registry, url, apiKey string) (*httpapi.Client, error) {
	return httpapi.New(httpapi.Options{Connector: "unleashed", Registry: reg, Secret: apiKey, BaseURL: url, Observer: httpapi.NopObserver{},
		Limits: []httpapi.Limit{{Key: httpapi.Key("unleashed", "api-id"), Quotas: []httpapi.Quota{{Name: "month", Limit: 1000, Period: httpapi.Monthly}}}}})
}

// TestStatusNamesTheQuotaCredentials: a sync records the credentials of
// the quotas its requests counted against, as the quota ConfigMaps and
// metrics name them; a sync on a rotated key replaces them.
func TestStatusNamesTheQuotaCredentials(t *testing.T) {
	h := newHarness(t)
	g := h.g
	vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{}`)) }))
	t.Cleanup(vendor.Close)
	reg := httpapi.NewRegistry(nil)
	h.secret("creds", map[string]string{"apiKey": "key-one"})
	h.startManager()
	h.reconciler.Registry.Register("unleashed", func(ctx context.Context, cfg connectors.Config) (connectors.Connector, error) {
		inner, err := h.erp.factory(ctx, cfg)
		if err != nil {
			return nil, err
		}
		c, err := quotaClient(reg, vendor.URL, string(cfg.Credentials["apiKey"]))
		if err != nil {
			return nil, err
		}
		return &quotaConn{Connector: inner, client: c, url: vendor.URL}, nil
	})
	credOf := func(apiKey string) string {
		c, err := quotaClient(httpapi.NewRegistry(nil), vendor.URL, apiKey)
		g.Expect(err).NotTo(HaveOccurred())
		return httpapi.CredentialID(c.LimitKeys()[0])
	}

	h.erpsync("acme")
	first := h.ready("acme")
	g.Expect(first.Status.QuotaCredentials).To(Equal([]string{credOf("key-one")}))
	g.Expect(first.Status.QuotaCredentials[0]).To(HavePrefix("unleashed-"))
	g.Expect(first.Status.QuotaCredentials[0]).NotTo(ContainSubstring("key-one"))

	// A rotated key is another credential: the next sync names it alone.
	var s corev1.Secret
	g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: h.ns, Name: "creds"}, &s)).To(Succeed())
	s.Data["apiKey"] = []byte("key-two")
	g.Expect(k8s.Update(context.Background(), &s)).To(Succeed())
	h.update("acme", func(o *erpv1.ErpSync) {
		o.Annotations = map[string]string{erpv1.RequestedAtAnnotation: "after-rotation"}
	})
	second := h.readyWhen("acme", func(o *erpv1.ErpSync) bool { return o.Status.LastHandledReconcileAt == "after-rotation" })
	g.Expect(second.Status.QuotaCredentials).To(Equal([]string{credOf("key-two")}))
	g.Expect(credOf("key-two")).NotTo(Equal(credOf("key-one")))
}
