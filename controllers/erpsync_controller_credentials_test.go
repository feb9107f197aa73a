package controllers

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors"
)

// failsWith waits until Ready is False with the reason and returns the object.
func (h *harness) failsWith(name string, reason connectors.ErrorKind) *erpv1.ErpSync {
	var o *erpv1.ErpSync
	h.g.Eventually(func(g Gomega) {
		o = h.get(name)
		c := meta.FindStatusCondition(o.Status.Conditions, erpv1.ReadyCondition)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(string(reason)))
		g.Expect(o.Status.Phase).To(Equal(erpv1.PhaseFailed))
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
	return o
}

func TestBadSecretGivesAClearConditionAndRecoversWhenFixed(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(h *harness) // creates the bad Secret (or none)
		reason  connectors.ErrorKind
		message string
		fix     func(h *harness)
	}{
		{
			name:    "missing Secret",
			setup:   func(h *harness) {},
			reason:  connectors.KindSecretNotFound,
			message: `credentials Secret "creds" not found`,
			fix:     func(h *harness) { h.secret("creds", map[string]string{"apiKey": "k"}) },
		},
		{
			name:    "missing key",
			setup:   func(h *harness) { h.secret("creds", map[string]string{"apikey": "k"}) },
			reason:  connectors.KindSecretKeyMissing,
			message: `has no key "apiKey"`,
			fix:     func(h *harness) { h.patchSecret("creds", map[string]string{"apiKey": "k"}) },
		},
		{
			name: "Secret without the credentials label",
			setup: func(h *harness) {
				h.secretIn(h.ns, "creds", map[string]string{"apiKey": "k"}, map[string]string{"app": "billing"})
			},
			reason:  kindSecretNotLabelled,
			message: `credentials Secret "creds" in namespace`,
			fix:     func(h *harness) { h.labelSecret("creds", erpv1.CredentialsLabelValue) },
		},
		{
			name: "Secret labelled with another value",
			setup: func(h *harness) {
				h.secretIn(h.ns, "creds", map[string]string{"apiKey": "k"}, map[string]string{erpv1.CredentialsLabel: "yes"})
			},
			reason:  kindSecretNotLabelled,
			message: `does not carry the label erpsync.io/credentials: "true"`,
			fix:     func(h *harness) { h.labelSecret("creds", erpv1.CredentialsLabelValue) },
		},
		{
			name:    "wrong key",
			setup:   func(h *harness) { h.secret("creds", map[string]string{"apiKey": "wrong"}) },
			reason:  connectors.KindAuthenticationFailed,
			message: "refused the API key",
			fix:     func(h *harness) { h.patchSecret("creds", map[string]string{"apiKey": "right"}) },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			g := h.g
			tc.setup(h)
			h.startManager()
			h.erpsync("acme", func(o *erpv1.ErpSync) {
				// A long retry interval: only the Secret's change can explain a
				// prompt retry.
				o.Spec.RetryInterval = &metav1.Duration{Duration: time.Hour}
			})
			o := h.failsWith("acme", tc.reason)
			c := meta.FindStatusCondition(o.Status.Conditions, erpv1.ReadyCondition)
			g.Expect(c.Message).To(ContainSubstring(tc.message))
			g.Expect(c.ObservedGeneration).To(Equal(o.Generation))
			g.Expect(meta.FindStatusCondition(o.Status.Conditions, erpv1.StalledCondition)).To(BeNil(), "a Secret fix can help: not stalled")
			g.Expect(meta.FindStatusCondition(o.Status.Conditions, erpv1.ReconcilingCondition)).To(BeNil())
			g.Expect(kstatusOf(g, o)).To(Equal(status.InProgressStatus))
			if tc.reason == connectors.KindSecretNotFound || tc.reason == kindSecretNotLabelled {
				g.Expect(h.erp.built()).To(BeEmpty(), "nothing was read from the Secret: no connector was built")
			}
			g.Eventually(func() []string { return reasons(h.events("acme")) }, 10*time.Second).Should(ContainElement(string(tc.reason)))
			for _, e := range h.events("acme") {
				if e.Reason == string(tc.reason) {
					g.Expect(e.Type).To(Equal(corev1.EventTypeWarning))
				}
			}
			// Nothing retries before the retry interval...
			calls := h.erp.calls.Load()
			g.Consistently(func() int64 { return h.erp.calls.Load() }, time.Second, 100*time.Millisecond).Should(Equal(calls))
			// ...but fixing the Secret retries at once.
			tc.fix(h)
			g.Eventually(func() bool {
				return meta.IsStatusConditionTrue(h.get("acme").Status.Conditions, erpv1.ReadyCondition)
			}, 20*time.Second, 50*time.Millisecond).Should(BeTrue())
			// Recovery is news.
			g.Eventually(func() []string { return reasons(h.events("acme")) }, 10*time.Second).Should(ContainElement("SyncSucceeded"))
		})
	}
}

