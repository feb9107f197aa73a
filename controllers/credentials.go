package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/erpsync/erpsync-operator/connectors"
)

// readSecret reads a Secret straight from the API server. Secrets are not
// cached: the manager watches only their metadata (to retry when one
// changes), so no credential is held in memory longer than a sync needs it.
func readSecret(ctx context.Context, r client.Reader, key types.NamespacedName) (*corev1.Secret, error) {
	var s corev1.Secret
	if err := r.Get(ctx, key, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, connectors.Errorf(connectors.KindSecretNotFound, "credentials Secret %q not found in namespace %q", key.Name, key.Namespace)
		}
		return nil, fmt.Errorf("reading credentials Secret %s: %w", key, err)
	}
	return &s, nil
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
	sec.Data = data
	if err := s.writer.Update(ctx, sec, client.FieldOwner(fieldOwner)); err != nil {
		return "", fmt.Errorf("updating credentials Secret %s: %w", s.key, err)
	}
	return sec.ResourceVersion, nil
}
