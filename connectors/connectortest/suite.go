package connectortest

import (
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/internal/engine"
)

// scenario is one subtest of Run.
type scenario struct {
	name string
	run  func(t *testing.T, h Harness)
}

// scenarios lists every scenario Run plays, in order.
func scenarios() []scenario {
	return []scenario{
		{"FullImport", fullImport},
		{"Incremental", incremental},
		{"FullResyncRepairs", fullResyncRepairs},
		{"EditsDuringPass", editsDuringPass},
		{"UnstableOrder", unstableOrder},
		{"Ties", ties},
		{"ClockAhead", clockSkew(7 * time.Minute)},
		{"ClockBehind", clockSkew(-7 * time.Minute)},
		{"CrashEveryPage", crashEveryPage},
		{"CrashMidBatch", crashMidBatch},
		{"CrashWhileWaiting", crashWhileWaiting},
		{"LongImport", longImport},
		{"SetAside", setAside},
		{"ThrottlingStorm", throttlingStorm},
		{"ServerErrors", serverErrors},
		{"MalformedPage", malformedPage},
		{"Unauthorized", unauthorized},
		{"Cancellation", cancellation},
		{"IDListing", idListing},
		{"HardDeletes", hardDeletes},
		{"ChildrenRemoved", childrenRemoved},
		{"FullReadShrinks", fullReadShrinks},
		{"TruncatedListing", truncatedListing},
		{"Drift", drift},
	}
}

// Run plays every scenario against h, each as a subtest with its own
// simulator, fake clock (the connector's rate-limit waits advance the clock
// the simulator meters and stamps with), memory CRM and sync state, through
// the real engine (engine.Execute). Subtests may be selected with
// -run 'TestScenarios/Name'. The scenarios:
//
//   - FullImport: a first import equals the ERP, every kind; a second full
//     read of unchanged data upserts nothing.
//   - Incremental: after a few touched products, customers and orders, an
//     incremental run reads only changes (two requests per incremental
//     entity, the import's pages for the others) and the CRM equals the ERP.
//   - FullResyncRepairs: content changed without a new modified time is
//     repaired by a full resync.
//   - EditsDuringPass: every page read moves the oldest products to the end
//     of a modified-ordered list, touches a customer and an order, adds a
//     product and, early on, removes products already served; after the
//     import and one incremental run the CRM equals the ERP.
//   - UnstableOrder: every list request is served in a fresh order; within
//     six runs the CRM equals the ERP, an entity the engine reports
//     incomplete keeps its watermark, and one it accepts lacks no record.
//   - Ties: three pages of products share one modified second, before the
//     import and inside an incremental window.
//   - ClockAhead, ClockBehind: the vendor's clock is 7 minutes off ours.
//   - CrashEveryPage: the import is killed at every page boundary (each
//     run reads one page; a stopped run must write it) and resumed by a
//     restarted manager (fresh connector and registry over one quota
//     store) from the state the killed run returned; requests stay
//     within a clean import's plus, per crash, one page and the restart's
//     setup requests; nothing is throttled.
//   - CrashMidBatch: killed inside a sink write; resumed; requests within a
//     clean import's plus the pages of one batch.
//   - CrashWhileWaiting: killed while the HTTP layer waits on the minute
//     limit (a Retry-After of 30 s for a vendor without one), in the middle
//     of the largest entity;
//     resumed from the last checkpoint (what a kill leaves) by a restarted
//     manager that must not be throttled; requests within a clean import's
//     plus one page.
//   - LongImport: runs cut every few pages, an interval apart, one failing
//     with 500s, each skipping what finished since the first began: the
//     import completes, no finished entity is read again.
//   - SetAside (where Env.SetAside is set): an unknown document is set
//     aside with reason and raw document, counted, and kept aside by the
//     next run; the rest lands.
//   - ThrottlingStorm, ServerErrors, MalformedPage, Unauthorized,
//     Cancellation: the faults and their error kinds.
//
// For a vendor whose Env sets Webhooks, the webhook scenarios follow
// (webhooks.go). Each imports a dataset, subscribes the simulator to a
// receiver that keeps the raw deliveries, checks and decodes them with the
// vendor's codec as the manager's receiver does (Parse first where it
// routes by tenant, at the time each delivery arrived), reads the events'
// documents with engine.Targeted through the world's connector and sink,
// and compares the CRM with the ERP in the kinds the announced entities'
// streams emit (other kinds, such as stock read from its own list, wait
// for the poll):
//
//   - WebhookEdit: a record of every announced kind edited, one created,
//     one marked deleted: every change is delivered, authentic, and named
//     (entity and id); one targeted sync makes the CRM equal the ERP at
//     two vendor calls per document at most.
//   - WebhookBadSignature: a body changed after signing (where the
//     signature covers the body; a fixed credential such as Cin7 Core's
//     cannot), a wrong key, the signature headers removed, another
//     delivery's signature: Verify fails with
//     connectors.ErrWebhookSignature and nothing is read or written;
//     hostile bodies never make Parse panic.
//   - WebhookDuplicate: every delivery received twice costs no extra read
//     in one sync; duplicates after the sync cost at most one more read of
//     their documents and write nothing; old deliveries replayed after
//     later edits (at once, and past a replay window) are refused as
//     replays or read, and leave the CRM current.
//   - WebhookOutOfOrder: the events processed newest first, one sync
//     each, updates after deletes of the same record included: the CRM
//     ends equal to the ERP (reads are of the current state).
//   - WebhookStorm: 200 edits over a few records of each kind and a burst
//     over many: every delivery arrives, and one targeted sync reads by id
//     at most ceil(distinct/MaxDocsPerRead)+1 times per entity, at two
//     vendor calls per document at most.
//   - WebhookDelete: a record marked deleted is stored as the vendor
//     serves it; a removed one is a tombstone via the webhook only if its
//     event said deleted (a vendor may send no event for it); an update
//     event for a record removed since deletes nothing.
//   - WebhookRetryDisable: while the receiver answers 500 each delivery is
//     attempted 1+len(Retries) times with the same body and, where the
//     vendor disables subscriptions, it is disabled after DisableAfter
//     failed deliveries and sends nothing more; with the receiver back and
//     the subscription switched on, changes arrive again and the next
//     poll brings what the failed deliveries lost.
//
// Deliveries are awaited with a bounded poll of the Deliverer (Pending)
// and the receiver; a harness's Deliverer must wait its retries on the
// world's fake clock, so each vendor's webhook scenarios take seconds.
func Run(t *testing.T, h Harness) {
	t.Helper()
	all := scenarios()
	if hasWebhooks(t, h) {
		all = append(all, webhookScenarios()...)
	}
	for _, s := range all {
		t.Run(s.name, func(t *testing.T) { s.run(t, h) })
	}
}

