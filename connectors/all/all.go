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

// Register adds every vendor's connector to reg.
func Register(reg *connectors.Registry) {
	reg.Register(unleashed.Type, unleashed.New)
	reg.Register(cin7omni.Type, cin7omni.New)
	reg.Register(cin7core.Type, cin7core.New)
	reg.Register(xero.Type, xero.New)
	reg.Register(katana.Type, katana.New)
}
