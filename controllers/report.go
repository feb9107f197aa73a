package controllers

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/erpsync/erpsync-operator/internal/engine"
)

// Bounds on vendor-provided text that reaches status, conditions and events.
const (
	// maxIDLen bounds one vendor id as shown.
	maxIDLen = 64
	// maxWhyLen bounds the reason an entity's pass is incomplete.
	maxWhyLen = 200
)

// entityReport is what the per-entity state says of documents set aside and
// passes that did not advance their watermark, for the Ready message, events
// and metrics.
type entityReport struct {
	// setAside is the total over entities; setAsideBy lists the entities
	// that have some, in state order.
	setAside   int64
	setAsideBy []setAsideEntity
	incomplete []incompleteEntity
}

type setAsideEntity struct {
	name string
	n    int64
	ids  []string
}

type incompleteEntity struct {
	name string
	why  string
}

// reportOf summarises st.
func reportOf(st []engine.EntityState) entityReport {
	var r entityReport
	for _, e := range st {
		if e.SetAside > 0 {
			ids := make([]string, 0, min(len(e.SetAsideIDs), engine.MaxSetAsideIDs))
			for _, id := range e.SetAsideIDs {
				if len(ids) == engine.MaxSetAsideIDs {
					break
				}
				ids = append(ids, shown(id, maxIDLen))
			}
			r.setAside += e.SetAside
			r.setAsideBy = append(r.setAsideBy, setAsideEntity{name: string(e.Name), n: e.SetAside, ids: ids})
		}
		if e.Incomplete != "" {
			r.incomplete = append(r.incomplete, incompleteEntity{name: string(e.Name), why: shown(e.Incomplete, maxWhyLen)})
		}
	}
	return r
}

// incompleteNames lists the entities whose pass was incomplete.
func (r entityReport) incompleteNames() []string {
	out := make([]string, 0, len(r.incomplete))
	for _, e := range r.incomplete {
		out = append(out, e.name)
	}
	return out
}

// readySuffix is appended to a successful sync's Ready message; "" when
// nothing is set aside or incomplete.
func (r entityReport) readySuffix() string {
	var parts []string
	if r.setAside > 0 {
		by := make([]string, 0, len(r.setAsideBy))
		for _, e := range r.setAsideBy {
			by = append(by, fmt.Sprintf("%s: %d", e.name, e.n))
		}
		parts = append(parts, fmt.Sprintf("%s set aside (%s), see status.entities", plural(r.setAside, "record"), strings.Join(by, ", ")))
	}
	if len(r.incomplete) > 0 {
		parts = append(parts, fmt.Sprintf("incomplete: %s read fewer distinct records than the vendor reported; their watermarks were kept and the next sync reads the same window again, see status.entities",
			strings.Join(r.incompleteNames(), ", ")))
	}
	if len(parts) == 0 {
		return ""
	}
	return "; " + strings.Join(parts, "; ")
}

// setAsideEvent is the message of the Warning event of a sync that ended
// with documents set aside: the count per entity and its first few ids.
func (r entityReport) setAsideEvent() string {
	by := make([]string, 0, len(r.setAsideBy))
	for _, e := range r.setAsideBy {
		s := fmt.Sprintf("%s: %d", e.name, e.n)
		if len(e.ids) > 0 {
			s += " (" + strings.Join(e.ids, ", ")
			if int64(len(e.ids)) < e.n {
				s += ", ..."
			}
			s += ")"
		}
		by = append(by, s)
	}
	return truncate(fmt.Sprintf("%s the connector could not map %s set aside with the reason and the raw document, and read again by every sync until they map: %s",
		plural(r.setAside, "document"), isAre(r.setAside), strings.Join(by, "; ")), maxEventNoteLen)
}

// incompleteEvent is the message of the Warning event of a sync that ended
// with incomplete passes.
func (r entityReport) incompleteEvent() string {
	by := make([]string, 0, len(r.incomplete))
	for _, e := range r.incomplete {
		by = append(by, e.name+": "+e.why)
	}
	return truncate("the watermark was kept, so the next sync reads the same window again: "+strings.Join(by, "; "), maxEventNoteLen)
}

// shown makes vendor text fit for status and events: control characters
// replaced, at most n runes.
func shown(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, s)
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	rs := []rune(s)
	return string(rs[:n-3]) + "..."
}

func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func isAre(n int64) string {
	if n == 1 {
		return "is"
	}
	return "are"
}
