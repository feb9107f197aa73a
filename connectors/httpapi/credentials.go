package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
)

var notDNSLabel = regexp.MustCompile(`[^a-z0-9-]+`)

// CredentialID names the credential (and tenant, and host) of a limiter
// key without revealing it: the key's vendor prefix (the part before ":",
// folded to a DNS label and cut to 16 characters, for people) and the
// first 16 bytes of the key's SHA-256, in hex, joined by "-". It is the
// name of the key's quota ConfigMap after "erpsync-quota-" (see
// internal/quotastore.Name), the credential label of the erpsync_quota_*
// metrics and what ErpSync status.quotaCredentials lists, so the three
// can be joined. Keys are already digests of the credential (see Key and
// Options.Secret): the ID holds no secret and has a bounded length (at
// most 49 characters).
func CredentialID(key string) string {
	prefix, _, _ := strings.Cut(key, ":")
	prefix = strings.Trim(notDNSLabel.ReplaceAllString(strings.ToLower(prefix), "-"), "-")
	if len(prefix) > 16 {
		prefix = strings.TrimRight(prefix[:16], "-")
	}
	sum := sha256.Sum256([]byte(key))
	if prefix == "" {
		return hex.EncodeToString(sum[:16])
	}
	return prefix + "-" + hex.EncodeToString(sum[:16])
}

// QuotaCredentials collects the credentials (CredentialID) of the daily
// and monthly quotas that requests made under a context counted against
// (see WithQuotaCredentials). The controller records them in the
// ErpSync's status, so that tools can tell which quota counters an
// ErpSync spends without reading its Secret.
type QuotaCredentials struct {
	mu  sync.Mutex
	ids map[string]struct{}
}

type quotaCredentialsKey struct{}

// WithQuotaCredentials returns a context under which every request a
// Client attempts records the credentials of its limiters that have
// quotas (whether the call is then sent or refused for a used-up quota)
// in the returned set.
func WithQuotaCredentials(ctx context.Context) (context.Context, *QuotaCredentials) {
	s := &QuotaCredentials{ids: map[string]struct{}{}}
	return context.WithValue(ctx, quotaCredentialsKey{}, s), s
}

func (s *QuotaCredentials) add(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids[id] = struct{}{}
}

// List returns the credentials recorded so far, sorted; nil when none.
func (s *QuotaCredentials) List() []string {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ids) == 0 {
		return nil
	}
	return slices.Sorted(maps.Keys(s.ids))
}

// recordQuotaCredentials adds the credentials of the limiters with quotas
// to the context's QuotaCredentials, if any.
func recordQuotaCredentials(ctx context.Context, ls []*limiter) {
	s, ok := ctx.Value(quotaCredentialsKey{}).(*QuotaCredentials)
	if !ok || s == nil {
		return
	}
	for _, l := range ls {
		if l.hasQuotas() {
			s.add(l.credential)
		}
	}
}