func normCaps(c Caps) Caps {
	if c.PageSize <= 0 {
		c.PageSize = 100
	}
	if c.ModifiedPrecision <= 0 {
		c.ModifiedPrecision = time.Millisecond
	}
	if c.Throttle == 0 {
		c.Throttle = 429
	}
	return c
}

// dataset sizes a dataset to span pages product pages (at least two), with
// customers and orders of a page and a quarter each.
func dataset(c Caps, seed uint64, pages float64) simkit.Options {
	ps := c.PageSize
	return simkit.Options{
		Seed:      seed,
		Products:  max(2*ps+1, int(pages*float64(ps))),
		Customers: ps + ps/4,
		Orders:    ps + ps/4,
	}
}

// probeCaps reads the harness's capabilities from a tiny simulator.
func probeCaps(t *testing.T, h Harness) Caps {
	t.Helper()
	return normCaps(newWorld(t, h, simkit.Options{Seed: 1, Products: 3, Customers: 2, Orders: 2}).env.Caps)
}

// start starts a world sized to pages product pages (the page size comes
// from a tiny probe simulator: the Env carries it).
func start(t *testing.T, h Harness, seed uint64, pages float64) (*world, Caps) {
	t.Helper()
	c := probeCaps(t, h)
	return newWorld(t, h, dataset(c, seed, pages)), c
}

