package kubectlplugin

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	erpsyncv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors/cin7omni"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/connectors/xero"
	"github.com/erpsync/erpsync-operator/internal/quotastore"
)

// The parts of internal/quotastore's ConfigMaps the plugin reads: the
// counters (usage.json) and the limiter key they count (an annotation).
const (
	quotaDataKey       = "usage.json"
	quotaKeyAnnotation = "erpsync.io/quota-key"
	quotaWrittenKey    = "writtenAt"
)

// QuotaView is one quota of one credential, as its ConfigMap stores it.
type QuotaView struct {
	// ConfigMap is the ConfigMap's name; Key the limiter key it counts
	// (the vendor and a digest of the credential's id: no secret);
	// Credential its httpapi.CredentialID, as ErpSync
	// status.quotaCredentials and the erpsync_quota_* metrics name it.
	ConfigMap  string `json:"configMap"`
	Key        string `json:"key"`
	Credential string `json:"credential"`
	// Quota is the quota's name (day, month).
	Quota       string    `json:"quota"`
	PeriodStart time.Time `json:"periodStart"`
	// Used is the calls every replica reported spent in the period;
	// Reserved those the replicas hold and have not reported yet.
	Used     int64 `json:"used"`
	Reserved int64 `json:"reserved"`
	// Limit is the vendor's fixed limit where the plugin knows it (Xero's
	// and Cin7 Omni's daily 5,000); nil when it depends on the account
	// (Unleashed's plan, in the credentials Secret, which the plugin never
	// reads).
	Limit *int64 `json:"limit,omitempty"`
	// Left is Limit minus Used and Reserved, when Limit is known.
	Left         *int64     `json:"left,omitempty"`
	BlockedUntil *time.Time `json:"blockedUntil,omitempty"`
	WrittenAt    *time.Time `json:"writtenAt,omitempty"`
}

// quotaEntry mirrors one counter of usage.json (internal/quotastore's
// entry): httpapi.QuotaUsage and the replicas' reservations.
type quotaEntry struct {
	httpapi.QuotaUsage
	Held map[string]int64 `json:"held,omitempty"`
}

// knownLimits are the vendors' fixed quotas by limiter-key vendor and
// quota name.
var knownLimits = map[string]map[string]int64{
	xero.Type:     {xero.TenantDay.Name: xero.TenantDay.Limit},
	cin7omni.Type: {"day": cin7omni.PerDay},
}

// QuotaVendor returns the vendor part of a limiter key ("xero" of
// "xero:0a1b…").
func QuotaVendor(key string) string {
	v, _, _ := strings.Cut(key, ":")
	return v
}

// Quotas decodes the quotas (not the rate windows) of quota ConfigMaps
// whose limiter key belongs to connector (every ConfigMap when connector
// is empty), sorted by key and quota. A ConfigMap it cannot decode is an
// error naming it.
func Quotas(cms []corev1.ConfigMap, connector erpsyncv1.ConnectorType) ([]QuotaView, error) {
	var out []QuotaView
	for _, cm := range cms {
		key := cm.Annotations[quotaKeyAnnotation]
		if key == "" {
			continue
		}
		vendor := QuotaVendor(key)
		if connector != "" && vendor != string(connector) {
			continue
		}
		if quotastore.Name(key) != cm.Name {
			// Not a ConfigMap quotastore wrote for this key.
			continue
		}
		var entries map[string]quotaEntry
		if raw := cm.Data[quotaDataKey]; raw != "" {
			if err := json.Unmarshal([]byte(raw), &entries); err != nil {
				return nil, fmt.Errorf("decoding %s of ConfigMap %s/%s: %w", quotaDataKey, cm.Namespace, cm.Name, err)
			}
		}
		var written *time.Time
		if t, err := time.Parse(time.RFC3339Nano, cm.Data[quotaWrittenKey]); err == nil {
			written = &t
		}
		for name, e := range entries {
			if strings.HasPrefix(name, httpapi.WindowUsagePrefix) {
				continue
			}
			v := QuotaView{ConfigMap: cm.Name, Key: key, Credential: httpapi.CredentialID(key), Quota: name, PeriodStart: e.PeriodStart.UTC(), Used: e.Used, WrittenAt: written}
			for _, h := range e.Held {
				v.Reserved += max(0, h)
			}
			if !e.BlockedUntil.IsZero() {
				b := e.BlockedUntil.UTC()
				v.BlockedUntil = &b
			}
			if l, ok := knownLimits[vendor][name]; ok {
				left := max(0, l-v.Used-v.Reserved)
				v.Limit, v.Left = &l, &left
			}
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b QuotaView) int {
		if c := cmp.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		return cmp.Compare(a.Quota, b.Quota)
	})
	return out, nil
}

