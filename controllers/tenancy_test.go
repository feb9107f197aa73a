package controllers

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/egress"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// erpsyncIn creates an ErpSync in namespace ns.
func (h *harness) erpsyncIn(ns, name, company string, mutate ...func(*erpv1.ErpSync)) {
	o := &erpv1.ErpSync{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: erpv1.ErpSyncSpec{
			CompanyID: company,
			Connector: erpv1.ConnectorSpec{Type: erpv1.ConnectorUnleashed, CredentialsRef: erpv1.LocalSecretReference{Name: "creds"}},
			Interval:  metav1.Duration{Duration: time.Hour},
		},
	}
	for _, m := range mutate {
		m(o)
	}
	h.g.Expect(k8s.Create(context.Background(), o)).To(Succeed())
}

func (h *harness) getIn(ns, name string) *erpv1.ErpSync {
	var o erpv1.ErpSync
	h.g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &o)).To(Succeed())
	return &o
}

func (h *harness) readyIn(ns, name string) {
	h.g.Eventually(func() bool {
		return meta.IsStatusConditionTrue(h.getIn(ns, name).Status.Conditions, erpv1.ReadyCondition)
	}, 20*time.Second, 50*time.Millisecond).Should(BeTrue(), "%s/%s Ready", ns, name)
}

