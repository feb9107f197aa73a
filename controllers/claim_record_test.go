package controllers

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors"
)

// claimManager runs a manager whose cache sees only the namespaces named
// (a shard, or a manager limited by --watch-namespaces) and that keeps
// durable claims in claimNS. It returns a function that stops it.
func (h *harness) claimManager(claimNS string, watch ...string) func() {
	h.t.Helper()
	namespaces := map[string]cache.Config{}
	for _, ns := range watch {
		namespaces[ns] = cache.Config{}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:     scheme,
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Cache:      cache.Options{DefaultNamespaces: namespaces},
		Controller: ctrlConfig(),
	})
	h.g.Expect(err).NotTo(HaveOccurred())
	reg := connectors.NewRegistry()
	reg.Register("unleashed", h.erp.factory)
	ctx, cancel := context.WithCancel(context.Background())
	r := &ErpSyncReconciler{
		Client:   mgr.GetClient(),
		Recorder: mgr.GetEventRecorder("erpsync-controller"),
		Registry: reg,
		Sink:     h.sink,
		Clock:    h.clock,
		Options:  h.opts,
	}
	r.ClaimNamespace = claimNS
	h.g.Expect(r.SetupWithManager(ctx, mgr)).To(Succeed())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			h.t.Errorf("manager: %v", err)
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
			r.ClaimNamespace = ""
		})
	}
	h.t.Cleanup(stop)
	return stop
}

// claimOutcome is what became of an ErpSync's claim: "owner" once it
// started a sync, "refused:<owner namespace>" once refused, "" before.
func claimOutcome(o *erpv1.ErpSync) string {
	if ready := meta.FindStatusCondition(o.Status.Conditions, erpv1.ReadyCondition); ready != nil && ready.Reason == erpv1.ReasonCompanyClaimed {
		if o.Status.LastSyncStart != nil {
			return "refused after a sync started"
		}
		i := strings.Index(ready.Message, `by another namespace ("`)
		if i < 0 {
			return "refused: " + ready.Message
		}
		rest := ready.Message[i+len(`by another namespace ("`):]
		return "refused:" + rest[:strings.Index(rest, `"`)]
	}
	if o.Status.LastSyncStart != nil {
		return "owner"
	}
	return ""
}

// claimRecord reads the claim of company from the claim namespace.
func (h *harness) claimRecord(claimNS, company string) *coordinationv1.Lease {
	h.t.Helper()
	var l coordinationv1.Lease
	h.g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: claimNS, Name: ClaimName(company)}, &l)).To(Succeed())
	return &l
}

func holder(l *coordinationv1.Lease) string {
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// TestClaimRaceAtTheSameInstant: two namespaces create ErpSyncs of one
// company at the same instant, round after round, in both orders, with
// one manager watching both and with two shards that cannot see each
// other (whose caches alone would let both own the company). Exactly one
// owns it, the record names it, and the other is refused and never syncs.
func TestClaimRaceAtTheSameInstant(t *testing.T) {
	for _, tc := range []struct {
		name   string
		shards bool
	}{
		{name: "one manager watching both namespaces"},
		{name: "two shards, each blind to the other's namespace", shards: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			g := h.g
			h.opts.MaxConcurrentReconciles = 4
			claimNS, a, b := h.namespace(), h.ns, h.namespace()
			for _, ns := range []string{a, b} {
				h.secretIn(ns, "creds", map[string]string{"apiKey": "key-" + ns}, map[string]string{erpv1.CredentialsLabel: erpv1.CredentialsLabelValue})
			}
			if tc.shards {
				h.claimManager(claimNS, a)
				h.claimManager(claimNS, b)
			} else {
				h.claimManager(claimNS, a, b)
			}

			const rounds = 12
			for i := range rounds {
				company := fmt.Sprintf("RACE-%d", i)
				first, second := a, b
				if i%2 == 1 {
					first, second = b, a
				}
				// Both creates are released at once; the one started first
				// alternates.
				start := make(chan struct{})
				var wg sync.WaitGroup
				for _, ns := range []string{first, second} {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						o := &erpv1.ErpSync{
							ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("race-%d", i), Namespace: ns},
							Spec: erpv1.ErpSyncSpec{CompanyID: company,
								Connector: erpv1.ConnectorSpec{Type: erpv1.ConnectorUnleashed, CredentialsRef: erpv1.LocalSecretReference{Name: "creds"}},
								Interval:  metav1.Duration{Duration: time.Hour}},
						}
						if err := k8s.Create(context.Background(), o); err != nil {
							t.Errorf("creating %s/%s: %v", ns, o.Name, err)
						}
					}()
				}
				close(start)
				wg.Wait()
			}

			owners := map[string]int{}
			for i := range rounds {
				company, name := fmt.Sprintf("RACE-%d", i), fmt.Sprintf("race-%d", i)
				var oa, ob string
				g.Eventually(func() bool {
					oa, ob = claimOutcome(h.getIn(a, name)), claimOutcome(h.getIn(b, name))
					return oa != "" && ob != ""
				}, 30*time.Second, 50*time.Millisecond).Should(BeTrue(), "round %d: both outcomes (%q, %q)", i, oa, ob)
				var owner string
				switch {
				case oa == "owner" && ob == "refused:"+a:
					owner = a
				case ob == "owner" && oa == "refused:"+b:
					owner = b
				default:
					t.Fatalf("round %d: outcomes %s=%q, %s=%q: want exactly one owner and the other refused naming it", i, a, oa, b, ob)
				}
				owners[owner]++
				g.Expect(holder(h.claimRecord(claimNS, company))).To(Equal(owner), "round %d: the record names the owner", i)
			}
			t.Logf("owners over %d rounds: %v", rounds, owners)
			// The refused never start a sync later either.
			g.Consistently(func() []string {
				var bad []string
				for i := range rounds {
					name := fmt.Sprintf("race-%d", i)
					oa, ob := claimOutcome(h.getIn(a, name)), claimOutcome(h.getIn(b, name))
					if (oa == "owner") == (ob == "owner") {
						bad = append(bad, fmt.Sprintf("%s: %q/%q", name, oa, ob))
					}
				}
				return bad
			}, time.Second, 200*time.Millisecond).Should(BeEmpty())
		})
	}
}

