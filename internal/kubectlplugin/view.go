// Package kubectlplugin is the logic of kubectl-erpsync: reading an
// ErpSync's state (status, quota ConfigMaps, events) into a view, rendering
// it for people or scripts, the request commands (sync, resync, suspend,
// resume) and the support bundle.
package kubectlplugin

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	erpsyncv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
)

// StaleIntervals is how many intervals without a successful sync make an
// ErpSync stale: the same three intervals as the ErpSyncStale alert of
// config/prometheus/alerts.yaml.
const StaleIntervals = 3

// Attention ranks an ErpSync in the -A listing: lower needs a person first.
type Attention int

// The ranks, most urgent first.
const (
	AttentionNotReady Attention = iota
	AttentionStale
	AttentionOK
)

// String names the rank as the listing shows it.
func (a Attention) String() string {
	switch a {
	case AttentionNotReady:
		return "NotReady"
	case AttentionStale:
		return "Stale"
	default:
		return "OK"
	}
}

// MarshalText makes the rank read as its name in JSON and YAML.
func (a Attention) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText reads a rank's name back.
func (a *Attention) UnmarshalText(b []byte) error {
	for _, x := range []Attention{AttentionNotReady, AttentionStale, AttentionOK} {
		if x.String() == string(b) {
			*a = x
			return nil
		}
	}
	return fmt.Errorf("unknown attention %q", b)
}

// Summary is one ErpSync's line in the listing (status -A, or status with
// no NAME).
type Summary struct {
	Namespace   string     `json:"namespace"`
	Name        string     `json:"name"`
	Company     string     `json:"company"`
	Connector   string     `json:"connector"`
	Ready       string     `json:"ready"`
	Reason      string     `json:"reason,omitempty"`
	Phase       string     `json:"phase,omitempty"`
	Suspended   bool       `json:"suspended,omitempty"`
	Attention   Attention  `json:"attention"`
	Why         string     `json:"why,omitempty"`
	LastSuccess *time.Time `json:"lastSuccess,omitempty"`
	NextSync    *time.Time `json:"nextSync,omitempty"`
	// Records and APICalls are the last finished sync's (status.lastSync).
	Records  *int64 `json:"records,omitempty"`
	APICalls *int64 `json:"apiCalls,omitempty"`
	// HeldDeletions counts the entities whose deletions the guard holds.
	HeldDeletions int `json:"heldDeletions,omitempty"`
}

// Summarize builds the listing line of o at now.
func Summarize(o *erpsyncv1.ErpSync, now time.Time) Summary {
	s := Summary{
		Namespace: o.Namespace, Name: o.Name, Company: o.Spec.CompanyID,
		Connector: string(o.Spec.Connector.Type), Phase: string(o.Status.Phase), Suspended: o.Spec.Suspend,
		Ready: "Unknown",
	}
	if c := meta.FindStatusCondition(o.Status.Conditions, "Ready"); c != nil {
		s.Ready, s.Reason = string(c.Status), c.Reason
	}
	s.LastSuccess = timePtr(o.Status.LastSuccessfulSyncEnd)
	s.NextSync = timePtr(o.Status.NextSyncAt)
	if ls := o.Status.LastSync; ls != nil {
		s.Records, s.APICalls = &ls.Records, &ls.APICalls
	}
	for _, e := range o.Status.Entities {
		if e.HeldDeletion != nil {
			s.HeldDeletions++
		}
	}
	s.Attention, s.Why = attention(o, now)
	return s
}

// attention says whether o needs a person: not Ready (or Stalled) first,
// then stale (no success for StaleIntervals intervals while not
// suspended), then the rest.
func attention(o *erpsyncv1.ErpSync, now time.Time) (Attention, string) {
	if c := meta.FindStatusCondition(o.Status.Conditions, "Stalled"); c != nil && c.Status == metav1.ConditionTrue {
		return AttentionNotReady, "stalled: " + c.Reason
	}
	ready := meta.FindStatusCondition(o.Status.Conditions, "Ready")
	switch {
	case ready == nil:
		if o.Spec.Suspend {
			return AttentionOK, "suspended before its first sync"
		}
		return AttentionNotReady, "no verdict yet"
	case ready.Status != metav1.ConditionTrue:
		return AttentionNotReady, fmt.Sprintf("Ready=%s: %s", ready.Status, ready.Reason)
	}
	if !o.Spec.Suspend {
		limit := time.Duration(StaleIntervals) * o.GetInterval()
		last := o.Status.LastSuccessfulSyncEnd
		if last == nil {
			if now.Sub(o.CreationTimestamp.Time) > limit {
				return AttentionStale, "no successful sync yet"
			}
		} else if age := now.Sub(last.Time); age > limit {
			return AttentionStale, fmt.Sprintf("last success %s ago (> %d intervals)", shortDuration(age), StaleIntervals)
		}
	}
	var why []string
	if o.Spec.Suspend {
		why = append(why, "suspended")
	}
	for _, e := range o.Status.Entities {
		if e.HeldDeletion != nil {
			why = append(why, "deletions held: "+e.Name)
		}
	}
	if len(why) == 0 {
		return AttentionOK, ""
	}
	return AttentionOK, strings.Join(why, ", ")
}

