package receiver

import (
	"maps"
	"slices"
	"unicode/utf8"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
)

// Limits of a target the ErpSync's status can hold (the CRD's maxLength of
// status.webhooks.pending[].entity and .id). A longer one would make every
// status write of its batch fail validation.
const (
	maxEntityLen = 64
	maxIDLen     = 128
)

// targetKey identifies one document.
type targetKey struct{ entity, id string }

// targetSet is a bounded, deduplicated list of documents to read, in the
// order they were first named: at most limit targets; beyond that the
// entity goes to overflow (its next sync polls it instead). A document
// named again keeps its place and ORs Deleted. Deletions are preferred
// over updates when the set is full: an update moved to overflow is still
// read by the entity's poll, while a deletion a poll may not see.
type targetSet struct {
	limit    int
	items    []erpv1.WebhookTarget
	index    map[targetKey]int
	overflow map[string]struct{}
}

func newTargetSet(limit int) *targetSet {
	return &targetSet{limit: limit, index: map[targetKey]int{}, overflow: map[string]struct{}{}}
}

// validTarget reports whether a target fits the status. An entity too long
// to name is dropped (no connector has one); an id too long or empty sends
// its entity to overflow instead.
func validEntity(entity string) bool {
	return entity != "" && len(entity) <= maxEntityLen && utf8.ValidString(entity)
}

func validID(id string) bool {
	return id != "" && len(id) <= maxIDLen && utf8.ValidString(id)
}

// add merges one target. It reports false when the entity is not a valid
// name and the target was dropped.
func (s *targetSet) add(t erpv1.WebhookTarget) bool {
	if !validEntity(t.Entity) {
		return false
	}
	if !validID(t.ID) {
		s.overflow[t.Entity] = struct{}{}
		return true
	}
	k := targetKey{t.Entity, t.ID}
	if i, ok := s.index[k]; ok {
		s.items[i].Deleted = s.items[i].Deleted || t.Deleted
		return true
	}
	if len(s.items) < s.limit {
		s.index[k] = len(s.items)
		s.items = append(s.items, t)
		return true
	}
	if t.Deleted {
		// Make room by sending the newest update to overflow.
		for i := len(s.items) - 1; i >= 0; i-- {
			if it := s.items[i]; !it.Deleted {
				s.overflow[it.Entity] = struct{}{}
				delete(s.index, targetKey{it.Entity, it.ID})
				s.items[i] = t
				s.index[k] = i
				return true
			}
		}
	}
	s.overflow[t.Entity] = struct{}{}
	return true
}

// addOverflow marks entities to be polled.
func (s *targetSet) addOverflow(entities ...string) {
	for _, e := range entities {
		if validEntity(e) {
			s.overflow[e] = struct{}{}
		}
	}
}

func (s *targetSet) empty() bool { return len(s.items) == 0 && len(s.overflow) == 0 }

// overflowList returns the overflow entities, sorted.
func (s *targetSet) overflowList() []string {
	if len(s.overflow) == 0 {
		return nil
	}
	return slices.Sorted(maps.Keys(s.overflow))
}
