package connectortest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/internal/engine"
)

// ---- edits during a pass ----

// editor changes the dataset from a page hook, the way users keep working
// while an import runs: every page moves the oldest products to the end of
// a modified-ordered list and touches a customer and an order; product
// pages also add a product and, on the first pages, remove products that
// any of the vendors' orders (modified, creation ascending, creation
// descending) has already served.
type editor struct {
	w        *world
	step     time.Duration
	pages    int
	removals int
	// maxRemovals bounds the product pages that remove products.
	maxRemovals int
	added       int
	removed     []string
}

func (e *editor) after(_ context.Context, req connectors.PageRequest, p *connectors.Page) {
	d := e.w.env.Data
	e.pages++
	e.w.clock.Advance(e.step)
	d.EditOldest(2)
	d.TouchCustomers(1)
	d.TouchOrders(1)
	if req.Entity != model.KindProduct {
		return
	}
	if e.removals < e.maxRemovals {
		e.removals++
		e.removed = append(e.removed, removeServedFirst(d)...)
	}
	d.AddProduct()
	e.added++
}

// removeServedFirst removes the products a list serves first in each of
// the vendors' orders: the oldest modified, the lowest and the highest
// creation sequence. Whatever the vendor's order, one of them is before
// its cursor once the first page was read.
func removeServedFirst(d *simkit.Dataset) []string {
	var ids []string
	for _, pick := range []func(a, b *simkit.Product) bool{
		func(a, b *simkit.Product) bool { return a.Modified.Before(b.Modified) },
		func(a, b *simkit.Product) bool { return a.Seq < b.Seq },
		func(a, b *simkit.Product) bool { return a.Seq > b.Seq },
	} {
		at := -1
		d.View(func(d *simkit.Dataset) {
			for i, p := range d.Products {
				if at < 0 || pick(p, d.Products[at]) {
					at = i
				}
			}
		})
		if at >= 0 {
			ids = append(ids, d.RemoveProducts(at, 1)...)
		}
	}
	return ids
}

// editsDuringPass: records edited, created and removed while the import
// pages; after it and one incremental run the CRM equals the ERP.
func editsDuringPass(t *testing.T, h Harness) {
	w, c := start(t, h, 13, 3.5)
	// One edit per page at the vendor's precision or coarser, so that
	// every edit has a modified time of its own.
	ed := &editor{w: w, step: max(time.Second, c.ModifiedPrecision), maxRemovals: 2}
	res := w.mustRun("import with edits", engine.Run{Connector: &hooked{inner: w.conn, after: ed.after}})
	t.Logf("import: %d pages edited, %d products added, %d removed, %d calls, incomplete %v", ed.pages, ed.added, len(ed.removed), res.Calls, res.Incomplete)
	w.clock.Advance(time.Minute)
	w.mustRun("incremental after the import", engine.Run{})
	w.requireEqual("after the import with edits and one incremental run")
}

// ---- unstable order ----

// unstableOrder: every list request comes back in a fresh order. The
// import (and, while the engine reports an entity incomplete, a bounded
// number of further runs) lands every record, and an entity whose pass was
// incomplete keeps its watermark.
func unstableOrder(t *testing.T, h Harness) {
	w, _ := start(t, h, 14, 2.5)
	w.env.Base.SetUnstable(true)
	const maxRuns = 6
	for run := 1; ; run++ {
		before := map[model.Kind]time.Time{}
		for _, s := range w.state {
			before[s.Name] = s.Watermark
		}
		res := w.mustRun(fmt.Sprintf("run %d over an unstable order", run), engine.Run{})
		for _, k := range res.Incomplete {
			st, _ := w.entityState(k)
			if !st.Watermark.Equal(before[k]) {
				t.Errorf("run %d: entity %s was incomplete but moved its watermark from %v to %v", run, k, before[k], st.Watermark)
			}
			if st.Incomplete == "" {
				t.Errorf("run %d: entity %s is in Result.Incomplete but its state does not say why", run, k)
			}
		}
		// An entity the engine accepted as complete must hold every record
		// of its kind: accepting a short pass advances the watermark past
		// what it missed, for good.
		d := w.diff()
		for _, e := range w.conn.Entities() {
			if slices.Contains(res.Incomplete, e.Name) {
				continue
			}
			if lost := lostOfKind(w, e.Name); len(lost) > 0 {
				t.Fatalf("run %d: entity %s completed (watermark advanced) but %d of its records are missing, e.g. %v", run, e.Name, len(lost), lost[:min(3, len(lost))])
			}
		}
		if d.OK() {
			t.Logf("equal after %d runs (still incomplete: %v)", run, res.Incomplete)
			return
		}
		if run == maxRuns {
			t.Fatalf("after %d runs over an unstable order: %s; incomplete %v", run, d, res.Incomplete)
		}
		w.clock.Advance(time.Minute)
	}
}

