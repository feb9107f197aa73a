package cin7omni

import "github.com/erpsync/erpsync-operator/connectors"

var _ connectors.QuotaReporter = (*Connector)(nil)

// QuotaLeft implements connectors.QuotaReporter: reconciliation plans its
// listing within the vendor's daily or monthly quota that is left.
func (c *Connector) QuotaLeft() (left, limit int64, ok bool) { return c.client.QuotaLeft() }
