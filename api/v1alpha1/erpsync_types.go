package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConnectorType names an ERP vendor.
// +kubebuilder:validation:Enum=unleashed;cin7omni;cin7core;xero;katana
type ConnectorType string

// The supported connector types.
const (
	ConnectorUnleashed ConnectorType = "unleashed"
	ConnectorCin7Omni  ConnectorType = "cin7omni"
	ConnectorCin7Core  ConnectorType = "cin7core"
	ConnectorXero      ConnectorType = "xero"
	ConnectorKatana    ConnectorType = "katana"
)

// Annotations users set to ask for a sync outside the schedule. Any new value
// (for example `date +%s`) is a new request; the controller echoes the value
// it acted on in status and never removes the annotation.
const (
	// RequestedAtAnnotation asks for an incremental sync now.
	RequestedAtAnnotation = "erpsync.io/requestedAt"
	// FullResyncAtAnnotation asks for a sync that ignores every watermark.
	FullResyncAtAnnotation = "erpsync.io/fullResyncAt"
	// FullResyncEntitiesAtAnnotation asks for a sync that reads the
	// entities FullResyncEntitiesAnnotation names in full (their
	// watermarks ignored, deletions by absence detected as in a full
	// resync) and the others incrementally. It is a request of its own,
	// with its own echo (status.lastHandledFullResyncEntitiesAt), so that
	// erpsync.io/fullResyncAt always means every entity, whatever entity
	// list an earlier request left in the annotations.
	FullResyncEntitiesAtAnnotation = "erpsync.io/fullResyncEntitiesAt"
	// FullResyncEntitiesAnnotation names the entities of a
	// FullResyncEntitiesAtAnnotation request, comma-separated (for example
	// "products,customers"). It is read only when that request is new, and
	// changing it alone starts nothing. A name the ErpSync does not sync
	// refuses the whole request: nothing is read or forgotten, and the
	// sync that carries it fails with reason InvalidConfig.
	FullResyncEntitiesAnnotation = "erpsync.io/fullResyncEntities"
	// ReconcileNowAnnotation asks for a reconciliation (a comparison of
	// the vendor's complete id listing with the CRM) at the next sync.
	ReconcileNowAnnotation = "erpsync.io/reconcileNowAt"
	// ApproveDeletionsAnnotation approves the deletions the mass-deletion
	// guard holds (status.entities[].heldDeletion): the next sync applies
	// them, recomputed, if they have not grown by more than a tenth.
	ApproveDeletionsAnnotation = "erpsync.io/approveDeletionsAt"
	// DiscardDeletionsAnnotation discards the held deletions: nothing is
	// deleted, and the next pass decides afresh (and may hold again).
	DiscardDeletionsAnnotation = "erpsync.io/discardDeletionsAt"
)

// CredentialsLabel marks a Secret as ErpSync credentials. The controller
// reads a Secret named in spec.connector.credentialsRef only when it
// carries this label with the value "true", and writes (Xero's rotated
// tokens) only such Secrets: naming a neighbour's Secret in the same
// namespace never sends its keys to an ERP.
const (
	CredentialsLabel      = "erpsync.io/credentials" //nolint:gosec // G101: a label's name, not a credential
	CredentialsLabelValue = "true"
)

// Defaults of the optional durations.
const (
	DefaultInterval = 15 * time.Minute
)

// LocalSecretReference names a Secret in the ErpSync's namespace.
type LocalSecretReference struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// ConnectorSpec says which ERP to read and how to reach it.
type ConnectorSpec struct {
	// Type is the ERP vendor: one of unleashed, cin7omni, cin7core, xero,
	// katana.
	// +required
	Type ConnectorType `json:"type"`

	// CredentialsRef names the Secret, in the same namespace, that holds the
	// vendor credentials. The keys each vendor needs are listed in the README.
	// +required
	CredentialsRef LocalSecretReference `json:"credentialsRef"`

	// BaseURL overrides the vendor's API root, for regional endpoints and
	// simulators. Empty means the vendor's public endpoint.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^\s]+$`
	// +optional
	BaseURL string `json:"baseURL,omitempty"`

	// TenantID selects one organisation where one credential reaches several
	// (Xero). It overrides the Secret's tenantId key.
	// +kubebuilder:validation:MaxLength=128
	// +optional
	TenantID string `json:"tenantId,omitempty"`

	// Entities restricts the sync to these entities (for example products,
	// customers, sales_orders). Empty means every entity the connector offers.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:items:Pattern=`^[a-z_]+$`
	// +listType=set
	// +optional
	Entities []string `json:"entities,omitempty"`
}

