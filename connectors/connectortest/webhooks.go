package connectortest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/internal/engine"
)

// The webhook scenarios: every change in the ERP is delivered, signed, to
// a receiver; the deliveries are checked and decoded with the vendor's
// WebhookCodec as the manager's receiver does; the events they name are
// read by id with engine.Targeted through the world's connector and sink;
// and the CRM then equals the ERP. They run for harnesses whose Env sets
// Webhooks.
//
// What a harness's WebhookEnv.Subscribe must do for them (besides what
// its doc says): enqueue each change's delivery on the Deliverer from the
// dataset's change callback (no timer of its own), so that the
// Deliverer's Pending() reaching 0 after a change means the change was
// delivered; and build the Deliverer with a sleep that waits on the
// world's fake clock (clock.Sleep), so that a vendor's retries over hours
// take no real time. The receiver answers every request with the status a
// scenario sets (200 by default), so an intent-to-receive handshake (Xero)
// belongs in the vendor's own tests, not in Subscribe. A vendor that
// gathers changes into one delivery (Xero) gathers inside the delivery's
// turn on the Deliverer, not before queuing it; a vendor that adds a delay
// before the first attempt (Cin7 Core's minute) waits it there too.
//
// What the vendors legitimately do differently, and how the scenarios
// allow it:
//   - An event names the document ReadDocs takes, which need not be a
//     record's id: Katana's product and material events name
//     "product/<id>" and "material/<id>", whose records are the variants;
//     Cin7 Core's stock event names the product whose stock rows it reads.
//     An event counts as naming the records a read by id of its document
//     returns (requireNamed, requireStored, WebhookDelete's mapping of
//     update events, read before the removals). A record the vendor
//     removed can only be named by its own id (a read of it returns
//     nothing): Katana's variant.deleted does; else reconciliation does.
//   - An event may name a document the vendor does not have beside one it
//     has in the same delivery: Cin7 Core's Sale/Voided, Sale/Undo and
//     Sale/CreditNoteAuthorised read the sale's credit note too, which a
//     sale may not have. That is accepted when the event does not say
//     deleted (so nothing is tombstoned on it); a delivery naming only
//     documents the vendor does not have, or one saying such a document
//     was deleted, fails requireStored.
//   - Deliveries carry one event (Katana, Unleashed, Cin7 Core) or many
//     (Xero); several dataset kinds may share one entity (Xero's
//     contacts; Katana's products and materials), so changedSince counts
//     the most of any one kind.
//   - Some changes announce nothing: hard removals (Xero, Cin7 Core), a
//     Cin7 Core sale edit that authorises no stage (the simulator
//     announces each edit by the stage event of its status). Removals
//     are left out of what must be named; a record gone without an event
//     that said deleted stays live for reconciliation.
//   - Authentication is a body signature (Xero, Katana, Unleashed) or a
//     fixed credential (Cin7 Core's bearer token: a body changed in
//     transit cannot be told); with or without a replay window.
//   - Retries and disabling follow each vendor's DeliveryPolicy (Katana
//     disables nothing).
//
// What the scenarios change: names and phones of customers and suppliers,
// statuses (to another status the dataset already uses) and due dates of
// documents, a product's name, price and stock (Dataset.Touch), deleted
// markers (Dataset.Mark) and hard deletes (Dataset.Remove); records they
// create are copies of the kind's last record with a new GUID-shaped id,
// the next Seq and a new code or number (products: Dataset.AddProduct).
// A harness whose Expected checks those fields lets the scenarios tell
// which records changed, and so which an event must name.

// webhookWait bounds the real time a scenario waits for deliveries.
var webhookWait = 10 * time.Second

// maxWebhookBody bounds what the scenarios' receiver reads of a delivery.
const maxWebhookBody = 4 << 20

// webhookScenarios lists the scenarios Run plays for a webhook vendor.
func webhookScenarios() []scenario {
	return []scenario{
		{"WebhookEdit", func(t *testing.T, h Harness) { webhookEdit(t, h) }},
		{"WebhookBadSignature", func(t *testing.T, h Harness) { webhookBadSignature(t, h) }},
		{"WebhookDuplicate", func(t *testing.T, h Harness) { webhookDuplicate(t, h) }},
		{"WebhookOutOfOrder", func(t *testing.T, h Harness) { webhookOutOfOrder(t, h) }},
		{"WebhookStorm", func(t *testing.T, h Harness) { webhookStorm(t, h) }},
		{"WebhookDelete", func(t *testing.T, h Harness) { webhookDelete(t, h) }},
		{"WebhookRetryDisable", func(t *testing.T, h Harness) { webhookRetryDisable(t, h) }},
	}
}

// hasWebhooks reports whether h's simulator delivers webhooks, and fails
// the test when its WebhookEnv is incomplete.
func hasWebhooks(t *testing.T, h Harness) bool {
	t.Helper()
	w := newWorld(t, h, simkit.Options{Seed: 1, Products: 3, Customers: 2, Orders: 2})
	wh := w.env.Webhooks
	if wh == nil {
		return false
	}
	if wh.Codec == nil || wh.Subscribe == nil || len(wh.Kinds) == 0 {
		t.Fatalf("%s harness: Env.Webhooks needs a Codec, Subscribe and Kinds", w.vendor)
	}
	if wh.Codec.Routing() == connectors.RouteByTenant && wh.Tenant == "" {
		t.Fatalf("%s harness: the codec routes by tenant but Env.Webhooks.Tenant is empty", w.vendor)
	}
	if _, ok := w.conn.(connectors.DocReader); !ok {
		t.Fatalf("%s: a webhook vendor's connector must read documents by id (connectors.DocReader)", w.vendor)
	}
	for k, e := range wh.Kinds {
		if !slices.Contains(simkit.AdminKinds, k) {
			t.Fatalf("%s harness: Env.Webhooks.Kinds names %q, not a dataset kind (simkit.AdminKinds)", w.vendor, k)
		}
		if !slices.ContainsFunc(w.conn.Entities(), func(x connectors.EntityInfo) bool { return x.Name == e }) {
			t.Fatalf("%s harness: Env.Webhooks.Kinds maps %s to %s, not an entity of the connector", w.vendor, k, e)
		}
	}
	return true
}

// ---- the receiver ----

// delivery is one request the receiver got, when (on the world's clock:
// a receiver verifies a delivery as it arrives) and what it answered.
type delivery struct {
	header http.Header
	body   []byte
	at     time.Time
	status int
}

// receiver stands for the manager's webhook endpoint: it keeps every
// request (raw headers and body) and answers with the status a scenario
// sets (200 unless told otherwise), with an empty body.
type receiver struct {
	srv    *httptest.Server
	now    func() time.Time
	status atomic.Int32
	mu     sync.Mutex
	got    []delivery
}

func newReceiver(t testing.TB, now func() time.Time) *receiver {
	r := &receiver{now: now}
	r.status.Store(http.StatusOK)
	r.srv = httptest.NewServer(r)
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, maxWebhookBody+1))
	status := int(r.status.Load())
	switch {
	case err != nil:
		status = http.StatusBadRequest
	case len(body) > maxWebhookBody:
		status = http.StatusRequestEntityTooLarge
	}
	r.mu.Lock()
	r.got = append(r.got, delivery{header: req.Header.Clone(), body: body, at: r.now(), status: status})
	r.mu.Unlock()
	w.WriteHeader(status)
}

// url is where the vendor is subscribed to deliver (a path as the
// manager's receiver gives each ErpSync).
func (r *receiver) url() string { return r.srv.URL + "/webhooks/test/acme" }

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func (r *receiver) since(i int) []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got[min(i, len(r.got)):])
}

// ---- the webhook world ----

