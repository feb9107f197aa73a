package engine

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
)

// Target is one document a webhook named.
type Target struct {
	Entity model.Kind
	ID     string
	// Deleted is set when the vendor said the document was deleted.
	Deleted bool
}

// TargetedResult is what a targeted sync did.
type TargetedResult struct {
	// Targets is the number of distinct documents it read; Skipped those
	// of entities the run does not sync (or cannot read by id).
	Targets, Skipped int
	// Upserted and SkippedWrites are the sink's counts; Deleted the
	// tombstones written for documents the vendor said were deleted and no
	// longer serves.
	Upserted, SkippedWrites, Deleted int64
	// Calls is the number of HTTP requests it cost.
	Calls int64
	// Passes counts the entities read by a pass rather than by id.
	Passes int
	// Records counts records written per kind.
	Records map[model.Kind]int64
}

// Targeted reads the documents webhooks named, by id, and writes them: the
// same mapping, validation, clamping and sink as a pass, through the same
// connector (so the same rate limiters). Duplicate targets are read once.
// A document the vendor still serves is written as served (its own marker
// says whether it is deleted); one it no longer serves becomes a tombstone
// (model.DeletedByWebhook) only when its event said it was deleted: a
// document missing after an update event is left to the next poll and
// reconciliation, never deleted on a guess.
//
// Watermarks, checkpoints and set-aside state are not touched: a targeted
// sync never moves an entity past what a full pass would have read, so
// the interval poll still catches whatever a webhook missed. r.Company and
// r.Vendor must be set; r.State gives each entity's last pass's calls, so
// that an entity whose documents cost more to read by id than by a pass
// (a window from its watermark, or a full read) is read by the pass; Full
// and the resume settings are ignored.
func Targeted(ctx context.Context, r Run, targets []Target) (TargetedResult, error) {
	r.defaults()
	out := TargetedResult{Records: map[model.Kind]int64{}}
	if r.Company == "" || r.Vendor == "" {
		return out, connectors.Errorf(connectors.KindInvalidConfig, "a targeted sync needs the company and the vendor")
	}
	rd, ok := r.Connector.(connectors.DocReader)
	if !ok {
		return out, connectors.Errorf(connectors.KindInvalidConfig, "this connector cannot read documents by id")
	}
	entities, err := r.selectEntities()
	if err != nil {
		return out, err
	}
	x := &execution{run: &r, state: map[model.Kind]EntityState{}, res: Result{Records: out.Records}}
	type want struct {
		ids     []string
		deleted map[string]bool
	}
	byEntity := map[model.Kind]*want{}
	for _, t := range targets {
		if t.ID == "" || !slices.ContainsFunc(entities, func(e connectors.EntityInfo) bool { return e.Name == t.Entity }) {
			out.Skipped++
			continue
		}
		w := byEntity[t.Entity]
		if w == nil {
			w = &want{deleted: map[string]bool{}}
			byEntity[t.Entity] = w
		}
		if d, seen := w.deleted[t.ID]; seen {
			w.deleted[t.ID] = d || t.Deleted
			continue
		}
		w.ids = append(w.ids, t.ID)
		w.deleted[t.ID] = t.Deleted
	}
	state := indexState(r.State)
	for _, e := range entities { // the connector's order: parents first
		w := byEntity[e.Name]
		if w == nil {
			continue
		}
		out.Targets += len(w.ids)
		size := max(1, rd.MaxDocsPerRead(e.Name))
		ids := w.ids
		if x.passIsCheaper(rd, e, state[e.Name], len(ids), size) {
			// A pass reads every document the events name in fewer
			// calls than reads by id (a vendor that reads one document
			// a request): what is left to read by id are the documents
			// an event said were deleted, whose absence must be seen.
			if err := x.targetPass(ctx, e, state[e.Name]); err != nil {
				return x.targeted(out), err
			}
			out.Passes++
			ids = slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return !w.deleted[id] })
		}
		var gone []model.Tombstone
		for start := 0; start < len(ids); start += size {
			if err := ctx.Err(); err != nil {
				return x.targeted(out), fmt.Errorf("targeted sync of %s: %w", e.Name, err)
			}
			ids := ids[start:min(start+size, len(ids))]
			p, err := rd.ReadDocs(ctx, e.Name, ids)
			if err := x.writeRepair(ctx, e.Name, 0, p, err); err != nil {
				return x.targeted(out), err
			}
			served := map[string]bool{}
			for _, id := range p.Docs {
				served[id] = true
			}
			for i := range p.Records {
				if p.Records[i].Kind == e.Name {
					served[p.Records[i].VendorID] = true
				}
			}
			for _, a := range p.SetAside {
				served[a.VendorID] = true
			}
			for _, id := range ids {
				if w.deleted[id] && !served[id] {
					gone = append(gone, model.Tombstone{Key: model.Key{Company: r.Company, Vendor: r.Vendor, Kind: e.Name, VendorID: id}, At: r.Now(), Via: model.DeletedByWebhook})
				}
			}
		}
		if err := x.flush(ctx); err != nil {
			return x.targeted(out), err
		}
		if len(gone) > 0 {
			n, err := r.Sink.Delete(ctx, gone)
			if err != nil {
				return x.targeted(out), x.crmErr(err, "marking records deleted in the CRM failed")
			}
			out.Deleted += int64(n)
		}
	}
	return x.targeted(out), nil
}