// ErpSyncSpec is the desired state of an ErpSync: which company, which ERP,
// and how often.
// +kubebuilder:validation:XValidation:rule="duration(self.interval) >= duration('1m')",message="interval must be at least 1m"
// +kubebuilder:validation:XValidation:rule="!has(self.timeout) || duration(self.timeout) < duration(self.interval)",message="timeout must be shorter than interval"
// +kubebuilder:validation:XValidation:rule="!has(self.retryInterval) || duration(self.retryInterval) <= duration(self.interval)",message="retryInterval cannot exceed interval"
// +kubebuilder:validation:XValidation:rule="!has(self.retryInterval) || duration(self.retryInterval) >= duration('30s')",message="retryInterval must be at least 30s"
// +kubebuilder:validation:XValidation:rule="!has(self.timeout) || duration(self.timeout) >= duration('1m')",message="timeout must be at least 1m"
type ErpSyncSpec struct {
	// CompanyID is the operating company's identity. Every record written to
	// the CRM carries it, so it cannot change: create a new ErpSync instead.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="companyId cannot change; create a new ErpSync"
	// +required
	CompanyID string `json:"companyId"`

	// Connector says which ERP to read and with which credentials.
	// +required
	Connector ConnectorSpec `json:"connector"`

	// Interval is the time from the END of one sync to the start of the next
	// (a sync from 15:00 to 15:12 with the default 15m means the next starts at
	// 15:27). At least 1m.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:default="15m"
	// +optional
	Interval metav1.Duration `json:"interval"`

	// RetryInterval is the wait after a failed sync before the next attempt.
	// Defaults to the interval; cannot exceed it; at least 30s. Consecutive
	// failures back off: the n-th retry in a row waits retryInterval ×
	// 2^(n-1), at most 1h (or the interval, if longer).
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:MaxLength=32
	// +optional
	RetryInterval *metav1.Duration `json:"retryInterval,omitempty"`

	// Timeout bounds one sync. Defaults to the interval for routine syncs;
	// a full import (a first import, a requested full resync, the import
	// after a source change) is bounded only by an explicit timeout. Must be
	// shorter than the interval; at least 1m. The manager's
	// --max-sync-duration bounds every sync, imports included.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:MaxLength=32
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// Suspend stops new syncs and ends a running one at its next safe point
	// (a page boundary). Keep it in Git, so that Git stays the record.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// Reconcile schedules the comparison of each incremental entity's
	// complete id listing at the vendor with the CRM: records gone from
	// the ERP are marked deleted, records that differ are read again.
	// Defaults: once a day, 10% mass-deletion guard, 20% of the vendor's
	// daily or monthly quota kept for routine syncs.
	// +optional
	Reconcile *ReconcileSpec `json:"reconcile,omitempty"`

	// Webhooks turns on change notifications from the vendor (Xero,
	// Katana, Unleashed, Cin7 Core): a change made in the ERP starts a
	// targeted sync of the documents it names within seconds; the
	// interval poll stays as the safety net. Cin7 Omni sends none.
	// +optional
	Webhooks *WebhooksSpec `json:"webhooks,omitempty"`
}

// WebhooksSpec configures the vendor's change notifications.
type WebhooksSpec struct {
	// Enabled receives the vendor's webhooks. Where the vendor's API
	// manages subscriptions (Katana, Cin7 Core, Unleashed) the operator
	// registers and keeps them; Xero's one subscription per app is made
	// in its developer portal (see the README).
	Enabled bool `json:"enabled"`

	// Debounce is how long events for this ErpSync are gathered into one
	// targeted sync; default 2s, between 100ms and 1m.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('100ms') && duration(self) <= duration('1m')",message="webhooks.debounce must be between 100ms and 1m"
	// +optional
	Debounce *metav1.Duration `json:"debounce,omitempty"`
}

// DefaultWebhookDebounce is the default spec.webhooks.debounce.
const DefaultWebhookDebounce = 2 * time.Second

