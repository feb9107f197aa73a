// Command manager runs the ErpSync controller.
package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	_ "k8s.io/client-go/plugin/pkg/client/auth"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/all"
	"github.com/erpsync/erpsync-operator/connectors/egress"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/controllers"
	"github.com/erpsync/erpsync-operator/internal/engine"
	"github.com/erpsync/erpsync-operator/internal/quotastore"
	"github.com/erpsync/erpsync-operator/internal/receiver"
	sinkopen "github.com/erpsync/erpsync-operator/sinks/open"
)

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(erpv1.AddToScheme(scheme))
}

// bodyBudgetPerSync is the response-body budget each concurrent sync adds.
const bodyBudgetPerSync = 32 << 20

type options struct {
	metricsAddr          string
	pprofAddr            string
	secureMetrics        bool
	probeAddr            string
	leaderElect          bool
	leaderElectionID     string
	leaderElectionNS     string
	watchLabelSelector   string
	watchNamespace       string
	watchNamespaces      string
	watchNSSelector      string
	namespaceResync      time.Duration
	concurrentSyncs      int
	maxSyncsPerNamespace int
	maxSyncsInProgress   int
	maxSyncDuration      time.Duration
	egressAllowHosts     string
	egressAllowPrivate   bool
	concurrentReconciles int
	overlap              time.Duration
	checkpointEvery      time.Duration
	batchSize            int
	gracefulShutdown     time.Duration
	quotaNamespace       string
	quotaFile            string
	claimNamespace       string
	sink                 sinkopen.Config

	webhookAddr           string
	webhookPublicURL      string
	webhookMaxBodyBytes   int64
	webhookRatePerIP      float64
	webhookTrustedProxies string

	shard shardOptions
}

