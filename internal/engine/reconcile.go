package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/internal/metrics"
	"github.com/erpsync/erpsync-operator/sinks"
)

// ReconcileOptions are what a reconciliation adds to a Run.
type ReconcileOptions struct {
	// Budget bounds the calls the reconciliation may spend (the vendor's
	// quota left, less the reserve for routine syncs); 0 means no bound.
	// An entity whose planned listing does not fit is postponed, with a
	// note, and the others still run.
	Budget int64
	// SkipReconciledSince skips entities reconciled at or after it: a
	// reconciliation interrupted part-way resumes with the entities it had
	// not finished.
	SkipReconciledSince time.Time
}

// maxListingPages bounds an id listing that never ends.
const maxListingPages = 100000

// Reconcile compares, for every incremental entity of the run that the
// connector can list (connectors.IDLister), the vendor's complete id
// listing with the CRM's live records of the entity's kind:
//
//   - listed documents the CRM lacks, or holds deleted, or holds in
//     another version are read again (connectors.DocReader, or a window
//     read from the oldest of them) and written: drift repair;
//   - live CRM records the listing lacks are marked deleted
//     (model.DeletedByReconciliation), with their children, but only when
//     the listing is trustworthy (it reached its end without a fault
//     retried away, its distinct ids equal the vendor's total where it
//     gives one, and the total did not change while it was read) and the
//     mass-deletion guard lets them through.
//
// Each entity's report is kept in its state (EntityState.Reconcile) and
// checkpointed when the entity is done, so an interrupted reconciliation
// resumes with the next entity. Watermarks are not touched.
func Reconcile(ctx context.Context, r Run, o ReconcileOptions) (Result, error) {
	r.defaults()
	x := &execution{run: &r, state: indexState(r.State), res: Result{Records: map[model.Kind]int64{}}}
	entities, err := r.selectEntities()
	if err != nil {
		x.res.State = r.State
		return x.res, err
	}
	lister, ok := r.Connector.(connectors.IDLister)
	if !ok {
		x.res.State = r.State
		return x.res, connectors.Errorf(connectors.KindInvalidConfig, "this connector cannot list ids, so it cannot be reconciled")
	}
	if r.Company == "" || r.Vendor == "" {
		x.res.State = r.State
		return x.res, connectors.Errorf(connectors.KindInvalidConfig, "reconciliation needs the company and the vendor")
	}
	spent := int64(0)
	for _, e := range entities {
		if err := ctx.Err(); err != nil {
			return x.result(), fmt.Errorf("before reconciling %s: %w", e.Name, err)
		}
		if !e.Incremental {
			continue // read in full on every sync: absence is found there
		}
		st := x.state[e.Name]
		st.Name = e.Name
		if rep := st.Reconcile; rep != nil && !rep.Postponed && !o.SkipReconciledSince.IsZero() && !rep.At.Before(o.SkipReconciledSince) {
			continue
		}
		info, ok := lister.IDListing(e.Name)
		if !ok {
			st.Reconcile = &ReconcileReport{At: r.Now(), Note: "the vendor offers no listing of this entity's ids"}
			x.state[e.Name] = st
			continue
		}
		left := int64(0)
		if o.Budget > 0 {
			left = o.Budget - spent
		}
		callsBefore := x.res.Calls
		err := x.reconcileEntity(ctx, lister, e, info, &st, left)
		spent += x.res.Calls - callsBefore
		x.state[e.Name] = st
		if err != nil {
			return x.result(), err
		}
		if err := x.checkpoint(ctx, x.progress(e.Name)); err != nil {
			return x.result(), err
		}
	}
	return x.result(), nil
}