// TestClaimPassesWhenTheOwnerIsDeleted: the record holds the owning
// namespace and the owner's UID and nothing else; while the owner's
// namespace has an ErpSync of the company the other namespace is refused,
// and when the last one is deleted the record is released and the other
// namespace claims the company.
func TestClaimPassesWhenTheOwnerIsDeleted(t *testing.T) {
	h := newHarness(t)
	g := h.g
	claimNS, victim, other := h.namespace(), h.ns, h.namespace()
	for _, ns := range []string{victim, other} {
		h.secretIn(ns, "creds", map[string]string{"apiKey": "key-" + ns}, map[string]string{erpv1.CredentialsLabel: erpv1.CredentialsLabelValue})
	}
	h.claimManager(claimNS, victim, other)
	const company = "ACME / Ltd: any string at all"

	h.erpsyncIn(victim, "acme", company)
	h.readyIn(victim, "acme")
	h.erpsyncIn(victim, "acme-2", company)
	h.readyIn(victim, "acme-2")
	first := h.claimRecord(claimNS, company)
	g.Expect(holder(first)).To(Equal(victim))
	g.Expect(first.Labels).To(HaveKeyWithValue(ClaimLabel, "true"))
	g.Expect(first.Annotations).To(HaveKeyWithValue(ClaimOwnerUIDAnnotation, Or(
		Equal(string(h.getIn(victim, "acme").UID)), Equal(string(h.getIn(victim, "acme-2").UID)))))
	g.Expect(first.Spec.LeaseDurationSeconds).To(BeNil(), "a claim does not expire")
	g.Expect(first.Name).NotTo(ContainSubstring("acme"), "the name reveals nothing of the company")
	for k, v := range first.Annotations {
		g.Expect(k + v).NotTo(ContainSubstring("ACME"))
	}

	h.erpsyncIn(other, "mine", company)
	g.Eventually(func() string { return claimOutcome(h.getIn(other, "mine")) }, 20*time.Second, 50*time.Millisecond).
		Should(Equal("refused:" + victim))
	g.Expect(h.erp.builtWith("apiKey", "key-"+other)).To(BeFalse(), "nothing read of the refused namespace's Secret")

	// One of the owner's two ErpSyncs goes: the claim stands.
	g.Expect(k8s.Delete(context.Background(), h.getIn(victim, "acme"))).To(Succeed())
	g.Consistently(func() string { return claimOutcome(h.getIn(other, "mine")) }, time.Second, 100*time.Millisecond).
		Should(Equal("refused:" + victim))
	g.Expect(holder(h.claimRecord(claimNS, company))).To(Equal(victim))

	// The last one goes: released, and claimed by the other namespace.
	g.Expect(k8s.Delete(context.Background(), h.getIn(victim, "acme-2"))).To(Succeed())
	h.readyIn(other, "mine")
	second := h.claimRecord(claimNS, company)
	g.Expect(holder(second)).To(Equal(other))
	g.Expect(second.UID).NotTo(Equal(first.UID), "released (deleted) and created anew")
	g.Expect(second.Annotations).To(HaveKeyWithValue(ClaimOwnerUIDAnnotation, string(h.getIn(other, "mine").UID)))
	g.Expect(h.erp.builtWith("apiKey", "key-"+other)).To(BeTrue())

	// The first namespace comes back: now it is the one refused.
	h.erpsyncIn(victim, "acme-3", company)
	g.Eventually(func() string { return claimOutcome(h.getIn(victim, "acme-3")) }, 20*time.Second, 50*time.Millisecond).
		Should(Equal("refused:" + other))
}

