package engine

import (
	"context"
	"fmt"
	"slices"

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
// r.Vendor must be set; r.State, Full and the resume settings are ignored.
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
	for _, e := range entities { // the connector's order: parents first
		w := byEntity[e.Name]
		if w == nil {
			continue
		}
		out.Targets += len(w.ids)
		size := max(1, rd.MaxDocsPerRead(e.Name))
		var gone []model.Tombstone
		for start := 0; start < len(w.ids); start += size {
			if err := ctx.Err(); err != nil {
				return x.targeted(out), fmt.Errorf("targeted sync of %s: %w", e.Name, err)
			}
			ids := w.ids[start:min(start+size, len(w.ids))]
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

func (x *execution) targeted(out TargetedResult) TargetedResult {
	out.Upserted, out.SkippedWrites, out.Calls = x.res.Upserted, x.res.Skipped, x.res.Calls
	return out
}