// reconcileEntity reconciles one entity; left is the call budget (0: no
// bound).
func (x *execution) reconcileEntity(ctx context.Context, lister connectors.IDLister, e connectors.EntityInfo, info connectors.IDListingInfo, st *EntityState, left int64) error {
	r := x.run
	rep := &ReconcileReport{}
	scope := sinks.Scope{Company: r.Company, Vendor: r.Vendor, Kind: e.Name}
	// The CRM's side first: it sizes the listing for the budget.
	crm := map[string]time.Time{}
	err := r.Sink.Live(ctx, scope, func(l model.LiveRecord) error {
		crm[l.VendorID] = l.ModifiedAt
		return nil
	})
	if errors.Is(err, sinks.ErrNoListing) {
		rep.At, rep.Note = r.Now(), "the sink cannot list what it holds, so it cannot be reconciled"
		st.Reconcile = rep
		return nil
	}
	if err != nil {
		return x.crmErr(err, "listing the CRM's records for reconciliation failed")
	}
	rep.Live = int64(len(crm))
	if left > 0 {
		size := max(1, info.PageSize)
		if planned := int64(len(crm)/size + 2); planned > left {
			rep.At, rep.Postponed = r.Now(), true
			rep.Note = fmt.Sprintf("postponed: listing about %d records needs about %d calls, and the vendor's quota leaves %d after the reserve for routine syncs", len(crm), planned, left)
			st.Reconcile = rep
			r.Log.Info("reconciliation postponed by the quota budget", "entity", e.Name, "planned", planned, "left", left)
			return nil
		}
	}
	callsBefore := x.res.Calls
	started := r.Now()
	erp, trust, err := x.listIDs(ctx, lister, e.Name)
	if err != nil {
		return err
	}
	rep.Listed = int64(len(erp))
	// Compare.
	var cands []model.Tombstone
	var repair []string
	oldest := time.Time{}
	for id, v := range erp {
		have, ok := crm[id]
		switch {
		case !ok:
			rep.Absent++
		case !sameVersion(have, v):
			rep.Drifted++
		default:
			continue
		}
		repair = append(repair, id)
		if oldest.IsZero() || v.Before(oldest) {
			oldest = v
		}
	}
	for id, v := range crm {
		if _, ok := erp[id]; ok {
			continue
		}
		if v.After(started.Add(-r.MaxFutureSkew)) {
			// Written after the listing began: not evidence of anything.
			continue
		}
		rep.Missing++
		cands = append(cands, model.Tombstone{Key: model.Key{Company: r.Company, Vendor: r.Vendor, Kind: e.Name, VendorID: id}, At: r.Now(), Via: model.DeletedByReconciliation})
	}
	crm = nil
	slices.Sort(repair)
	slices.SortFunc(cands, func(a, b model.Tombstone) int { return strings.Compare(a.Key.VendorID, b.Key.VendorID) })
	metrics.AddDrift(r.Vendor, string(e.Name), metrics.DriftMissing, rep.Missing)
	metrics.AddDrift(r.Vendor, string(e.Name), metrics.DriftAbsent, rep.Absent)
	metrics.AddDrift(r.Vendor, string(e.Name), metrics.DriftVersion, rep.Drifted)
	// Repair.
	if len(repair) > 0 {
		before := x.res.Upserted
		if err := x.repair(ctx, e, repair, oldest); err != nil {
			return err
		}
		rep.Repaired = x.res.Upserted - before
	}
	// Delete.
	switch {
	case trust != "":
		rep.Note = "deletions not applied: " + trust
		if len(cands) > 0 {
			r.Log.Info("reconciliation applies no deletion", "entity", e.Name, "missing", len(cands), "reason", trust)
		}
	default:
		n, err := x.apply(ctx, e.Name, st, e.Name, cands, rep.Live, model.DeletedByReconciliation)
		if err != nil {
			return err
		}
		rep.Deleted = n
		if h := st.Held; h != nil && h.Kind == e.Name && n == 0 && len(cands) > 0 {
			rep.Note = fmt.Sprintf("deletions held: %d of %d live records are missing from the vendor's listing, more than the guard allows", h.Candidates, h.Live)
		}
	}
	rep.Calls = x.res.Calls - callsBefore
	rep.At = r.Now()
	st.Reconcile = rep
	r.Log.Info("reconciled an entity", "entity", e.Name, "listed", rep.Listed, "live", rep.Live, "missing", rep.Missing, "deleted", rep.Deleted, "absent", rep.Absent, "drifted", rep.Drifted, "repaired", rep.Repaired, "calls", rep.Calls)
	return nil
}

