package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The vendors' daily and monthly call quotas, per credential, as this
// replica's limiters count them (connectors/httpapi): the calls used, the
// limit and when the period resets. Used and limit, rather than what is
// left, so that an alert is one ratio (used / limit) whatever the quota's
// size, and a dashboard shows what is left as limit - used. A quota that
// is counted but not enforced (Unleashed without monthlyQuota) has no
// limit series, so the ratio is absent rather than infinite. Labels:
// connector, credential (httpapi.CredentialID: the vendor prefix and a
// digest of the limiter key, the name of the quota ConfigMap after
// "erpsync-quota-"; never a secret) and quota (day, month). A credential
// is not a namespace's: every holder of it shares one limiter, so there
// is no namespace label; ErpSync status.quotaCredentials says which
// credentials an ErpSync spends. Series are dropped when the limiter is
// pruned (a day after its last call).
var (
	quotaUsed = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "erpsync_quota_used",
		Help: "Calls counted against a vendor's daily or monthly quota in its current period, by connector, credential (the quota ConfigMap's digest, no secret) and quota; with a shared quota store, the calls every replica spent or other replicas reserved, as of this replica's last look.",
	}, []string{"connector", "credential", "quota"})

	quotaLimit = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "erpsync_quota_limit",
		Help: "The limit of a vendor's daily or monthly quota enforced per credential, by connector, credential and quota; absent for quotas counted but not enforced.",
	}, []string{"connector", "credential", "quota"})

	quotaReset = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "erpsync_quota_reset_timestamp_seconds",
		Help: "Unix time at which the current period of a vendor's daily or monthly quota ends (00:00 UTC, or the 1st of the month), by connector, credential and quota; a value in the past means erpsync_quota_used counts a period that is over.",
	}, []string{"connector", "credential", "quota"})
)

// SetQuota records one quota of a credential in its current period.
func SetQuota(connector, credential, quota string, used, limit int64, resetAt time.Time) {
	quotaUsed.WithLabelValues(connector, credential, quota).Set(float64(used))
	if limit > 0 {
		quotaLimit.WithLabelValues(connector, credential, quota).Set(float64(limit))
	} else {
		quotaLimit.DeleteLabelValues(connector, credential, quota)
	}
	quotaReset.WithLabelValues(connector, credential, quota).Set(float64(resetAt.Unix()))
}

// DeleteQuotas drops every quota series of a credential.
func DeleteQuotas(connector, credential string) {
	l := prometheus.Labels{"connector": connector, "credential": credential}
	quotaUsed.DeletePartialMatch(l)
	quotaLimit.DeletePartialMatch(l)
	quotaReset.DeletePartialMatch(l)
}

// ObserveQuota implements httpapi.QuotaObserver.
func (HTTPObserver) ObserveQuota(connector, credential, quota string, used, limit int64, resetAt time.Time) {
	SetQuota(connector, credential, quota, used, limit, resetAt)
}

// ForgetCredential implements httpapi.QuotaObserver.
func (HTTPObserver) ForgetCredential(connector, credential string) {
	DeleteQuotas(connector, credential)
}
