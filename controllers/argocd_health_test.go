package controllers

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors"
)

// argoHealth runs the Argo CD health script shipped in config/argocd on an
// object, as Argo CD does (the object as a Lua table named obj), and returns
// the status and message.
func argoHealth(g Gomega, o *erpv1.ErpSync) (string, string) {
	script, err := os.ReadFile(filepath.Join("..", "config", "argocd", "health.lua"))
	g.Expect(err).NotTo(HaveOccurred())
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
	g.Expect(err).NotTo(HaveOccurred())
	L := lua.NewState()
	defer L.Close()
	L.SetGlobal("obj", toLua(L, u))
	g.Expect(L.DoString(string(script))).To(Succeed())
	ret := L.Get(-1).(*lua.LTable)
	return ret.RawGetString("status").String(), ret.RawGetString("message").String()
}

func toLua(L *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case map[string]any:
		t := L.NewTable()
		for k, e := range x {
			t.RawSetString(k, toLua(L, e))
		}
		return t
	case []any:
		t := L.NewTable()
		for _, e := range x {
			t.Append(toLua(L, e))
		}
		return t
	case string:
		return lua.LString(x)
	case bool:
		return lua.LBool(x)
	case int64:
		return lua.LNumber(x)
	case float64:
		return lua.LNumber(x)
	case nil:
		return lua.LNil
	default:
		return lua.LNil
	}
}

// TestArgoCDHealthOnRealStatus evaluates the health script on the status
// documents the controller really writes, in each situation of the
// conventions' table.
func TestArgoCDHealthOnRealStatus(t *testing.T) {
	h := newHarness(t)
	g := h.g
	h.secret("creds", map[string]string{"apiKey": "k"})
	h.erp.set(func(f *fakeERP) { f.block, f.blockFromPage = make(chan struct{}), 2 })
	h.startManager()

	created := h.erpsync("acme")
	st, _ := argoHealth(g, created)
	g.Expect(st).To(Equal("Progressing"), "just created")

	h.waitCheckpoint("acme", "products", 1)
	st, _ = argoHealth(g, h.get("acme"))
	g.Expect(st).To(Equal("Progressing"), "first sync in flight")

	close(h.erp.block)
	o := h.ready("acme")
	st, msg := argoHealth(g, o)
	g.Expect(st).To(Equal("Healthy"))
	g.Expect(msg).To(ContainSubstring("records"))

	// A transient failure (the Secret disappears) is Degraded.
	h.update("acme", func(o *erpv1.ErpSync) { o.Spec.Connector.CredentialsRef.Name = "gone" })
	o = h.failsWith("acme", connectors.KindSecretNotFound)
	st, msg = argoHealth(g, o)
	g.Expect(st).To(Equal("Degraded"))
	g.Expect(msg).To(ContainSubstring(`"gone" not found`))

	// A spec only a person can fix is Stalled, and Degraded.
	h.update("acme", func(o *erpv1.ErpSync) {
		o.Spec.Connector.CredentialsRef.Name = "creds"
		o.Spec.Connector.Entities = []string{"widgets"}
	})
	h.g.Eventually(func() bool {
		return meta.IsStatusConditionTrue(h.get("acme").Status.Conditions, erpv1.StalledCondition)
	}, 20*time.Second).Should(BeTrue())
	st, _ = argoHealth(g, h.get("acme"))
	g.Expect(st).To(Equal("Degraded"))

	// Suspended.
	h.update("acme", func(o *erpv1.ErpSync) { o.Spec.Suspend = true })
	g.Eventually(func() erpv1.Phase { return h.get("acme").Status.Phase }, 10*time.Second).Should(Equal(erpv1.PhaseSuspended))
	st, _ = argoHealth(g, h.get("acme"))
	g.Expect(st).To(Equal("Suspended"))
}