// SortSummaries orders the listing by attention (not Ready, stale, the
// rest), then the longest without a success first, then namespace and name.
func SortSummaries(s []Summary) {
	slices.SortStableFunc(s, func(a, b Summary) int {
		if c := cmp.Compare(a.Attention, b.Attention); c != 0 {
			return c
		}
		if c := compareOldestFirst(a.LastSuccess, b.LastSuccess); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Namespace, b.Namespace); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
}

// compareOldestFirst puts a never-successful ErpSync first, then the
// oldest success.
func compareOldestFirst(a, b *time.Time) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	return a.Compare(*b)
}

// StatusView is everything `status NAME` shows; -o json|yaml prints it.
type StatusView struct {
	Summary Summary `json:"summary"`
	// ErpSync is the object as read (managedFields dropped).
	ErpSync *erpsyncv1.ErpSync `json:"erpSync"`
	// Quotas are the quota counters of the credentials of the ErpSync's
	// connector type (see QuotaView).
	Quotas []QuotaView `json:"quotas"`
	// QuotaNote says how Quotas relate to this ErpSync, or why none could
	// be read.
	QuotaNote string `json:"quotaNote,omitempty"`
	// Events are the ErpSync's events, the latest last.
	Events []EventView `json:"events"`
	// EventsNote says why events could not be read.
	EventsNote string `json:"eventsNote,omitempty"`
}

// EventView is one event of the ErpSync.
type EventView struct {
	Time    time.Time `json:"time"`
	Type    string    `json:"type"`
	Reason  string    `json:"reason"`
	Count   int32     `json:"count,omitempty"`
	Message string    `json:"message"`
}

// Events turns the corev1 Events of an object into views, the latest last,
// keeping the last max (0: all). An event recorded with the events.k8s.io
// API reads as a corev1 Event with eventTime and series instead of
// lastTimestamp and count.
func Events(list []corev1.Event, maxEvents int) []EventView {
	out := make([]EventView, 0, len(list))
	for _, e := range list {
		v := EventView{Type: e.Type, Reason: e.Reason, Message: e.Message, Count: e.Count}
		v.Time = latest(e.LastTimestamp.Time, e.EventTime.Time, e.FirstTimestamp.Time, e.CreationTimestamp.Time)
		if e.Series != nil {
			v.Time = latest(v.Time, e.Series.LastObservedTime.Time)
			v.Count = max(v.Count, e.Series.Count)
		}
		out = append(out, v)
	}
	slices.SortStableFunc(out, func(a, b EventView) int { return a.Time.Compare(b.Time) })
	if maxEvents > 0 && len(out) > maxEvents {
		out = out[len(out)-maxEvents:]
	}
	return out
}

func latest(ts ...time.Time) time.Time {
	var t time.Time
	for _, x := range ts {
		if x.After(t) {
			t = x
		}
	}
	return t
}

func timePtr(t *metav1.Time) *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	x := t.UTC()
	return &x
}

// shortDuration prints a duration the way kubectl's ages read: 45s, 12m,
// 3h20m, 2d4h.
func shortDuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 24*time.Hour:
		h := int(d.Hours())
		if m := int(d.Minutes()) % 60; m != 0 {
			return fmt.Sprintf("%dh%dm", h, m)
		}
		return fmt.Sprintf("%dh", h)
	default:
		days := int(d.Hours()) / 24
		if h := int(d.Hours()) % 24; h != 0 {
			return fmt.Sprintf("%dd%dh", days, h)
		}
		return fmt.Sprintf("%dd", days)
	}
}

// relative prints t against now: "3m ago" or "in 12m".
func relative(t *time.Time, now time.Time) string {
	if t == nil {
		return "-"
	}
	d := now.Sub(*t)
	if d >= 0 {
		return shortDuration(d) + " ago"
	}
	return "in " + shortDuration(-d)
}
