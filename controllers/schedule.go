package controllers

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors"
)

// Trigger says why a sync is due.
type Trigger string

// The triggers.
const (
	// TriggerNone: nothing is due yet.
	TriggerNone Trigger = ""
	// TriggerInitial: the ErpSync has never synced.
	TriggerInitial Trigger = "initial"
	// TriggerResume: a sync was interrupted (manager restart, leader change)
	// and resumes from its checkpoint.
	TriggerResume Trigger = "resume"
	// TriggerGeneration: the spec changed since the last attempt.
	TriggerGeneration Trigger = "generation"
	// TriggerFullResync: a new erpsync.io/fullResyncAt value.
	TriggerFullResync Trigger = "fullResync"
	// TriggerEntityResync: a new erpsync.io/fullResyncEntitiesAt value: the
	// entities it names are read in full, the others incrementally.
	TriggerEntityResync Trigger = "entityResync"
	// TriggerRequested: a new erpsync.io/requestedAt value.
	TriggerRequested Trigger = "requested"
	// TriggerCredentials: the last attempt failed on credentials and the
	// Secret has changed since.
	TriggerCredentials Trigger = "credentials"
	// TriggerSchedule: interval (or retryInterval) has passed since the last
	// sync ended.
	TriggerSchedule Trigger = "schedule"
	// TriggerClaim: the last verdict refused the company's claim, and the
	// caller found the claim now holds (the owner in another namespace was
	// deleted).
	TriggerClaim Trigger = "claim"
	// TriggerWebhookOverflow: webhooks named more documents than a targeted
	// sync takes (status.webhooks.overflow): a routine incremental sync
	// reads every change at once.
	TriggerWebhookOverflow Trigger = "webhookOverflow"
)

// MaxBackoff is where the back-off over consecutive failures stops growing,
// unless the interval is longer (then it stops at the interval).
const MaxBackoff = time.Hour

// RetryDelay is the wait after obj's last failure: retryInterval ×
// 2^(n-1) for the n-th failure in a row (status.consecutiveFailures; 0
// counts as 1), at most MaxBackoff or the interval, whichever is longer.
func RetryDelay(obj *erpv1.ErpSync) time.Duration {
	d := obj.GetRetryInterval()
	limit := max(MaxBackoff, obj.GetInterval(), d)
	for n := obj.Status.ConsecutiveFailures; n > 1 && d < limit; n-- {
		d *= 2
	}
	return min(d, limit)
}

// Decision is what the scheduler decided for one ErpSync.
type Decision struct {
	// Trigger is why a sync is due now; TriggerNone when not.
	Trigger Trigger
	// DueAt is when the next sync is due (set when Trigger is none and the
	// object is not suspended).
	DueAt time.Time
	// Full asks the sync to ignore watermarks.
	Full bool
	// RequestToken and FullResyncToken are the request annotation values
	// this sync honours; the sync records them as handled when it starts,
	// and a token the sync does not honour stays pending. Empty: none.
	RequestToken    string
	FullResyncToken string
	// EntityResyncToken is the pending erpsync.io/fullResyncEntitiesAt
	// value this sync honours, EntityResync the entities the
	// erpsync.io/fullResyncEntities annotation names (parsed), and
	// EntityResyncInvalid why that list cannot be honoured ("" when it
	// can). A whole resync or a first sync honours the request too: it
	// reads every entity in full.
	EntityResyncToken   string
	EntityResync        []string
	EntityResyncInvalid string
	// ReconcileToken, ApproveToken and DiscardToken are the pending
	// erpsync.io/reconcileNowAt, approveDeletionsAt and discardDeletionsAt
	// values; every sync honours them (see Due).
	ReconcileToken string
	ApproveToken   string
	DiscardToken   string
	// SkipCompletedSince, when set, skips the entities that completed a pass
	// at or after it (and have no interrupted pass): a resumed sync, or a
	// retry after a failed or timed-out sync, does not read again what that
	// sync had finished.
	SkipCompletedSince time.Time
}

