package engine

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/internal/metrics"
	"github.com/erpsync/erpsync-operator/sinks"
)

// deleteChunk bounds the tombstones of one sink call.
const deleteChunk = 1000

// keyHash hashes a record's kind and vendor id for the absence set.
func keyHash(kind model.Kind, id string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(kind))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(id))
	return h.Sum64()
}

// trackKeys adds a page's records and set-aside documents to the absence
// set: a set-aside document exists in the ERP, so its CRM row stays.
func (x *execution) trackKeys(p *connectors.Page) {
	for i := range p.Records {
		x.keys = append(x.keys, keyHash(p.Records[i].Kind, p.Records[i].VendorID))
	}
	for i := range p.SetAside {
		x.keys = append(x.keys, keyHash(p.SetAside[i].Kind, p.SetAside[i].VendorID))
	}
}

// soleKinds returns the kinds that only stream e emits among every stream
// of the connector: absence from e's full pass says something only about
// those (a kind that two streams emit is absent from each).
func (r *Run) soleKinds(e connectors.EntityInfo) []model.Kind {
	emitters := map[model.Kind]int{}
	for _, o := range r.Connector.Entities() {
		emitters[o.Name]++
		for _, k := range o.Also {
			if k != o.Name {
				emitters[k]++
			}
		}
	}
	var out []model.Kind
	for _, k := range append([]model.Kind{e.Name}, e.Also...) {
		if emitters[k] == 1 && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// absent marks deleted the CRM's live records of the kinds only e emits
// that a complete full pass of e did not read. It applies nothing unless
// the pass was clean (complete, no shift, not short), read from its first
// page, and met no fault that the HTTP layer retried away; the
// mass-deletion guard holds a large set.
func (x *execution) absent(ctx context.Context, e connectors.EntityInfo, st *EntityState, clean, resumed bool) error {
	r := x.run
	rep := &DeletionReport{At: r.Now()}
	st.Deletions = rep
	defer func() { x.keys = x.keys[:0] }()
	switch {
	case resumed:
		rep.Skipped = "the full pass was resumed after an interruption, so it does not know every id it read"
	case !clean:
		rep.Skipped = "the full pass did not complete cleanly (the vendor's list shifted or fell short)"
	case x.faults.Load() > 0:
		rep.Skipped = fmt.Sprintf("%d requests of the pass were repeated after a fault", x.faults.Load())
	}
	if rep.Skipped != "" {
		r.Log.Info("no inferred deletion from this full pass", "entity", e.Name, "reason", rep.Skipped)
		return nil
	}
	slices.Sort(x.keys)
	x.keys = slices.Compact(x.keys)
	for _, kind := range r.soleKinds(e) {
		scope := sinks.Scope{Company: r.Company, Vendor: r.Vendor, Kind: kind}
		if scope.Company == "" {
			// Nothing read, nothing to compare with.
			return nil
		}
		var cands []model.Tombstone
		var live int64
		err := r.Sink.Live(ctx, scope, func(l model.LiveRecord) error {
			live++
			if _, found := slices.BinarySearch(x.keys, keyHash(kind, l.VendorID)); !found {
				cands = append(cands, model.Tombstone{Key: model.Key{Company: scope.Company, Vendor: scope.Vendor, Kind: kind, VendorID: l.VendorID}, At: r.Now(), Via: model.DeletedAbsentFromFullRead})
			}
			return nil
		})
		if errors.Is(err, sinks.ErrNoListing) {
			rep.Skipped = "the sink cannot list what it holds"
			return nil
		}
		if err != nil {
			return x.crmErr(err, "listing the CRM's records to find those gone from the ERP failed")
		}
		n, err := x.apply(ctx, e.Name, st, kind, cands, live, model.DeletedAbsentFromFullRead)
		if err != nil {
			return err
		}
		rep.Deleted += n
	}
	return nil
}

// apply marks cands deleted unless the mass-deletion guard holds them; it
// returns how many records were marked (children included).
func (x *execution) apply(ctx context.Context, entity model.Kind, st *EntityState, kind model.Kind, cands []model.Tombstone, live int64, via model.DeletionSource) (int64, error) {
	r := x.run
	if len(cands) == 0 {
		if st.Held != nil && st.Held.Kind == kind {
			st.Held = nil
		}
		return 0, nil
	}
	if x.guarded(entity, st, kind, int64(len(cands)), live) {
		h := HeldDeletion{Kind: kind, Candidates: int64(len(cands)), Live: live, Via: via, At: r.Now()}
		st.Held = &h
		x.res.Held = append(x.res.Held, h)
		r.Log.Info("the mass-deletion guard held inferred deletions", "entity", entity, "kind", kind, "candidates", len(cands), "live", live, "via", via)
		return 0, nil
	}
	if st.Held != nil && st.Held.Kind == kind {
		st.Held = nil
	}
	var n int64
	for start := 0; start < len(cands); start += deleteChunk {
		end := min(start+deleteChunk, len(cands))
		k, err := r.Sink.Delete(ctx, cands[start:end])
		if err != nil {
			return n, x.crmErr(err, "marking records deleted in the CRM failed")
		}
		n += int64(k)
	}
	x.res.Deleted += n
	metrics.AddRecords(r.Vendor, string(kind), metrics.OpDeleted, int(n))
	r.Log.Info("marked records gone from the ERP deleted", "entity", entity, "kind", kind, "records", n, "via", via)
	return n, nil
}

// guarded reports whether deleting n of live records of kind is more than
// the guard allows and no person approved it.
func (x *execution) guarded(entity model.Kind, st *EntityState, kind model.Kind, n, live int64) bool {
	r := x.run
	share := r.MaxDeleteShare
	if share < 0 {
		return false
	}
	if float64(n) <= share*float64(live) {
		return false
	}
	if h := st.Held; h != nil && h.Kind == kind && slices.Contains(r.ApproveHeld, entity) {
		if n <= h.Candidates+max(10, h.Candidates/10) {
			return false
		}
	}
	return true
}

// crmErr classifies a sink failure.
func (x *execution) crmErr(err error, msg string) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return connectors.Wrap(connectors.KindCRMWriteFailed, err, msg)
}