// ReconcileSpec schedules reconciliations and bounds what they may do.
type ReconcileSpec struct {
	// Disabled turns scheduled reconciliation off (requests through the
	// erpsync.io/reconcileNowAt annotation still run one).
	// +optional
	Disabled bool `json:"disabled,omitempty"`

	// Interval between the starts of two reconciliations; default 24h, at
	// least 1h. A reconciliation runs with the first sync due after it is.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1h')",message="reconcile.interval must be at least 1h"
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`

	// TimeOfDay ("HH:MM", UTC) pins daily reconciliations to a time of
	// day, say a quiet hour of the vendor's region.
	// +kubebuilder:validation:Pattern="^([01][0-9]|2[0-3]):[0-5][0-9]$"
	// +optional
	TimeOfDay string `json:"timeOfDay,omitempty"`

	// MaxDeletePercent is the mass-deletion guard: a complete pass or a
	// reconciliation that would mark more than this share of an entity's
	// records deleted applies none of it, and waits for a person's
	// erpsync.io/approveDeletionsAt or erpsync.io/discardDeletionsAt.
	// Default 10.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	MaxDeletePercent *int32 `json:"maxDeletePercent,omitempty"`

	// QuotaReservePercent is the share of the vendor's daily or monthly
	// call quota a reconciliation leaves for routine syncs: one that would
	// dip into it is postponed (status says so). Default 20.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=90
	// +optional
	QuotaReservePercent *int32 `json:"quotaReservePercent,omitempty"`

	// TombstoneRetention, when set, purges records deleted longer ago than
	// this from the CRM at each reconciliation. Unset keeps tombstones for
	// ever.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:MaxLength=32
	// +optional
	TombstoneRetention *metav1.Duration `json:"tombstoneRetention,omitempty"`
}

// DefaultReconcileInterval is the default spec.reconcile.interval.
const DefaultReconcileInterval = 24 * time.Hour

// Phase is a summary for people; tools read conditions.
// +kubebuilder:validation:Enum=Pending;Syncing;Succeeded;Failed;Suspended
type Phase string

// The phases.
const (
	PhasePending   Phase = "Pending"
	PhaseSyncing   Phase = "Syncing"
	PhaseSucceeded Phase = "Succeeded"
	PhaseFailed    Phase = "Failed"
	PhaseSuspended Phase = "Suspended"
)

// SyncMode says whether a sync read everything or only changes.
type SyncMode string

// The sync modes.
const (
	SyncModeFull        SyncMode = "full"
	SyncModeIncremental SyncMode = "incremental"
)

// EntityStatus is the sync state of one entity.
type EntityStatus struct {
	// Name is the entity (products, customers, ...).
	Name string `json:"name"`

	// Watermark is where the next incremental window starts: the vendor's time
	// when the last completed pass started reading, minus a small overlap.
	// Absent until a pass has completed: the next pass reads everything.
	// +optional
	Watermark *metav1.Time `json:"watermark,omitempty"`

	// LastRunRecords is how many records the last completed pass read.
	// +optional
	LastRunRecords int64 `json:"lastRunRecords,omitempty"`

	// LastCompleted is when the last pass of this entity completed.
	// +optional
	LastCompleted *metav1.Time `json:"lastCompleted,omitempty"`

	// LastRunMode says whether the last completed pass read only changes
	// (incremental) or everything (full: a first import, a full resync, or an
	// entity the vendor offers no modified-since filter for).
	// +optional
	LastRunMode SyncMode `json:"lastRunMode,omitempty"`

	// LastRunCalls is the number of API calls the last completed pass made.
	// +optional
	LastRunCalls int64 `json:"lastRunCalls,omitempty"`

	// Checkpoint is the position of an interrupted pass; a restart resumes
	// from it instead of starting the entity over.
	// +optional
	Checkpoint *EntityCheckpoint `json:"checkpoint,omitempty"`

	// SetAside is the number of vendor documents the last completed pass
	// could not map. They are kept in the CRM's store beside the records,
	// with the reason and the raw document, and read again by every later
	// sync until they map.
	// +optional
	SetAside int64 `json:"setAside,omitempty"`

	// SetAsideIDs names the first few documents set aside (vendor ids).
	// +kubebuilder:validation:MaxItems=5
	// +kubebuilder:validation:items:MaxLength=128
	// +listType=atomic
	// +optional
	SetAsideIDs []string `json:"setAsideIDs,omitempty"`

	// SetAsideSince is the earliest modified time among the documents set
	// aside: the entity's next window starts no later than it, so they are
	// read again.
	// +optional
	SetAsideSince *metav1.Time `json:"setAsideSince,omitempty"`

	// Incomplete, when set, says why the last pass did not advance the
	// watermark although it read to the end: it read fewer distinct records
	// than the vendor reported, after every repeat. The next sync reads the
	// same window again.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Incomplete string `json:"incomplete,omitempty"`

	// HeldDeletion is a set of deletions the mass-deletion guard holds:
	// nothing of it was applied. Approve or discard it with the
	// erpsync.io/approveDeletionsAt or erpsync.io/discardDeletionsAt
	// annotation.
	// +optional
	HeldDeletion *HeldDeletion `json:"heldDeletion,omitempty"`

	// Deletions is what the last complete full pass of the entity inferred
	// about records gone from the ERP.
	// +optional
	Deletions *EntityDeletions `json:"deletions,omitempty"`

	// Reconcile is what the last reconciliation of the entity found.
	// +optional
	Reconcile *EntityReconcile `json:"reconcile,omitempty"`
}

// HeldDeletion is a deletion the mass-deletion guard did not apply.
type HeldDeletion struct {
	// Kind is the canonical kind whose records would be deleted.
	Kind string `json:"kind"`
	// Records is how many live records would have been marked deleted, of
	// Live.
	Records int64 `json:"records"`
	Live    int64 `json:"live"`
	// Via is how the deletion was learned (absent, reconcile).
	Via string `json:"via"`
	// Since is when it was first held.
	Since metav1.Time `json:"since"`
}

// EntityDeletions reports the deletions a full pass inferred.
type EntityDeletions struct {
	// Time is when the pass ended.
	Time metav1.Time `json:"time"`
	// Deleted counts the records marked deleted, children included.
	// +optional
	Deleted int64 `json:"deleted,omitempty"`
	// Skipped says why no inferred deletion was applied.
	// +optional
	Skipped string `json:"skipped,omitempty"`
}

// EntityReconcile reports one reconciliation of an entity.
type EntityReconcile struct {
	// Time is when it ended (or was postponed).
	Time metav1.Time `json:"time"`
	// Listed is the number of documents in the vendor's listing; Live the
	// number of live records of the kind in the CRM.
	// +optional
	Listed int64 `json:"listed,omitempty"`
	// +optional
	Live int64 `json:"live,omitempty"`
	// Missing counts live CRM records the vendor no longer lists; Deleted
	// the records marked deleted (children included).
	// +optional
	Missing int64 `json:"missing,omitempty"`
	// +optional
	Deleted int64 `json:"deleted,omitempty"`
	// Absent counts listed documents the CRM lacked or held deleted;
	// Drifted those whose CRM version differed; Repaired the records the
	// repair wrote.
	// +optional
	Absent int64 `json:"absent,omitempty"`
	// +optional
	Drifted int64 `json:"drifted,omitempty"`
	// +optional
	Repaired int64 `json:"repaired,omitempty"`
	// APICalls is what it cost.
	// +optional
	APICalls int64 `json:"apiCalls,omitempty"`
	// Postponed is set when the quota budget did not allow it.
	// +optional
	Postponed bool `json:"postponed,omitempty"`
	// Message says why deletions were not applied, or why it was
	// postponed.
	// +optional
	Message string `json:"message,omitempty"`
}

// EntityCheckpoint is the position of an unfinished pass.
type EntityCheckpoint struct {
	// Since is the modified-since filter of the pass; absent for a full read.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`
	// StartedAt is the vendor's time when the pass started reading.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// Page is the last page whose records were written to the CRM.
	Page int `json:"page"`
	// Cursor is where the pass continues, for connectors that read by key
	// (opaque; empty for page-numbered reading).
	// +optional
	Cursor string `json:"cursor,omitempty"`
	// Repeats counts the times this pass was read again because the
	// vendor's list shifted under it; the repeat limit counts the pass, not
	// the run.
	// +optional
	Repeats int `json:"repeats,omitempty"`
	// Distinct is the number of distinct documents the pass has read so far
	// (across its repeats), compared with the vendor's total at its end.
	// +optional
	Distinct int64 `json:"distinct,omitempty"`
	// Records written so far in the pass.
	// +optional
	Records int64 `json:"records,omitempty"`
	// Total is the vendor's record count at the start of the pass, or -1.
	// +optional
	Total int `json:"total,omitempty"`
}

