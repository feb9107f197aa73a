// Package metricstest reads an ErpSync's gauges from a registry, for the
// tests of the packages that set them.
package metricstest

import (
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// ObjectSeries gathers the series of one ErpSync (labels namespace and
// name) as gauge values, keyed by metric and the values of their other
// labels in the order type, status, connector, entity:
// erpsync_condition{Ready,True}, erpsync_last_success_timestamp_seconds{katana},
// erpsync_suspended{}.
func ObjectSeries(g prometheus.Gatherer, namespace, name string) (map[string]float64, error) {
	mfs, err := g.Gather()
	if err != nil {
		return nil, fmt.Errorf("gathering metrics: %w", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["namespace"] != namespace || l["name"] != name {
				continue
			}
			var rest []string
			for _, k := range []string{"type", "status", "connector", "entity"} {
				if v, ok := l[k]; ok {
					rest = append(rest, v)
				}
			}
			out[mf.GetName()+"{"+strings.Join(rest, ",")+"}"] = m.GetGauge().GetValue()
		}
	}
	return out, nil
}
