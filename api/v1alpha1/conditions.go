package v1alpha1

// Condition types, as kstatus and Flux read them.
const (
	// ReadyCondition is True when the last sync succeeded.
	ReadyCondition = "Ready"
	// ReconcilingCondition is True only while a first sync, a sync for a new
	// generation or a requested sync is in flight.
	ReconcilingCondition = "Reconciling"
	// StalledCondition is True only when retrying cannot help until the spec
	// changes.
	StalledCondition = "Stalled"
	// DeletionsHeldCondition is True while the mass-deletion guard holds
	// deletions of some entity (status.entities[].heldDeletion), waiting
	// for erpsync.io/approveDeletionsAt or erpsync.io/discardDeletionsAt.
	// It does not make the ErpSync unready: syncs go on, nothing is
	// deleted.
	DeletionsHeldCondition = "DeletionsHeld"
	// WebhooksReadyCondition is present while spec.webhooks is on: True
	// when the vendor's subscriptions are active (or, for Xero, deliveries
	// arrive), False when webhooks are expected but the vendor disabled
	// them, the operator cannot register them, or a poll found changes
	// no webhook announced (Silent). It does not make the ErpSync unready:
	// polling goes on.
	WebhooksReadyCondition = "WebhooksReady"
)

// Condition reasons that are not connector error kinds (those are in
// connectors.ErrorKind and are used as reasons verbatim).
const (
	ReasonSucceeded = "Succeeded"
	// ReasonIncomplete is Ready=True's reason when the sync ran to its end
	// but an entity's pass read fewer distinct records than the vendor
	// reported: nothing read was lost and its watermark did not advance, so
	// the next sync reads the same window again; the message names the
	// entities.
	ReasonIncomplete  = "Incomplete"
	ReasonProgressing = "Progressing"
	// ReasonMassDeletion is DeletionsHeld=True's reason.
	ReasonMassDeletion = "MassDeletionGuard"
	ReasonSuspended    = "Suspended"
	ReasonSyncFailed   = "SyncFailed"
	ReasonInvalidConf  = "InvalidConfig"
	// ReasonCompanyClaimed is Ready=False's and Stalled=True's reason when
	// an ErpSync in another namespace claimed spec.companyId first: this
	// ErpSync never syncs (nothing is read or written) while that claim
	// stands. The message names the owning namespace and nothing else.
	ReasonCompanyClaimed = "CompanyClaimed"
	// ReasonSecretNotLabelled is Ready=False's reason when the credentials
	// Secret exists but lacks the label erpsync.io/credentials: "true":
	// nothing is read from it. Labelling it retries at once.
	ReasonSecretNotLabelled = "SecretNotLabelled"
	// Webhook reasons (WebhooksReady).
	ReasonWebhooksActive      = "Active"
	ReasonWebhooksSilent      = "Silent"
	ReasonWebhooksDisabled    = "DisabledByVendor"
	ReasonWebhooksUnsupported = "Unsupported"
	ReasonWebhooksNoURL       = "NoPublicURL"
	ReasonWebhooksRegistering = "RegistrationFailed"
	ReasonWebhooksAwaiting    = "AwaitingFirstEvent"
)