// SyncProgress shows a sync under way.
type SyncProgress struct {
	// Entity being read.
	// +optional
	Entity string `json:"entity,omitempty"`
	// Records read so far in this sync.
	// +optional
	Records int64 `json:"records,omitempty"`
	// APICalls made so far in this sync.
	// +optional
	APICalls int64 `json:"apiCalls,omitempty"`
}

// SyncSummary describes the last finished sync, or the whole import when
// that sync finished one begun in earlier syncs.
type SyncSummary struct {
	// Mode is full or incremental.
	Mode SyncMode `json:"mode"`
	// Records read.
	Records int64 `json:"records"`
	// Upserted records (new or newer than the CRM's copy).
	Upserted int64 `json:"upserted"`
	// APICalls made.
	APICalls int64 `json:"apiCalls"`
	// Duration of the sync; for an import, from its start to its end.
	Duration metav1.Duration `json:"duration"`
	// Syncs is the number of syncs the import ran in; absent for a sync that
	// did its work alone.
	// +optional
	Syncs int64 `json:"syncs,omitempty"`
	// SetAside is the number of documents set aside at the end of the sync,
	// over every entity (see status.entities).
	// +optional
	SetAside int64 `json:"setAside,omitempty"`
	// Incomplete lists the entities whose last pass did not advance its
	// watermark (see status.entities[].incomplete).
	// +listType=atomic
	// +optional
	Incomplete []string `json:"incomplete,omitempty"`
}