// passIsCheaper reports whether reading entity e by a pass costs fewer
// requests than reading n documents by id through rd, size a call (or
// what rd says a document costs, for a vendor that reads one document a
// request). A pass is estimated by the entity's last pass's calls: for an
// entity read in full that is its cost; an incremental one is read from
// its watermark, the window the next poll reads, which the last pass
// (the one before it, over an interval, or the import) is a fair measure
// of. Without a figure, or without a watermark for an incremental entity,
// documents are read by id.
func (x *execution) passIsCheaper(rd connectors.DocReader, e connectors.EntityInfo, st EntityState, n, size int) bool {
	byID := int64((n + size - 1) / size)
	if c, ok := rd.(connectors.DocReadCoster); ok {
		if per := c.RequestsPerDoc(e.Name); per > 0 {
			byID = int64(n) * int64(per)
		}
	}
	if st.LastRunCalls <= 0 || byID <= 1 {
		return false
	}
	if e.Incremental && st.Watermark.IsZero() {
		return false
	}
	return st.LastRunCalls < byID
}

// targetPass reads entity e by a pass and writes what it reads: for an
// incremental entity, the window from its watermark (vendor time, the
// overlap already taken off: the window the next poll reads, so whatever
// changed since the last poll, whatever our clock says); every document
// for one read in full. The watermark does not move.
func (x *execution) targetPass(ctx context.Context, e connectors.EntityInfo, st EntityState) error {
	r := x.run
	var since time.Time
	if e.Incremental {
		since = st.Watermark
	}
	cursor := ""
	for page := 1; ; page++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("targeted sync of %s page %d: %w", e.Name, page, err)
		}
		if page > maxListingPages {
			return connectors.Errorf(connectors.KindInvalidResponse, "targeted sync of %s: more than %d pages", e.Name, maxListingPages)
		}
		p, err := r.Connector.ListPage(ctx, connectors.PageRequest{Entity: e.Name, Since: since, Page: page, Cursor: cursor})
		if err := x.writeRepair(ctx, e.Name, page, p, err); err != nil {
			return err
		}
		if !p.More {
			return x.flush(ctx)
		}
		cursor = p.Next
	}
}

func (x *execution) targeted(out TargetedResult) TargetedResult {
	out.Upserted, out.SkippedWrites, out.Calls = x.res.Upserted, x.res.Skipped, x.res.Calls
	return out
}
