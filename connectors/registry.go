package connectors

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
)

// Registry maps connector types to their factories. The manager builds one
// with every vendor (connectors/all); tests build their own.
type Registry struct {
	mu        sync.RWMutex
	factories map[string]Factory
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{factories: map[string]Factory{}}
}

// Register adds a factory for a connector type, replacing any earlier one.
func (r *Registry) Register(typ string, f Factory) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.factories[typ] = f
}

// Types lists the registered connector types, sorted.
func (r *Registry) Types() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.factories))
	for t := range r.factories {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// New builds a connector for cfg.Type. An unregistered type is an
// InvalidConfig error.
func (r *Registry) New(ctx context.Context, cfg Config) (Connector, error) {
	r.mu.RLock()
	f, ok := r.factories[cfg.Type]
	r.mu.RUnlock()
	if !ok {
		return nil, Errorf(KindInvalidConfig, "connector type %q is not available in this manager (available: %v)", cfg.Type, r.Types())
	}
	c, err := f(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("building %s connector: %w", cfg.Type, err)
	}
	return c, nil
}

// RequiredKey returns the value of a Secret key, or a SecretKeyMissing error
// naming it. Connectors use it to check their credentials.
func RequiredKey(creds map[string][]byte, key string) (string, error) {
	v, ok := creds[key]
	if !ok || len(v) == 0 {
		return "", Errorf(KindSecretKeyMissing, "the credentials Secret has no key %q", key)
	}
	return string(v), nil
}

// HasEntity reports whether the connector offers the named entity stream.
func HasEntity(c Connector, name string) bool {
	return slices.ContainsFunc(c.Entities(), func(e EntityInfo) bool { return string(e.Name) == name })
}