// lostOfKind lists the wanted records of kind k the CRM lacks.
func lostOfKind(w *world, k model.Kind) []string {
	var lost []string
	for _, x := range w.env.Expected() {
		if x.Kind != k {
			continue
		}
		if _, ok := w.sink.Get(model.Key{Company: Company, Vendor: w.vendor, Kind: k, VendorID: x.VendorID}); !ok {
			lost = append(lost, x.VendorID)
		}
	}
	return lost
}

// ---- ties ----

// ties: three pages of products share one modified time, before the import
// and again, at the present, before an incremental run.
func ties(t *testing.T, h Harness) {
	w, c := start(t, h, 15, 3.5)
	past := Start.Add(-30 * 24 * time.Hour).Truncate(time.Second)
	w.env.Data.TieModified(3*c.PageSize, past)
	ed := &editor{w: w, step: 0}
	w.mustRun("import over ties", engine.Run{Connector: &hooked{inner: w.conn, after: ed.after}})
	w.clock.Advance(time.Minute)
	w.mustRun("incremental after the import", engine.Run{})
	w.requireEqual("after the import over ties")

	// Ties inside an incremental window: three pages changed in one second.
	w.clock.Advance(time.Minute)
	now := w.env.Base.Now().Truncate(time.Second)
	w.env.Data.Update(func(d *simkit.Dataset) {
		for i, p := range d.Products {
			if i >= 3*c.PageSize {
				break
			}
			p.Name = fmt.Sprintf("%s (tied)", p.Name)
			p.SellPrice = "1.00"
		}
	})
	w.env.Data.TieModified(3*c.PageSize, now)
	w.clock.Advance(time.Minute)
	w.mustRun("incremental over ties", engine.Run{})
	w.requireEqual("after the incremental run over three pages of ties")
}

// ---- clock skew ----

// clockSkew: the vendor's clock runs minutes ahead of or behind ours.
func clockSkew(skew time.Duration) func(t *testing.T, h Harness) {
	return func(t *testing.T, h Harness) {
		w, _ := start(t, h, 16, 2.5)
		w.env.Base.SetSkew(skew)
		ed := &editor{w: w, step: time.Second}
		w.mustRun("import", engine.Run{Connector: &hooked{inner: w.conn, after: ed.after}})
		w.clock.Advance(30 * time.Second)
		w.env.Data.TouchProducts(3)
		w.env.Data.TouchCustomers(3)
		w.env.Data.TouchOrders(3)
		w.clock.Advance(30 * time.Second)
		w.mustRun("incremental", engine.Run{})
		w.requireEqual(fmt.Sprintf("with the vendor's clock %v off ours", skew))
	}
}

// ---- crashes ----

// cleanImport runs a clean import of an identical fresh dataset in a world
// of its own and returns its request count, the pages it read and the
// requests a fresh connector spends beyond its pages (reference lookups,
// token exchanges: the cost of a restart).
func cleanImport(t *testing.T, h Harness, ds simkit.Options) (requests int64, pages *pageLog, setup int64) {
	t.Helper()
	c := newWorld(t, h, ds)
	pages = newPageLog()
	c.mustRun("clean import", engine.Run{Connector: &hooked{inner: c.conn, log: pages}})
	requests = c.requests()
	var pageCalls int64
	for _, n := range pages.calls {
		pageCalls += int64(n)
	}
	return requests, pages, max(0, requests-pageCalls)
}