// fullImport: a first import puts every record of every kind in the CRM.
func fullImport(t *testing.T, h Harness) {
	w, _ := start(t, h, 11, 3.5)
	res := w.mustRun("import", engine.Run{})
	if !res.Full {
		t.Errorf("a first import reported Full=false")
	}
	if len(res.Incomplete) > 0 {
		t.Errorf("a first import over a stable list left %v incomplete", res.Incomplete)
	}
	w.requireEqual("after the import")
	// Every kind the CRM now holds must be described by the harness, or
	// the comparisons of every scenario would not see its losses.
	described := map[model.Kind]bool{}
	for _, x := range w.env.Expected() {
		described[x.Kind] = true
	}
	held := map[model.Kind]int{}
	for _, r := range w.sink.Records() {
		held[r.Kind]++
	}
	for k, n := range held {
		if !described[k] {
			t.Errorf("the import wrote %d records of kind %s that the harness's Expected does not describe", n, k)
		}
	}
	for _, e := range w.conn.Entities() {
		st, ok := w.entityState(e.Name)
		if !ok || st.Resume != nil || st.LastCompleted.IsZero() {
			t.Errorf("entity %s did not complete its pass: %+v", e.Name, st)
		}
		if e.Incremental && st.Watermark.IsZero() {
			t.Errorf("entity %s is incremental but has no watermark after the import", e.Name)
		}
	}
	// A second import of the same data changes nothing: equal content is
	// skipped by the sink, never rewritten.
	res = w.mustRun("second import", engine.Run{Full: true})
	if res.Upserted != 0 {
		t.Errorf("a full resync of unchanged data upserted %d records, want 0", res.Upserted)
	}
	w.requireEqual("after the second import")
}

// incremental: after touching a few products, customers and orders, an
// incremental run reads only the changes, in a bounded number of calls.
func incremental(t *testing.T, h Harness) {
	w, _ := start(t, h, 12, 2.5)
	imp := newPageLog()
	w.mustRun("import", engine.Run{Connector: &hooked{inner: w.conn, log: imp}})
	w.requireEqual("after the import")

	w.clock.Advance(5 * time.Minute)
	w.env.Data.TouchProducts(3)
	w.env.Data.TouchCustomers(3)
	w.env.Data.TouchOrders(3)
	w.clock.Advance(time.Minute)

	// Bound: an incremental entity reads its changes in one page (two
	// allowed, for a connector that confirms the end with an empty page);
	// an entity without a modified-since filter is read in full again, as
	// many pages as it took in the import. No fault is injected, so every
	// request is a page.
	budget := 0
	for _, e := range w.conn.Entities() {
		if e.Incremental {
			budget += 2
		} else {
			budget += max(1, imp.pages[e.Name])
		}
	}
	before := w.requests()
	inc := newPageLog()
	res := w.mustRun("incremental", engine.Run{Connector: &hooked{inner: w.conn, log: inc}})
	got := int(w.requests() - before)
	if res.Full {
		t.Errorf("the run after an import reported Full=true")
	}
	if got > budget {
		t.Errorf("the incremental run sent %d requests, want at most %d (pages per entity %v)", got, budget, inc.pages)
	}
	for _, e := range w.conn.Entities() {
		if !e.Incremental {
			continue
		}
		if imported, n := imp.pages[e.Name], inc.pages[e.Name]; imported > 2 && n >= imported {
			t.Errorf("entity %s read %d pages incrementally, as many as the import (%d)", e.Name, n, imported)
		}
	}
	w.requireEqual("after the incremental run")
}

// fullResyncRepairs: a change the vendor did not stamp (equal modified
// time, different content) is invisible to incremental runs, and a full
// resync repairs it: the sink writes equal-time records whose content
// differs.
func fullResyncRepairs(t *testing.T, h Harness) {
	w, _ := start(t, h, 27, 2.5)
	w.mustRun("import", engine.Run{})
	w.env.Data.Update(func(d *simkit.Dataset) {
		for i, p := range d.Products {
			if i%7 == 0 && !p.Deleted {
				p.Name += " (renamed quietly)"
				p.SellPrice = "4.56"
			}
		}
	})
	w.clock.Advance(time.Minute)
	res := w.mustRun("full resync", engine.Run{Full: true})
	if res.Upserted == 0 {
		t.Errorf("a full resync after unstamped changes upserted nothing")
	}
	w.requireEqual("after a full resync over unstamped changes")
}
