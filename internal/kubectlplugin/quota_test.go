package kubectlplugin

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	erpsyncv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/internal/quotastore"
)

// TestQuotasReadTheStoresConfigMaps writes counters with the manager's own
// quota store and reads them back as status shows them.
func TestQuotasReadTheStoresConfigMaps(t *testing.T) {
	ctx := context.Background()
	s, err := Scheme()
	if err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(s).Build()
	store := &quotastore.ConfigMapStore{Reader: c, Writer: c, Namespace: DefaultManagerNamespace, Now: func() time.Time { return now }, ID: "replica-0"}

	omniKey := httpapi.Key("cin7omni", "user@example.com")
	day := []httpapi.QuotaClaim{{Name: "day", Period: httpapi.Daily, PeriodStart: now.Truncate(24 * time.Hour), Limit: 5000}}
	views, err := store.Reserve(ctx, omniKey, day)
	if err != nil {
		t.Fatal(err)
	}
	granted := views[0].Granted
	if granted <= 0 {
		t.Fatalf("the store granted no calls: %+v", views)
	}
	const spent = 7
	for range spent {
		if _, ok := store.Spend(omniKey, day); !ok {
			t.Fatal("spending a reserved call failed")
		}
	}
	store.FlushAll(ctx)

	unleashedKey := httpapi.Key("unleashed", "api-id")
	month := []httpapi.QuotaClaim{{Name: "month", Period: httpapi.Monthly, PeriodStart: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Limit: 15000}}
	if _, err := store.Reserve(ctx, unleashedKey, month); err != nil {
		t.Fatal(err)
	}

	var list corev1.ConfigMapList
	if err := c.List(ctx, &list, client.InNamespace(DefaultManagerNamespace), client.MatchingLabels{quotastore.LabelKey: "true"}); err != nil {
		t.Fatal(err)
	}
	// A ConfigMap that only carries the label is skipped, not an error.
	list.Items = append(list.Items, corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "other", Labels: map[string]string{quotastore.LabelKey: "true"}}})

	omni, err := Quotas(list.Items, erpsyncv1.ConnectorCin7Omni)
	if err != nil {
		t.Fatal(err)
	}
	if len(omni) != 1 {
		t.Fatalf("want cin7omni's day quota only: %+v", omni)
	}
	q := omni[0]
	if q.ConfigMap != quotastore.Name(omniKey) || q.Key != omniKey || q.Quota != "day" || q.Used != spent || q.Reserved != granted-spent {
		t.Errorf("cin7omni quota %+v, want used %d reserved %d", q, spent, granted-spent)
	}
	if q.Limit == nil || *q.Limit != 5000 || q.Left == nil || *q.Left != 5000-granted {
		t.Errorf("cin7omni limit/left %v/%v, want 5000/%d", q.Limit, q.Left, 5000-granted)
	}
	if q.WrittenAt == nil {
		t.Error("the write time is not shown")
	}

	un, err := Quotas(list.Items, erpsyncv1.ConnectorUnleashed)
	if err != nil {
		t.Fatal(err)
	}
	if len(un) != 1 || un[0].Quota != "month" || un[0].Limit != nil || un[0].Left != nil {
		t.Errorf("unleashed's plan quota is per account (in the Secret): no limit may be invented: %+v", un)
	}
	if note := quotaNote(un, erpsyncv1.ConnectorUnleashed, DefaultManagerNamespace); note != "the one unleashed credential with quota counters in erpsync-system" {
		t.Errorf("note %q", note)
	}
	if all, _ := Quotas(list.Items, ""); len(all) != 2 {
		t.Errorf("every connector: %+v", all)
	}
	if none, _ := Quotas(list.Items, erpsyncv1.ConnectorXero); len(none) != 0 {
		t.Errorf("xero has no counters here: %+v", none)
	}

	bad := list.Items[0].DeepCopy()
	bad.Data["usage.json"] = "{not json"
	if _, err := Quotas([]corev1.ConfigMap{*bad}, ""); err == nil {
		t.Error("an undecodable ConfigMap is not reported")
	}
}
