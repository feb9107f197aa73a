// Package connectors defines how the sync engine and the controller talk to
// an ERP: the Connector interface every vendor implements, the Config a
// connector is built from, the typed errors that become Ready reasons, and a
// Registry keyed by connector type.
//
// Each vendor lives in its own folder (connectors/<vendor>) with its client,
// mapping, simulator and tests; adding a vendor touches that folder and one
// registration line (see connectors/all).
package connectors

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

	"github.com/erpsync/erpsync-operator/connectors/model"
)

// Connector reads one company's records from one vendor's API. It is built
// per run from a Config and is used by one goroutine at a time; state that
// must be shared across runs and ErpSyncs (rate limiters, quota counters,
// token caches) lives in the vendor package, keyed by credential.
type Connector interface {
	// Entities lists the entity streams the connector offers, in the order a
	// run reads them (reference data first, documents last).
	Entities() []EntityInfo
	// ListPage reads one page of an entity stream. Since is the watermark to
	// pass as the vendor's modified-since filter; the zero time asks for
	// everything (a full read). Pages are numbered from 1.
	ListPage(ctx context.Context, req PageRequest) (*Page, error)
}

// EntityInfo describes one entity stream of a connector.
type EntityInfo struct {
	// Name is the canonical kind of the stream's main records; it is what users
	// list in spec.connector.entities and the key of the per-entity status.
	Name model.Kind
	// Incremental is true when the vendor has a modified-since filter for the
	// stream. A stream without one is re-read in full on every run.
	Incremental bool
	// Also lists other canonical kinds the stream emits from the same vendor
	// documents (for example contacts inside customers).
	Also []model.Kind
	// Endpoint is the vendor endpoint the stream reads, for docs and logs.
	Endpoint string
	// ShiftsOnEdit is set when the stream is read by page number from a
	// list whose order depends on a field that edits change (its modified
	// time): an edit during a pass moves a record past the cursor. The
	// engine then does not trust, after a resume, the documents changed
	// since the pass began. Keyset readers, and lists ordered by an id,
	// code or creation time, leave it false.
	ShiftsOnEdit bool
}

// PageRequest asks for one page of an entity stream.
type PageRequest struct {
	Entity model.Kind
	// Since is the modified-since watermark; zero means no filter.
	Since time.Time
	// Page is the 1-based page number.
	Page int
	// Cursor is the previous page's Next, empty on a pass's first page. A
	// connector that reads by keyset (restarting each page from the last
	// record it saw) starts from it; a page-numbered connector ignores it.
	// The engine checkpoints it, so a resumed pass continues from it.
	Cursor string
}

// Page is one page of an entity stream, already mapped to canonical records.
type Page struct {
	Records []model.Record
	// More is true when the vendor's end-of-data signal says another page
	// follows.
	More bool
	// Total is the number of records the vendor reports for the whole filtered
	// list, or -1 where the response carries no count. The engine repeats a
	// pass whose total changed underneath it.
	Total int
	// ServerTime is the vendor's clock at the response (its HTTP Date header),
	// or zero when the response carries none.
	ServerTime time.Time
	// Calls is the number of HTTP requests the page cost, retries included.
	Calls int
	// Next, when not empty, is where the following page starts: the engine
	// passes it back as PageRequest.Cursor. Keyset readers set it (and set
	// Total to -1 unless it counts the whole pass); page-numbered readers
	// leave it empty.
	Next string
	// Docs lists the vendor ids of the documents on the page, the units that
	// Total counts (set-aside ones included). The engine counts the distinct
	// ids a pass read and repeats a pass that read fewer than the vendor's
	// total (unstable order, shifting pages). Nil means the ids of the
	// page's records of the entity's own kind plus the set-aside ones.
	Docs []string
	// SetAside holds the vendor documents on the page that could not be
	// mapped (an enum value the connector does not know, a reference to a
	// parent it has not read). They are stored beside the records with
	// their reason, counted in status and retried by later passes; they
	// never fail the page. A page that is not a document at all is still an
	// error.
	SetAside []model.SetAside
}

