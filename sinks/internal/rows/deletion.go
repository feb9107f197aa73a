package rows

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/erpsync/erpsync-operator/connectors/model"
)

// hashes returns model.HashContent(kind, false, data, raw) and
// model.HashContent(kind, true, data, raw) in one pass over the content:
// the two differ only in their last byte, so the state before it is cloned.
// TestHashesMatchTheModel holds it to model.HashContent.
func hashes(kind model.Kind, data, raw []byte) (live, deleted string) {
	h := sha256.New()
	var n [8]byte
	for _, part := range [][]byte{[]byte(kind), data, raw} {
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	var d hash.Hash
	if c, ok := h.(hash.Cloner); ok {
		if x, err := c.Clone(); err == nil {
			d = x
		}
	}
	if d == nil {
		return model.HashContent(kind, false, data, raw), model.HashContent(kind, true, data, raw)
	}
	h.Write([]byte{0})
	d.Write([]byte{1})
	return hex.EncodeToString(h.Sum(nil)[:16]), hex.EncodeToString(d.Sum(nil)[:16])
}

// knownSources are the deletion sources a record or tombstone may name.
var knownSources = map[model.DeletionSource]bool{
	model.DeletedByVendor: true, model.DeletedFromParent: true, model.DeletedWithParent: true,
	model.DeletedAbsentFromFullRead: true, model.DeletedByReconciliation: true, model.DeletedByWebhook: true,
}

// checkID checks a vendor id named outside the key (a parent, a child).
func checkID(r *model.Record, what, id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%s: empty %s", Describe(r), what)
	case len(id) > maxKeyLen:
		return fmt.Errorf("%s: %s longer than %d bytes", Describe(r), what, maxKeyLen)
	case !utf8.ValidString(id):
		return fmt.Errorf("%s: %s is not valid UTF-8", Describe(r), what)
	}
	return nil
}

// checkDeletionFields checks a record's parent, children and deletion
// source: a parent is named by both its kind and id, kinds are canonical,
// ids are keys, and a deletion source is one of the model's.
func checkDeletionFields(r *model.Record) error {
	switch {
	case r.Parent == "" && r.ParentKind == "":
	case r.Parent == "":
		return fmt.Errorf("%s: parent kind %q without a parent id", Describe(r), short(string(r.ParentKind)))
	case r.ParentKind == "":
		return fmt.Errorf("%s: parent id without a parent kind", Describe(r))
	case !r.ParentKind.Valid():
		return fmt.Errorf("%s: unknown parent kind %q", Describe(r), short(string(r.ParentKind)))
	default:
		if err := checkID(r, "parent id", r.Parent); err != nil {
			return err
		}
	}
	if r.DeletedVia != "" && !knownSources[r.DeletedVia] {
		return fmt.Errorf("%s: unknown deletion source %q", Describe(r), short(string(r.DeletedVia)))
	}
	for _, set := range r.Children {
		if !set.Kind.Valid() {
			return fmt.Errorf("%s: children of unknown kind %q", Describe(r), short(string(set.Kind)))
		}
		for _, id := range set.IDs {
			if err := checkID(r, "child id", id); err != nil {
				return err
			}
		}
	}
	return nil
}

// ParentRef is a record whose children a rule applies to: the rule holds
// only where the stored version of the record is not newer than
// ModifiedAt (the record was written, or skipped as saying the same).
type ParentRef struct {
	Company, Vendor, VendorID string
	// ModifiedAt is the record's time as stored (StoredTime).
	ModifiedAt time.Time
}

// ChildRef names a child a parent's set holds.
type ChildRef struct {
	Company, Vendor, ParentID, ChildID string
}

// ChildRule is the children rule of the records of one kind in a batch for
// one child kind: the stored live records of ChildKind whose parent is one
// of Parents (parent kind ParentKind) and that Keep does not name are marked
// deleted (model.DeletedFromParent).
type ChildRule struct {
	ParentKind, ChildKind model.Kind
	Parents               []ParentRef
	Keep                  []ChildRef
}

// Rules are the deletion rules of a planned batch.
type Rules struct {
	// Children are the child sets of the batch's live records, per
	// parent kind and child kind, in sync order.
	Children []ChildRule
	// Deleted are the batch's deleted records per kind: their live
	// children are marked deleted (model.DeletedWithParent).
	Deleted map[model.Kind][]ParentRef
}

// Empty reports whether the batch has no deletion rule to apply.
func (r Rules) Empty() bool { return len(r.Children) == 0 && len(r.Deleted) == 0 }