func main() {
	var o options
	flag.StringVar(&o.pprofAddr, "pprof-bind-address", "", "Address of Go's pprof endpoints, for profiling (empty: off). Bind it to localhost and reach it with kubectl port-forward: it is unauthenticated.")
	flag.StringVar(&o.metricsAddr, "metrics-bind-address", ":8443", "Address of the metrics endpoint (HTTPS unless --metrics-secure=false); \"0\" disables it.")
	flag.BoolVar(&o.secureMetrics, "metrics-secure", true, "Serve metrics over HTTPS, authorising each scrape against the API server.")
	flag.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of the health and readiness probes.")
	flag.BoolVar(&o.leaderElect, "leader-elect", true, "Elect a leader, so that only one replica per shard syncs.")
	flag.StringVar(&o.leaderElectionID, "leader-election-id", "erpsync-operator.erpsync.io", "Base name of the leader election Lease; a shard's selector is hashed into it.")
	flag.StringVar(&o.leaderElectionNS, "leader-election-namespace", "", "Namespace of the leader election Lease (default: the pod's namespace).")
	flag.StringVar(&o.watchLabelSelector, "watch-label-selector", "", "Only reconcile ErpSyncs matching this label selector (sharding), e.g. 'sharding.erpsync.io/shard=shard1'.")
	flag.StringVar(&o.watchNamespace, "watch-namespace", "", "Deprecated: use --watch-namespaces. Only reconcile ErpSyncs in this namespace.")
	flag.StringVar(&o.watchNamespaces, "watch-namespaces", "", "Comma-separated namespaces whose ErpSyncs and Secrets the manager watches (default: all); with --watch-namespace-selector, the union.")
	flag.StringVar(&o.watchNSSelector, "watch-namespace-selector", "", "Label selector of the onboarded Namespaces (e.g. 'erpsync.io/tenant=true'): only their ErpSyncs and Secrets are watched. The manager restarts itself when the set changes.")
	flag.DurationVar(&o.namespaceResync, "watch-namespace-resync", time.Minute, "How often --watch-namespace-selector is re-read.")
	flag.IntVar(&o.concurrentSyncs, "concurrent-syncs", controllers.DefaultConcurrentSyncs, "Syncs working at once (reading, mapping, writing: what costs memory and CPU); a sync waiting on a vendor's limit gives its slot back. Vendor rate limits are shared by credential regardless.")
	flag.IntVar(&o.maxSyncsInProgress, "max-syncs-in-progress", 0, fmt.Sprintf("Syncs in progress at once, working or waiting on a vendor (0: %d per --concurrent-syncs).", controllers.DefaultSyncsInProgressPerSlot))
	flag.IntVar(&o.maxSyncsPerNamespace, "max-syncs-per-namespace", controllers.DefaultMaxSyncsPerNamespace, "Syncs of one namespace in progress at once (within --max-syncs-in-progress); a namespace's further syncs wait for their turn without holding anything.")
	flag.DurationVar(&o.maxSyncDuration, "max-sync-duration", controllers.DefaultMaxSyncDuration, "Longest any sync may run, full imports and longer spec.timeout included; an import cut by it resumes from its checkpoint.")
	flag.StringVar(&o.egressAllowHosts, "egress-allow-hosts", "", "Comma-separated hosts (host or host:port) connectors may call besides the vendors' own: over plain http and at private addresses too (simulators, private endpoints).")
	flag.BoolVar(&o.egressAllowPrivate, "egress-allow-private", false, "Let every host resolve to private, loopback and link-local addresses. Tests only.")
	flag.IntVar(&o.concurrentReconciles, "concurrent-reconciles", 4, "Reconcile workers. Reconciles are short: syncs run outside them.")
	flag.DurationVar(&o.overlap, "sync-overlap", engine.DefaultOverlap, "How far before the start of the last pass each incremental window starts (clock skew, boundary inclusivity).")
	flag.DurationVar(&o.checkpointEvery, "checkpoint-interval", engine.DefaultCheckpointEvery, "Least time between two progress checkpoints written to an ErpSync's status.")
	flag.IntVar(&o.batchSize, "batch-size", engine.DefaultBatchSize, "Records per CRM write.")
	flag.DurationVar(&o.gracefulShutdown, "graceful-shutdown-timeout", 20*time.Second, "Time given to running syncs to checkpoint and stop on shutdown.")
	flag.StringVar(&o.quotaNamespace, "quota-namespace", os.Getenv("POD_NAMESPACE"), "Namespace of the ConfigMaps that count vendor call quotas across restarts (default: $POD_NAMESPACE).")
	flag.StringVar(&o.quotaFile, "quota-file", "", "Count vendor call quotas in this JSON file instead (local runs without --quota-namespace).")
	flag.StringVar(&o.claimNamespace, "claim-namespace", os.Getenv("POD_NAMESPACE"), "Namespace of the Leases that record which namespace owns each companyId (default: $POD_NAMESPACE). Tenants must not be able to write it. Empty: ownership is decided from the cache only (local runs).")
	flag.StringVar(&o.webhookAddr, "webhook-bind-address", receiver.DefaultAddr, "Address of the webhook receiver, which takes vendors' change notifications (its own port, never the metrics port; put it behind an Ingress or Gateway); \"0\" disables it.")
	flag.StringVar(&o.webhookPublicURL, "webhook-public-url", "", "Base URL at which vendors reach the webhook receiver, e.g. https://hooks.example.com (an ErpSync's URL is it followed by /webhooks/<type>/<uid>). Empty: no subscriptions are registered at the vendors.")
	flag.Int64Var(&o.webhookMaxBodyBytes, "webhook-max-body-bytes", receiver.DefaultMaxBodyBytes, "Largest webhook delivery body accepted; a larger one is refused (413).")
	flag.Float64Var(&o.webhookRatePerIP, "webhook-rate-per-ip", receiver.DefaultRatePerIP, "Webhook deliveries per second one source address may send, in bursts of five times that; more are refused (429) before their body is read.")
	flag.StringVar(&o.webhookTrustedProxies, "webhook-trusted-proxies", "", "Comma-separated addresses or CIDRs of the Ingress or Gateway in front of the webhook receiver: for their requests the source address (for --webhook-rate-per-ip) is taken from X-Forwarded-For. Empty: every delivery is limited by the proxy's own address.")
	o.sink.BindFlags(flag.CommandLine)
	o.shard.bindFlags(flag.CommandLine)
	zapOpts := zap.Options{Development: false}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	if err := run(ctrl.SetupSignalHandler(), o); err != nil {
		if errors.Is(err, errNamespacesChanged) {
			// Not a failure: start again to watch the new set.
			ctrl.Log.Info("exiting to watch the newly selected namespaces")
			os.Exit(0)
		}
		ctrl.Log.Error(err, "manager exited")
		os.Exit(1)
	}
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func run(ctx context.Context, o options) error {
	log := ctrl.Log.WithName("setup")

	// The cache holds every watched ErpSync and credentials Secret: their
	// managedFields (as large as a status) are never read, so they are not
	// kept (at 10,000 ErpSyncs that is hundreds of MiB).
	cacheOpts := cache.Options{ByObject: map[client.Object]cache.ByObject{}, DefaultTransform: cache.TransformStripManagedFields()}
	leaseID := o.leaderElectionID
	if o.watchLabelSelector != "" {
		sel, err := labels.Parse(o.watchLabelSelector)
		if err != nil {
			return fmt.Errorf("--watch-label-selector: %w", err)
		}
		// The selector applies to ErpSyncs only: a shard must still see the
		// Secrets its ErpSyncs reference.
		cacheOpts.ByObject[&erpv1.ErpSync{}] = cache.ByObject{Label: sel}
		sum := sha256.Sum256([]byte(sel.String()))
		leaseID = hex.EncodeToString(sum[:4]) + "." + o.leaderElectionID
	}
	// Credentials Secrets opt in by label: the metadata cache holds only
	// those (an unlabelled Secret reads as absent, as it does to a sync).
	credSel := labels.SelectorFromSet(labels.Set{erpv1.CredentialsLabel: erpv1.CredentialsLabelValue})
	cacheOpts.ByObject[&corev1.Secret{}] = cache.ByObject{Label: credSel}

	restCfg := ctrl.GetConfigOrDie()
	scope, err := parseNamespaceScope(o.watchNamespaces, o.watchNamespace, o.watchNSSelector)
	if err != nil {
		return err
	}
	var watcher *namespaceWatcher
	if scope != nil {
		direct, err := client.New(restCfg, client.Options{Scheme: scheme})
		if err != nil {
			return fmt.Errorf("building a client to read namespaces: %w", err)
		}
		nss, err := scope.waitForNamespaces(ctx, direct, o.namespaceResync, log)
		if err != nil {
			return err
		}
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range nss {
			cacheOpts.DefaultNamespaces[ns] = cache.Config{}
		}
		log.Info("watching only the onboarded namespaces", "count", len(nss), "listed", scope.listed, "selector", o.watchNSSelector)
		if scope.selector != nil {
			watcher = &namespaceWatcher{scope: scope, reader: direct, current: nss, interval: o.namespaceResync, log: log.WithName("namespaces")}
		}
	}

	policy, err := egress.New(splitList(o.egressAllowHosts), o.egressAllowPrivate)
	if err != nil {
		return fmt.Errorf("--egress-allow-hosts: %w", err)
	}
	if o.egressAllowPrivate {
		log.Info("--egress-allow-private is set: connectors may reach private, loopback and link-local addresses (tests only)")
	}

	metricsOpts := metricsserver.Options{BindAddress: o.metricsAddr, SecureServing: o.secureMetrics,
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}}
	if o.secureMetrics {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}

	// Sharding across a StatefulSet's replicas (--shards): every replica
	// syncs the shards whose Lease it holds; no manager-wide leader.
	shards, err := newShards(o, restCfg, log)
	if err != nil {
		return err
	}
	if shards != nil {
		o.leaderElect = false
		log.Info("sharding: this replica syncs the shards whose lease it holds; leader election is off", "shards", shards.Count(), "ordinal", shards.Ordinal())
	}

	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsOpts,
		HealthProbeBindAddress:        o.probeAddr,
		PprofBindAddress:              o.pprofAddr,
		LeaderElection:                o.leaderElect,
		LeaderElectionID:              leaseID,
		LeaderElectionNamespace:       o.leaderElectionNS,
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       &o.gracefulShutdown,
		Cache:                         cacheOpts,
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}

	o.sink.Log = ctrl.Log.WithName("sink")
	sink, err := sinkopen.Open(ctx, o.sink)
	if err != nil {
		return fmt.Errorf("opening the CRM sink: %w", err)
	}
	defer func() {
		if err := sink.Close(); err != nil {
			log.Error(err, "closing the CRM sink")
		}
	}()

	// Vendor call quotas must survive restarts: in ConfigMaps in the
	// cluster, or in a file for local runs.
	switch {
	case o.quotaNamespace != "":
		if o.shard.shards > 1 {
			// Every replica works: each may spend its share of an
			// app-wide rate window (Xero's 10,000 calls a minute).
			httpapi.SharedRegistry.SetReplicaShare(1 / float64(o.shard.shards))
		}
		store := &quotastore.ConfigMapStore{Reader: mgr.GetAPIReader(), Writer: mgr.GetClient(), Namespace: o.quotaNamespace}
		if err := mgr.Add(store); err != nil {
			return fmt.Errorf("adding the quota store: %w", err)
		}
		httpapi.SharedRegistry.SetQuotaStore(store)
	case o.quotaFile != "":
		httpapi.SharedRegistry.SetQuotaStore(httpapi.NewFileQuotaStore(o.quotaFile))
	default:
		log.Info("vendor call quotas are counted in memory only: set --quota-namespace or --quota-file to keep them across restarts")
	}

	// Bodies being read at once: one paged response (at most 32 MiB, Xero's
	// page cap, the largest) per concurrent sync, the figure the
	// Deployment's memory limit is sized from (hack/bench.d/memory.sh).
	// The oldest read is never held back, so one larger unpaged body
	// (Xero's items) still goes through.
	httpapi.SetBodyBudget(int64(max(1, o.concurrentSyncs)) * bodyBudgetPerSync)
	log.Info("response bodies in flight are bounded", "bytes", int64(max(1, o.concurrentSyncs))*bodyBudgetPerSync)

	reg := connectors.NewRegistry()
	all.Register(reg)
	log.Info("connectors available", "types", reg.Types())

	publicURL, err := webhookPublicURL(o.webhookPublicURL)
	if err != nil {
		return fmt.Errorf("--webhook-public-url: %w", err)
	}

	r := &controllers.ErpSyncReconciler{
		Client:   mgr.GetClient(),
		Recorder: mgr.GetEventRecorder("erpsync-controller"),
		Registry: reg,
		Sink:     sink,
		Egress:   policy,
		// Where vendors are told to deliver; the receiver below takes
		// the deliveries.
		WebhookPublicURL: publicURL,
		Options: controllers.Options{
			ConcurrentSyncs:         o.concurrentSyncs,
			MaxSyncsPerNamespace:    o.maxSyncsPerNamespace,
			MaxSyncsInProgress:      o.maxSyncsInProgress,
			MaxSyncDuration:         o.maxSyncDuration,
			MaxConcurrentReconciles: o.concurrentReconciles,
			Overlap:                 o.overlap,
			CheckpointEvery:         o.checkpointEvery,
			BatchSize:               o.batchSize,
		},
	}
	if o.claimNamespace != "" {
		r.ClaimNamespace = o.claimNamespace
	} else {
		log.Info("--claim-namespace is empty: company claims are decided from the cache only, not recorded (two ErpSyncs of one company created in the same second may be ordered by UID, and shards may disagree)")
	}
	if shards != nil {
		r.Shards = shards
		if err := mgr.Add(shards); err != nil {
			return fmt.Errorf("adding the shard leases: %w", err)
		}
	}
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		return fmt.Errorf("setting up the ErpSync controller: %w", err)
	}
	if o.webhookAddr != "0" {
		if err := addReceiver(ctx, mgr, restCfg, reg, cacheOpts, o); err != nil {
			return err
		}
	} else if publicURL != "" {
		log.Info("--webhook-public-url is set but the webhook receiver is disabled (--webhook-bind-address=0): another manager must receive at that URL")
	}
	if watcher != nil {
		if err := mgr.Add(watcher); err != nil {
			return fmt.Errorf("adding the namespace watcher: %w", err)
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("adding the health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("adding the readiness check: %w", err)
	}
	log.Info("starting the manager", "leaderElection", o.leaderElect, "lease", leaseID, "watchLabelSelector", o.watchLabelSelector,
		"concurrentSyncs", o.concurrentSyncs, "maxSyncsPerNamespace", o.maxSyncsPerNamespace, "maxSyncsInProgress", o.maxSyncsInProgress, "maxSyncDuration", o.maxSyncDuration,
		"egressAllowHosts", splitList(o.egressAllowHosts), "claimNamespace", o.claimNamespace,
		"webhookBindAddress", o.webhookAddr, "webhookPublicURL", publicURL)
	return mgr.Start(ctx)
}

// webhookPublicURL checks --webhook-public-url: an absolute http(s) URL
// without query or fragment; returned without its trailing slash.
func webhookPublicURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("parsing %q: %w", raw, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("%q is not an absolute http(s) URL without credentials, query or fragment", raw)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// addReceiver adds the webhook receiver, which runs in every replica. Its
// directory of ErpSyncs is the manager's cache, or, when this manager is
// one shard (--watch-label-selector), a trimmed cache of every shard's
// ErpSyncs: vendors deliver to one URL for all shards (Xero: one per app),
// and a delivery for another shard's ErpSync is written to its status,
// where that shard's controller takes it.
func addReceiver(ctx context.Context, mgr ctrl.Manager, restCfg *rest.Config, reg *connectors.Registry, cacheOpts cache.Options, o options) error {
	trusted, err := receiver.ParseTrustedProxies(o.webhookTrustedProxies)
	if err != nil {
		return fmt.Errorf("--webhook-trusted-proxies: %w", err)
	}
	var dir client.Reader = mgr.GetCache()
	indexer := mgr.GetFieldIndexer()
	if o.watchLabelSelector != "" {
		c, err := receiver.NewDirectoryCache(restCfg, cache.Options{Scheme: scheme, DefaultNamespaces: cacheOpts.DefaultNamespaces})
		if err != nil {
			return err
		}
		if err := mgr.Add(c); err != nil {
			return fmt.Errorf("adding the webhook receiver's cache: %w", err)
		}
		dir, indexer = c, c
	}
	if err := receiver.IndexFields(ctx, indexer); err != nil {
		return fmt.Errorf("indexing ErpSyncs for the webhook receiver: %w", err)
	}
	rcv := receiver.New(reg, receiver.CacheDirectory{Reader: dir}, receiver.SecretKeySource{Reader: mgr.GetAPIReader()},
		&receiver.StatusDispatcher{Reader: mgr.GetAPIReader(), Client: mgr.GetClient()},
		receiver.Options{
			Addr:           o.webhookAddr,
			MaxBodyBytes:   o.webhookMaxBodyBytes,
			RatePerIP:      o.webhookRatePerIP,
			TrustedProxies: trusted,
			Log:            ctrl.Log.WithName("webhooks"),
		})
	if err := mgr.Add(rcv); err != nil {
		return fmt.Errorf("adding the webhook receiver: %w", err)
	}
	return nil
}