// Config is everything a connector is built from for one ErpSync.
type Config struct {
	// Type is the connector type (the registry key).
	Type string
	// CompanyID is the ErpSync's spec.companyId, stamped on every record.
	CompanyID string
	// BaseURL overrides the vendor's API root (regional endpoints, simulators).
	// Empty means the vendor's default.
	BaseURL string
	// TenantID selects one organisation behind a credential that reaches
	// several (Xero), where the Secret does not name it.
	TenantID string
	// Credentials is the data of the ErpSync's credentials Secret.
	Credentials map[string][]byte
	// CredentialStore reads and rewrites the credentials Secret, for vendors
	// whose credentials rotate (Xero's refresh tokens). Nil where the caller
	// cannot write Secrets.
	CredentialStore CredentialStore
	// HTTPClient is the client to send requests with; nil means a default.
	// The manager gives one built by its egress policy
	// (connectors/egress.Policy.Client with the vendor's default hosts).
	HTTPClient *http.Client
	// Egress, when set, is the manager's egress policy: a connector checks
	// its base URL (and any other URL it takes from the tenant, such as
	// Xero's token URL) with AllowsHost and its vendor's DefaultHosts in
	// its Factory, failing with KindInvalidConfig. Nil (tests, tools)
	// checks nothing.
	Egress EgressPolicy
	// Log receives structured logs; it never gets credentials.
	Log logr.Logger
}

// EgressPolicy checks a URL a tenant gave against the manager's egress
// policy without dialling (connectors/egress.Policy implements it).
type EgressPolicy interface {
	// AllowsHost returns a KindInvalidConfig error when rawURL may not be
	// called by a connector whose vendor publishes defaultHosts.
	AllowsHost(defaultHosts []string, rawURL string) error
}

// WaitHook is called by the shared HTTP layer before it blocks on a rate
// limit, a Retry-After or a back-off, with how long it expects to wait. The
// engine uses it to save the pages read so far before the wait, so that a
// crash while waiting costs no page. It runs on the goroutine that called
// ListPage.
type WaitHook func(ctx context.Context, wait time.Duration)

type waitHookKey struct{}

// WithWaitHook returns a context whose requests call hook before they wait.
func WithWaitHook(ctx context.Context, hook WaitHook) context.Context {
	return context.WithValue(ctx, waitHookKey{}, hook)
}

// BeforeWait calls the context's WaitHook, if any, and then gives back the
// context's work slot (WithWorkSlot) for a wait of at least
// MinSlotReleaseWait, so that a sync waiting on a vendor's limit does not
// keep other companies' syncs from starting. The HTTP layer calls it before
// every wait of at least MinHookedWait and takes the slot back
// (ResumeWork) before it sends the request, so that no response is read
// without a slot; the engine calls ResumeWork too after every vendor call,
// before it writes anything. Nothing may wait for a work slot while it
// holds what a sync holding a work slot may block on, except the vendor
// concurrency slots, whose waiters give their work slot back (PauseWork).
func BeforeWait(ctx context.Context, wait time.Duration) {
	if wait < MinHookedWait {
		return
	}
	if h, ok := ctx.Value(waitHookKey{}).(WaitHook); ok && h != nil {
		h(ctx, wait)
	}
	if s, ok := ctx.Value(workSlotKey{}).(WorkSlot); ok && s != nil && wait >= MinSlotReleaseWait {
		s.Release()
	}
}

// WorkSlot is one of the manager's sync slots (--concurrent-syncs), held
// by a sync while it works: reads a page, maps it, writes it to the CRM. A
// slot bounds what costs memory and CPU, not time spent waiting on a
// vendor.
type WorkSlot interface {
	// Release gives the slot back; a no-op when it is not held.
	Release()
	// Acquire takes a slot again, waiting for one (the manager's fair share
	// between namespaces decides who goes first); a no-op when it is held.
	// It fails only when ctx ends.
	Acquire(ctx context.Context) error
}

type workSlotKey struct{}

// WithWorkSlot returns a context whose long waits give s back.
func WithWorkSlot(ctx context.Context, s WorkSlot) context.Context {
	return context.WithValue(ctx, workSlotKey{}, s)
}

// PauseWork gives back the context's work slot, if any, for a wait whose
// length is unknown.
func PauseWork(ctx context.Context) {
	if s, ok := ctx.Value(workSlotKey{}).(WorkSlot); ok && s != nil {
		s.Release()
	}
}

// ResumeWork takes back the context's work slot if a wait gave it back.
// The engine calls it after every vendor call returns.
func ResumeWork(ctx context.Context) error {
	if s, ok := ctx.Value(workSlotKey{}).(WorkSlot); ok && s != nil {
		if err := s.Acquire(ctx); err != nil {
			return fmt.Errorf("waiting for a sync slot: %w", err)
		}
	}
	return nil
}

// MinSlotReleaseWait is the shortest wait that gives the work slot back:
// shorter ones cost less than handing the slot over.
const MinSlotReleaseWait = time.Second

// MinHookedWait is the shortest wait that calls the WaitHook: shorter waits
// cost less than a checkpoint.
const MinHookedWait = 100 * time.Millisecond

