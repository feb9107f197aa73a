package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
)

// The claim order: an ErpSync that has synced wins over one that has not
// (a newcomer created in the owner's second cannot take the company over
// once the owner has started), then the older, then the smaller UID.
func TestClaimOrder(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	es := func(uid string, created time.Time, synced bool) *erpv1.ErpSync {
		o := &erpv1.ErpSync{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid), CreationTimestamp: metav1.NewTime(created)}}
		if synced {
			o.Status.LastSyncStart = &metav1.Time{Time: created.Add(time.Second)}
		}
		return o
	}
	for _, tc := range []struct {
		name string
		a, b *erpv1.ErpSync
		want bool
	}{
		{"older first", es("b", t0, false), es("a", t0.Add(time.Second), false), true},
		{"same second: smaller UID first", es("a", t0, false), es("b", t0, false), true},
		{"same second, bigger UID, but it synced", es("b", t0, true), es("a", t0, false), true},
		{"a newcomer that never synced loses to the owner even when older by UID", es("a", t0, false), es("b", t0, true), false},
		{"both synced: older first", es("b", t0.Add(time.Second), true), es("a", t0, true), false},
	} {
		if got := olderThan(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: olderThan = %v, want %v", tc.name, got, tc.want)
		}
	}
}