// PlanRules returns the deletion rules of planned groups (Plan keeps one
// version per key, the newest). A deleted record's child sets say nothing
// more: all its live children go. Two sets of one kind on one record each
// delete the children they do not name, so only the children both name
// stay.
func PlanRules(groups []Group) Rules {
	var out Rules
	type pair struct{ parent, child model.Kind }
	rules := map[pair]*ChildRule{}
	for _, g := range groups {
		for _, r := range g.Records {
			ref := ParentRef{Company: r.Company, Vendor: r.Vendor, VendorID: r.VendorID, ModifiedAt: StoredTime(r.ModifiedAt)}
			if r.Deleted {
				if out.Deleted == nil {
					out.Deleted = map[model.Kind][]ParentRef{}
				}
				out.Deleted[r.Kind] = append(out.Deleted[r.Kind], ref)
				continue
			}
			if len(r.Children) == 0 {
				continue
			}
			// The ids each child kind keeps: the intersection of the
			// record's sets of that kind.
			keep := map[model.Kind]map[string]bool{}
			var kinds []model.Kind
			for _, set := range r.Children {
				ids := make(map[string]bool, len(set.IDs))
				for _, id := range set.IDs {
					ids[id] = true
				}
				old, seen := keep[set.Kind]
				if !seen {
					keep[set.Kind] = ids
					kinds = append(kinds, set.Kind)
					continue
				}
				for id := range old {
					if !ids[id] {
						delete(old, id)
					}
				}
			}
			for _, k := range kinds {
				p := pair{r.Kind, k}
				cr := rules[p]
				if cr == nil {
					cr = &ChildRule{ParentKind: r.Kind, ChildKind: k}
					rules[p] = cr
				}
				cr.Parents = append(cr.Parents, ref)
				for id := range keep[k] {
					cr.Keep = append(cr.Keep, ChildRef{Company: r.Company, Vendor: r.Vendor, ParentID: r.VendorID, ChildID: id})
				}
			}
		}
	}
	for _, cr := range rules {
		slices.SortFunc(cr.Keep, func(a, b ChildRef) int {
			return cmp.Or(cmp.Compare(a.Company, b.Company), cmp.Compare(a.Vendor, b.Vendor), cmp.Compare(a.ParentID, b.ParentID), cmp.Compare(a.ChildID, b.ChildID))
		})
		out.Children = append(out.Children, *cr)
	}
	slices.SortFunc(out.Children, func(a, b ChildRule) int {
		return cmp.Or(cmp.Compare(a.ParentKind.Order(), b.ParentKind.Order()), cmp.Compare(a.ChildKind.Order(), b.ChildKind.Order()))
	})
	return out
}

// Tomb is a tombstone prepared for storing.
type Tomb struct {
	Company, Vendor, VendorID string
	// At is in UTC, truncated to microseconds.
	At  time.Time
	Via string
}

// PlanTombstones validates tombstones and groups them by kind in sync
// order, each group sorted by key; a key named twice keeps its first
// tombstone (the second would find the row already deleted). A tombstone
// without a time or a source is refused: a tombstone says when and how.
func PlanTombstones(ts []model.Tombstone) (map[model.Kind][]Tomb, []model.Kind, error) {
	seen := make(map[model.Key]bool, len(ts))
	out := map[model.Kind][]Tomb{}
	for _, t := range ts {
		r := model.Record{Company: t.Key.Company, Vendor: t.Key.Vendor, Kind: t.Key.Kind, VendorID: t.Key.VendorID}
		if err := ValidateKey(&r); err != nil {
			return nil, nil, fmt.Errorf("tombstone: %w", err)
		}
		if t.At.IsZero() {
			return nil, nil, fmt.Errorf("tombstone of %s: no time", Describe(&r))
		}
		if y := t.At.UTC().Year(); y < 1 || y > 9999 {
			return nil, nil, fmt.Errorf("tombstone of %s: time year %d out of range", Describe(&r), y)
		}
		if !knownSources[t.Via] {
			return nil, nil, fmt.Errorf("tombstone of %s: unknown deletion source %q", Describe(&r), short(string(t.Via)))
		}
		if seen[t.Key] {
			continue
		}
		seen[t.Key] = true
		out[t.Key.Kind] = append(out[t.Key.Kind], Tomb{Company: t.Key.Company, Vendor: t.Key.Vendor, VendorID: t.Key.VendorID, At: StoredTime(t.At), Via: string(t.Via)})
	}
	var kinds []model.Kind
	for _, k := range model.Kinds {
		g, ok := out[k]
		if !ok {
			continue
		}
		slices.SortFunc(g, func(a, b Tomb) int {
			return cmp.Or(cmp.Compare(a.Company, b.Company), cmp.Compare(a.Vendor, b.Vendor), cmp.Compare(a.VendorID, b.VendorID))
		})
		kinds = append(kinds, k)
	}
	return out, kinds, nil
}

// Gone is a row just marked deleted, whose live children are marked
// deleted next (model.DeletedWithParent), at the same time.
type Gone struct {
	Kind                      model.Kind
	Company, Vendor, VendorID string
	// At is the deletion time the children take; zero means the
	// transaction's time (a Write).
	At time.Time
}
