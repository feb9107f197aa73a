package engine

import (
	"context"
	"testing"
	"time"

	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

func recordsMetric(t *testing.T, connector, entity, op string) float64 {
	t.Helper()
	mfs, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "erpsync_records_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["connector"] == connector && l["entity"] == entity && l["operation"] == op {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestRecordsMetric(t *testing.T) {
	w := newWorld(t)
	w.erp.Vendor = "metrics-fake"
	w.seed(P, 25, t0.Add(-time.Hour))
	up, sk, fa := recordsMetric(t, "metrics-fake", "products", "upserted"), recordsMetric(t, "metrics-fake", "products", "skipped"), recordsMetric(t, "metrics-fake", "products", "failed")
	w.crm.failAt = 2
	if _, err := w.run(context.Background(), func(r *Run) { r.BatchSize = 10 }); err == nil {
		t.Fatal("want the injected sink failure")
	}
	w.crm.failAt = 0
	if _, err := w.run(context.Background(), func(r *Run) { r.BatchSize = 10; r.Full = true }); err != nil {
		t.Fatal(err)
	}
	if d := recordsMetric(t, "metrics-fake", "products", "upserted") - up; d != 25 {
		t.Errorf("upserted +%v, want 25", d)
	}
	if d := recordsMetric(t, "metrics-fake", "products", "skipped") - sk; d != 10 {
		t.Errorf("skipped +%v, want 10 (page 1 re-read)", d)
	}
	if d := recordsMetric(t, "metrics-fake", "products", "failed") - fa; d != 10 {
		t.Errorf("failed +%v, want 10", d)
	}
}