// listIDs pages an entity's id listing to its end. trust is "" when the
// listing may be used to delete, else why not.
func (x *execution) listIDs(ctx context.Context, lister connectors.IDLister, e model.Kind) (map[string]time.Time, string, error) {
	x.faults.Store(0)
	lctx := connectors.WithFaultCounter(ctx, &x.faults)
	out := map[string]time.Time{}
	total, cursor, shifted := -1, "", false
	for page := 1; ; page++ {
		if err := ctx.Err(); err != nil {
			return nil, "", fmt.Errorf("listing %s ids page %d: %w", e, page, err)
		}
		if page > maxListingPages {
			return nil, "", connectors.Errorf(connectors.KindInvalidResponse, "listing %s ids: more than %d pages", e, maxListingPages)
		}
		p, err := lister.ListIDs(lctx, connectors.PageRequest{Entity: e, Page: page, Cursor: cursor})
		if p != nil {
			x.res.Calls += int64(p.Calls)
		}
		if werr := connectors.ResumeWork(ctx); werr != nil {
			return nil, "", fmt.Errorf("listing %s ids: %w", e, werr)
		}
		if err == nil && p == nil {
			err = connectors.Errorf(connectors.KindInvalidResponse, "the connector returned no page")
		}
		if err == nil && len(p.Next) > MaxCursorLen {
			err = connectors.Errorf(connectors.KindInvalidResponse, "the listing's cursor is %d bytes, more than %d", len(p.Next), MaxCursorLen)
		}
		if err != nil {
			return nil, "", classify(e, page, err)
		}
		switch {
		case page == 1:
			total = p.Total
		case total < 0 && p.Total >= 0:
			// A count that appears later counts the whole listing.
			total = p.Total
		case p.Total >= 0 && p.Total != total:
			// A page without a count (-1) says nothing; one with another
			// count says the list changed under the listing.
			shifted = true
		}
		for _, d := range p.Docs {
			if d.ID == "" {
				return nil, "", connectors.Errorf(connectors.KindInvalidResponse, "listing %s ids page %d: a document without an id", e, page)
			}
			out[d.ID] = d.ModifiedAt
		}
		cursor = p.Next
		if !p.More {
			break
		}
	}
	switch {
	case x.faults.Load() > 0:
		return out, fmt.Sprintf("%d requests of the listing were repeated after a fault", x.faults.Load()), nil
	case shifted:
		return out, "the vendor's total changed while the listing was read", nil
	case total >= 0 && total != len(out):
		return out, fmt.Sprintf("the listing held %d distinct ids of the %d the vendor reports", len(out), total), nil
	}
	return out, "", nil
}

// repair reads the given documents again and writes them: by id where the
// connector can, else by a window read from the oldest version among them.
func (x *execution) repair(ctx context.Context, e connectors.EntityInfo, ids []string, oldest time.Time) error {
	r := x.run
	if rd, ok := r.Connector.(connectors.DocReader); ok {
		size := max(1, rd.MaxDocsPerRead(e.Name))
		for start := 0; start < len(ids); start += size {
			end := min(start+size, len(ids))
			p, err := rd.ReadDocs(ctx, e.Name, ids[start:end])
			if err := x.writeRepair(ctx, e.Name, 0, p, err); err != nil {
				return err
			}
		}
		return x.flush(ctx)
	}
	// A window read: everything modified since just before the oldest
	// version to repair (the vendor's own filter; absent documents with
	// an old version make it a long window).
	since := oldest.Add(-r.Overlap)
	cursor := ""
	for page := 1; ; page++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("repairing %s page %d: %w", e.Name, page, err)
		}
		if page > maxListingPages {
			return connectors.Errorf(connectors.KindInvalidResponse, "repairing %s: more than %d pages", e.Name, maxListingPages)
		}
		p, err := r.Connector.ListPage(ctx, connectors.PageRequest{Entity: e.Name, Since: since, Page: page, Cursor: cursor})
		if err := x.writeRepair(ctx, e.Name, page, p, err); err != nil {
			return err
		}
		cursor = p.Next
		if !p.More {
			return x.flush(ctx)
		}
	}
}

// writeRepair counts a repair read's calls, checks its page and writes it.
func (x *execution) writeRepair(ctx context.Context, e model.Kind, page int, p *connectors.Page, err error) error {
	if p != nil {
		x.res.Calls += int64(p.Calls)
	}
	if werr := connectors.ResumeWork(ctx); werr != nil {
		return fmt.Errorf("reading %s: %w", e, werr)
	}
	if err == nil && p == nil {
		err = connectors.Errorf(connectors.KindInvalidResponse, "the connector returned no page")
	}
	if err == nil {
		err = validPage(p)
	}
	if err != nil {
		return classify(e, page, err)
	}
	return x.writePage(ctx, p)
}

// writePage queues a page's records and set-aside documents, writing full
// batches.
func (x *execution) writePage(ctx context.Context, p *connectors.Page) error {
	x.clampFuture("", p)
	x.aside = append(x.aside, p.SetAside...)
	for i := range p.Records {
		x.res.Records[p.Records[i].Kind]++
		x.batch = append(x.batch, p.Records[i])
		if len(x.batch) >= x.run.BatchSize {
			if err := x.flush(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// sameVersion compares a CRM version with a listed one at the precision
// both keep (sinks store microseconds).
func sameVersion(a, b time.Time) bool {
	return a.Truncate(time.Microsecond).Equal(b.Truncate(time.Microsecond))
}
