package sharding

import (
	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	shardsHeld = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "erpsync_shards_held",
		Help: "Shards this replica syncs now, by role: own (its ordinal's) or foster (an absent replica's, handed back when it returns).",
	}, []string{"role"})

	shardCountConflict = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "erpsync_shard_count_conflict",
		Help: "1 while this replica sees a live shard lease written with another --shards than its own (a rollout of a new replica count, or a misconfiguration): the replicas with the larger count sync, the others wait.",
	})
)

func init() {
	crmetrics.Registry.MustRegister(shardsHeld, shardCountConflict)
}