// ImportStatus is a full import under way: a first import, a requested full
// resync or the import after a source change. It may span several syncs
// (a failure, a timeout or a restart between them); it is cleared when the
// import completes, and lastSync then describes the whole import.
type ImportStatus struct {
	// StartedAt is when the first sync of the import started.
	StartedAt metav1.Time `json:"startedAt"`
	// Reason says why the import runs: a first import, a requested full
	// resync, or the source changed (naming what changed).
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Reason string `json:"reason,omitempty"`
	// Syncs is the number of syncs the import has run in (this one
	// included).
	// +optional
	Syncs int64 `json:"syncs,omitempty"`
	// APICalls made by the import so far, across its syncs.
	// +optional
	APICalls int64 `json:"apiCalls,omitempty"`
	// Records read by the import so far, across its syncs.
	// +optional
	Records int64 `json:"records,omitempty"`
	// Upserted records (new or changed) so far, across its syncs.
	// +optional
	Upserted int64 `json:"upserted,omitempty"`
	// Entities, when set, limits the import to these entities (a
	// requested full resync of some entities): each is read in full once,
	// the others incrementally. Empty: every entity.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=64
	// +listType=atomic
	// +optional
	Entities []string `json:"entities,omitempty"`
}

// SourceFingerprint identifies the ERP account the last sync read. When it
// changes (another connector type, tenant, API root, Secret or account), the
// watermarks and checkpoints describe another ERP: they are dropped and a
// full import runs. It holds no secret: the tenant and the credentials
// identity are hashes, and the credentials identity covers only keys that
// name the account (clientId, apiId, accountId, username, tenantId), never
// keys that rotate or authenticate (refreshToken, apiKey, clientSecret).
type SourceFingerprint struct {
	// Type is the connector type.
	Type ConnectorType `json:"type"`
	// BaseURL is the API root ("" for the vendor's public endpoint).
	// +kubebuilder:validation:MaxLength=2048
	// +optional
	BaseURL string `json:"baseURL,omitempty"`
	// CredentialsRef is the name of the credentials Secret.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	CredentialsRef string `json:"credentialsRef,omitempty"`
	// Tenant is a hash of the tenant the sync read (spec.connector.tenantId,
	// else the Secret's tenantId key); empty when none is set.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Tenant string `json:"tenant,omitempty"`
	// CredentialsIdentity is a hash of the Secret's account-naming keys;
	// empty when the Secret has none.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	CredentialsIdentity string `json:"credentialsIdentity,omitempty"`
}