// crashEveryPage: the import is killed at every page boundary (each run
// reads one page and dies before the next request), resumed each time by
// a restarted manager from the state the killed run returned.
func crashEveryPage(t *testing.T, h Harness) {
	w, c := start(t, h, 17, 2.5)
	ds := dataset(c, 17, 2.5)
	cleanReq, cleanPages, setup := cleanImport(t, h, ds)
	first := w.clock.Now()
	maxRuns := 2*cleanPages.total() + 5
	crashes := 0
	for run := 1; ; run++ {
		if run > maxRuns {
			t.Fatalf("the import did not complete in %d runs killed one page in (a clean import reads %d pages); the state left: %s", maxRuns, cleanPages.total(), describeState(w.state))
		}
		if run > 1 {
			w.restart()
		}
		ctx, cancel := context.WithCancel(context.Background())
		n := 0
		conn := &hooked{inner: w.conn, before: func(ctx context.Context, _ connectors.PageRequest) error {
			if n++; n == 2 {
				cancel()
				return ctx.Err()
			}
			return nil
		}}
		// The default batch: the page read before the kill is in a batch
		// not yet written, which a stopped run must still write (a stop at
		// a page boundary costs no page).
		_, err := w.exec(ctx, engine.Run{Connector: conn, SkipCompletedSince: first})
		cancel()
		if err == nil {
			break
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("run %d: a cancelled run failed with %v, want a context error", run, err)
		}
		crashes++
	}
	w.requireEqual(fmt.Sprintf("after an import killed %d times", crashes))
	got := w.requests()
	// Each crash happens before a request is sent; its restart costs the
	// fresh connector's setup requests, and one page is allowed as slack.
	limit := cleanReq + int64(crashes)*(setup+int64(cleanPages.maxCalls))
	t.Logf("%d crashes: %d requests, clean import %d, setup per restart %d", crashes, got, cleanReq, setup)
	if got > limit {
		t.Errorf("an import killed %d times sent %d requests, want at most %d (clean %d + per crash one page of %d and setup %d)", crashes, got, limit, cleanReq, cleanPages.maxCalls, setup)
	}
	if th := w.env.Base.Stats().Throttled.Load(); th != 0 {
		t.Errorf("restarted managers were throttled %d times: the minute windows did not survive the restarts", th)
	}
}

// crashMidBatch: the context is cancelled inside a sink write, the way a
// process dies while the CRM is being written; the batch is not stored.
func crashMidBatch(t *testing.T, h Harness) {
	w, c := start(t, h, 18, 3)
	ds := dataset(c, 18, 3)
	cleanReq, cleanPages, setup := cleanImport(t, h, ds)
	ctx, cancel := context.WithCancel(context.Background())
	sink := &cancellingSink{Sink: w.sink, at: 2, cancel: cancel}
	first := w.clock.Now()
	_, err := w.exec(ctx, engine.Run{Sink: sink})
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("a run cancelled inside a sink write ended with %v, want a context error", err)
	}
	w.restart()
	w.mustRun("resumed import", engine.Run{SkipCompletedSince: first})
	w.requireEqual("after a crash mid-batch")
	// The crash costs the pages of the unwritten batch and the one being
	// read, plus a restart's setup.
	pages := int64((engine.DefaultBatchSize+c.PageSize-1)/c.PageSize + 1)
	limit := cleanReq + pages*int64(cleanPages.maxCalls) + setup
	if got := w.requests(); got > limit {
		t.Errorf("an import killed mid-batch sent %d requests, want at most %d (clean %d + %d pages + setup %d)", got, limit, cleanReq, pages, setup)
	}
}

