// Package v1alpha1 contains the v1alpha1 API of the erpsync.io group: the
// ErpSync kind, one per operating company, which keeps a CRM fed with the
// company's ERP data.
// +kubebuilder:object:generate=true
// +groupName=erpsync.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is group version used to register these objects.
	GroupVersion = schema.GroupVersion{Group: "erpsync.io", Version: "v1alpha1"}

	// SchemeBuilder is used to add go types to the GroupVersionKind scheme.
	// It is apimachinery's, not controller-runtime's deprecated
	// scheme.Builder, so that importing the API needs no controller-runtime.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types in this group-version to the given scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// addKnownTypes registers the kinds of this group-version, as
// controller-runtime's scheme.Builder.Register did.
func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &ErpSync{}, &ErpSyncList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
