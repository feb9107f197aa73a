// Package all registers every vendor connector. Adding a vendor means adding
// its folder under connectors/ and one line here.
package all

import (
	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/cin7core"
	"github.com/erpsync/erpsync-operator/connectors/cin7omni"
	"github.com/erpsync/erpsync-operator/connectors/katana"
	"github.com/erpsync/erpsync-operator/connectors/unleashed"
	"github.com/erpsync/erpsync-operator/connectors/xero"
)

// Register adds every vendor's connector to reg, with its vendor's
// published hosts (Registry.DefaultHosts).
func Register(reg *connectors.Registry) {
	reg.Register(unleashed.Type, unleashed.New, unleashed.DefaultHosts...)
	reg.Register(cin7omni.Type, cin7omni.New, cin7omni.DefaultHosts...)
	reg.Register(cin7core.Type, cin7core.New, cin7core.DefaultHosts...)
	reg.RegisterWebhooks(cin7core.Type, cin7core.Webhooks)
	reg.Register(xero.Type, xero.New, xero.DefaultHosts...)
	reg.RegisterWebhooks(xero.Type, xero.Webhooks)
	reg.Register(katana.Type, katana.New, katana.DefaultHosts...)
	reg.RegisterWebhooks(katana.Type, katana.Webhooks)
	reg.RegisterWebhooks(unleashed.Type, unleashed.Webhooks)
}