// ErpSyncStatus is the observed state of an ErpSync. It belongs to the
// controller.
type ErpSyncStatus struct {
	// ObservedGeneration is the generation the last verdict (Ready=True or
	// Stalled=True) was reached for; -1 until the first.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration"`

	// Conditions: Ready (always present after the first sync), Reconciling
	// (only while True: a first sync, spec change or request is in flight) and
	// Stalled (only while True: only a spec change can help).
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// Phase summarises the state for people. Tools read conditions.
	// +optional
	Phase Phase `json:"phase,omitempty"`

	// LastSyncStart is the start of the most recent sync attempt.
	// +optional
	LastSyncStart *metav1.Time `json:"lastSyncStart,omitempty"`

	// LastSyncEnd is the end of the most recent sync attempt, successful or
	// not. The next sync is due at lastSyncEnd + interval.
	// +optional
	LastSyncEnd *metav1.Time `json:"lastSyncEnd,omitempty"`

	// LastSuccessfulSyncEnd is the end of the most recent successful sync.
	// +optional
	LastSuccessfulSyncEnd *metav1.Time `json:"lastSuccessfulSyncEnd,omitempty"`

	// NextSyncAt is when the next sync is due.
	// +optional
	NextSyncAt *metav1.Time `json:"nextSyncAt,omitempty"`

	// LastHandledReconcileAt is the last erpsync.io/requestedAt value acted
	// on: recorded when the sync that honours it starts (a sync that only
	// resumes an interrupted one never records a request).
	// +optional
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`

	// LastHandledFullResyncAt is the last erpsync.io/fullResyncAt value acted
	// on: recorded when the full resync starts, in the same write that
	// forgets the watermarks (a sync that only resumes an interrupted one
	// never records a request).
	// +optional
	LastHandledFullResyncAt string `json:"lastHandledFullResyncAt,omitempty"`

	// LastHandledFullResyncEntitiesAt is the last
	// erpsync.io/fullResyncEntitiesAt value acted on, recorded when the
	// sync that honours it starts, in the same write that records the
	// import of those entities (status.import.entities).
	// LastHandledFullResyncEntities are the entities the operator accepted
	// to read in full for it: set once the sync has checked the names
	// against the connector (a whole resync or a first sync that honours
	// the request sets them at its start), and left empty when it refused
	// them: that sync then failed with reason InvalidConfig, saying why.
	// +optional
	LastHandledFullResyncEntitiesAt string `json:"lastHandledFullResyncEntitiesAt,omitempty"`
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=64
	// +listType=atomic
	// +optional
	LastHandledFullResyncEntities []string `json:"lastHandledFullResyncEntities,omitempty"`

	// CredentialsVersion is the resource version of the credentials Secret the
	// last attempt read (empty if it did not exist). A failure the Secret can
	// fix is retried as soon as the Secret changes.
	// +optional
	CredentialsVersion string `json:"credentialsVersion,omitempty"`

	// ConsecutiveFailures counts the failed syncs since the last success;
	// the retry interval doubles with each (see spec.retryInterval).
	// +optional
	ConsecutiveFailures int64 `json:"consecutiveFailures,omitempty"`

	// LastSync summarises the last finished sync; for a sync that finished
	// an import begun in earlier syncs, the whole import.
	// +optional
	LastSync *SyncSummary `json:"lastSync,omitempty"`

	// Source identifies the ERP account the syncs read; see
	// SourceFingerprint.
	// +optional
	Source *SourceFingerprint `json:"source,omitempty"`

	// QuotaCredentials names the vendor's daily or monthly quotas the last
	// sync that sent a request counted against (Xero's and Cin7 Omni's
	// daily calls, Unleashed's monthly plan): for each, the vendor and a
	// digest of the limiter key (the credential's id and secret, tenant
	// and host, hashed), never a secret. The manager counts each in the
	// ConfigMap erpsync-quota-<credential> of its quota namespace and
	// exports it as the credential label of the erpsync_quota_* metrics,
	// so tools can show the quotas this ErpSync spends. Absent for vendors
	// without such a quota.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=63
	QuotaCredentials []string `json:"quotaCredentials,omitempty"`

	// Import is the full import under way, absent when none is.
	// +optional
	Import *ImportStatus `json:"import,omitempty"`

	// LastHandledReconcileNowAt, LastHandledApproveDeletionsAt and
	// LastHandledDiscardDeletionsAt are the last values of those request
	// annotations acted on.
	// +optional
	LastHandledReconcileNowAt string `json:"lastHandledReconcileNowAt,omitempty"`
	// +optional
	LastHandledApproveDeletionsAt string `json:"lastHandledApproveDeletionsAt,omitempty"`
	// +optional
	LastHandledDiscardDeletionsAt string `json:"lastHandledDiscardDeletionsAt,omitempty"`

	// Reconciliation is the reconciliation schedule's state.
	// +optional
	Reconciliation *ReconciliationStatus `json:"reconciliation,omitempty"`

	// Webhooks is the state of the vendor's change notifications; absent
	// while spec.webhooks is off.
	// +optional
	Webhooks *WebhookStatus `json:"webhooks,omitempty"`

	// Progress shows the sync under way; absent between syncs.
	// +optional
	Progress *SyncProgress `json:"progress,omitempty"`

	// Entities is the per-entity sync state: watermarks and checkpoints.
	// +listType=map
	// +listMapKey=name
	// +optional
	Entities []EntityStatus `json:"entities,omitempty"`
}

// ReconciliationStatus is the state of an ErpSync's reconciliations.
type ReconciliationStatus struct {
	// StartedAt is when the reconciliation under way (or the last one)
	// started; an interrupted one resumes with the entities it had not
	// finished.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// LastCompleted is when the last reconciliation finished every entity.
	// +optional
	LastCompleted *metav1.Time `json:"lastCompleted,omitempty"`
	// NextAt is when the next one is due: it runs with the first sync at
	// or after it.
	// +optional
	NextAt *metav1.Time `json:"nextAt,omitempty"`
	// InProgress is set while a reconciliation has unfinished entities.
	// +optional
	InProgress bool `json:"inProgress,omitempty"`
	// Message summarises the last one (deleted, repaired, held,
	// postponed).
	// +optional
	Message string `json:"message,omitempty"`
}

// MaxPendingWebhookTargets bounds status.webhooks.pending: beyond it the
// ErpSync's next sync is an incremental poll of the entities named
// (status.webhooks.overflow), which reads every change at once.
const MaxPendingWebhookTargets = 500

// WebhookStatus is the state of an ErpSync's webhooks.
type WebhookStatus struct {
	// Path is the receiver path the vendor delivers to (behind the
	// manager's public webhook URL).
	// +optional
	Path string `json:"path,omitempty"`
	// Subscription is what the operator found at the vendor the last time
	// it checked the subscriptions (vendors whose API manages them).
	// +optional
	Subscription *WebhookSubscriptionStatus `json:"subscription,omitempty"`
	// LastEventAt is when the last authentic delivery arrived.
	// +optional
	LastEventAt *metav1.Time `json:"lastEventAt,omitempty"`
	// Accepted counts the events of authentic deliveries; Rejected the
	// deliveries refused (bad signature or credential, malformed body).
	// +optional
	Accepted int64 `json:"accepted,omitempty"`
	// +optional
	Rejected int64 `json:"rejected,omitempty"`
	// Pending are the documents named by events that no targeted sync has
	// read yet (at most MaxPendingWebhookTargets).
	// +listType=atomic
	// +optional
	Pending []WebhookTarget `json:"pending,omitempty"`
	// PendingSince is when the oldest pending event arrived.
	// +optional
	PendingSince *metav1.Time `json:"pendingSince,omitempty"`
	// Overflow lists the entities whose events did not fit in Pending: the
	// next sync polls them (incrementally) instead.
	// +listType=set
	// +optional
	Overflow []string `json:"overflow,omitempty"`
	// UnannouncedPolls counts the polls in a row that found changes in
	// streams the vendor's webhooks announce while no delivery arrived over
	// the window those changes were made in; at 2 WebhooksReady turns
	// False (Silent).
	// +optional
	UnannouncedPolls int32 `json:"unannouncedPolls,omitempty"`
	// TargetedSyncs counts the targeted syncs run.
	// +optional
	TargetedSyncs int64 `json:"targetedSyncs,omitempty"`
	// LastTargetedSync is what the last targeted sync did.
	// +optional
	LastTargetedSync *TargetedSyncStatus `json:"lastTargetedSync,omitempty"`
}

// WebhookTarget is one document an event named.
type WebhookTarget struct {
	// Entity is the entity stream (spec.connector.entities' names).
	// +kubebuilder:validation:MaxLength=64
	Entity string `json:"entity"`
	// ID is the vendor's id of the document.
	// +kubebuilder:validation:MaxLength=128
	ID string `json:"id"`
	// Deleted is set when the event said the document was deleted.
	// +optional
	Deleted bool `json:"deleted,omitempty"`
}

// WebhookSubscriptionStatus is what the operator found at the vendor.
type WebhookSubscriptionStatus struct {
	// CheckedAt is when the subscriptions were last listed.
	CheckedAt metav1.Time `json:"checkedAt"`
	// URL is the public URL they deliver to.
	// +optional
	URL string `json:"url,omitempty"`
	// Subscriptions is how many deliver to URL.
	// +optional
	Subscriptions int `json:"subscriptions,omitempty"`
	// Reenabled counts subscriptions the vendor had disabled and the
	// operator switched back on, over the ErpSync's life.
	// +optional
	Reenabled int64 `json:"reenabled,omitempty"`
	// Disabled names events whose subscription the vendor disabled and
	// that could not be switched back on.
	// +listType=atomic
	// +optional
	Disabled []string `json:"disabled,omitempty"`
	// Message says what went wrong at the last check ("" when nothing).
	// +optional
	Message string `json:"message,omitempty"`
}

// TargetedSyncStatus is one targeted sync's outcome.
type TargetedSyncStatus struct {
	// Time is when it ended.
	Time metav1.Time `json:"time"`
	// Targets is the number of distinct documents it read.
	Targets int64 `json:"targets"`
	// Upserted and Deleted count the CRM writes.
	// +optional
	Upserted int64 `json:"upserted,omitempty"`
	// +optional
	Deleted int64 `json:"deleted,omitempty"`
	// APICalls is what it cost.
	// +optional
	APICalls int64 `json:"apiCalls,omitempty"`
	// LagMillis is the time from the oldest event it read arriving to its
	// end, in milliseconds.
	// +optional
	LagMillis int64 `json:"lagMillis,omitempty"`
	// Error is why it failed ("" when it succeeded); the documents are
	// left to the next poll.
	// +optional
	Error string `json:"error,omitempty"`
}

// ErpSync keeps a CRM fed with one operating company's ERP data: it syncs
// at once when created, then `interval` after each sync ends, asking the ERP
// only for records modified since the previous sync.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=erps,categories=erpsync
// +kubebuilder:printcolumn:name="Company",type=string,JSONPath=`.spec.companyId`
// +kubebuilder:printcolumn:name="Connector",type=string,JSONPath=`.spec.connector.type`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Last Sync",type=date,JSONPath=`.status.lastSyncEnd`
// A future time: a date column would print "<invalid>", so the timestamp shows.
// +kubebuilder:printcolumn:name="Next Sync",type=string,JSONPath=`.status.nextSyncAt`
// +kubebuilder:printcolumn:name="Last Success",type=date,JSONPath=`.status.lastSuccessfulSyncEnd`,priority=1
// +kubebuilder:printcolumn:name="Interval",type=string,JSONPath=`.spec.interval`,priority=1
// +kubebuilder:printcolumn:name="Webhooks",type=string,JSONPath=`.status.conditions[?(@.type=="WebhooksReady")].reason`,priority=1
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ErpSync struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ErpSyncSpec `json:"spec"`

	// +kubebuilder:default={"observedGeneration":-1}
	// +optional
	Status ErpSyncStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// ErpSyncList is a list of ErpSyncs.
type ErpSyncList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ErpSync `json:"items"`
}

// GetInterval returns the interval, with the default for an unset one.
func (in *ErpSync) GetInterval() time.Duration {
	if in.Spec.Interval.Duration <= 0 {
		return DefaultInterval
	}
	return in.Spec.Interval.Duration
}

// GetRetryInterval returns the retry interval, falling back to the interval.
func (in *ErpSync) GetRetryInterval() time.Duration {
	if in.Spec.RetryInterval != nil && in.Spec.RetryInterval.Duration > 0 {
		return in.Spec.RetryInterval.Duration
	}
	return in.GetInterval()
}

// GetTimeout returns the bound on one routine sync: the timeout if set,
// otherwise the interval (a sync never runs longer than the pause between
// two).
func (in *ErpSync) GetTimeout() time.Duration {
	if in.Spec.Timeout != nil && in.Spec.Timeout.Duration > 0 {
		return in.Spec.Timeout.Duration
	}
	return in.GetInterval()
}

// GetImportTimeout returns the bound on one sync of a full import (a first
// import, a requested full resync, the import after a source change): only
// an explicit timeout bounds it; 0 means it runs to completion, so a long
// first import is not cut every interval.
func (in *ErpSync) GetImportTimeout() time.Duration {
	if in.Spec.Timeout != nil && in.Spec.Timeout.Duration > 0 {
		return in.Spec.Timeout.Duration
	}
	return 0
}

// GetConditions returns the conditions (for condition helpers).
func (in *ErpSync) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions sets the conditions (for condition helpers).
func (in *ErpSync) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// GetReconcileInterval returns spec.reconcile.interval or its default.
func (in *ErpSync) GetReconcileInterval() time.Duration {
	if r := in.Spec.Reconcile; r != nil && r.Interval != nil && r.Interval.Duration > 0 {
		return r.Interval.Duration
	}
	return DefaultReconcileInterval
}

// GetMaxDeleteShare returns the mass-deletion guard's share (0..1).
func (in *ErpSync) GetMaxDeleteShare() float64 {
	if r := in.Spec.Reconcile; r != nil && r.MaxDeletePercent != nil {
		return float64(*r.MaxDeletePercent) / 100
	}
	return 0.10
}

// GetQuotaReserveShare returns the share of a quota kept for routine syncs.
func (in *ErpSync) GetQuotaReserveShare() float64 {
	if r := in.Spec.Reconcile; r != nil && r.QuotaReservePercent != nil {
		return float64(*r.QuotaReservePercent) / 100
	}
	return 0.20
}

// WebhooksEnabled reports whether spec.webhooks is on.
func (in *ErpSync) WebhooksEnabled() bool {
	return in.Spec.Webhooks != nil && in.Spec.Webhooks.Enabled
}

// GetWebhookDebounce returns spec.webhooks.debounce or its default.
func (in *ErpSync) GetWebhookDebounce() time.Duration {
	if w := in.Spec.Webhooks; w != nil && w.Debounce != nil && w.Debounce.Duration > 0 {
		return w.Debounce.Duration
	}
	return DefaultWebhookDebounce
}

// GetSubscription returns the subscription state, nil-safe.
func (in *WebhookStatus) GetSubscription() *WebhookSubscriptionStatus {
	if in == nil {
		return nil
	}
	return in.Subscription
}
