package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/erpsync/erpsync-operator/internal/sharding"
)

// shardOptions are the flags of sharding across a StatefulSet's replicas.
type shardOptions struct {
	shards        int
	ordinal       int
	namespace     string
	leaseDuration time.Duration
	renewDeadline time.Duration
	retryPeriod   time.Duration
}

func (o *shardOptions) bindFlags(fs *flag.FlagSet) {
	fs.IntVar(&o.shards, "shards", 0, "Split the ErpSyncs into this many shards, one per replica of the manager's StatefulSet (set it to the replica count); each replica syncs the shards whose Lease it holds, and takes over a dead replica's. 0 or 1: no sharding (one leader syncs everything). Turns --leader-elect off.")
	fs.IntVar(&o.ordinal, "shard-ordinal", -1, "This replica's shard, 0..shards-1 (default: the ordinal at the end of $POD_NAME, as a StatefulSet names its pods).")
	fs.StringVar(&o.namespace, "shard-lease-namespace", os.Getenv("POD_NAMESPACE"), "Namespace of the shard Leases (default: $POD_NAMESPACE).")
	fs.DurationVar(&o.leaseDuration, "shard-lease-duration", sharding.DefaultLeaseDuration, "How long a shard Lease lasts without renewal: a dead replica's shard is taken over after about this long.")
	fs.DurationVar(&o.renewDeadline, "shard-renew-deadline", sharding.DefaultRenewDeadline, "A replica that has not renewed a shard Lease for this long stops the shard's syncs (below --shard-lease-duration).")
	fs.DurationVar(&o.retryPeriod, "shard-retry-period", sharding.DefaultRetryPeriod, "How often shard Leases are renewed and looked at.")
}

// newShards returns this replica's shards, or nil when sharding is off.
// A --watch-label-selector shard is a set of shards of its own: its Lease
// names carry the selector's hash, as the leader election Lease does.
func newShards(o options, cfg *rest.Config, log logr.Logger) (*sharding.Shards, error) {
	so := o.shard
	if so.shards <= 1 {
		return nil, nil
	}
	pod := os.Getenv("POD_NAME")
	ordinal, err := shardOrdinal(so.ordinal, pod)
	if err != nil {
		return nil, err
	}
	if so.namespace == "" {
		return nil, fmt.Errorf("--shards=%d needs --shard-lease-namespace (or $POD_NAMESPACE) for the shard Leases", so.shards)
	}
	prefix := sharding.DefaultPrefix
	if o.watchLabelSelector != "" {
		sel, err := labels.Parse(o.watchLabelSelector)
		if err != nil {
			return nil, fmt.Errorf("--watch-label-selector: %w", err)
		}
		sum := sha256.Sum256([]byte(sel.String()))
		prefix += "-" + hex.EncodeToString(sum[:4])
	}
	direct, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("building a client for the shard leases: %w", err)
	}
	name := pod
	if name == "" {
		name, _ = os.Hostname()
	}
	return sharding.New(sharding.Config{
		Client: direct, Namespace: so.namespace, Shards: so.shards, Ordinal: ordinal,
		// A restarted pod keeps its name: the suffix tells it from its
		// previous self, whose Lease it must not take as its own.
		Identity: name + "_" + string(uuid.NewUUID()),
		Prefix:   prefix, LeaseDuration: so.leaseDuration, RenewDeadline: so.renewDeadline, RetryPeriod: so.retryPeriod,
		DrainTimeout:    max(time.Second, o.gracefulShutdown-2*time.Second),
		ReleaseOnCancel: true,
		Log:             log.WithName("shards"),
	})
}

// shardOrdinal is --shard-ordinal, or the ordinal a StatefulSet puts at
// the end of its pods' names ("erpsync-controller-manager-2").
func shardOrdinal(flagValue int, podName string) (int, error) {
	if flagValue >= 0 {
		return flagValue, nil
	}
	i := strings.LastIndexByte(podName, '-')
	if i < 0 {
		return 0, fmt.Errorf("--shards needs --shard-ordinal, or $POD_NAME ending in -<ordinal> (a StatefulSet's pod); $POD_NAME is %q", podName)
	}
	n, err := strconv.Atoi(podName[i+1:])
	if err != nil || n < 0 {
		return 0, fmt.Errorf("--shards needs --shard-ordinal, or $POD_NAME ending in -<ordinal> (a StatefulSet's pod); $POD_NAME is %q", podName)
	}
	return n, nil
}