// changeLog keeps the dataset's changes, as the scenario's own subscriber
// to its change feed.
type changeLog struct {
	mu  sync.Mutex
	got []simkit.Change
}

func (l *changeLog) add(c simkit.Change) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, c)
}

func (l *changeLog) since(i int) []simkit.Change {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.got[min(i, len(l.got)):])
}

func (l *changeLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.got)
}

// hookWorld is a world whose CRM holds a full import and whose vendor
// delivers webhooks to a receiver.
type hookWorld struct {
	*world
	wh   *WebhookEnv
	rd   connectors.DocReader
	rcv  *receiver
	keys map[string][]byte
	del  *simkit.Deliverer
	feed *changeLog
	// kinds are the announced dataset kinds, in simkit.AdminKinds order.
	kinds []string
	// used are the records a scenario already changed, by kind.
	used map[string]map[string]bool
	rev  int
	// step is how far the clock moves before each change (a second unless
	// a scenario says otherwise).
	step time.Duration
	// events caches the decoded events of each accepted delivery, by the
	// receiver's index.
	events map[int][]connectors.WebhookEvent
}

// mark is a point in the receiver's deliveries and the change feed.
type mark struct{ rcv, feed int }

// startHooks imports a dataset into the CRM and subscribes the vendor to
// the receiver.
func startHooks(t testing.TB, h Harness, seed uint64) *hookWorld {
	t.Helper()
	// Enough records of every kind for the scenarios to change a few dozen
	// of each (200 orders make 100 invoices and 10 credit notes); reads by
	// id need no pages, so the size does not follow the page size.
	w := newWorld(t, h, simkit.Options{Seed: seed, Products: 150, Customers: 100, Orders: 200})
	if w.env.Webhooks == nil {
		t.Fatalf("%s harness: no Env.Webhooks", w.vendor)
	}
	hw := &hookWorld{world: w, wh: w.env.Webhooks, feed: &changeLog{}, used: map[string]map[string]bool{}, events: map[int][]connectors.WebhookEvent{}}
	rd, ok := w.conn.(connectors.DocReader)
	if !ok {
		t.Fatalf("%s: the connector cannot read documents by id", w.vendor)
	}
	hw.rd = rd
	for _, k := range simkit.AdminKinds {
		if _, ok := hw.wh.Kinds[k]; ok {
			hw.kinds = append(hw.kinds, k)
		}
	}
	w.run("import", engine.Run{})
	w.requireEqual("after the import")
	t.Cleanup(w.env.Data.Subscribe(hw.feed.add))
	hw.rcv = newReceiver(t, w.clock.Now)
	hw.keys, hw.del = hw.wh.Subscribe(t, w.reg, hw.rcv.url())
	if hw.del == nil {
		t.Fatalf("%s harness: Subscribe returned no deliverer", w.vendor)
	}
	t.Cleanup(hw.del.Close)
	// Whatever the subscription itself delivered (a vendor's test
	// delivery) is not a change.
	hw.settle("the subscription")
	return hw
}

func (hw *hookWorld) mark() mark { return mark{rcv: hw.rcv.count(), feed: hw.feed.count()} }

// receive authenticates and decodes one delivery as the manager's
// receiver does at now: Parse first where deliveries are routed by tenant
// (to find the ErpSync), Verify first otherwise.
func (hw *hookWorld) receive(h http.Header, body []byte, keys map[string][]byte, now time.Time) (evs []connectors.WebhookEvent, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the codec panicked: %v", p)
		}
	}()
	if hw.wh.Codec.Routing() == connectors.RouteByTenant {
		if evs, err = hw.wh.Codec.Parse(h, body); err != nil {
			return nil, fmt.Errorf("parse: %w", err)
		}
		if err := hw.wh.Codec.Verify(h, body, keys, now); err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		return evs, nil
	}
	if err := hw.wh.Codec.Verify(h, body, keys, now); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	if evs, err = hw.wh.Codec.Parse(h, body); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	return evs, nil
}

// accept receives a genuine delivery: it must be authentic and decode
// into events of the connector's entities (and, routed by tenant, of the
// subscribed tenant).
func (hw *hookWorld) accept(d delivery) []connectors.WebhookEvent {
	hw.t.Helper()
	evs, err := hw.receive(d.header, d.body, hw.keys, d.at)
	if err != nil {
		hw.t.Fatalf("a delivery the vendor sent is refused: %v", err)
	}
	for _, e := range evs {
		if e.ID == "" {
			hw.t.Fatalf("an event of type %q names no id", e.Type)
		}
		if !slices.ContainsFunc(hw.conn.Entities(), func(x connectors.EntityInfo) bool { return x.Name == e.Entity }) {
			hw.t.Fatalf("an event of type %q names entity %q, not one the connector syncs", e.Type, e.Entity)
		}
		if hw.wh.Codec.Routing() == connectors.RouteByTenant && e.Tenant != hw.wh.Tenant {
			hw.t.Fatalf("an event names tenant %q, the subscription is for %q", e.Tenant, hw.wh.Tenant)
		}
	}
	return evs
}

// eventsSince returns the events of the deliveries the receiver accepted
// (answered 2xx) since m, in the order they came.
func (hw *hookWorld) eventsSince(m mark) []connectors.WebhookEvent {
	hw.t.Helper()
	var out []connectors.WebhookEvent
	for _, evs := range hw.deliveredSince(m) {
		out = append(out, evs...)
	}
	return out
}

// deliveredSince returns the events of each delivery the receiver
// accepted since m, one slice a delivery, in the order they came.
func (hw *hookWorld) deliveredSince(m mark) [][]connectors.WebhookEvent {
	hw.t.Helper()
	var out [][]connectors.WebhookEvent
	for i, d := range hw.rcv.since(m.rcv) {
		if d.status < 200 || d.status > 299 {
			continue
		}
		at := m.rcv + i
		evs, ok := hw.events[at]
		if !ok {
			evs = hw.accept(d)
			hw.events[at] = evs
		}
		out = append(out, evs)
	}
	return out
}

// accepted returns the deliveries answered 2xx since m.
func (hw *hookWorld) accepted(m mark) []delivery {
	var out []delivery
	for _, d := range hw.rcv.since(m.rcv) {
		if d.status >= 200 && d.status <= 299 {
			out = append(out, d)
		}
	}
	return out
}

// changedSince says, per entity, how many distinct documents the events
// must name at least for the announced changes since m: the distinct
// records changed, or, where several dataset kinds map to one entity
// (Xero's contacts are customers and suppliers; a vendor may announce an
// invoice as a change of its order), the most of any one kind. Removals
// are left out: a vendor may have no event for a hard delete (Xero).
func (hw *hookWorld) changedSince(m mark) map[model.Kind]int {
	perKind := map[string]map[string]bool{}
	for _, c := range hw.feed.since(m.feed) {
		if _, ok := hw.wh.Kinds[c.Kind]; !ok || c.Op == simkit.ChangeRemoved {
			continue
		}
		if perKind[c.Kind] == nil {
			perKind[c.Kind] = map[string]bool{}
		}
		perKind[c.Kind][c.ID] = true
	}
	shared := map[model.Kind]int{}
	for _, e := range hw.wh.Kinds {
		shared[e]++
	}
	out := map[model.Kind]int{}
	for k, ids := range perKind {
		e := hw.wh.Kinds[k]
		if shared[e] > 1 {
			out[e] = max(out[e], len(ids))
		} else {
			out[e] += len(ids)
		}
	}
	return out
}

// named returns the distinct ids events name, per entity.
func named(evs []connectors.WebhookEvent) map[model.Kind]map[string]bool {
	out := map[model.Kind]map[string]bool{}
	for _, e := range evs {
		if out[e.Entity] == nil {
			out[e.Entity] = map[string]bool{}
		}
		out[e.Entity][e.ID] = true
	}
	return out
}

