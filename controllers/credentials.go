package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors"
)

// readSecret reads a Secret straight from the API server. Secrets are not
// cached: the manager watches only their metadata (to retry when one
// changes), so no credential is held in memory longer than a sync needs it.
// A Secret without the label erpsync.io/credentials: "true" is refused
// (SecretNotLabelled) and its data is not returned: a tenant naming a
// neighbour's Secret of the same namespace gets nothing from it. Every read
// of the credential store goes through here, so the manager also updates
// only labelled Secrets.
func readSecret(ctx context.Context, r client.Reader, key types.NamespacedName) (*corev1.Secret, error) {
	var s corev1.Secret
	if err := r.Get(ctx, key, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, connectors.Errorf(connectors.KindSecretNotFound, "credentials Secret %q not found in namespace %q", key.Name, key.Namespace)
		}
		return nil, fmt.Errorf("reading credentials Secret %s: %w", key, err)
	}
	if !hasCredentialsLabel(&s) {
		return nil, connectors.Errorf(kindSecretNotLabelled, "credentials Secret %q in namespace %q does not carry the label %s: %q, so it is not used as credentials; label it to use it",
			key.Name, key.Namespace, erpv1.CredentialsLabel, erpv1.CredentialsLabelValue)
	}
	return &s, nil
}

// hasCredentialsLabel reports whether a Secret opted in as credentials.
func hasCredentialsLabel(o metav1.Object) bool {
	if o == nil {
		return false
	}
	return o.GetLabels()[erpv1.CredentialsLabel] == erpv1.CredentialsLabelValue
}

// secretStore is a connectors.CredentialStore on a Kubernetes Secret, with
// the Secret's resourceVersion as the optimistic-concurrency token.
type secretStore struct {
	key    types.NamespacedName
	reader client.Reader
	writer client.Client
}

var _ connectors.CredentialStore = (*secretStore)(nil)

func (s *secretStore) Key() string { return s.key.String() }

func (s *secretStore) Get(ctx context.Context) (map[string][]byte, string, error) {
	sec, err := readSecret(ctx, s.reader, s.key)
	if err != nil {
		return nil, "", err
	}
	return sec.Data, sec.ResourceVersion, nil
}

// Update replaces the Secret's data if it is still at version. A conflict is
// returned as is (apierrors.IsConflict), so the caller re-reads.
func (s *secretStore) Update(ctx context.Context, data map[string][]byte, version string) (string, error) {
	sec, err := readSecret(ctx, s.reader, s.key)
	if err != nil {
		return "", err
	}
	if sec.ResourceVersion != version {
		return "", apierrors.NewConflict(corev1.Resource("secrets"), s.key.Name, fmt.Errorf("the Secret changed (at version %s, expected %s)", sec.ResourceVersion, version))
	}
	if !hasCredentialsLabel(sec) {
		// readSecret refuses these; never write one whatever the caller.
		return "", connectors.Errorf(kindSecretNotLabelled, "credentials Secret %q is not labelled %s; not updated", s.key.Name, erpv1.CredentialsLabel)
	}
	sec.Data = data
	if err := s.writer.Update(ctx, sec, client.FieldOwner(fieldOwner)); err != nil {
		return "", fmt.Errorf("updating credentials Secret %s: %w", s.key, err)
	}
	return sec.ResourceVersion, nil
}
