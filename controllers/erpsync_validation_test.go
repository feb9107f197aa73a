package controllers

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
)

// TestAdmissionRejectsBadSpecs sends each bad spec to the real API server, as
// kubectl apply would, and checks the message a person gets.
func TestAdmissionRejectsBadSpecs(t *testing.T) {
	h := newHarness(t)
	valid := func() map[string]any {
		return map[string]any{
			"companyId": "ACME",
			"connector": map[string]any{"type": "xero", "credentialsRef": map[string]any{"name": "creds"}},
			"interval":  "15m",
		}
	}
	cases := []struct {
		name    string
		mutate  func(spec map[string]any)
		message string
	}{
		{"unknown connector type", func(s map[string]any) { s["connector"].(map[string]any)["type"] = "sap" }, `Unsupported value: "sap"`},
		{"interval below 1m", func(s map[string]any) { s["interval"] = "30s" }, "interval must be at least 1m"},
		{"interval not a duration", func(s map[string]any) { s["interval"] = "fifteen minutes" }, "spec.interval"},
		{"timeout not below interval", func(s map[string]any) { s["timeout"] = "15m" }, "timeout must be shorter than interval"},
		{"retryInterval above interval", func(s map[string]any) { s["retryInterval"] = "1h" }, "retryInterval cannot exceed interval"},
		{"retryInterval below 30s", func(s map[string]any) { s["retryInterval"] = "10s" }, "retryInterval must be at least 30s"},
		{"retryInterval of a millisecond", func(s map[string]any) { s["retryInterval"] = "1ms" }, "retryInterval must be at least 30s"},
		{"timeout below 1m", func(s map[string]any) { s["timeout"] = "30s" }, "timeout must be at least 1m"},
		{"timeout of a millisecond", func(s map[string]any) { s["timeout"] = "1ms" }, "timeout must be at least 1m"},
		{"missing companyId", func(s map[string]any) { delete(s, "companyId") }, "spec.companyId: Required value"},
		{"bad baseURL", func(s map[string]any) { s["connector"].(map[string]any)["baseURL"] = "ftp://x" }, "spec.connector.baseURL"},
		{"missing credentialsRef", func(s map[string]any) { delete(s["connector"].(map[string]any), "credentialsRef") }, "spec.connector.credentialsRef: Required value"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			spec := valid()
			tc.mutate(spec)
			u := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": erpv1.GroupVersion.String(), "kind": "ErpSync",
				"metadata": map[string]any{"generateName": "bad-", "namespace": h.ns},
				"spec":     spec,
			}}
			err := k8s.Create(context.Background(), u)
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want Invalid, got %v", err)
			g.Expect(err.Error()).To(ContainSubstring(tc.message))
		})
	}

	t.Run("the minimums themselves are accepted", func(t *testing.T) {
		g := NewWithT(t)
		spec := valid()
		spec["retryInterval"], spec["timeout"] = "30s", "1m"
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": erpv1.GroupVersion.String(), "kind": "ErpSync",
			"metadata": map[string]any{"name": "minimums", "namespace": h.ns},
			"spec":     spec,
		}}
		g.Expect(k8s.Create(context.Background(), u)).To(Succeed())
	})

	t.Run("valid spec is accepted with the default interval", func(t *testing.T) {
		g := NewWithT(t)
		spec := valid()
		delete(spec, "interval")
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": erpv1.GroupVersion.String(), "kind": "ErpSync",
			"metadata": map[string]any{"name": "good", "namespace": h.ns},
			"spec":     spec,
		}}
		g.Expect(k8s.Create(context.Background(), u)).To(Succeed())
		o := h.get("good")
		g.Expect(o.Spec.Interval.Duration).To(Equal(15 * time.Minute))
		g.Expect(o.Status.ObservedGeneration).To(Equal(int64(-1)))
	})

	t.Run("companyId cannot change", func(t *testing.T) {
		g := NewWithT(t)
		o := h.erpsync("immutable")
		o.Spec.CompanyID = "OTHER"
		err := k8s.Update(context.Background(), o)
		g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want Invalid, got %v", err)
		g.Expect(err.Error()).To(ContainSubstring("companyId cannot change; create a new ErpSync"))
		// Other fields still change.
		o = h.get("immutable")
		o.Spec.Interval = metav1.Duration{Duration: 2 * time.Hour}
		g.Expect(k8s.Update(context.Background(), o)).To(Succeed())
	})
}
