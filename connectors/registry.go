package connectors

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Registry maps connector types to their factories. The manager builds one
// with every vendor (connectors/all); tests build their own.
type Registry struct {
	mu        sync.RWMutex
	factories map[string]Factory
	hosts     map[string][]string
	webhooks  map[string]WebhookCodec
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{factories: map[string]Factory{}, hosts: map[string][]string{}, webhooks: map[string]WebhookCodec{}}
}

// Register adds a factory for a connector type, replacing any earlier one.
// defaultHosts are the hosts of the vendor's published API and token
// endpoints (the egress policy's defaults for the type; see DefaultHosts).
func (r *Registry) Register(typ string, f Factory, defaultHosts ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.factories[typ] = f
	r.hosts[typ] = slices.Clone(defaultHosts)
}

// RegisterWebhooks adds the webhook codec of a connector type whose vendor
// delivers webhooks, replacing any earlier one.
func (r *Registry) RegisterWebhooks(typ string, c WebhookCodec) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.webhooks[typ] = c
}

// Webhooks returns the webhook codec of typ; false for a type whose vendor
// sends no webhooks (or that is not registered).
func (r *Registry) Webhooks(typ string) (WebhookCodec, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c, ok := r.webhooks[typ]
	return c, ok
}

// DefaultHosts returns the hosts registered for typ: its vendor's published
// API and token hosts, to build the type's egress client with. Nil for an
// unregistered type or one registered without hosts.
func (r *Registry) DefaultHosts(typ string) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Clone(r.hosts[typ])
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

// CheckEgress checks a URL the connector took from the tenant (its base
// URL, a token URL) against cfg.Egress with the vendor's defaultHosts. A
// Config without a policy (tests, tools) allows every URL.
func CheckEgress(cfg Config, defaultHosts []string, rawURL string) error {
	if cfg.Egress == nil {
		return nil
	}
	return cfg.Egress.AllowsHost(defaultHosts, rawURL)
}

// BaseURL returns the API root a connector calls: cfg.BaseURL, or
// defaultURL when it is empty, checked to be an absolute http(s) URL that
// the egress policy allows (see CheckEgress), with a trailing slash when
// slash is set. vendor names the connector in errors.
func BaseURL(cfg Config, vendor, defaultURL string, defaultHosts []string, slash bool) (string, error) {
	base := strings.TrimSpace(cfg.BaseURL)
	if base == "" {
		base = defaultURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", Errorf(KindInvalidConfig, "%s: base URL %q is not an absolute http(s) URL", vendor, base)
	}
	if err := CheckEgress(cfg, defaultHosts, base); err != nil {
		return "", fmt.Errorf("%s: base URL: %w", vendor, err)
	}
	base = strings.TrimRight(base, "/")
	if slash {
		base += "/"
	}
	return base, nil
}