// Due reports whether a sync of obj is due at now, and otherwise when it will
// be. It reads only the object (spec, annotations, status) and the current
// resource version of the credentials Secret (empty when it does not exist),
// so restarts, leader changes and cache resyncs never add a sync.
//
// The next sync is due at lastSyncEnd + interval after a success, and at
// lastSyncEnd + retryInterval after a failure, doubling with each failure
// in a row (see RetryDelay; later, when the vendor told us
// when a quota or rate limit resets: then status.nextSyncAt holds that time).
//
// A sync interrupted by a restart resumes from its checkpoints, unless a
// request arrived meanwhile: a new fullResyncAt runs the full resync instead
// of the resume (it reads every entity from its start, so finishing the
// interrupted sync first would spend calls on pages it reads again), and a
// new requestedAt runs the requested sync instead (it continues the
// interrupted passes from their checkpoints and reads the entities the
// interrupted sync had finished again, for their changes since). Either way
// the request is recorded as handled by the sync that honours it, never by a
// resume.
func Due(obj *erpv1.ErpSync, secretVersion string, now time.Time) Decision {
	d := due(obj, secretVersion, now)
	if d.Trigger == TriggerNone && d.DueAt.IsZero() {
		return d // suspended or deleted
	}
	st := &obj.Status
	d.ReconcileToken = pendingToken(obj, erpv1.ReconcileNowAnnotation, st.LastHandledReconcileNowAt)
	d.ApproveToken = pendingToken(obj, erpv1.ApproveDeletionsAnnotation, st.LastHandledApproveDeletionsAt)
	d.DiscardToken = pendingToken(obj, erpv1.DiscardDeletionsAnnotation, st.LastHandledDiscardDeletionsAt)
	if d.Trigger == TriggerNone && (d.ReconcileToken != "" || d.ApproveToken != "" || d.DiscardToken != "") {
		// A reconciliation or a decision on held deletions is asked for:
		// the sync that carries it runs now.
		d.Trigger, d.DueAt = TriggerRequested, time.Time{}
	}
	return d
}

// due is Due without the reconciliation requests.
func due(obj *erpv1.ErpSync, secretVersion string, now time.Time) Decision {
	if obj.Spec.Suspend || !obj.DeletionTimestamp.IsZero() {
		return Decision{}
	}
	st := &obj.Status
	full := pendingToken(obj, erpv1.FullResyncAtAnnotation, st.LastHandledFullResyncAt)
	req := pendingToken(obj, erpv1.RequestedAtAnnotation, st.LastHandledReconcileAt)
	ent := pendingToken(obj, erpv1.FullResyncEntitiesAtAnnotation, st.LastHandledFullResyncEntitiesAt)
	// withEntities adds a pending entity resync to a sync that honours it.
	withEntities := func(d Decision) Decision {
		if ent != "" {
			d.EntityResyncToken = ent
			d.EntityResync, d.EntityResyncInvalid = ParseResyncEntities(obj.Annotations[erpv1.FullResyncEntitiesAnnotation], obj.Spec.Connector.Entities)
		}
		return d
	}
	switch {
	case st.Phase == erpv1.PhaseSyncing && full != "":
		return withEntities(Decision{Trigger: TriggerFullResync, Full: true, FullResyncToken: full, RequestToken: req})
	case st.Phase == erpv1.PhaseSyncing && ent != "":
		// Like a requested sync, it continues the interrupted passes of
		// the other entities from their checkpoints.
		return withEntities(Decision{Trigger: TriggerEntityResync, RequestToken: req})
	case st.Phase == erpv1.PhaseSyncing && req != "":
		return Decision{Trigger: TriggerRequested, RequestToken: req}
	case st.Phase == erpv1.PhaseSyncing:
		return Decision{Trigger: TriggerResume, SkipCompletedSince: skipBoundary(st)}
	case st.LastSyncEnd == nil:
		// The first sync reads everything: it honours every request.
		return withEntities(Decision{Trigger: TriggerInitial, Full: full != "", FullResyncToken: full, RequestToken: req})
	case full != "":
		// A full resync reads everything now: it honours a pending
		// requestedAt and entity resync too.
		return withEntities(Decision{Trigger: TriggerFullResync, Full: true, FullResyncToken: full, RequestToken: req})
	case ent != "":
		return withEntities(Decision{Trigger: TriggerEntityResync, RequestToken: req})
	case req != "":
		return Decision{Trigger: TriggerRequested, RequestToken: req}
	}
	ready := meta.FindStatusCondition(st.Conditions, erpv1.ReadyCondition)
	if ready == nil || ready.ObservedGeneration != obj.Generation {
		return Decision{Trigger: TriggerGeneration}
	}
	if ready.Reason == erpv1.ReasonCompanyClaimed {
		// Reconcile refuses a claimed company before asking: asked, the
		// claim holds now.
		return Decision{Trigger: TriggerClaim}
	}
	end := st.LastSyncEnd.Time
	due := end.Add(obj.GetInterval())
	var skip time.Time
	if st.Phase == erpv1.PhaseFailed {
		skip = skipBoundary(st)
	}
	if ready.Status != "True" {
		if credentialReason(ready.Reason) && secretVersion != st.CredentialsVersion {
			return Decision{Trigger: TriggerCredentials, SkipCompletedSince: skip}
		}
		due = end.Add(RetryDelay(obj))
		if waitsForVendor(ready.Reason) && st.NextSyncAt != nil && st.NextSyncAt.After(due) {
			due = st.NextSyncAt.Time
		}
		if connectors.ErrorKind(ready.Reason) == connectors.KindCredentialsWriteFailed && st.NextSyncAt != nil && st.NextSyncAt.Time.Before(due) {
			// Rotated credentials wait in memory for their write: retry
			// while the vendor still accepts the old ones.
			due = st.NextSyncAt.Time
		}
	}
	if !now.Before(due) {
		return Decision{Trigger: TriggerSchedule, SkipCompletedSince: skip}
	}
	return Decision{DueAt: due}
}