func (h *harness) eventsIn(ns, name string) []corev1.Event {
	var list corev1.EventList
	h.g.Expect(k8s.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	var out []corev1.Event
	for _, e := range list.Items {
		if e.InvolvedObject.Name == name {
			out = append(out, e)
		}
	}
	return out
}

// TestACompanyBelongsToOneNamespace plays a tenant that names another
// tenant's companyId: it is refused before anything is read, the owner's
// namespace may run several ErpSyncs of its company, and the claim passes
// on when the owner's ErpSyncs are gone.
func TestACompanyBelongsToOneNamespace(t *testing.T) {
	h := newHarness(t)
	g := h.g
	victim, attacker := h.ns, h.namespace()
	h.watch = []string{attacker}
	h.secret("creds", map[string]string{"apiKey": "victim-key"})
	h.secretIn(attacker, "creds", map[string]string{"apiKey": "attacker-key"}, map[string]string{erpv1.CredentialsLabel: erpv1.CredentialsLabelValue})
	h.startManager()

	h.erpsyncIn(victim, "acme", "ACME")
	h.readyIn(victim, "acme")
	// The owner's namespace may run another ErpSync of its company.
	h.erpsyncIn(victim, "acme-customers", "ACME", func(o *erpv1.ErpSync) { o.Spec.Connector.Entities = []string{string(model.KindCustomer)} })
	h.readyIn(victim, "acme-customers")
	// Creation times have whole seconds: make the attacker's later.
	time.Sleep(1100 * time.Millisecond)

	h.erpsyncIn(attacker, "evil", "ACME", func(o *erpv1.ErpSync) { o.Spec.Connector.BaseURL = "https://erp.evil.example" })
	var o *erpv1.ErpSync
	g.Eventually(func(g Gomega) {
		o = h.getIn(attacker, "evil")
		ready := meta.FindStatusCondition(o.Status.Conditions, erpv1.ReadyCondition)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(ready.Reason).To(Equal(erpv1.ReasonCompanyClaimed))
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
	ready := meta.FindStatusCondition(o.Status.Conditions, erpv1.ReadyCondition)
	g.Expect(ready.Message).To(Equal(`company "ACME" is claimed by another namespace ("` + victim + `"); this ErpSync does not sync while that claim stands`))
	g.Expect(meta.IsStatusConditionTrue(o.Status.Conditions, erpv1.StalledCondition)).To(BeTrue())
	g.Expect(o.Status.ObservedGeneration).To(Equal(o.Generation))
	g.Expect(o.Status.Phase).To(Equal(erpv1.PhaseFailed))
	g.Expect(o.Status.LastSyncStart).To(BeNil(), "no sync started")
	g.Expect(kstatusOf(g, o)).To(Equal(status.FailedStatus))
	g.Eventually(func() []string { return reasons(h.eventsIn(attacker, "evil")) }, 10*time.Second).Should(ContainElement(erpv1.ReasonCompanyClaimed))
	// Nothing was read from the attacker's Secret, no connector was built.
	g.Consistently(func() bool { return h.erp.builtWith("apiKey", "attacker-key") }, time.Second, 100*time.Millisecond).Should(BeFalse())
	// The victim is untouched: still Ready, its rows its own.
	g.Expect(meta.IsStatusConditionTrue(h.getIn(victim, "acme").Status.Conditions, erpv1.ReadyCondition)).To(BeTrue())

	// The owner's ErpSyncs are deleted: the claim passes to the next
	// oldest, at once.
	for _, name := range []string{"acme", "acme-customers"} {
		g.Expect(k8s.Delete(context.Background(), h.getIn(victim, name))).To(Succeed())
	}
	h.readyIn(attacker, "evil")
	g.Expect(h.erp.builtWith("apiKey", "attacker-key")).To(BeTrue())
	g.Expect(meta.FindStatusCondition(h.getIn(attacker, "evil").Status.Conditions, erpv1.StalledCondition)).To(BeNil())
}

// TestOneNamespaceCannotTakeEverySyncSlot: with three slots and a cap of
// two per namespace, a tenant whose syncs hang holds two, and another
// tenant's sync runs and finishes meanwhile.
func TestOneNamespaceCannotTakeEverySyncSlot(t *testing.T) {
	h := newHarness(t)
	g := h.g
	busy, other := h.ns, h.namespace()
	h.watch = []string{other}
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.secretIn(other, "creds", map[string]string{"apiKey": "k"}, map[string]string{erpv1.CredentialsLabel: erpv1.CredentialsLabelValue})
	h.erp.set(func(f *fakeERP) { f.block, f.blockFromPage = make(chan struct{}), 2 })
	h.opts.ConcurrentSyncs, h.opts.MaxSyncsPerNamespace = 3, 2
	h.startManager()

	names := []string{"slow-1", "slow-2", "slow-3"}
	for _, n := range names {
		h.erpsyncIn(busy, n, "BUSY-"+n)
	}
	syncing := func() int {
		n := 0
		for _, name := range names {
			if h.getIn(busy, name).Status.Phase == erpv1.PhaseSyncing {
				n++
			}
		}
		return n
	}
	g.Eventually(syncing, 10*time.Second, 50*time.Millisecond).Should(Equal(2))
	g.Consistently(syncing, 500*time.Millisecond, 50*time.Millisecond).Should(Equal(2), "the namespace's cap")

	h.erpsyncIn(other, "small", "SMALL", func(o *erpv1.ErpSync) { o.Spec.Connector.Entities = []string{string(model.KindCustomer)} })
	h.readyIn(other, "small")
	g.Expect(syncing()).To(Equal(2))

	close(h.erp.block)
	for _, n := range names {
		h.readyIn(busy, n)
	}
}

// TestMaxSyncDurationBoundsAnImport: a first import has no routine timeout,
// but the manager's maximum sync duration ends it (it resumes later from
// its checkpoint).
func TestMaxSyncDurationBoundsAnImport(t *testing.T) {
	h := newHarness(t)
	g := h.g
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.erp.set(func(f *fakeERP) { f.block, f.blockFromPage = make(chan struct{}), 2 })
	h.opts.MaxSyncDuration = 2 * time.Second
	h.startManager()
	h.erpsync("acme")
	o := h.failsWith("acme", connectors.KindERPUnavailable)
	g.Expect(meta.FindStatusCondition(o.Status.Conditions, erpv1.ReadyCondition).Message).
		To(Equal("the sync did not finish within its time bound (the manager's maximum sync duration 2s); it resumes from its checkpoint"))
	g.Expect(o.Status.Import).NotTo(BeNil(), "the import goes on in a later sync")
	g.Expect(o.Status.ConsecutiveFailures).To(Equal(int64(1)))
	close(h.erp.block)
}

// TestVendorTextIsBoundedInConditionsAndEvents: a vendor that answers
// with a huge multi-byte message gets a bounded condition and an event the
// API server accepts.
func TestVendorTextIsBoundedInConditionsAndEvents(t *testing.T) {
	h := newHarness(t)
	g := h.g
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.erp.set(func(f *fakeERP) {
		f.failWith = connectors.Errorf(connectors.KindInvalidResponse, "the vendor answered: %s", strings.Repeat("日本語", 1500))
	})
	h.startManager()
	h.erpsync("acme")
	o := h.failsWith("acme", connectors.KindInvalidResponse)
	msg := meta.FindStatusCondition(o.Status.Conditions, erpv1.ReadyCondition).Message
	g.Expect(utf8.ValidString(msg)).To(BeTrue())
	g.Expect(utf8.RuneCountInString(msg)).To(BeNumerically("<=", maxErrorTextLen))
	g.Expect(msg).To(ContainSubstring("the vendor answered: 日本語"))
	g.Expect(msg).To(HaveSuffix("..."))
	var note string
	g.Eventually(func() bool {
		for _, e := range h.events("acme") {
			if e.Reason == string(connectors.KindInvalidResponse) {
				note = e.Message
				return true
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond).Should(BeTrue(), "the event was accepted by the API server")
	g.Expect(len(note)).To(BeNumerically("<=", maxEventNoteLen))
	g.Expect(utf8.ValidString(note)).To(BeTrue())
}

// TestConnectorsAreBuiltUnderTheEgressPolicy: every connector gets the
// policy's HTTP client and the policy itself; without one configured, the
// policy allows the vendors' own hosts only.
func TestConnectorsAreBuiltUnderTheEgressPolicy(t *testing.T) {
	cases := []struct {
		name    string
		policy  func() *egress.Policy
		allowed bool
	}{
		{name: "no policy configured: vendors' hosts only", policy: func() *egress.Policy { return nil }, allowed: false},
		{name: "a simulator listed by the manager", policy: func() *egress.Policy {
			p, err := egress.New([]string{"erpsim.demo.svc:8080"}, false)
			if err != nil {
				t.Fatal(err)
			}
			return p
		}, allowed: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			g := h.g
			h.egress = tc.policy()
			h.secret("creds", map[string]string{"apiKey": "k"})
			h.startManager()
			h.erpsync("acme", func(o *erpv1.ErpSync) { o.Spec.Connector.BaseURL = "http://erpsim.demo.svc:8080" })
			h.ready("acme")
			built := h.erp.built()
			g.Expect(built).NotTo(BeEmpty())
			for _, c := range built {
				g.Expect(c.HTTPClient).NotTo(BeNil(), "the policy's client")
				g.Expect(c.HTTPClient.CheckRedirect).NotTo(BeNil(), "the policy's client refuses cross-host redirects")
				g.Expect(c.Egress).NotTo(BeNil())
				err := c.Egress.AllowsHost(nil, c.BaseURL)
				if tc.allowed {
					g.Expect(err).NotTo(HaveOccurred())
				} else {
					g.Expect(err).To(MatchError(egress.ErrRefused))
				}
				g.Expect(c.Egress.AllowsHost(nil, "http://169.254.169.254/latest")).To(MatchError(egress.ErrRefused))
			}
		})
	}
}