// QuotaConfigMapsOf picks, of the quota store's ConfigMaps, those an
// ErpSync spends: the ones its status.quotaCredentials names (attributed
// is then true, and missing lists the credentials without a ConfigMap).
// An ErpSync whose status names none (its manager predates the field, or
// no sync of it has sent a request yet) gets every ConfigMap of its
// connector type, unattributed.
func QuotaConfigMapsOf(cms []corev1.ConfigMap, es *erpsyncv1.ErpSync) (mine []corev1.ConfigMap, attributed bool, missing []string) {
	creds := es.Status.QuotaCredentials
	if len(creds) == 0 {
		for _, cm := range cms {
			if QuotaVendor(cm.Annotations[quotaKeyAnnotation]) == string(es.Spec.Connector.Type) {
				mine = append(mine, cm)
			}
		}
		return mine, false, nil
	}
	for _, cred := range creds {
		i := slices.IndexFunc(cms, func(cm corev1.ConfigMap) bool { return cm.Name == quotastore.NamePrefix+cred })
		if i < 0 {
			missing = append(missing, cred)
			continue
		}
		mine = append(mine, cms[i])
	}
	return mine, true, missing
}

// quotaNote says how the quotas shown relate to the ErpSync.
func quotaNote(views []QuotaView, es *erpsyncv1.ErpSync, attributed bool, missing []string, ns string) string {
	if !attributed {
		return unattributedNote(views, es.Spec.Connector.Type, ns)
	}
	n := len(es.Status.QuotaCredentials)
	what := "the quota this ErpSync's last sync counted against (status.quotaCredentials)"
	if n > 1 {
		what = fmt.Sprintf("the %d quota credentials this ErpSync's last sync counted against (status.quotaCredentials)", n)
	}
	if len(missing) == 0 {
		return what
	}
	return fmt.Sprintf("%s; no counters in %s for %s (the manager counts in memory with --quota-file or without a quota store, and deletes counters unused for a period)",
		what, ns, strings.Join(missing, ", "))
}

// unattributedNote says how the quotas of every credential of a connector
// type relate to an ErpSync whose status names none: the operator keys them
// by a digest of the credential, which the plugin cannot compute without
// reading the Secret.
func unattributedNote(views []QuotaView, connector erpsyncv1.ConnectorType, ns string) string {
	keys := map[string]bool{}
	for _, v := range views {
		keys[v.Key] = true
	}
	const why = "status.quotaCredentials is not set (no sync sent a request yet, or the manager predates it)"
	switch len(keys) {
	case 0:
		return fmt.Sprintf("no %s quota counters in namespace %s (the manager keeps them there with its quota store; not with --quota-file, nor for vendors without a daily or monthly quota)", connector, ns)
	case 1:
		return fmt.Sprintf("the one %s credential with quota counters in %s; %s", connector, ns, why)
	default:
		return fmt.Sprintf("%d %s credentials have quota counters in %s; which one this ErpSync spends is unknown: %s", len(keys), connector, ns, why)
	}
}
