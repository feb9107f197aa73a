package kubectlplugin

import (
	"context"
	"slices"
	"strings"
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
	at := now
	store := &quotastore.ConfigMapStore{Reader: c, Writer: c, Namespace: DefaultManagerNamespace, Now: func() time.Time { return at }, ID: "replica-0"}

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
	// The spent calls are written with the key's next write: the save of
	// a call FlushEvery later.
	at = now.Add(10 * time.Second)
	if err := store.Save(ctx, omniKey, map[string]httpapi.QuotaUsage{}); err != nil {
		t.Fatal(err)
	}

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
	if note := unattributedNote(un, erpsyncv1.ConnectorUnleashed, DefaultManagerNamespace); !strings.HasPrefix(note, "the one unleashed credential with quota counters in erpsync-system; status.quotaCredentials is not set") {
		t.Errorf("note %q", note)
	}
	if q.Credential != httpapi.CredentialID(omniKey) || q.ConfigMap != quotastore.NamePrefix+q.Credential {
		t.Errorf("credential %q, want the metrics' and status's %q", q.Credential, httpapi.CredentialID(omniKey))
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

// TestQuotaConfigMapsOfAnErpSync: status.quotaCredentials picks the
// ConfigMaps of the credentials the ErpSync spends, among others of the
// same connector type; without it, every one of the type is shown and the
// note says the attribution is unknown.
func TestQuotaConfigMapsOfAnErpSync(t *testing.T) {
	ctx := context.Background()
	s, err := Scheme()
	if err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(s).Build()
	store := &quotastore.ConfigMapStore{Reader: c, Writer: c, Namespace: DefaultManagerNamespace, Now: func() time.Time { return now }, ID: "r0"}
	day := []httpapi.QuotaClaim{{Name: "day", Period: httpapi.Daily, PeriodStart: now.Truncate(24 * time.Hour), Limit: 5000}}
	mine, theirs, xero := httpapi.Key("cin7omni", "mine"), httpapi.Key("cin7omni", "theirs"), httpapi.Key("xero", "client", "tenant")
	for _, k := range []string{mine, theirs, xero} {
		if _, err := store.Reserve(ctx, k, day); err != nil {
			t.Fatal(err)
		}
	}
	var list corev1.ConfigMapList
	if err := c.List(ctx, &list, client.InNamespace(DefaultManagerNamespace)); err != nil {
		t.Fatal(err)
	}
	gone := httpapi.CredentialID(httpapi.Key("cin7omni", "collected"))
	for _, tc := range []struct {
		name       string
		creds      []string
		want       []string // ConfigMap names
		attributed bool
		missing    []string
		note       string
	}{
		{name: "one credential named", creds: []string{httpapi.CredentialID(mine)}, want: []string{quotastore.Name(mine)}, attributed: true,
			note: "the quota this ErpSync's last sync counted against (status.quotaCredentials)"},
		{name: "the other one of the same type", creds: []string{httpapi.CredentialID(theirs)}, want: []string{quotastore.Name(theirs)}, attributed: true,
			note: "the quota this ErpSync's last sync counted against (status.quotaCredentials)"},
		{name: "a named credential without counters", creds: []string{httpapi.CredentialID(mine), gone}, want: []string{quotastore.Name(mine)}, attributed: true, missing: []string{gone},
			note: "the 2 quota credentials this ErpSync's last sync counted against (status.quotaCredentials); no counters in erpsync-system for " + gone},
		{name: "not recorded: every credential of the type", want: []string{quotastore.Name(mine), quotastore.Name(theirs)},
			note: "2 cin7omni credentials have quota counters in erpsync-system; which one this ErpSync spends is unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es := &erpsyncv1.ErpSync{Spec: erpsyncv1.ErpSyncSpec{Connector: erpsyncv1.ConnectorSpec{Type: erpsyncv1.ConnectorCin7Omni}},
				Status: erpsyncv1.ErpSyncStatus{QuotaCredentials: tc.creds}}
			cms, attributed, missing := QuotaConfigMapsOf(list.Items, es)
			var names []string
			for _, cm := range cms {
				names = append(names, cm.Name)
			}
			slices.Sort(names)
			want := slices.Sorted(slices.Values(tc.want))
			if !slices.Equal(names, want) || attributed != tc.attributed || !slices.Equal(missing, tc.missing) {
				t.Errorf("got %v attributed %v missing %v, want %v %v %v", names, attributed, missing, want, tc.attributed, tc.missing)
			}
			views, err := Quotas(cms, "")
			if err != nil {
				t.Fatal(err)
			}
			if note := quotaNote(views, es, attributed, missing, DefaultManagerNamespace); !strings.HasPrefix(note, tc.note) {
				t.Errorf("note %q, want it to start %q", note, tc.note)
			}
		})
	}
}
