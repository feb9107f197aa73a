package xero_test

import (
	"testing"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/all"
	"github.com/erpsync/erpsync-operator/connectors/xero"
)

// TestWebhookCodecRegistered: connectors/all registers Xero's codec for the
// xero type, routing by tenant.
func TestWebhookCodecRegistered(t *testing.T) {
	reg := connectors.NewRegistry()
	all.Register(reg)
	c, ok := reg.Webhooks(xero.Type)
	if !ok || c != xero.Webhooks || c.Routing() != connectors.RouteByTenant {
		t.Fatalf("Webhooks(%q) = %v, %v; want Xero's codec routing by tenant", xero.Type, c, ok)
	}
}
