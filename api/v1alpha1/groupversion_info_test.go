package v1alpha1

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// TestAddToScheme: the scheme knows both kinds under erpsync.io/v1alpha1,
// and the group-version's meta types (ListOptions and the like) that a
// client needs to list and watch them.
func TestAddToScheme(t *testing.T) {
	s := runtime.NewScheme()
	if err := AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		obj  runtime.Object
		kind string
	}{
		{&ErpSync{}, "ErpSync"},
		{&ErpSyncList{}, "ErpSyncList"},
		{&metav1.ListOptions{}, "ListOptions"},
	} {
		gvks, _, err := s.ObjectKinds(tc.obj)
		if err != nil {
			t.Errorf("%s: %v", tc.kind, err)
			continue
		}
		want := GroupVersion.WithKind(tc.kind)
		found := false
		for _, g := range gvks {
			found = found || g == want
		}
		if !found {
			t.Errorf("%s: kinds %v, want %v among them", tc.kind, gvks, want)
		}
	}
}
