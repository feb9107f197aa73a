package controllers

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"strings"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
)

// identityKeys are the credentials Secret keys that name the account a
// connector reads (Unleashed apiId, Cin7 Core accountId, Cin7 Omni username,
// Xero clientId). Keys that authenticate or rotate (apiKey, applicationKey,
// clientSecret, refreshToken, tokenURL) are left out: rotating a credential
// is not a change of source. tenantId has its own component.
var identityKeys = []string{"accountId", "apiId", "clientId", "username"}

// tenantKey is the Secret key that selects a tenant when the spec does not.
const tenantKey = "tenantId"

// sourceOf computes the fingerprint of the source obj reads with the given
// credentials. It holds no secret: the tenant and the account identity are
// truncated SHA-256 digests.
func sourceOf(obj *erpv1.ErpSync, creds map[string][]byte) *erpv1.SourceFingerprint {
	c := obj.Spec.Connector
	fp := &erpv1.SourceFingerprint{
		Type:           c.Type,
		BaseURL:        strings.TrimRight(strings.TrimSpace(c.BaseURL), "/"),
		CredentialsRef: c.CredentialsRef.Name,
	}
	tenant := strings.TrimSpace(c.TenantID)
	if tenant == "" {
		tenant = strings.TrimSpace(string(creds[tenantKey]))
	}
	if tenant != "" {
		fp.Tenant = digest("tenant", tenant)
	}
	var parts []string
	for _, k := range identityKeys {
		if v := strings.TrimSpace(string(creds[k])); v != "" {
			parts = append(parts, k, v)
		}
	}
	if len(parts) > 0 {
		fp.CredentialsIdentity = digest(append([]string{"identity"}, parts...)...)
	}
	return fp
}

// digest hashes its parts, each length-prefixed so that no two lists of
// parts share a digest, to 32 hex digits.
func digest(parts ...string) string {
	h := sha256.New()
	var n [8]byte
	for _, p := range parts {
		binary.LittleEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// sourceChanges names the components in which the source changed from prev
// to cur, as the spec names them; nil when prev is nil (the first sync that
// records a fingerprint) or nothing changed.
func sourceChanges(prev, cur *erpv1.SourceFingerprint) []string {
	if prev == nil || cur == nil {
		return nil
	}
	var out []string
	if prev.Type != cur.Type {
		out = append(out, "connector type")
	}
	if prev.Tenant != cur.Tenant {
		out = append(out, "tenantId")
	}
	if prev.BaseURL != cur.BaseURL {
		out = append(out, "baseURL")
	}
	if prev.CredentialsRef != cur.CredentialsRef {
		out = append(out, "credentialsRef")
	}
	if prev.CredentialsIdentity != cur.CredentialsIdentity {
		out = append(out, "credentials identity ("+strings.Join(identityKeys, "/")+")")
	}
	return slices.Clip(out)
}

// sourceChangeReason says why an import runs after a source change.
func sourceChangeReason(changes []string) string {
	return "the source changed (" + strings.Join(changes, ", ") + ")"
}
