package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

func TestWebhookMetrics(t *testing.T) {
	accepted := webhookDeliveries.WithLabelValues("xero", WebhookAccepted)
	events := webhookEvents.WithLabelValues("xero")
	ignored := webhookIgnoredEvents.WithLabelValues("xero")
	dropped := webhookDispatchFailures.WithLabelValues("xero", DispatchDropped)
	before := []float64{testutil.ToFloat64(accepted), testutil.ToFloat64(events), testutil.ToFloat64(ignored), testutil.ToFloat64(dropped)}
	AddWebhookDelivery("xero", WebhookAccepted)
	AddWebhookEvents("xero", 3)
	AddWebhookEvents("xero", 0)
	AddWebhookIgnoredEvents("xero", 2)
	AddWebhookDispatchFailure("xero", DispatchDropped)
	ObserveWebhookDispatch("xero", 1500*time.Millisecond)
	for i, tc := range []struct {
		name string
		got  float64
		want float64
	}{
		{"deliveries", testutil.ToFloat64(accepted), 1}, {"events", testutil.ToFloat64(events), 3},
		{"ignored", testutil.ToFloat64(ignored), 2}, {"dropped", testutil.ToFloat64(dropped), 1},
	} {
		if d := tc.got - before[i]; d != tc.want {
			t.Errorf("%s grew by %v, want %v", tc.name, d, tc.want)
		}
	}
	mfs, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		got[mf.GetName()] = true
	}
	for _, name := range []string{"erpsync_webhook_deliveries_total", "erpsync_webhook_events_total", "erpsync_webhook_ignored_events_total",
		"erpsync_webhook_dispatch_seconds", "erpsync_webhook_dispatch_failures_total"} {
		if !got[name] {
			t.Errorf("%s is not registered", name)
		}
	}
}
