package controllers

import (
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
	// TriggerRequested: a new erpsync.io/requestedAt value.
	TriggerRequested Trigger = "requested"
	// TriggerCredentials: the last attempt failed on credentials and the
	// Secret has changed since.
	TriggerCredentials Trigger = "credentials"
	// TriggerSchedule: interval (or retryInterval) has passed since the last
	// sync ended.
	TriggerSchedule Trigger = "schedule"
)

// Decision is what the scheduler decided for one ErpSync.
type Decision struct {
	// Trigger is why a sync is due now; TriggerNone when not.
	Trigger Trigger
	// DueAt is when the next sync is due (set when Trigger is none and the
	// object is not suspended).
	DueAt time.Time
	// Full asks the sync to ignore watermarks.
	Full bool
}

// Due reports whether a sync of obj is due at now, and otherwise when it will
// be. It reads only the object (spec, annotations, status) and the current
// resource version of the credentials Secret (empty when it does not exist),
// so restarts, leader changes and cache resyncs never add a sync.
//
// The next sync is due at lastSyncEnd + interval after a success, and at
// lastSyncEnd + retryInterval after a failure (later, when the vendor told us
// when a quota or rate limit resets: then status.nextSyncAt holds that time).
func Due(obj *erpv1.ErpSync, secretVersion string, now time.Time) Decision {
	if obj.Spec.Suspend || !obj.DeletionTimestamp.IsZero() {
		return Decision{}
	}
	st := &obj.Status
	full := requestPending(obj, erpv1.FullResyncAtAnnotation, st.LastHandledFullResyncAt)
	switch {
	case st.Phase == erpv1.PhaseSyncing:
		return Decision{Trigger: TriggerResume, Full: false}
	case st.LastSyncEnd == nil:
		return Decision{Trigger: TriggerInitial, Full: full}
	case full:
		return Decision{Trigger: TriggerFullResync, Full: true}
	case requestPending(obj, erpv1.RequestedAtAnnotation, st.LastHandledReconcileAt):
		return Decision{Trigger: TriggerRequested}
	}
	ready := meta.FindStatusCondition(st.Conditions, erpv1.ReadyCondition)
	if ready == nil || ready.ObservedGeneration != obj.Generation {
		return Decision{Trigger: TriggerGeneration}
	}
	end := st.LastSyncEnd.Time
	due := end.Add(obj.GetInterval())
	if ready.Status != "True" {
		if credentialReason(ready.Reason) && secretVersion != st.CredentialsVersion {
			return Decision{Trigger: TriggerCredentials}
		}
		due = end.Add(obj.GetRetryInterval())
		if waitsForVendor(ready.Reason) && st.NextSyncAt != nil && st.NextSyncAt.After(due) {
			due = st.NextSyncAt.Time
		}
	}
	if !now.Before(due) {
		return Decision{Trigger: TriggerSchedule}
	}
	return Decision{DueAt: due}
}

// requestPending reports whether the annotation holds a token not yet
// handled.
func requestPending(obj *erpv1.ErpSync, key, handled string) bool {
	v, ok := obj.Annotations[key]
	return ok && v != "" && v != handled
}

// credentialReason reports whether a Ready reason can be fixed by changing
// the credentials Secret.
func credentialReason(reason string) bool {
	switch connectors.ErrorKind(reason) {
	case connectors.KindSecretNotFound, connectors.KindSecretKeyMissing, connectors.KindAuthenticationFailed:
		return true
	}
	return false
}

// waitsForVendor reports whether a Ready reason comes with a vendor-given
// time before which retrying is pointless.
func waitsForVendor(reason string) bool {
	switch connectors.ErrorKind(reason) {
	case connectors.KindQuotaExhausted, connectors.KindRateLimited:
		return true
	}
	return false
}