// shortfall says which entities' changes since m the events do not name
// yet ("" when each entity names as many records as were changed).
func (hw *hookWorld) shortfall(m mark, evs []connectors.WebhookEvent) string {
	n := named(evs)
	var short []string
	for e, want := range hw.changedSince(m) {
		if got := len(n[e]); got < want {
			short = append(short, fmt.Sprintf("%s: %d records changed, %d named", e, want, got))
		}
	}
	sort.Strings(short)
	return strings.Join(short, "; ")
}

// settle waits until the deliverer has nothing pending.
func (hw *hookWorld) settle(what string) {
	hw.t.Helper()
	deadline := time.Now().Add(webhookWait)
	for hw.del.Pending() > 0 {
		if time.Now().After(deadline) {
			hw.t.Fatalf("%s: %d deliveries still pending after %v (%s); a harness's deliverer must wait its retries on the world's fake clock", what, hw.del.Pending(), webhookWait, hw.stats())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// await waits (a bounded poll) until every change since m is delivered:
// the deliverer has nothing pending and, for each entity, the events name
// as many distinct records as the changes touched. It returns the events.
func (hw *hookWorld) await(what string, m mark) []connectors.WebhookEvent {
	hw.t.Helper()
	deadline := time.Now().Add(webhookWait)
	for {
		// Pending first: once it reads 0, every delivery made so far is in
		// the receiver, so the events read after it are complete.
		idle := hw.del.Pending() == 0
		evs := hw.eventsSince(m)
		short := hw.shortfall(m, evs)
		if short == "" && idle {
			return evs
		}
		if time.Now().After(deadline) {
			if short == "" {
				short = "every change named"
			}
			hw.t.Fatalf("%s: deliveries incomplete after %v: %s; %d deliveries received, %d pending (%s)", what, webhookWait, short, len(hw.rcv.since(m.rcv)), hw.del.Pending(), hw.stats())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (hw *hookWorld) stats() string {
	s := hw.del.Stats()
	return fmt.Sprintf("delivered %d, failed %d, attempts %d, dropped %d, disabled %t", s.Delivered.Load(), s.Failed.Load(), s.Attempts.Load(), s.Dropped.Load(), hw.del.Disabled())
}

// targets turns events into the targets of a targeted sync.
func targets(evs []connectors.WebhookEvent) []engine.Target {
	out := make([]engine.Target, 0, len(evs))
	for _, e := range evs {
		out = append(out, engine.Target{Entity: e.Entity, ID: e.ID, Deleted: e.Deleted})
	}
	return out
}

// distinct counts the distinct documents events name.
func distinct(evs []connectors.WebhookEvent) int {
	n := 0
	for _, ids := range named(evs) {
		n += len(ids)
	}
	return n
}

// countingReader counts a connector's reads by id.
type countingReader struct {
	connectors.Connector
	rd    connectors.DocReader
	reads int
}

func (c *countingReader) MaxDocsPerRead(e model.Kind) int { return c.rd.MaxDocsPerRead(e) }

func (c *countingReader) ReadDocs(ctx context.Context, e model.Kind, ids []string) (*connectors.Page, error) {
	c.reads++
	return c.rd.ReadDocs(ctx, e, ids)
}

// targeted runs one targeted sync of evs through the world's connector and
// sink and returns its result and the requests the simulator answered.
func (hw *hookWorld) targeted(what string, evs []connectors.WebhookEvent) (engine.TargetedResult, int) {
	res, calls, _ := hw.targetedReads(what, evs)
	return res, calls
}

// targetedReads is targeted, also returning the ReadDocs calls it made.
func (hw *hookWorld) targetedReads(what string, evs []connectors.WebhookEvent) (engine.TargetedResult, int, int) {
	hw.t.Helper()
	before := hw.requests()
	cr := &countingReader{Connector: hw.conn, rd: hw.rd}
	res, err := engine.Targeted(context.Background(), engine.Run{Connector: cr, Sink: hw.sink, Company: Company, Vendor: hw.vendor, Now: hw.clock.Now, Log: hw.log}, targets(evs))
	calls := int(hw.requests() - before)
	if err != nil {
		hw.t.Fatalf("%s: targeted sync of %d events: %v", what, len(evs), err)
	}
	if res.Skipped > 0 {
		hw.t.Errorf("%s: the targeted sync skipped %d events of entities the connector does not read by id", what, res.Skipped)
	}
	if int(res.Calls) != calls {
		// Not a failure: a connector may spend requests outside its pages
		// (a token refresh); the budgets count what the simulator answered.
		hw.t.Logf("%s: the targeted sync reported %d calls, the simulator answered %d", what, res.Calls, calls)
	}
	return res, calls, cr.reads
}

// differing returns the CRM keys of announced entities' records that
// differ from the ERP now: changed (not held, another version, another
// deleted flag) and gone (held live, no longer served).
func (hw *hookWorld) differing() (changed, gone map[model.Key]bool) {
	entities := map[model.Kind]bool{}
	for _, e := range hw.wh.Kinds {
		entities[e] = true
	}
	changed, gone = map[model.Key]bool{}, map[model.Key]bool{}
	served := map[model.Key]bool{}
	for _, x := range hw.env.Expected() {
		if !entities[x.Kind] {
			continue
		}
		k := model.Key{Company: Company, Vendor: hw.vendor, Kind: x.Kind, VendorID: x.VendorID}
		served[k] = true
		r, ok := hw.sink.Get(k)
		switch {
		case !ok, r.Deleted != x.Deleted:
			changed[k] = true
		case x.Check != nil:
			if x.Check(&r) != nil {
				changed[k] = true
			}
		}
	}
	for _, r := range hw.sink.Records() {
		if entities[r.Kind] && !r.Deleted && r.Company == Company && r.Vendor == hw.vendor && !served[r.Key()] {
			gone[r.Key()] = true
		}
	}
	return changed, gone
}

// announced returns the kinds the announced entities' streams emit (the
// entity's own and those it also emits from the same documents): what a
// targeted sync of their events can bring up to date. Other kinds (Katana's
// stock levels, read from their own list) wait for the poll.
func (hw *hookWorld) announced() map[model.Kind]bool {
	out := map[model.Kind]bool{}
	for _, e := range hw.conn.Entities() {
		if slices.Contains(slices.Collect(maps.Values(hw.wh.Kinds)), e.Name) {
			out[e.Name] = true
			for _, k := range e.Also {
				out[k] = true
			}
		}
	}
	return out
}

// requireCurrent fails unless the CRM equals the ERP in the kinds the
// announced entities emit.
func (hw *hookWorld) requireCurrent(what string) {
	hw.t.Helper()
	kinds := hw.announced()
	var want []Want
	for _, x := range hw.env.Expected() {
		if kinds[x.Kind] {
			want = append(want, x)
		}
	}
	if len(want) == 0 {
		hw.t.Fatalf("%s: the harness expects no record of the announced kinds", what)
	}
	if d := Compare(hw.sink, hw.vendor, want); !d.OK() {
		hw.t.Fatalf("%s: the CRM differs from the ERP in the kinds webhooks announce: %s", what, d)
	}
}

// doc is one document an event names: the stream it is read from and
// the id ReadDocs takes.
type doc struct {
	entity model.Kind
	id     string
}

func (d doc) String() string { return string(d.entity) + "/" + d.id }

// docsOf returns the distinct documents events name, in a stable order.
func docsOf(evs []connectors.WebhookEvent) []doc {
	seen := map[doc]bool{}
	var out []doc
	for _, e := range evs {
		d := doc{e.Entity, e.ID}
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b doc) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// readNow reads each document by itself with the connector's ReadDocs, as
// a targeted sync would read it now, and returns the CRM keys of what
// each read returned (records of any kind, set-aside documents); a
// document the vendor does not serve returns none. An event's id is the id
// ReadDocs takes, which need not be a record's: Katana's product and
// material events name the document ("product/<id>"), whose records are
// its variants. These reads are outside any budget a scenario counts.
func (hw *hookWorld) readNow(docs []doc) map[doc][]model.Key {
	hw.t.Helper()
	out := map[doc][]model.Key{}
	for _, d := range docs {
		p, err := hw.rd.ReadDocs(context.Background(), d.entity, []string{d.id})
		if err != nil {
			hw.t.Fatalf("reading %s by id: %v", d, err)
		}
		if p == nil {
			continue
		}
		for i := range p.Records {
			out[d] = append(out[d], model.Key{Company: Company, Vendor: hw.vendor, Kind: p.Records[i].Kind, VendorID: p.Records[i].VendorID})
		}
		for _, a := range p.SetAside {
			out[d] = append(out[d], model.Key{Company: Company, Vendor: hw.vendor, Kind: a.Kind, VendorID: a.VendorID})
		}
	}
	return out
}

// requireNamed fails unless events name every key: an event names a
// record when its entity and id are the record's kind and vendor id, or,
// for an event whose id is no record's (Katana's "product/<id>"), when a
// read by id of what it names returns the record. A record the vendor no
// longer serves can only be named by its own id.
func (hw *hookWorld) requireNamed(what string, evs []connectors.WebhookEvent, keys map[model.Key]bool) {
	hw.t.Helper()
	n := named(evs)
	missing := map[model.Key]bool{}
	short := map[model.Kind]bool{}
	for k := range keys {
		if !n[k.Kind][k.VendorID] {
			missing[k] = true
			short[k.Kind] = true
		}
	}
	if len(missing) > 0 {
		// The events of the entities short of records that name no record
		// of the keys by their own id: what do they read?
		var docs []doc
		for _, d := range docsOf(evs) {
			if short[d.entity] && !keys[model.Key{Company: Company, Vendor: hw.vendor, Kind: d.entity, VendorID: d.id}] {
				docs = append(docs, d)
			}
		}
		for _, ks := range hw.readNow(docs) {
			for _, k := range ks {
				delete(missing, k)
			}
		}
	}
	var names []string
	for k := range missing {
		names = append(names, string(k.Kind)+"/"+k.VendorID)
	}
	sort.Strings(names)
	if len(names) > 0 {
		hw.t.Fatalf("%s: %d changed records are named by no event, e.g. %v", what, len(names), head(names))
	}
}

// requireStored fails unless the documents the deliveries since m name
// are ones the vendor has: each is in the CRM (live or deleted) as the
// entity's kind or one its stream also emits from the same document
// (Xero's suppliers), or a read by id of it returns records (Katana's
// "product/<id>", Cin7 Core's stock event naming the product whose stock
// rows it reads). An event that names a wrong id reads nothing. One
// exception: an event naming a document the vendor does not have is
// fine when it does not say deleted (so nothing is tombstoned on it) and
// its delivery names a document the vendor has: Cin7 Core's Sale/Voided,
// Sale/Undo and Sale/CreditNoteAuthorised read the sale's credit note
// too, which a sale may not have.
func (hw *hookWorld) requireStored(what string, m mark) {
	hw.t.Helper()
	kinds := map[model.Kind][]model.Kind{}
	for _, e := range hw.conn.Entities() {
		kinds[e.Name] = append([]model.Kind{e.Name}, e.Also...)
	}
	groups := hw.deliveredSince(m)
	var all []connectors.WebhookEvent
	deleted := map[doc]bool{}
	for _, evs := range groups {
		all = append(all, evs...)
		for _, e := range evs {
			deleted[doc{e.Entity, e.ID}] = deleted[doc{e.Entity, e.ID}] || e.Deleted
		}
	}
	known := map[doc]bool{}
	var unread []doc
	for _, d := range docsOf(all) {
		known[d] = slices.ContainsFunc(kinds[d.entity], func(k model.Kind) bool {
			_, ok := hw.sink.Get(model.Key{Company: Company, Vendor: hw.vendor, Kind: k, VendorID: d.id})
			return ok
		})
		if !known[d] {
			unread = append(unread, d)
		}
	}
	for d, ks := range hw.readNow(unread) {
		known[d] = len(ks) > 0
	}
	bad, companions := map[string]bool{}, 0
	for _, evs := range groups {
		withKnown := slices.ContainsFunc(evs, func(e connectors.WebhookEvent) bool { return known[doc{e.Entity, e.ID}] })
		for _, e := range evs {
			d := doc{e.Entity, e.ID}
			switch {
			case known[d]:
			case !deleted[d] && withKnown:
				companions++
			default:
				bad[d.String()] = true
			}
		}
	}
	unknown := slices.Sorted(maps.Keys(bad))
	if len(unknown) > 0 {
		hw.t.Fatalf("%s: %d events name documents the vendor does not have, e.g. %v", what, len(unknown), head(unknown))
	}
	if companions > 0 {
		hw.t.Logf("%s: %d events name documents the vendor does not have beside one it has in the same delivery (read, nothing tombstoned)", what, companions)
	}
}

// requireGoneAsAnnounced checks the records the ERP no longer serves:
// each that an event said was deleted is a tombstone the webhook wrote;
// each that no event said was deleted is still live (nothing is deleted
// on a guess; reconciliation finds it).
func (hw *hookWorld) requireGoneAsAnnounced(what string, gone map[model.Key]bool, evs []connectors.WebhookEvent) (tombstoned int) {
	hw.t.Helper()
	deleted := map[model.Key]bool{}
	for _, e := range evs {
		if e.Deleted {
			deleted[model.Key{Company: Company, Vendor: hw.vendor, Kind: e.Entity, VendorID: e.ID}] = true
		}
	}
	for k := range gone {
		r, ok := hw.sink.Get(k)
		switch {
		case !ok:
			hw.t.Errorf("%s: %s/%s vanished from the CRM", what, k.Kind, k.VendorID)
		case deleted[k] && (!r.Deleted || r.DeletedVia != model.DeletedByWebhook):
			hw.t.Errorf("%s: %s/%s is gone and its event said deleted, yet the CRM holds it deleted=%t via %q", what, k.Kind, k.VendorID, r.Deleted, r.DeletedVia)
		case !deleted[k] && r.Deleted:
			hw.t.Errorf("%s: %s/%s was deleted though no event said so", what, k.Kind, k.VendorID)
		case deleted[k]:
			tombstoned++
		}
	}
	return tombstoned
}

// ---- changing the ERP ----

// pick returns a live record of kind the scenario has not changed yet.
func (hw *hookWorld) pick(kind string) string {
	hw.t.Helper()
	refs, err := hw.env.Data.Refs(kind)
	if err != nil {
		hw.t.Fatalf("records of %s: %v", kind, err)
	}
	if hw.used[kind] == nil {
		hw.used[kind] = map[string]bool{}
	}
	// From the second record on: the first of a kind is the one the
	// dataset's other records are most often cloned from.
	for i := 1; i < len(refs); i++ {
		if r := refs[i]; !r.Deleted && !hw.used[kind][r.ID] {
			hw.used[kind][r.ID] = true
			return r.ID
		}
	}
	hw.t.Fatalf("no unchanged live record of %s left", kind)
	return ""
}

// tick moves the clock before a change, so that each change has a
// modified time of its own at any vendor's precision. The deliveries run
// in real time meanwhile: a receiver checks a delivery's time against its
// clock as it arrives, and a scenario that ticks past a vendor's replay
// window while a delivery is in flight would see it refused, so many
// changes take smaller steps.
func (hw *hookWorld) tick() {
	if hw.step <= 0 {
		hw.step = time.Second
	}
	hw.clock.Advance(hw.step)
}

// edit changes fields of a record that the vendors map (name, phone,
// status, due date; a product's name, price and stock) and stamps it.
func (hw *hookWorld) edit(kind, id string) {
	hw.t.Helper()
	hw.tick()
	hw.rev++
	rev := hw.rev
	if kind == simkit.AdminProducts {
		if _, err := hw.env.Data.Touch(kind, id); err != nil {
			hw.t.Fatalf("editing %s %s: %v", kind, id, err)
		}
		return
	}
	found := false
	hw.env.Data.Update(func(d *simkit.Dataset) {
		now := d.Stamp()
		touch := func(m *simkit.Meta, name *string) {
			if m.ID != id {
				return
			}
			found = true
			m.Modified = now
			if name != nil {
				*name = revised(*name, rev)
			}
		}
		switch kind {
		case simkit.AdminCustomers:
			for _, c := range d.Customers {
				if c.ID == id {
					touch(&c.Meta, &c.Name)
					c.Phone = fmt.Sprintf("+64 9 888 %04d", rev%10000)
				}
			}
		case simkit.AdminSuppliers:
			for _, s := range d.Suppliers {
				if s.ID == id {
					touch(&s.Meta, &s.Name)
					s.Phone = fmt.Sprintf("+64 9 888 %04d", rev%10000)
				}
			}
		case simkit.AdminOrders, simkit.AdminInvoices, simkit.AdminCreditNotes:
			docs := documents(d, kind)
			var statuses []string
			for _, x := range docs {
				if !slices.Contains(statuses, x.Status) {
					statuses = append(statuses, x.Status)
				}
			}
			sort.Strings(statuses)
			for _, x := range docs {
				if x.ID == id {
					touch(&x.Meta, nil)
					x.Status = statuses[(slices.Index(statuses, x.Status)+1)%len(statuses)]
					x.DueDate = x.DueDate.Add(24 * time.Hour)
				}
			}
		case simkit.AdminWarehouses:
			for _, x := range d.Warehouses {
				touch(&x.Meta, &x.Name)
			}
		case simkit.AdminTaxRates:
			for _, x := range d.TaxRates {
				touch(&x.Meta, &x.Name)
			}
		case simkit.AdminCurrencies:
			for _, x := range d.Currencies {
				touch(&x.Meta, &x.Name)
			}
		case simkit.AdminSalesPeople:
			for _, x := range d.SalesPeople {
				touch(&x.Meta, &x.Name)
			}
		}
		if found {
			d.Notify(kind, id, simkit.ChangeUpdated)
		}
	})
	if !found {
		hw.t.Fatalf("editing %s %s: no such record", kind, id)
	}
}

// revised gives a name a revision suffix, replacing an earlier one, so
// that repeated edits do not grow it.
func revised(name string, rev int) string {
	base, _, _ := strings.Cut(name, " (rev ")
	return fmt.Sprintf("%s (rev %d)", base, rev)
}

func documents(d *simkit.Dataset, kind string) []*simkit.Document {
	switch kind {
	case simkit.AdminOrders:
		return d.Orders
	case simkit.AdminInvoices:
		return d.Invoices
	}
	return d.CreditNotes
}

// newID is a GUID-shaped dataset id for a record a scenario creates.
func newID(kind string, seq int) string {
	return fmt.Sprintf("c0ffee%02x-0000-4000-8000-%012x", slices.Index(simkit.AdminKinds, kind)&0xff, seq)
}

// create adds a record of kind, a copy of the kind's last record with a
// new id, sequence number and natural key, created now; it returns its
// dataset id.
func (hw *hookWorld) create(kind string) string {
	hw.t.Helper()
	hw.tick()
	if kind == simkit.AdminProducts {
		p := hw.env.Data.AddProduct()
		hw.mine(kind, p.ID)
		return p.ID
	}
	var id string
	hw.env.Data.Update(func(d *simkit.Dataset) {
		now := d.Stamp()
		meta := func(last simkit.Meta) simkit.Meta {
			seq := last.Seq + 1
			id = newID(kind, seq)
			return simkit.Meta{ID: id, Seq: seq, Created: now, Modified: now}
		}
		switch kind {
		case simkit.AdminCustomers:
			x := *d.Customers[len(d.Customers)-1]
			x.Meta = meta(maxMeta(d.Customers, func(c *simkit.Customer) simkit.Meta { return c.Meta }))
			x.Code, x.Name = fmt.Sprintf("CUST%05d", x.Seq), fmt.Sprintf("Customer %d Limited", x.Seq)
			x.Email = fmt.Sprintf("accounts@customer%d.example.com", x.Seq)
			x.Contacts = slices.Clone(x.Contacts)
			for j := range x.Contacts {
				x.Contacts[j].ID = newID(kind, 1000000+x.Seq*10+j)
			}
			d.Customers = append(d.Customers, &x)
		case simkit.AdminSuppliers:
			x := *d.Suppliers[len(d.Suppliers)-1]
			x.Meta = meta(maxMeta(d.Suppliers, func(s *simkit.Supplier) simkit.Meta { return s.Meta }))
			x.Code, x.Name = fmt.Sprintf("SUP%03d", x.Seq), fmt.Sprintf("Supplier %d Ltd", x.Seq)
			d.Suppliers = append(d.Suppliers, &x)
		case simkit.AdminOrders, simkit.AdminInvoices, simkit.AdminCreditNotes:
			docs := documents(d, kind)
			x := *docs[len(docs)-1]
			x.Meta = meta(maxMeta(docs, func(o *simkit.Document) simkit.Meta { return o.Meta }))
			prefix, _, _ := strings.Cut(x.Number, "-")
			x.Number = fmt.Sprintf("%s-%06d", prefix, x.Seq)
			x.Date = now.Truncate(24 * time.Hour)
			x.DueDate = x.Date.Add(30 * 24 * time.Hour)
			x.Lines = slices.Clone(x.Lines)
			switch kind {
			case simkit.AdminOrders:
				d.Orders = append(d.Orders, &x)
			case simkit.AdminInvoices:
				d.Invoices = append(d.Invoices, &x)
			default:
				d.CreditNotes = append(d.CreditNotes, &x)
			}
		case simkit.AdminWarehouses:
			x := *d.Warehouses[len(d.Warehouses)-1]
			x.Meta = meta(maxMeta(d.Warehouses, func(w *simkit.Warehouse) simkit.Meta { return w.Meta }))
			x.Code, x.Name = fmt.Sprintf("WH%d", x.Seq), fmt.Sprintf("Warehouse %d", x.Seq)
			d.Warehouses = append(d.Warehouses, &x)
		case simkit.AdminSalesPeople:
			x := *d.SalesPeople[len(d.SalesPeople)-1]
			x.Meta = meta(maxMeta(d.SalesPeople, func(s *simkit.SalesPerson) simkit.Meta { return s.Meta }))
			x.Code, x.Name = fmt.Sprintf("SP%02d", x.Seq), fmt.Sprintf("Sales Person %d", x.Seq)
			x.Email = fmt.Sprintf("sales%d@example.com", x.Seq)
			d.SalesPeople = append(d.SalesPeople, &x)
		case simkit.AdminTaxRates:
			x := *d.TaxRates[len(d.TaxRates)-1]
			x.Meta = meta(maxMeta(d.TaxRates, func(r *simkit.TaxRate) simkit.Meta { return r.Meta }))
			x.Code, x.Name = fmt.Sprintf("TAX%d", x.Seq), fmt.Sprintf("TAX%d rate", x.Seq)
			d.TaxRates = append(d.TaxRates, &x)
		case simkit.AdminCurrencies:
			x := *d.Currencies[len(d.Currencies)-1]
			x.Meta = meta(maxMeta(d.Currencies, func(c *simkit.Currency) simkit.Meta { return c.Meta }))
			// XTS is the ISO 4217 code reserved for testing.
			x.Code, x.Name = "XTS", "Test currency"
			d.Currencies = append(d.Currencies, &x)
		}
		if id != "" {
			d.Notify(kind, id, simkit.ChangeCreated)
		}
	})
	if id == "" {
		hw.t.Fatalf("creating a record of %s: not a dataset kind", kind)
	}
	hw.mine(kind, id)
	return id
}

// mine marks a record as changed by the scenario.
func (hw *hookWorld) mine(kind, id string) {
	if hw.used[kind] == nil {
		hw.used[kind] = map[string]bool{}
	}
	hw.used[kind][id] = true
}

func maxMeta[T any](items []T, meta func(T) simkit.Meta) simkit.Meta {
	var out simkit.Meta
	for _, x := range items {
		if m := meta(x); m.Seq > out.Seq {
			out = m
		}
	}
	return out
}

// softDelete sets a record's deleted marker (the vendor still has it).
func (hw *hookWorld) softDelete(kind, id string) {
	hw.t.Helper()
	hw.tick()
	if _, err := hw.env.Data.Mark(kind, id, true, true); err != nil {
		hw.t.Fatalf("marking %s %s deleted: %v", kind, id, err)
	}
}

// remove hard-deletes a record (the vendor no longer has it).
func (hw *hookWorld) remove(kind, id string) {
	hw.t.Helper()
	hw.tick()
	if _, err := hw.env.Data.Remove(kind, id); err != nil {
		hw.t.Fatalf("removing %s %s: %v", kind, id, err)
	}
}

// ---- the scenarios ----

// webhookEdit: records of every announced kind edited, created and marked
// deleted are each delivered, authentic and named; one targeted sync of
// the events makes the CRM equal the ERP at two vendor calls per document
// at most.
func webhookEdit(t testing.TB, h Harness) {
	hw := startHooks(t, h, 71)
	m := hw.mark()
	for _, k := range hw.kinds {
		hw.edit(k, hw.pick(k))
		hw.create(k)
		hw.softDelete(k, hw.pick(k))
	}
	changed, gone := hw.differing()
	evs := hw.await("edits, creations and deletions", m)
	hw.requireNamed("edits, creations and deletions", evs, changed)
	hw.requireNamed("deletions the vendor no longer serves", evs, gone)
	n := distinct(evs)
	res, calls := hw.targeted("the edits", evs)
	if res.Targets != n {
		t.Errorf("the targeted sync read %d documents, the events name %d", res.Targets, n)
	}
	if calls > 2*n {
		t.Errorf("the targeted sync of %d documents cost %d vendor calls, more than 2 per document", n, calls)
	}
	hw.requireStored("after the targeted sync", m)
	hw.requireGoneAsAnnounced("after the targeted sync", gone, evs)
	hw.requireCurrent("after the targeted sync of the edits")
	t.Logf("%d changes of %d kinds: %d deliveries, %d events naming %d documents, %d calls", len(hw.feed.since(m.feed)), len(hw.kinds), len(hw.accepted(m)), len(evs), n, calls)
}

// webhookBadSignature: a delivery whose body changed after signing, one
// checked with a wrong key and one without its signature are refused with
// connectors.ErrWebhookSignature and change nothing; hostile bodies make
// Parse fail, never panic; the genuine deliveries then go through.
func webhookBadSignature(t testing.TB, h Harness) {
	hw := startHooks(t, h, 72)
	k := hw.kinds[0]
	m := hw.mark()
	hw.edit(k, hw.pick(k))
	hw.await("the first edit", m)
	m2 := hw.mark()
	hw.edit(k, hw.pick(k))
	hw.await("the second edit", m2)
	g, g2 := withEvents(hw, hw.accepted(m)), withEvents(hw, hw.accepted(m2))
	if g == nil || g2 == nil {
		t.Fatalf("no delivery of the edits names an event")
	}
	evs := hw.eventsSince(m)
	changed, _ := hw.differing()
	writes, requests := hw.sink.Writes(), hw.requests()

	// The headers that authenticate the delivery: those without which
	// Verify refuses it.
	var auth []string
	for name := range g.header {
		hdr := g.header.Clone()
		hdr.Del(name)
		if _, err := hw.receive(hdr, g.body, hw.keys, g.at); errors.Is(err, connectors.ErrWebhookSignature) {
			auth = append(auth, name)
		}
	}
	sort.Strings(auth)
	if len(auth) == 0 {
		t.Errorf("Verify accepts the delivery without any one of its headers: nothing authenticates it")
	}
	// A signature covers the body when it differs between deliveries of
	// different bodies; a fixed credential (Cin7 Core's) cannot.
	bodySigned := false
	for _, name := range auth {
		if !slices.Equal(g.header.Values(name), g2.header.Values(name)) {
			bodySigned = true
		}
	}
	wrongKeys := map[string][]byte{}
	for key, v := range hw.keys {
		wrongKeys[key] = append(slices.Clone(v), "-wrong"...)
	}
	unsigned := g.header.Clone()
	for _, name := range auth {
		unsigned.Del(name)
	}
	type forged struct {
		name   string
		header http.Header
		body   []byte
		keys   map[string][]byte
	}
	cases := []forged{
		{"checked with a wrong key", g.header, g.body, wrongKeys},
		{"without its signature", unsigned, g.body, hw.keys},
		{"without any header", http.Header{}, g.body, hw.keys},
	}
	if bodySigned {
		cases = append(cases,
			forged{"whose body gained a byte after signing", g.header, append(slices.Clone(g.body), ' '), hw.keys},
			forged{"whose body changed a digit after signing", g.header, changeDigit(g.body), hw.keys},
			forged{"signed as another delivery", swapAuth(g.header, g2.header, auth), g.body, hw.keys})
	} else {
		t.Logf("the vendor authenticates deliveries with a fixed credential (headers %v): a body changed in transit cannot be told", auth)
	}
	for _, c := range cases {
		if _, err := hw.receive(c.header, c.body, c.keys, g.at); !errors.Is(err, connectors.ErrWebhookSignature) {
			t.Errorf("a delivery %s: got %v, want an error wrapping connectors.ErrWebhookSignature", c.name, err)
		}
	}
	// Keys lacking what the vendor signs with: an error, not a pass.
	if _, err := hw.receive(g.header, g.body, map[string][]byte{}, g.at); err == nil {
		t.Errorf("Verify accepted a delivery with no keys at all")
	}
	// Hostile bodies: Parse fails (or finds nothing) and never panics.
	for _, b := range [][]byte{nil, []byte("{"), []byte("null"), []byte("[]"), []byte(`{"events":[null]}`), []byte("\x00\xff\xfe"), []byte(strings.Repeat("[", 10000)), g.body[:len(g.body)/2]} {
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Errorf("Parse panicked on a hostile body of %d bytes: %v", len(b), p)
				}
			}()
			_, _ = hw.wh.Codec.Parse(g.header, b)
		}()
	}
	// The receiver refused them all: nothing was read or written, and the
	// edits are still missing from the CRM.
	if hw.sink.Writes() != writes || hw.requests() != requests {
		t.Errorf("refused deliveries wrote %d times and read %d times", hw.sink.Writes()-writes, hw.requests()-requests)
	}
	if now, _ := hw.differing(); len(now) != len(changed) {
		t.Errorf("refused deliveries changed the CRM: %d records differ from the ERP, %d did", len(now), len(changed))
	}
	// The genuine deliveries go through.
	hw.targeted("the genuine deliveries", evs)
	hw.requireCurrent("after the genuine deliveries")
}

// withEvents returns the first delivery that names an event.
func withEvents(hw *hookWorld, ds []delivery) *delivery {
	for i := range ds {
		if evs, err := hw.receive(ds[i].header, ds[i].body, hw.keys, ds[i].at); err == nil && len(evs) > 0 {
			return &ds[i]
		}
	}
	return nil
}

// swapAuth returns h with the authentication headers of other.
func swapAuth(h, other http.Header, auth []string) http.Header {
	out := h.Clone()
	for _, name := range auth {
		out[name] = slices.Clone(other[name])
	}
	return out
}

// changeDigit returns body with its last decimal digit changed.
func changeDigit(body []byte) []byte {
	out := slices.Clone(body)
	for i := len(out) - 1; i >= 0; i-- {
		if out[i] >= '0' && out[i] <= '9' {
			out[i] = '0' + (out[i]-'0'+1)%10
			return out
		}
	}
	return append(out, '0')
}

// webhookDuplicate: every delivery received twice costs nothing extra in
// one coalesced sync; duplicates after the first copies were synced cost at
// most one more read of their documents and write nothing; old deliveries
// replayed after later edits, at once and ten minutes later (refused as
// replays, or read), leave the CRM current.
func webhookDuplicate(t testing.TB, h Harness) {
	hw := startHooks(t, h, 73)
	m := hw.mark()
	var edited []string
	for _, k := range hw.kinds {
		for range 2 {
			id := hw.pick(k)
			edited = append(edited, k, id)
			hw.edit(k, id)
		}
	}
	evs := hw.await("the edits", m)
	old := hw.accepted(m)
	n := distinct(evs)
	// Every delivery received twice, both copies coalesced into one sync.
	var twice []connectors.WebhookEvent
	for _, d := range old {
		twice = append(twice, hw.accept(d)...)
		twice = append(twice, hw.accept(d)...)
	}
	res, once := hw.targeted("every delivery twice", twice)
	if res.Targets != n {
		t.Errorf("a sync of %d events naming %d documents read %d", len(twice), n, res.Targets)
	}
	if once > 2*n {
		t.Errorf("a sync of every delivery twice cost %d calls for %d documents, more than 2 per document", once, n)
	}
	hw.requireCurrent("after a sync of every delivery twice")
	// The duplicates again, after the first copies were synced: one more
	// read of each document at most (what reading them once cost).
	res, calls := hw.targeted("the duplicates", evs)
	if calls > once {
		t.Errorf("re-reading %d duplicated events cost %d calls, more than one read of their documents (%d)", len(evs), calls, once)
	}
	if res.Upserted != 0 || res.Deleted != 0 {
		t.Errorf("duplicates of synced events rewrote %d records and deleted %d", res.Upserted, res.Deleted)
	}
	hw.requireCurrent("after the duplicates")
	// Later edits of the same records, then the first deliveries replayed.
	m2 := hw.mark()
	for i := 0; i < len(edited); i += 2 {
		hw.edit(edited[i], edited[i+1])
	}
	hw.targeted("the later edits", hw.await("the later edits", m2))
	hw.requireCurrent("after the later edits")
	// The first deliveries replayed at once, and again ten minutes later
	// (past a vendor's replay window, where it has one).
	for _, later := range []time.Duration{0, 10 * time.Minute} {
		hw.clock.Advance(later)
		replayed, refused := 0, 0
		var revs []connectors.WebhookEvent
		for _, d := range old {
			got, err := hw.receive(d.header, d.body, hw.keys, hw.clock.Now())
			switch {
			case errors.Is(err, connectors.ErrWebhookSignature):
				refused++
			case err != nil:
				t.Fatalf("a replayed delivery: %v", err)
			default:
				replayed++
				revs = append(revs, got...)
			}
		}
		res, calls = hw.targeted("the replayed deliveries", revs)
		if calls > once {
			t.Errorf("%d replayed events cost %d calls, more than one read of their documents (%d)", len(revs), calls, once)
		}
		if res.Upserted != 0 || res.Deleted != 0 {
			t.Errorf("replayed old events rewrote %d records and deleted %d", res.Upserted, res.Deleted)
		}
		hw.requireCurrent("after old deliveries were replayed")
		t.Logf("%d deliveries replayed %v after the later edits: %d read again, %d refused as replays", len(old), later, replayed, refused)
	}
}

// webhookOutOfOrder: deliveries processed newest first, one sync per
// event: an edit, a creation followed by an edit, an edit followed by a
// deletion (marked, then removed) of each kind; the reads are of the
// current state, so the CRM ends equal to the ERP and no update processed
// after a delete brings the record back.
func webhookOutOfOrder(t testing.TB, h Harness) {
	hw := startHooks(t, h, 74)
	m := hw.mark()
	for _, k := range hw.kinds {
		hw.edit(k, hw.pick(k))
		c := hw.create(k)
		hw.edit(k, c)
		b := hw.pick(k)
		hw.edit(k, b)
		hw.softDelete(k, b)
		r := hw.pick(k)
		hw.edit(k, r)
		hw.remove(k, r)
	}
	changed, gone := hw.differing()
	evs := hw.await("the changes", m)
	hw.requireNamed("the changes", evs, changed)
	for i := len(evs) - 1; i >= 0; i-- {
		hw.targeted(fmt.Sprintf("event %d of %d, newest first", len(evs)-i, len(evs)), evs[i:i+1])
	}
	hw.requireGoneAsAnnounced("after the events newest first", gone, evs)
	hw.requireCurrent("after the events newest first")
}

// webhookStorm: 200 edits over a few records of each kind and a burst of
// edits of many records; every delivery arrives and one targeted sync of
// all their events reads each entity's distinct documents in
// ceil(distinct/MaxDocsPerRead) reads by id (one more allowed per entity),
// at two vendor calls per document at most (Cin7 Core reads a document a
// request; most vendors read many in one).
func webhookStorm(t testing.TB, h Harness) {
	hw := startHooks(t, h, 75)
	// Some 400 changes 50 ms apart: 20 s of vendor time, well inside any
	// replay window.
	hw.step = 50 * time.Millisecond
	m := hw.mark()
	few := map[string][]string{}
	for _, k := range hw.kinds {
		for range 3 {
			few[k] = append(few[k], hw.pick(k))
		}
	}
	for i := range 200 {
		k := hw.kinds[i%len(hw.kinds)]
		hw.edit(k, few[k][(i/len(hw.kinds))%len(few[k])])
	}
	for _, k := range hw.kinds {
		refs, _ := hw.env.Data.Refs(k)
		for n := 0; n < 60 && n < len(refs)-10; n++ {
			hw.edit(k, hw.pick(k))
		}
	}
	changed, _ := hw.differing()
	evs := hw.await("the storm", m)
	hw.requireNamed("the storm", evs, changed)
	budget := 0
	for e, ids := range named(evs) {
		per := max(1, hw.rd.MaxDocsPerRead(e))
		budget += (len(ids)+per-1)/per + 1
	}
	res, calls, reads := hw.targetedReads("the storm", evs)
	if reads > budget {
		t.Errorf("a targeted sync of %d events naming %d documents read %d times, more than %d (ceil(distinct/MaxDocsPerRead)+1 per entity)", len(evs), res.Targets, reads, budget)
	}
	if calls > 2*res.Targets {
		t.Errorf("a targeted sync of %d documents cost %d vendor calls, more than 2 per document", res.Targets, calls)
	}
	if s := hw.del.Stats(); s.Failed.Load() != 0 || s.Dropped.Load() != 0 {
		t.Errorf("the storm lost deliveries: %s", hw.stats())
	}
	hw.requireCurrent("after the storm")
	t.Logf("storm: %d changes, %d deliveries, %d events, %d documents, %d reads (budget %d), %d calls", len(hw.feed.since(m.feed)), len(hw.accepted(m)), len(evs), res.Targets, reads, budget, calls)
}

// webhookDelete: a record the vendor marks deleted is stored as the
// vendor serves it; one it removes becomes a tombstone (via the webhook)
// only where its event said deleted (a vendor may have no event for a hard
// delete: Xero); an update event for a record removed since deletes
// nothing, and an edit is never announced as a deletion.
func webhookDelete(t testing.TB, h Harness) {
	hw := startHooks(t, h, 76)
	// Update events for records removed before they are processed.
	m := hw.mark()
	stale := map[string]string{}
	for _, k := range hw.kinds {
		id := hw.pick(k)
		stale[k] = id
		hw.edit(k, id)
	}
	updates := hw.await("the edits", m)
	for _, e := range updates {
		if e.Deleted {
			t.Errorf("an edit was announced as a deletion: event %q for %s/%s", e.Type, e.Entity, e.ID)
		}
	}
	// The records the update events refresh: those they name by id and,
	// while they are still there, what a read of each named document
	// returns (Katana's product events name "product/<id>", whose records
	// are its variants).
	updatedDocs := map[doc]bool{}
	updated := map[model.Key]bool{}
	for _, d := range docsOf(updates) {
		updatedDocs[d] = true
		updated[model.Key{Company: Company, Vendor: hw.vendor, Kind: d.entity, VendorID: d.id}] = true
	}
	for _, ks := range hw.readNow(docsOf(updates)) {
		for _, k := range ks {
			updated[k] = true
		}
	}
	m2 := hw.mark()
	for _, k := range hw.kinds {
		hw.softDelete(k, hw.pick(k))
		hw.remove(k, hw.pick(k))
		hw.remove(k, stale[k])
	}
	_, gone := hw.differing()
	evs := hw.await("the deletions", m2)
	// The deletions, without those of the documents and records the
	// updates name (Katana announces a product's removal by the product
	// and by its variant).
	var dels []connectors.WebhookEvent
	for _, e := range evs {
		if !updatedDocs[doc{e.Entity, e.ID}] && !updated[model.Key{Company: Company, Vendor: hw.vendor, Kind: e.Entity, VendorID: e.ID}] {
			dels = append(dels, e)
		}
	}
	hw.targeted("the deletions", dels)
	res, _ := hw.targeted("update events of removed records", updates)
	if res.Deleted != 0 {
		t.Errorf("update events of removed records deleted %d records", res.Deleted)
	}
	stillLive := 0
	for k := range updated {
		if !gone[k] {
			continue
		}
		if r, ok := hw.sink.Get(k); !ok || r.Deleted {
			t.Errorf("%s/%s: an update event of a removed record deleted it (held %t)", k.Kind, k.VendorID, ok)
		}
		stillLive++
		delete(gone, k)
	}
	if stillLive == 0 {
		t.Errorf("no removed record was named by an update event: the check did not run")
	}
	announced := 0
	for k := range gone {
		if named(dels)[k.Kind][k.VendorID] {
			announced++
		}
	}
	tombstoned := hw.requireGoneAsAnnounced("after the deletions", gone, dels)
	// A record the vendor still serves with its deleted marker is stored
	// as served: deleted by the vendor's marker.
	entities := map[model.Kind]bool{}
	for _, e := range hw.wh.Kinds {
		entities[e] = true
	}
	for _, x := range hw.env.Expected() {
		if !x.Deleted || !entities[x.Kind] {
			continue
		}
		r, ok := hw.sink.Get(model.Key{Company: Company, Vendor: hw.vendor, Kind: x.Kind, VendorID: x.VendorID})
		if ok && r.Deleted && r.DeletedVia != "" && r.DeletedVia != model.DeletedByVendor {
			t.Errorf("%s/%s is served with the vendor's deleted marker, stored as deleted via %q", x.Kind, x.VendorID, r.DeletedVia)
		}
	}
	hw.requireCurrent("after the deletions")
	t.Logf("%d records gone from the ERP: %d named by an event, %d tombstoned by their events, the rest left to reconciliation", len(gone), announced, tombstoned)
}

// webhookRetryDisable: while the receiver answers 500 every delivery is
// attempted per the vendor's policy (1 + len(Retries) times, the same
// body) and, where the vendor disables subscriptions, the subscription is
// disabled after DisableAfter failed deliveries and delivers nothing more;
// answering 200 again and switching it back on (as a re-registration
// does) delivers new changes again, and the next poll brings what was
// lost.
func webhookRetryDisable(t testing.TB, h Harness) {
	hw := startHooks(t, h, 77)
	pol := hw.del.Policy()
	attempts := 1 + len(pol.Retries)
	k := hw.kinds[0]
	hw.rcv.status.Store(http.StatusInternalServerError)
	rounds := pol.DisableAfter
	if rounds <= 0 {
		rounds = 2
	}
	s := hw.del.Stats()
	for i := 1; i <= rounds && !hw.del.Disabled(); i++ {
		m := hw.mark()
		failed, delivered := s.Failed.Load(), s.Delivered.Load()
		hw.edit(k, hw.pick(k))
		hw.settle(fmt.Sprintf("failing delivery %d", i))
		got := hw.rcv.since(m.rcv)
		nf := int(s.Failed.Load() - failed)
		if nf == 0 || s.Delivered.Load() != delivered {
			t.Fatalf("round %d: a receiver answering 500 made %d deliveries fail and %d succeed", i, nf, s.Delivered.Load()-delivered)
		}
		if len(got) != nf*attempts {
			t.Errorf("round %d: %d failed deliveries were attempted %d times, want %d each (1 + %d retries)", i, nf, len(got), attempts, len(pol.Retries))
		}
		for j := 0; j+attempts <= len(got); j += attempts {
			for _, d := range got[j+1 : j+attempts] {
				if string(d.body) != string(got[j].body) {
					t.Errorf("round %d: a retry sent another body than the delivery it repeats", i)
				}
			}
		}
		if pol.DisableAfter > 0 && s.Failed.Load() < int64(pol.DisableAfter) && hw.del.Disabled() {
			t.Errorf("the subscription was disabled after %d failed deliveries, the vendor's policy says %d", s.Failed.Load(), pol.DisableAfter)
		}
	}
	if pol.DisableAfter > 0 {
		if !hw.del.Disabled() {
			t.Fatalf("the subscription is still enabled after %d failed deliveries (DisableAfter %d)", s.Failed.Load(), pol.DisableAfter)
		}
		m := hw.mark()
		hw.edit(k, hw.pick(k))
		hw.settle("a change while disabled")
		if n := len(hw.rcv.since(m.rcv)); n != 0 {
			t.Errorf("a disabled subscription made %d delivery attempts", n)
		}
	} else if hw.del.Disabled() {
		t.Errorf("a vendor that never disables subscriptions (DisableAfter 0) disabled one")
	}
	// The receiver is back, and the subscription switched on again.
	hw.rcv.status.Store(http.StatusOK)
	hw.del.SetDisabled(false)
	m := hw.mark()
	hw.edit(k, hw.pick(k))
	changed, _ := hw.differing()
	evs := hw.await("a change after the receiver is back", m)
	hw.targeted("the change after the receiver is back", evs)
	n := named(evs)
	left, _ := hw.differing()
	for key := range changed {
		if n[key.Kind][key.VendorID] && left[key] {
			t.Errorf("%s/%s: delivered after the receiver came back, yet not current in the CRM", key.Kind, key.VendorID)
		}
	}
	// What the failed deliveries did not bring, the poll does.
	hw.clock.Advance(time.Minute)
	hw.run("the poll after the failures", engine.Run{})
	hw.requireEqual("after the poll")
	t.Logf("policy: %d attempts per delivery, disable after %d; %s", attempts, pol.DisableAfter, hw.stats())
}