// skipBoundary is the time from which completed entities need not be read
// again by a sync that continues an interrupted or failed one: the start of
// that sync or, while a full import spans several syncs, the start of the
// import (every entity it completed since was read by the import). Zero when
// unknown: nothing is skipped.
func skipBoundary(st *erpv1.ErpSyncStatus) time.Time {
	var at time.Time
	if st.LastSyncStart != nil {
		at = st.LastSyncStart.Time
	}
	if st.Import != nil && !st.Import.StartedAt.IsZero() && (at.IsZero() || st.Import.StartedAt.Time.Before(at)) {
		at = st.Import.StartedAt.Time
	}
	return at
}

// Bounds of an erpsync.io/fullResyncEntities list, as the CRD bounds
// spec.connector.entities.
const (
	maxResyncEntities   = 32
	maxResyncEntityName = 64
)

// ParseResyncEntities reads an erpsync.io/fullResyncEntities value: entity
// names separated by commas (spaces around them ignored, repeats dropped),
// in the order given. It returns why the list cannot be honoured when it is
// empty, holds a name that is not an entity name, or names an entity
// outside specEntities (spec.connector.entities, when set). Whether the
// connector offers each entity is checked when the sync has built it.
func ParseResyncEntities(value string, specEntities []string) ([]string, string) {
	var out []string
	for _, f := range strings.Split(value, ",") {
		name := strings.TrimSpace(f)
		if name == "" || slices.Contains(out, name) {
			continue
		}
		if !validEntityName(name) {
			return nil, fmt.Sprintf("%s: %q is not an entity name (lower-case letters and underscores, at most %d)",
				erpv1.FullResyncEntitiesAnnotation, shown(name, maxResyncEntityName), maxResyncEntityName)
		}
		if len(specEntities) > 0 && !slices.Contains(specEntities, name) {
			return nil, fmt.Sprintf("%s names %q, which spec.connector.entities does not sync (it syncs: %s)",
				erpv1.FullResyncEntitiesAnnotation, name, strings.Join(specEntities, ", "))
		}
		if len(out) == maxResyncEntities {
			return nil, fmt.Sprintf("%s names more than %d entities", erpv1.FullResyncEntitiesAnnotation, maxResyncEntities)
		}
		out = append(out, name)
	}
	if len(out) == 0 {
		return nil, fmt.Sprintf("%s is empty or absent: it must name the entities to read in full (for every entity, use %s)",
			erpv1.FullResyncEntitiesAnnotation, erpv1.FullResyncAtAnnotation)
	}
	return out, ""
}

func validEntityName(s string) bool {
	if s == "" || len(s) > maxResyncEntityName {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && c != '_' {
			return false
		}
	}
	return true
}

// pendingToken returns the annotation's value when it is a request not yet
// handled, else "".
func pendingToken(obj *erpv1.ErpSync, key, handled string) string {
	if v := obj.Annotations[key]; v != "" && v != handled {
		return v
	}
	return ""
}

// credentialReason reports whether a Ready reason can be fixed by changing
// the credentials Secret.
func credentialReason(reason string) bool {
	switch connectors.ErrorKind(reason) {
	case connectors.KindSecretNotFound, connectors.KindSecretKeyMissing, connectors.KindAuthenticationFailed, kindSecretNotLabelled:
		return true
	}
	return false
}

// waitsForVendor reports whether a Ready reason comes with a vendor-given
// time before which retrying is pointless.
// retryBy reports whether err's RetryAt is a deadline to retry by rather
// than a time to wait for.
func retryBy(err error) bool {
	return connectors.KindOf(err) == connectors.KindCredentialsWriteFailed
}

func waitsForVendor(reason string) bool {
	switch connectors.ErrorKind(reason) {
	case connectors.KindQuotaExhausted, connectors.KindRateLimited:
		return true
	}
	return false
}