func TestUnknownEntityIsStalled(t *testing.T) {
	h := newHarness(t)
	g := h.g
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.startManager()
	h.erpsync("acme", func(o *erpv1.ErpSync) { o.Spec.Connector.Entities = []string{"products", "widgets"} })
	o := h.failsWith("acme", connectors.KindInvalidConfig)
	g.Expect(meta.FindStatusCondition(o.Status.Conditions, erpv1.ReadyCondition).Message).To(ContainSubstring(`entity "widgets" is not offered`))
	g.Expect(meta.IsStatusConditionTrue(o.Status.Conditions, erpv1.StalledCondition)).To(BeTrue())
	g.Expect(o.Status.ObservedGeneration).To(Equal(o.Generation))
	g.Expect(kstatusOf(g, o)).To(Equal(status.FailedStatus))
	g.Expect(h.erp.calls.Load()).To(BeZero(), "a bad spec costs no ERP call")

	// Fixing the spec clears Stalled.
	h.update("acme", func(o *erpv1.ErpSync) { o.Spec.Connector.Entities = []string{"products"} })
	g.Eventually(func(g Gomega) {
		o := h.get("acme")
		g.Expect(meta.IsStatusConditionTrue(o.Status.Conditions, erpv1.ReadyCondition)).To(BeTrue())
		g.Expect(meta.FindStatusCondition(o.Status.Conditions, erpv1.StalledCondition)).To(BeNil())
		g.Expect(kstatusOf(g, o)).To(Equal(status.CurrentStatus))
	}, 20*time.Second, 50*time.Millisecond).Should(Succeed())
}

func TestUnregisteredConnectorIsStalled(t *testing.T) {
	h := newHarness(t)
	g := h.g
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.startManager()
	h.erpsync("acme", func(o *erpv1.ErpSync) { o.Spec.Connector.Type = erpv1.ConnectorXero })
	o := h.failsWith("acme", connectors.KindInvalidConfig)
	g.Expect(meta.FindStatusCondition(o.Status.Conditions, erpv1.ReadyCondition).Message).To(ContainSubstring(`connector type "xero" is not available`))
	g.Expect(meta.IsStatusConditionTrue(o.Status.Conditions, erpv1.StalledCondition)).To(BeTrue())
}

func (h *harness) patchSecret(name string, data map[string]string) {
	var s corev1.Secret
	h.g.Expect(k8s.Get(context.Background(), client.ObjectKey{Namespace: h.ns, Name: name}, &s)).To(Succeed())
	s.StringData = data
	s.Data = nil
	h.g.Expect(k8s.Update(context.Background(), &s)).To(Succeed())
}

// labelSecret sets the credentials label of a Secret to value.
func (h *harness) labelSecret(name, value string) {
	h.g.Eventually(func() error {
		var s corev1.Secret
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: h.ns, Name: name}, &s); err != nil {
			return err
		}
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		s.Labels[erpv1.CredentialsLabel] = value
		return k8s.Update(context.Background(), &s)
	}, 10*time.Second).Should(Succeed())
}

// TestCredentialStoreReadsAndWritesOnlyLabelledSecrets: the store behind
// Xero's token rotation neither reads nor updates a Secret that did not
// opt in.
func TestCredentialStoreReadsAndWritesOnlyLabelledSecrets(t *testing.T) {
	h := newHarness(t)
	g := h.g
	ctx := context.Background()
	h.secretIn(h.ns, "neighbour", map[string]string{"refreshToken": "theirs"}, nil)
	h.secret("creds", map[string]string{"refreshToken": "old"})

	neighbour := &secretStore{key: client.ObjectKey{Namespace: h.ns, Name: "neighbour"}, reader: k8s, writer: k8s}
	_, _, err := neighbour.Get(ctx)
	g.Expect(connectors.KindOf(err)).To(Equal(kindSecretNotLabelled))
	var s corev1.Secret
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: h.ns, Name: "neighbour"}, &s)).To(Succeed())
	_, err = neighbour.Update(ctx, map[string][]byte{"refreshToken": []byte("stolen")}, s.ResourceVersion)
	g.Expect(connectors.KindOf(err)).To(Equal(kindSecretNotLabelled))
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: h.ns, Name: "neighbour"}, &s)).To(Succeed())
	g.Expect(string(s.Data["refreshToken"])).To(Equal("theirs"), "an unlabelled Secret is never written")

	own := &secretStore{key: client.ObjectKey{Namespace: h.ns, Name: "creds"}, reader: k8s, writer: k8s}
	data, version, err := own.Get(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(data["refreshToken"])).To(Equal("old"))
	_, err = own.Update(ctx, map[string][]byte{"refreshToken": []byte("new")}, version)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: h.ns, Name: "creds"}, &s)).To(Succeed())
	g.Expect(string(s.Data["refreshToken"])).To(Equal("new"))
	g.Expect(s.Labels).To(HaveKeyWithValue(erpv1.CredentialsLabel, erpv1.CredentialsLabelValue), "the update keeps the label")
}