// crashWhileWaiting: the import is killed while the HTTP layer waits on
// the vendor's minute limit (or, for a vendor without one, on a
// Retry-After). The engine must have saved the pages read
// before the wait (the state a kill leaves is the last checkpoint), and the
// restarted manager, sharing the quota store, must not burst past the
// limit.
func crashWhileWaiting(t *testing.T, h Harness) {
	w, c := start(t, h, 19, 2.5)
	cleanReq, pages, setup := cleanImport(t, h, dataset(c, 19, 2.5))
	// The wait is to come in the middle of the largest entity, with pages
	// read and not yet saved.
	target := setup
	var largest model.Kind
	for _, e := range pages.order {
		if largest == "" || pages.pages[e] > pages.pages[largest] {
			largest = e
		}
	}
	mid := max(2, pages.pages[largest]/2)
	for _, e := range pages.order {
		if e == largest {
			target += int64(mid)
			break
		}
		target += int64(pages.calls[e])
	}
	var throttle func(context.Context, connectors.PageRequest) error
	if c.MinuteLimit > 0 {
		// Spend part of the minute's allowance with single page reads
		// through the same limiter, so that the import must wait there.
		warm := int64(c.MinuteLimit) - target
		first0 := w.conn.Entities()[0].Name
		for spent := int64(0); spent < warm; {
			p, err := w.conn.ListPage(context.Background(), connectors.PageRequest{Entity: first0, Page: 1})
			if err != nil {
				t.Fatalf("warm-up read of %s: %v", first0, err)
			}
			spent += int64(max(1, p.Calls))
		}
		t.Logf("a clean import sends %d requests (%d setup); %d spent so that the minute limit's wait comes at %s page %d", cleanReq, setup, max(0, warm), largest, mid)
	} else {
		// No minute limit: the vendor throttles that page with a
		// Retry-After the HTTP layer must wait out.
		injected := false
		throttle = func(_ context.Context, req connectors.PageRequest) error {
			if !injected && req.Entity == largest && req.Page == mid {
				injected = true
				w.env.Base.Faults().Inject(simkit.Fault{Kind: simkit.FaultStatus, Status: c.Throttle, RetryAfter: 30})
			}
			return nil
		}
		t.Logf("%s has no minute limit: a Retry-After of 30 s at %s page %d is the wait", w.vendor, largest, mid)
	}
	waited := false
	var saved []engine.EntityState
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	slept := w.clock.Slept()
	conn := &hooked{inner: w.conn, before: throttle, wrapCtx: func(ctx context.Context) context.Context {
		outer := ctx
		return connectors.WithWaitHook(ctx, func(hctx context.Context, d time.Duration) {
			connectors.BeforeWait(outer, d) // the engine's hook: it saves first
			waited = true
			cancel()
		})
	}}
	first := w.clock.Now()
	before := w.requests()
	_, err := w.exec(ctx, engine.Run{Connector: conn, Checkpoint: func(_ context.Context, st []engine.EntityState, _ engine.Progress) error {
		saved = cloneState(st)
		return nil
	}})
	if !waited {
		if w.clock.Slept() > slept {
			t.Fatalf("the HTTP layer slept %v without calling connectors.BeforeWait: the engine cannot save before a wait", w.clock.Slept()-slept)
		}
		t.Fatalf("the import never waited (minute limit %d; err %v; it sent %d requests)", c.MinuteLimit, err, w.requests()-before)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("a run killed during a wait ended with %v, want a context error", err)
	}
	// A kill keeps only what was checkpointed.
	w.state = saved
	w.restart()
	throttled := w.env.Base.Stats().Throttled.Load()
	w.mustRun("import resumed by a restarted manager", engine.Run{SkipCompletedSince: first})
	if th := w.env.Base.Stats().Throttled.Load() - throttled; th != 0 {
		t.Errorf("the restarted manager was throttled %d times: it burst past the minute limit of %d", th, c.MinuteLimit)
	}
	w.requireEqual("after a crash during a rate-limit wait")
	got := w.requests() - before
	// The page being read when the kill came is read again (it may have
	// been sent, for a Retry-After wait), and the restart costs its setup.
	limit := cleanReq + int64(max(1, pages.maxCalls)) + setup
	if got > limit {
		t.Errorf("the import killed during a wait and resumed sent %d requests, want at most %d (a clean import sends %d): the pages read before the wait were not saved", got, limit, cleanReq)
	}
}

