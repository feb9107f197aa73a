package controllers

import (
	"context"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
)

// trackQuotaCredentials returns ctx under which the connector's requests
// record the daily and monthly quotas they count against (see
// httpapi.WithQuotaCredentials), for recordQuotaCredentials.
func (s *syncRun) trackQuotaCredentials(ctx context.Context) context.Context {
	ctx, s.quotaCredentials = httpapi.WithQuotaCredentials(ctx)
	return ctx
}

// recordQuotaCredentials sets status.quotaCredentials to the quotas this
// sync's requests counted against. A sync that sent no request (a missing
// Secret, a claim refused) keeps what the last one recorded; one that did
// replaces it, so a rotated credential's old quota is no longer named.
func (s *syncRun) recordQuotaCredentials(o *erpv1.ErpSync) {
	if ids := s.quotaCredentials.List(); len(ids) > 0 {
		o.Status.QuotaCredentials = ids
	}
}

// quotaCredentialSet is syncRun's collector of quota credentials.
type quotaCredentialSet = httpapi.QuotaCredentials
