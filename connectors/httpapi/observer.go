package httpapi

import (
	"time"

	"github.com/erpsync/erpsync-operator/internal/metrics"
)

// Observer receives a Client's measurements; internal/metrics implements it
// with Prometheus metrics. Implementations must be safe for concurrent use
// and fast: they run on every request.
type Observer interface {
	// ObserveRequest reports one HTTP attempt: the connector, the operation
	// the connector named, the status code (0 when no response arrived) and
	// how long the attempt took.
	ObserveRequest(connector, operation string, code int, d time.Duration)
	// ObserveRateLimitWait reports time spent waiting for a rate limit, a
	// concurrency slot or a vendor's Retry-After before an attempt. d is on
	// the client's clock.
	ObserveRateLimitWait(connector string, d time.Duration)
}

// DefaultObserver is used by clients whose Options name none: the
// operator's Prometheus metrics (erpsync_upstream_requests_total,
// erpsync_upstream_request_duration_seconds, erpsync_rate_limit_wait_seconds).
var DefaultObserver Observer = metrics.HTTPObserver{}

// NopObserver discards every measurement.
type NopObserver struct{}

// ObserveRequest implements Observer.
func (NopObserver) ObserveRequest(string, string, int, time.Duration) {}

// ObserveRateLimitWait implements Observer.
func (NopObserver) ObserveRateLimitWait(string, time.Duration) {}

// QuotaObserver is an Observer that also reports the daily and monthly
// quotas (not the per-second or per-minute rate windows) as the limiters
// know them. A Client's Observer that implements it is handed to the
// limiters the Client creates; internal/metrics implements it with the
// erpsync_quota_* gauges. Like Observer, it must be safe for concurrent
// use and fast: it is called with a limiter's lock held, on every call
// that counts against a quota.
type QuotaObserver interface {
	// ObserveQuota reports one quota of a credential in its current
	// period: the calls counted (in a shared store, those any replica
	// spent or others reserved), the limit (0 or less when the quota is
	// counted but not enforced) and when the period ends. credential is
	// CredentialID of the limiter key: a vendor prefix and a digest, never
	// a secret.
	ObserveQuota(connector, credential, quota string, used, limit int64, resetAt time.Time)
	// ForgetCredential drops every quota of a credential whose limiter
	// was pruned (unused for LimiterIdleTTL), so that series of
	// credentials gone do not pile up.
	ForgetCredential(connector, credential string)
}