// describeState summarises a sync state for a failure message.
func describeState(st []engine.EntityState) string {
	var parts []string
	for _, s := range st {
		p := string(s.Name) + ":"
		if s.Resume != nil {
			p += fmt.Sprintf(" resume page %d (records %d, distinct %d of %d, repeats %d)", s.Resume.Page, s.Resume.Records, s.Resume.Distinct, s.Resume.Total, s.Resume.Repeats)
		}
		if !s.LastCompleted.IsZero() {
			p += " completed"
		}
		if s.Incomplete != "" {
			p += " incomplete"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ")
}

func cloneState(in []engine.EntityState) []engine.EntityState {
	out := make([]engine.EntityState, len(in))
	for i, s := range in {
		if s.Resume != nil {
			cp := *s.Resume
			s.Resume = &cp
		}
		s.SetAsideIDs = slices.Clone(s.SetAsideIDs)
		out[i] = s
	}
	return out
}

// ---- an import longer than the routine timeout ----

// longImport: each run is cut after a few pages (the routine timeout),
// an interval passes, one run fails with server errors; every next run
// skips what finished since the first run's start. The import completes,
// no entity that finished is read again, and the CRM equals the ERP.
func longImport(t *testing.T, h Harness) {
	_, c := start(t, h, 20, 2)
	// Each run reads three pages (less than a batch for small pages: a
	// stopped run must write what it read).
	const perRun = 3
	ds := dataset(c, 20, max(3, 600/float64(c.PageSize)))
	w := newWorld(t, h, ds)
	_, cleanPages, _ := cleanImport(t, h, ds)
	first := w.clock.Now()
	finished := map[model.Kind]int{} // entity -> run it finished in
	maxRuns := cleanPages.total()/perRun*2 + len(cleanPages.entities()) + 4
	for run := 1; ; run++ {
		if run > maxRuns {
			t.Fatalf("the import did not complete in %d runs of %d pages (a clean import reads %d pages); the state left: %s", maxRuns, perRun, cleanPages.total(), describeState(w.state))
		}
		if run > 1 {
			w.clock.Advance(15 * time.Minute)
			w.env.Data.TouchProducts(2)
			w.env.Data.TouchCustomers(1)
			w.restart()
		}
		if run == 3 {
			w.env.Base.Faults().Inject(simkit.Fault{Kind: simkit.FaultStatus, Status: 500, Count: 50})
		}
		ctx, cancel := context.WithCancel(context.Background())
		n := 0
		log := newPageLog()
		conn := &hooked{inner: w.conn, log: log, before: func(ctx context.Context, _ connectors.PageRequest) error {
			if n++; n > perRun {
				cancel()
				return ctx.Err()
			}
			return nil
		}}
		_, err := w.exec(ctx, engine.Run{Connector: conn, SkipCompletedSince: first})
		cancel()
		w.env.Base.Faults().Clear()
		for _, e := range log.entities() {
			if at, ok := finished[e]; ok {
				t.Errorf("run %d read entity %s again, which had finished in run %d", run, e, at)
			}
		}
		for _, s := range w.state {
			if _, ok := finished[s.Name]; !ok && s.Resume == nil && !s.LastCompleted.Before(first) {
				finished[s.Name] = run
			}
		}
		if err == nil {
			t.Logf("the import completed in %d runs", run)
			break
		}
		if run == 3 {
			if k := connectors.KindOf(err); k != connectors.KindERPUnavailable {
				t.Errorf("a run against a vendor answering 500 failed with %v (kind %q), want %s", err, k, connectors.KindERPUnavailable)
			}
			continue
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("run %d: %v", run, err)
		}
	}
	w.clock.Advance(time.Minute)
	w.mustRun("incremental after the import", engine.Run{})
	w.requireEqual("after an import cut into many runs")
}

// ---- set aside ----

// setAside: a document the mapping cannot know is set aside with its
// reason and raw document; the rest of the stream lands.
func setAside(t *testing.T, h Harness) {
	w, _ := start(t, h, 21, 2.5)
	if w.env.SetAside == nil {
		t.Skipf("%s: the harness says the vendor's documents allow no document the mapping cannot know (Env.SetAside is nil)", w.vendor)
	}
	kind, id := w.env.SetAside()
	res := w.mustRun("import with a document the mapping does not know", engine.Run{})
	if res.SetAside < 1 {
		t.Errorf("Result.SetAside = %d, want at least 1", res.SetAside)
	}
	checkAside := func(what string) {
		t.Helper()
		var found *model.SetAside
		for _, it := range w.sink.SetAsideItems() {
			if it.Kind == kind && it.VendorID == id && it.Company == Company && it.Vendor == w.vendor {
				found = &it
			}
		}
		if found == nil {
			t.Fatalf("%s: the CRM holds no set-aside %s/%s (it holds %d set-aside documents)", what, kind, id, len(w.sink.SetAsideItems()))
		}
		if strings.TrimSpace(found.Reason) == "" || len(found.Raw) == 0 {
			t.Errorf("%s: set-aside %s/%s has reason %q and %d bytes of raw document; want both", what, kind, id, found.Reason, len(found.Raw))
		}
		counted := false
		for _, e := range w.conn.Entities() {
			if e.Name != kind && !slices.Contains(e.Also, kind) {
				continue
			}
			if st, _ := w.entityState(e.Name); st.SetAside >= 1 {
				counted = true
			}
		}
		if !counted {
			t.Errorf("%s: no entity emitting %s counts the set-aside document in its state", what, kind)
		}
	}
	checkAside("after the import")
	want := slices.DeleteFunc(w.env.Expected(), func(x Want) bool { return x.Kind == kind && x.VendorID == id })
	if d := Compare(w.sink, w.vendor, want); !d.OK() {
		t.Fatalf("the rest of the stream did not land: %s", d)
	}
	// Later syncs read it again and keep it aside, without failing.
	w.clock.Advance(time.Minute)
	w.mustRun("incremental with the document still unknown", engine.Run{})
	checkAside("after the next incremental run")
}

// ---- faults ----

// throttlingStorm: 429s with Retry-After and 503s all through the import.
func throttlingStorm(t *testing.T, h Harness) {
	w, c := start(t, h, 22, 2.5)
	injected := 0
	conn := &hooked{inner: w.conn, after: func(context.Context, connectors.PageRequest, *connectors.Page) {
		if injected >= 12 {
			return
		}
		injected++
		if injected%2 == 1 {
			w.env.Base.Faults().Inject(simkit.Fault{Kind: simkit.FaultStatus, Status: c.Throttle, RetryAfter: 3})
		} else {
			w.env.Base.Faults().Inject(simkit.Fault{Kind: simkit.FaultStatus, Status: 503, RetryAfter: 1})
		}
	}}
	slept := w.clock.Slept()
	w.mustRun("import through a throttling storm", engine.Run{Connector: conn})
	w.requireEqual("after a throttling storm")
	if got := w.env.Base.Stats().Faults.Load(); got < int64(injected)-1 {
		t.Errorf("the simulator served %d of %d injected throttling answers", got, injected)
	}
	// Every throttle asked for 3 s: the client must have waited for them.
	if waited, want := w.clock.Slept()-slept, time.Duration(injected/2)*3*time.Second; waited < want {
		t.Errorf("the client waited %v through %d throttling answers asking for 3 s each, want at least %v", waited, injected/2, want)
	}
}

// serverErrors: scattered 5xx answers and dropped connections are retried;
// a run of them fails the run as ERPUnavailable keeping the watermarks,
// and the next run succeeds.
func serverErrors(t *testing.T, h Harness) {
	w, _ := start(t, h, 23, 2.5)
	faults := []simkit.Fault{{Kind: simkit.FaultStatus, Status: 500}, {Kind: simkit.FaultStatus, Status: 502}, {Kind: simkit.FaultDrop}, {Kind: simkit.FaultStatus, Status: 504}}
	i := 0
	conn := &hooked{inner: w.conn, after: func(context.Context, connectors.PageRequest, *connectors.Page) {
		if i < len(faults) {
			w.env.Base.Faults().Inject(faults[i])
			i++
		}
	}}
	w.mustRun("import through scattered server errors", engine.Run{Connector: conn})
	w.requireEqual("after scattered server errors")

	w.clock.Advance(time.Minute)
	w.env.Data.TouchProducts(3)
	w.env.Data.TouchCustomers(2)
	before := watermarks(w.state)
	w.env.Base.Faults().Inject(simkit.Fault{Kind: simkit.FaultStatus, Status: 500, Count: 1000})
	_, err := w.exec(context.Background(), engine.Run{})
	w.env.Base.Faults().Clear()
	if k := connectors.KindOf(err); k != connectors.KindERPUnavailable {
		t.Fatalf("a run against a vendor answering only 500 ended with %v (kind %q), want %s", err, k, connectors.KindERPUnavailable)
	}
	if after := watermarks(w.state); !maps2Equal(before, after) {
		t.Errorf("a run that failed on its first entity moved watermarks: before %v, after %v", before, after)
	}
	w.clock.Advance(time.Minute)
	w.mustRun("run after the outage", engine.Run{})
	w.requireEqual("after the outage")
}

func watermarks(st []engine.EntityState) map[model.Kind]time.Time {
	out := map[model.Kind]time.Time{}
	for _, s := range st {
		out[s.Name] = s.Watermark
	}
	return out
}

func maps2Equal(a, b map[model.Kind]time.Time) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !b[k].Equal(v) {
			return false
		}
	}
	return true
}

