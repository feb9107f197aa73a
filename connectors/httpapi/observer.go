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