// CredentialStore reads and updates a credentials Secret with optimistic
// concurrency.
type CredentialStore interface {
	// Key names the Secret ("namespace/name"), for serialising refreshes.
	Key() string
	// Get returns the Secret's data and its resource version.
	Get(ctx context.Context) (data map[string][]byte, version string, err error)
	// Update writes data if the Secret is still at version, and returns the
	// new version; it fails with a conflict otherwise.
	Update(ctx context.Context, data map[string][]byte, version string) (string, error)
}

// Factory builds a connector from a Config. It checks the credentials it
// needs are present (returning an Error of KindSecretKeyMissing or
// KindInvalidConfig) but makes no network call.
type Factory func(ctx context.Context, cfg Config) (Connector, error)

// IDLister is implemented by connectors that can list every live document of
// an incremental entity cheaply, for reconciliation (spec.reconcile): the
// vendor's largest page and smallest representation (summary modes, field
// selection, id-only endpoints). The listing must hold what a full read of
// the entity would, and nothing the vendor marks deleted where the vendor
// can leave those out (a marked record that is listed is fine: its version
// shows it changed).
type IDLister interface {
	// IDListing reports whether the entity can be listed, and how (for
	// planning calls against quotas and for docs). Entities read in full
	// on every sync need no listing.
	IDListing(entity model.Kind) (IDListingInfo, bool)
	// ListIDs reads one page of the listing. Page is 1-based; Cursor is the
	// previous page's Next (keyset listings). Since is always zero.
	ListIDs(ctx context.Context, req PageRequest) (*IDPage, error)
}

// IDListingInfo describes how an entity's ids are listed.
type IDListingInfo struct {
	// PageSize is the number of ids one call returns at most.
	PageSize int
	// Endpoint is the request that lists them, for docs and logs.
	Endpoint string
	// ExtraCalls is what a listing costs beyond ceil(n/PageSize)+1 calls
	// when it is made of several lists (Unleashed lists stock one
	// warehouse at a time: the warehouse list and a partial last page per
	// warehouse).
	ExtraCalls int
}

// IDPage is one page of an entity's id listing.
type IDPage struct {
	// Docs are the documents on the page: their vendor id (the VendorID of
	// the record of the entity's kind that a full read maps them to) and
	// their version (that record's ModifiedAt, on the vendor's clock).
	Docs []DocVersion
	// More, Total, ServerTime, Calls and Next mean what they mean on Page.
	More       bool
	Total      int
	ServerTime time.Time
	Calls      int
	Next       string
}

// DocVersion is one document of an id listing.
type DocVersion struct {
	ID         string
	ModifiedAt time.Time
}

// DocReader is implemented by connectors that can read chosen documents of
// an entity by id (an id filter, or one request a document where that is
// the vendor's only way), for reconciliation's repairs. The records come
// mapped as a full read would map them, children and set-aside documents
// included; ids the vendor no longer has are left out.
type DocReader interface {
	// MaxDocsPerRead is how many ids one ReadDocs call takes at most.
	MaxDocsPerRead(entity model.Kind) int
	ReadDocs(ctx context.Context, entity model.Kind, ids []string) (*Page, error)
}

// DocReadCoster is implemented by a DocReader whose ReadDocs makes
// requests per document rather than one request a call (a vendor with no
// filter that takes many ids): a targeted sync compares that cost, not the
// number of calls, with what a pass would cost.
type DocReadCoster interface {
	// RequestsPerDoc is how many requests reading one document of entity
	// by id costs; 0 when one ReadDocs call costs one request whatever
	// the number of ids.
	RequestsPerDoc(entity model.Kind) int
}

type faultCounterKey struct{}

// WithFaultCounter returns a context whose requests count in n every
// request the HTTP layer repeated after a fault (a 429, a 5xx, a network
// error). The engine applies no inferred deletion from a pass during which
// a fault was retried away.
func WithFaultCounter(ctx context.Context, n *atomic.Int64) context.Context {
	return context.WithValue(ctx, faultCounterKey{}, n)
}

// CountFault adds one to the context's fault counter, if any. The HTTP layer
// calls it before it repeats a request.
func CountFault(ctx context.Context) {
	if n, ok := ctx.Value(faultCounterKey{}).(*atomic.Int64); ok && n != nil {
		n.Add(1)
	}
}

// QuotaReporter is implemented by connectors whose vendor meters calls by
// the day or month: reconciliation is planned within what is left.
type QuotaReporter interface {
	// QuotaLeft returns the calls left in the vendor's tightest daily or
	// monthly quota now and that quota's size; ok is false where the
	// vendor has none.
	QuotaLeft() (left, limit int64, ok bool)
}