// malformedPage: a page that is not a document fails the run as an invalid
// response naming the entity and page; the failed entity keeps its
// watermark; a later run succeeds.
func malformedPage(t *testing.T, h Harness) {
	w, _ := start(t, h, 24, 2.5)
	w.mustRun("import", engine.Run{})
	w.clock.Advance(time.Minute)
	w.env.Data.TouchProducts(2)
	before := watermarks(w.state)
	completed := map[model.Kind]time.Time{}
	for _, st := range w.state {
		completed[st.Name] = st.LastCompleted
	}
	w.clock.Advance(time.Second)
	var victim connectors.PageRequest
	injected, named := false, false
	conn := &hooked{inner: w.conn,
		before: func(_ context.Context, req connectors.PageRequest) error {
			if injected && !named {
				victim, named = req, true
			}
			return nil
		},
		after: func(context.Context, connectors.PageRequest, *connectors.Page) {
			if !injected {
				injected = true
				w.env.Base.Faults().Inject(simkit.Fault{Kind: simkit.FaultMalformed})
			}
		}}
	_, err := w.exec(context.Background(), engine.Run{Connector: conn})
	w.env.Base.Faults().Clear()
	if !named {
		t.Fatalf("the run read a single page; the scenario needs two")
	}
	if k := connectors.KindOf(err); k != connectors.KindInvalidResponse {
		t.Fatalf("a malformed page ended the run with %v (kind %q), want %s", err, k, connectors.KindInvalidResponse)
	}
	msg := err.Error()
	if !strings.Contains(msg, string(victim.Entity)) || !strings.Contains(msg, fmt.Sprintf("page %d", victim.Page)) {
		t.Errorf("the error %q does not name entity %s and page %d", msg, victim.Entity, victim.Page)
	}
	// The failed entity and those after it keep their watermarks; only
	// entities that completed before the failure may advance.
	for _, st := range w.state {
		if !st.LastCompleted.Equal(completed[st.Name]) {
			continue
		}
		if !st.Watermark.Equal(before[st.Name]) {
			t.Errorf("entity %s did not complete in the failed run but moved its watermark from %v to %v", st.Name, before[st.Name], st.Watermark)
		}
	}
	if st, _ := w.entityState(victim.Entity); !st.LastCompleted.Equal(completed[victim.Entity]) {
		t.Errorf("entity %s failed on a malformed page but is recorded as completed", victim.Entity)
	}
	w.mustRun("run after the malformed page", engine.Run{})
	w.requireEqual("after a malformed page")
}

