package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Webhook delivery results, the values of the webhook_deliveries_total
// "result" label.
const (
	// WebhookAccepted: an authentic delivery, its events queued.
	WebhookAccepted = "accepted"
	// WebhookRejected: unsigned, wrongly signed, or no key to check it
	// with (401).
	WebhookRejected = "rejected"
	// WebhookUnknown: no ErpSync with webhooks on has the delivery's path
	// or tenant; acknowledged and ignored.
	WebhookUnknown = "unknown"
	// WebhookThrottled: the source address exceeded its rate (429).
	WebhookThrottled = "throttled"
	// WebhookTooLarge: the body exceeded the cap (413).
	WebhookTooLarge = "too_large"
	// WebhookMalformed: the body did not decode (400).
	WebhookMalformed = "malformed"
	// WebhookNotFound: no such vendor or path, or not a POST (404, 405).
	WebhookNotFound = "not_found"
	// WebhookUnavailable: the ErpSyncs or their keys could not be read
	// (503; the vendor retries).
	WebhookUnavailable = "unavailable"
)

// Outcomes of a failed dispatch, the values of the
// webhook_dispatch_failures_total "result" label.
const (
	// DispatchRetried: the batch is kept and tried again after a backoff.
	DispatchRetried = "retried"
	// DispatchDropped: the batch was given up; the interval poll reads
	// what it named.
	DispatchDropped = "dropped"
)

// WebhookVendorOther is the vendor label of requests to a path that names
// no vendor with webhooks, so that a scanner cannot grow the series.
const WebhookVendorOther = "other"

var (
	webhookDeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "erpsync_webhook_deliveries_total",
		Help: "Webhook deliveries received, by vendor (\"other\" for paths naming none) and result (accepted, rejected, unknown, throttled, too_large, malformed, not_found, unavailable).",
	}, []string{"vendor", "result"})

	webhookEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "erpsync_webhook_events_total",
		Help: "Events of authentic webhook deliveries queued for a targeted sync, by vendor.",
	}, []string{"vendor"})

	webhookIgnoredEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "erpsync_webhook_ignored_events_total",
		Help: "Webhook events acknowledged and ignored because no ErpSync with webhooks on has their tenant (or none of its keys authenticated the delivery), by vendor.",
	}, []string{"vendor"})

	webhookDispatch = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "erpsync_webhook_dispatch_seconds",
		Help:    "Time from the first webhook delivery of a batch arriving to the batch being written to the ErpSync's status, by vendor.",
		Buckets: prometheus.ExponentialBuckets(0.05, 2, 12), // 50ms .. ~100s
	}, []string{"vendor"})

	webhookDispatchFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "erpsync_webhook_dispatch_failures_total",
		Help: "Failed writes of a webhook batch to an ErpSync's status, by vendor and result (retried, dropped: left to the interval poll).",
	}, []string{"vendor", "result"})
)

// WebhookCollectors lists the webhook receiver's metrics.
func WebhookCollectors() []prometheus.Collector {
	return []prometheus.Collector{webhookDeliveries, webhookEvents, webhookIgnoredEvents, webhookDispatch, webhookDispatchFailures}
}

func init() {
	crmetrics.Registry.MustRegister(WebhookCollectors()...)
}

// AddWebhookDelivery counts one delivery by vendor and result (the
// Webhook* constants).
func AddWebhookDelivery(vendor, result string) {
	webhookDeliveries.WithLabelValues(vendor, result).Inc()
}

// AddWebhookEvents counts n events queued for a targeted sync.
func AddWebhookEvents(vendor string, n int) {
	if n > 0 {
		webhookEvents.WithLabelValues(vendor).Add(float64(n))
	}
}

// AddWebhookIgnoredEvents counts n events acknowledged and ignored.
func AddWebhookIgnoredEvents(vendor string, n int) {
	if n > 0 {
		webhookIgnoredEvents.WithLabelValues(vendor).Add(float64(n))
	}
}

// ObserveWebhookDispatch records the time from a batch's first delivery to
// its status write.
func ObserveWebhookDispatch(vendor string, d time.Duration) {
	webhookDispatch.WithLabelValues(vendor).Observe(d.Seconds())
}

// AddWebhookDispatchFailure counts a failed dispatch by result
// (DispatchRetried, DispatchDropped).
func AddWebhookDispatchFailure(vendor, result string) {
	webhookDispatchFailures.WithLabelValues(vendor, result).Inc()
}
