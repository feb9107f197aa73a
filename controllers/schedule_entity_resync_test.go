package controllers

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
)

func TestParseResyncEntities(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		spec        []string
		want        []string
		invalid     string // a part of the refusal; "" when valid
	}{
		{name: "one", value: "products", want: []string{"products"}},
		{name: "spaces and repeats", value: " products, customers ,products,", want: []string{"products", "customers"}},
		{name: "absent", value: "", invalid: "is empty or absent"},
		{name: "only commas", value: " , ,", invalid: "is empty or absent"},
		{name: "not a name", value: "products;drop", invalid: `"products;drop" is not an entity name`},
		{name: "upper case", value: "Products", invalid: "is not an entity name"},
		{name: "too long", value: strings.Repeat("a", 65), invalid: "is not an entity name"},
		{name: "outside spec.connector.entities", value: "products,customers", spec: []string{"products"},
			invalid: `names "customers", which spec.connector.entities does not sync (it syncs: products)`},
		{name: "inside spec.connector.entities", value: "products", spec: []string{"products", "customers"}, want: []string{"products"}},
		{name: "too many", value: manyNames(33),
			invalid: "more than 32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			got, why := ParseResyncEntities(tc.value, tc.spec)
			if tc.invalid != "" {
				g.Expect(why).To(ContainSubstring(tc.invalid))
				g.Expect(got).To(BeNil())
				return
			}
			g.Expect(why).To(BeEmpty())
			g.Expect(got).To(Equal(tc.want))
		})
	}
}

// manyNames returns n distinct entity names, comma-separated.
func manyNames(n int) string {
	names := make([]string, n)
	for i := range names {
		names[i] = "e" + strings.Repeat("x", i)
	}
	return strings.Join(names, ",")
}

func TestDueEntityResync(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 15, 0, 0, 0, time.UTC)
	end := t0.Add(12 * time.Minute)
	obj := func(phase erpv1.Phase, kv ...string) *erpv1.ErpSync {
		o := &erpv1.ErpSync{
			ObjectMeta: metav1.ObjectMeta{Generation: 1, Annotations: map[string]string{}},
			Spec:       erpv1.ErpSyncSpec{Interval: metav1.Duration{Duration: 15 * time.Minute}},
			Status: erpv1.ErpSyncStatus{
				Phase: phase, LastSyncStart: mtime(t0), LastSyncEnd: mtime(end),
				Conditions: []metav1.Condition{{Type: erpv1.ReadyCondition, Status: metav1.ConditionTrue, Reason: "Succeeded", ObservedGeneration: 1}},
			},
		}
		for i := 0; i+1 < len(kv); i += 2 {
			o.Annotations[kv[i]] = kv[i+1]
		}
		return o
	}
	ents := erpv1.FullResyncEntitiesAnnotation
	at := erpv1.FullResyncEntitiesAtAnnotation
	for _, tc := range []struct {
		name     string
		obj      *erpv1.ErpSync
		trigger  Trigger
		full     bool
		token    string
		entities []string
		invalid  bool
		reqToken string
	}{
		{name: "a new token runs an entity resync now", obj: obj(erpv1.PhaseSucceeded, at, "e1", ents, "products"),
			trigger: TriggerEntityResync, token: "e1", entities: []string{"products"}},
		{name: "the entity list alone starts nothing", obj: obj(erpv1.PhaseSucceeded, ents, "products")},
		{name: "a handled token starts nothing", obj: func() *erpv1.ErpSync {
			o := obj(erpv1.PhaseSucceeded, at, "e1", ents, "products")
			o.Status.LastHandledFullResyncEntitiesAt = "e1"
			return o
		}()},
		{name: "an invalid list is still a request, refused by the sync that carries it", obj: obj(erpv1.PhaseSucceeded, at, "e1", ents, "Products"),
			trigger: TriggerEntityResync, token: "e1", invalid: true},
		{name: "it honours a pending requestedAt", obj: obj(erpv1.PhaseSucceeded, at, "e1", ents, "products", erpv1.RequestedAtAnnotation, "r"),
			trigger: TriggerEntityResync, token: "e1", entities: []string{"products"}, reqToken: "r"},
		{name: "a whole resync honours it too", obj: obj(erpv1.PhaseSucceeded, at, "e1", ents, "products", erpv1.FullResyncAtAnnotation, "f"),
			trigger: TriggerFullResync, full: true, token: "e1", entities: []string{"products"}},
		{name: "requested during an interrupted sync, it runs instead of the resume", obj: obj(erpv1.PhaseSyncing, at, "e1", ents, "customers"),
			trigger: TriggerEntityResync, token: "e1", entities: []string{"customers"}},
		{name: "the first sync honours it", obj: func() *erpv1.ErpSync {
			o := obj(erpv1.PhasePending, at, "e1", ents, "products")
			o.Status.LastSyncEnd, o.Status.LastSyncStart = nil, nil
			return o
		}(), trigger: TriggerInitial, token: "e1", entities: []string{"products"}},
		{name: "suspended: ignored", obj: func() *erpv1.ErpSync {
			o := obj(erpv1.PhaseSucceeded, at, "e1", ents, "products")
			o.Spec.Suspend = true
			return o
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			d := Due(tc.obj, "", end.Add(time.Minute))
			g.Expect(d.Trigger).To(Equal(tc.trigger))
			g.Expect(d.Full).To(Equal(tc.full))
			g.Expect(d.EntityResyncToken).To(Equal(tc.token))
			g.Expect(d.EntityResync).To(Equal(tc.entities))
			g.Expect(d.EntityResyncInvalid != "").To(Equal(tc.invalid), d.EntityResyncInvalid)
			g.Expect(d.RequestToken).To(Equal(tc.reqToken))
		})
	}
}

func TestUnfinishedImportEntities(t *testing.T) {
	g := NewWithT(t)
	start := time.Date(2026, 11, 26, 15, 0, 0, 500_000_000, time.UTC)
	o := &erpv1.ErpSync{Status: erpv1.ErpSyncStatus{
		Import: &erpv1.ImportStatus{StartedAt: metav1.NewTime(start), Entities: []string{"products", "customers", "invoices", "sales_orders"}},
		Entities: []erpv1.EntityStatus{
			{Name: "products", LastCompleted: mtime(start.Add(2 * time.Second))},      // finished in the import
			{Name: "customers", LastCompleted: mtime(start.Add(-time.Hour))},          // before it
			{Name: "invoices", LastCompleted: mtime(start.Truncate(time.Second))},     // its first second: read again
			{Name: "stock_levels", LastCompleted: mtime(start.Add(-2 * time.Second))}, // not in it
		},
	}}
	g.Expect(unfinishedImportEntities(o)).To(Equal([]string{"customers", "invoices", "sales_orders"}))
	o.Status.Import.Entities = nil
	g.Expect(unfinishedImportEntities(o)).To(BeEmpty(), "a whole import forgot every watermark: nothing to carry")
}