// unauthorized: wrong credentials fail the run as AuthenticationFailed and
// write nothing.
func unauthorized(t *testing.T, h Harness) {
	w, _ := start(t, h, 25, 2.1)
	if w.env.ConnectWith == nil {
		t.Fatalf("%s harness: Env.ConnectWith is nil", w.vendor)
	}
	conn := w.env.ConnectWith(t, w.reg, wrongSecrets)
	res, err := w.exec(context.Background(), engine.Run{Connector: conn})
	if k := connectors.KindOf(err); k != connectors.KindAuthenticationFailed {
		t.Fatalf("wrong credentials ended the run with %v (kind %q), want %s", err, k, connectors.KindAuthenticationFailed)
	}
	if n := w.sink.Len(); n != 0 || res.Upserted != 0 {
		t.Errorf("a refused run wrote %d records (upserted %d)", n, res.Upserted)
	}
	for _, s := range w.state {
		if !s.Watermark.IsZero() {
			t.Errorf("a refused run set entity %s's watermark to %v", s.Name, s.Watermark)
		}
	}
	// The right credentials work at once.
	w.mustRun("import with the right credentials", engine.Run{})
	w.requireEqual("after the credentials were fixed")
}

// wrongSecrets spoils the secret values of a credentials Secret (keys
// naming a key, secret, token or password; every key where none does),
// keeping identifiers such as account and tenant ids as they are.
func wrongSecrets(creds map[string][]byte) {
	secret := func(k string) bool {
		k = strings.ToLower(k)
		for _, s := range []string{"key", "secret", "token", "password"} {
			if strings.Contains(k, s) {
				return true
			}
		}
		return false
	}
	anySecret := false
	for k := range creds {
		anySecret = anySecret || secret(k)
	}
	for k, v := range creds {
		if !anySecret || secret(k) {
			creds[k] = append([]byte("wrong-"), v...)
		}
	}
}

