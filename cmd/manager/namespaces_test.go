package main

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func TestNamespaceScope(t *testing.T) {
	ns := func(name string, lbl map[string]string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbl}}
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		ns("tenant-a", map[string]string{"erpsync.io/tenant": "true"}),
		ns("tenant-b", map[string]string{"erpsync.io/tenant": "true"}),
		ns("kube-system", nil),
		ns("other", map[string]string{"erpsync.io/tenant": "false"}),
	).Build()
	cases := []struct {
		name                   string
		list, single, selector string
		want                   []string
		wantNil, wantErr       bool
	}{
		{name: "nothing set: every namespace", wantNil: true},
		{name: "a list", list: "tenant-a, demo ,,tenant-a", want: []string{"demo", "tenant-a"}},
		{name: "the older single flag joins the list", list: "x", single: "y", want: []string{"x", "y"}},
		{name: "a selector", selector: "erpsync.io/tenant=true", want: []string{"tenant-a", "tenant-b"}},
		{name: "list and selector: the union", list: "demo,tenant-a", selector: "erpsync.io/tenant=true", want: []string{"demo", "tenant-a", "tenant-b"}},
		{name: "a bad namespace name", list: "Not_A_Name", wantErr: true},
		{name: "a bad selector", selector: "a in (", wantErr: true},
		{name: "a selector of everything", selector: " ", wantNil: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := parseNamespaceScope(tc.list, tc.single, tc.selector)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantNil {
				if s != nil {
					t.Fatalf("scope %+v, want none", s)
				}
				return
			}
			got, err := s.resolve(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("resolve() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNamespaceWatcherStopsTheManagerWhenTheSetChanges(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "tenant-a", Labels: map[string]string{"erpsync.io/tenant": "true"}}},
	).Build()
	s, err := parseNamespaceScope("", "", "erpsync.io/tenant=true")
	if err != nil {
		t.Fatal(err)
	}
	w := &namespaceWatcher{scope: s, reader: c, current: []string{"tenant-a"}, interval: 10 * time.Millisecond}
	// Unchanged: it runs until the manager stops.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := w.Start(ctx); err != nil {
		t.Fatalf("Start() with an unchanged set = %v, want nil when the manager stops", err)
	}
	if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "tenant-b", Labels: map[string]string{"erpsync.io/tenant": "true"}}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.Start(ctx); !errors.Is(err, errNamespacesChanged) {
		t.Fatalf("Start() = %v, want errNamespacesChanged", err)
	}
}