// TestClaimSurvivesAManagerRestart: the claim is in the API server, not in
// a cache: a manager started afresh that cannot see the owner's namespace
// at all (so the cache rule would hand the company to the newcomer) still
// refuses another namespace's claim.
func TestClaimSurvivesAManagerRestart(t *testing.T) {
	h := newHarness(t)
	g := h.g
	claimNS, owner, other := h.namespace(), h.ns, h.namespace()
	for _, ns := range []string{owner, other} {
		h.secretIn(ns, "creds", map[string]string{"apiKey": "key-" + ns}, map[string]string{erpv1.CredentialsLabel: erpv1.CredentialsLabelValue})
	}
	stop := h.claimManager(claimNS, owner, other)
	h.erpsyncIn(owner, "acme", "ACME")
	h.readyIn(owner, "acme")
	before := h.claimRecord(claimNS, "ACME")
	stop()

	h.claimManager(claimNS, other)
	h.erpsyncIn(other, "acme", "ACME")
	g.Eventually(func() string { return claimOutcome(h.getIn(other, "acme")) }, 20*time.Second, 50*time.Millisecond).
		Should(Equal("refused:" + owner))
	after := h.claimRecord(claimNS, "ACME")
	g.Expect(after.UID).To(Equal(before.UID))
	g.Expect(holder(after)).To(Equal(owner))
	g.Expect(h.erp.builtWith("apiKey", "key-"+other)).To(BeFalse())
}

// TestClaimMigratesTheCurrentOwner: an installation from before durable
// claims has no record; an ErpSync that has already synced keeps its
// company even when an ErpSync of another namespace, created earlier but
// never synced, is the first to reconcile: the record is written for the
// owner by the old rule.
func TestClaimMigratesTheCurrentOwner(t *testing.T) {
	h := newHarness(t)
	g := h.g
	claimNS, owner, newcomer := h.namespace(), h.ns, h.namespace()
	for _, ns := range []string{owner, newcomer} {
		h.secretIn(ns, "creds", map[string]string{"apiKey": "key-" + ns}, map[string]string{erpv1.CredentialsLabel: erpv1.CredentialsLabelValue})
	}
	h.erpsyncIn(newcomer, "acme", "ACME")
	// The owner synced under the old manager, and is suspended now, so the
	// newcomer is the first (and only) ErpSync that reconciles a claim.
	h.erpsyncIn(owner, "acme", "ACME", func(o *erpv1.ErpSync) { o.Spec.Suspend = true })
	synced := h.getIn(owner, "acme")
	synced.Status.LastSyncStart = &metav1.Time{Time: time.Now().Add(-time.Hour).Truncate(time.Second)}
	g.Expect(k8s.Status().Update(context.Background(), synced)).To(Succeed())

	h.claimManager(claimNS, owner, newcomer)
	g.Eventually(func() string { return claimOutcome(h.getIn(newcomer, "acme")) }, 20*time.Second, 50*time.Millisecond).
		Should(Equal("refused:" + owner))
	rec := h.claimRecord(claimNS, "ACME")
	g.Expect(holder(rec)).To(Equal(owner))
	g.Expect(rec.Annotations).To(HaveKeyWithValue(ClaimOwnerUIDAnnotation, string(synced.UID)))

	// The owner resumes and syncs on its claim.
	h.update2(owner, "acme", func(o *erpv1.ErpSync) { o.Spec.Suspend = false })
	g.Eventually(func() bool {
		o := h.getIn(owner, "acme")
		return meta.IsStatusConditionTrue(o.Status.Conditions, erpv1.ReadyCondition)
	}, 20*time.Second, 50*time.Millisecond).Should(BeTrue())
	g.Expect(claimOutcome(h.getIn(newcomer, "acme"))).To(Equal("refused:" + owner))
}

// update2 applies mutate to the live ErpSync ns/name, retrying on conflicts.
func (h *harness) update2(ns, name string, mutate func(*erpv1.ErpSync)) {
	h.g.Eventually(func() error {
		o := h.getIn(ns, name)
		mutate(o)
		return k8s.Update(context.Background(), o)
	}, 10*time.Second).Should(Succeed())
}

// Any companyId gives a valid Lease name, distinct companies distinct
// names, and the name holds none of the company's text.
func TestClaimName(t *testing.T) {
	seen := map[string]string{}
	for _, company := range []string{"ACME", "acme", "ACME ", "日本語の会社", strings.Repeat("x", 4096), "../../etc", "a/b:c", ""} {
		n := ClaimName(company)
		if errs := validation.IsDNS1123Subdomain(n); len(errs) > 0 {
			t.Errorf("ClaimName(%q) = %q: %v", company, n, errs)
		}
		if prev, ok := seen[n]; ok {
			t.Errorf("ClaimName(%q) = ClaimName(%q)", company, prev)
		}
		seen[n] = company
		if company != "" && strings.Contains(n, strings.ToLower(company)) {
			t.Errorf("ClaimName(%q) = %q shows the company", company, n)
		}
	}
}