// cancellation: a run cancelled part-way through the product pages ends
// with a context error, keeps a checkpoint of what it wrote, and the
// resumed run completes.
func cancellation(t *testing.T, h Harness) {
	w, c := start(t, h, 26, 3)
	_, pages, _ := cleanImport(t, h, dataset(c, 26, 3))
	var target model.Kind
	for _, e := range pages.order {
		if target == "" || pages.pages[e] > pages.pages[target] {
			target = e
		}
	}
	if pages.pages[target] < 2 {
		t.Fatalf("no entity spans two pages (pages per entity %v)", pages.pages)
	}
	cut := pages.pages[target] / 2
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn := &hooked{inner: w.conn, before: func(ctx context.Context, req connectors.PageRequest) error {
		if req.Entity == target && req.Page > cut {
			cancel()
			return ctx.Err()
		}
		return nil
	}}
	_, err := w.exec(ctx, engine.Run{Connector: conn})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("a run cancelled at %s page %d ended with %v, want a context error", target, cut+1, err)
	}
	st, _ := w.entityState(target)
	if st.Resume == nil || st.Resume.Page < 1 {
		t.Fatalf("a run cancelled after %d pages of %s kept no checkpoint of them: %+v", cut, target, st.Resume)
	}
	w.restart()
	w.mustRun("resumed run", engine.Run{})
	w.requireEqual("after a cancelled run and its resume")
}
