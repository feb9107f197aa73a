package xero

import (
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Keyset reading of Contacts, Invoices and CreditNotes.
//
// Xero pages these lists by page number. Read in UpdatedDateUTC order, an
// edit during a pass moves a record from an already-read page to the end,
// every later record shifts up one place and the first record of the next
// page is never read; the count does not change, so nothing notices. The
// connector therefore restarts every page from the last record it read:
// the next request asks for If-Modified-Since = that record's second (less
// one, in case Xero's "since" excluded the second itself; Xero documents
// it as accurate to the second), page 1, ordered by UpdatedDateUTC. An edit
// or a removal before that point cannot shift what comes after it, and an
// edited record reappears at the end of the list, where the pass still
// reads it.
//
// When a whole page shares the cursor's second (hundreds of records
// stamped in one second, across page boundaries), restarting from it would
// read the same page again: the cursor then keeps its second and advances
// the page number within it, so every page progresses. Only there is a
// record edited during the pass able to shift the rest; the engine then
// sees fewer distinct documents than the pass's first page counted.
//
// The cursor is opaque to the engine, which checkpoints it:
// "k1.<unix second>.<page>[.<seen>]", where seen lists short hashes of the
// documents (id and UpdatedDateUTC) of the previous page that the next one
// reads again, so that they are dropped rather than emitted twice.

// cursorMargin is how far before the last record's second a page restarts.
const cursorMargin = time.Second

// maxSeen bounds the documents a cursor remembers as already read; past
// it, re-read documents are emitted again (the sinks skip equal content).
const maxSeen = 64

// cursor is a keyset position: If-Modified-Since (whole seconds, UTC) and
// the page within that window.
type cursor struct {
	since time.Time // zero: no filter
	page  int
	seen  map[string]bool
}

// startCursor is the position of a pass's first request.
func startCursor(since time.Time, page int) cursor {
	if !since.IsZero() {
		since = since.UTC().Truncate(time.Second)
	}
	return cursor{since: since, page: max(page, 1)}
}

// parseCursor reads a Page.Next written by String.
func parseCursor(s string) (cursor, error) {
	parts := strings.Split(s, ".")
	if len(parts) < 3 || len(parts) > 4 || parts[0] != "k1" {
		return cursor{}, fmt.Errorf("the cursor %q is not one this connector wrote", clip(s, 40))
	}
	sec, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return cursor{}, fmt.Errorf("the cursor %q has no second", clip(s, 40))
	}
	page, err := strconv.Atoi(parts[2])
	if err != nil || page < 1 {
		return cursor{}, fmt.Errorf("the cursor %q has no page", clip(s, 40))
	}
	c := cursor{page: page}
	if sec != math.MinInt64 {
		c.since = time.Unix(sec, 0).UTC()
	}
	if len(parts) == 4 && parts[3] != "" {
		c.seen = map[string]bool{}
		for _, h := range strings.Split(parts[3], "-") {
			c.seen[h] = true
		}
	}
	return c, nil
}

// String encodes the cursor for Page.Next.
func (c cursor) String() string {
	sec := int64(math.MinInt64)
	if !c.since.IsZero() {
		sec = c.since.Unix()
	}
	s := fmt.Sprintf("k1.%d.%d", sec, c.page)
	if len(c.seen) > 0 {
		hs := make([]string, 0, len(c.seen))
		for h := range c.seen {
			hs = append(hs, h)
		}
		slices.Sort(hs)
		s += "." + strings.Join(hs, "-")
	}
	return s
}

// wasSeen reports whether the previous page held this version of a
// document.
func (c cursor) wasSeen(id string, mod time.Time) bool {
	return c.seen[docHash(id, mod)]
}

func docHash(id string, mod time.Time) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(strconv.FormatInt(mod.UnixMilli(), 10)))
	return strconv.FormatUint(uint64(h.Sum32()), 36)
}

// next returns where the page after docs (read at c) starts, and whether
// the page was in the order asked for (UpdatedDateUTC ascending). A page
// out of order cannot anchor a keyset: the next one then advances the page
// number within c's window. At most maxDrop documents are remembered as
// read (fewer than a page, so that no page is all dropped).
func (c cursor) next(docs []docMeta, maxDrop int) (cursor, bool) {
	if len(docs) == 0 {
		return cursor{since: c.since, page: c.page + 1}, true
	}
	for i := 1; i < len(docs); i++ {
		if docs[i].mod.Before(docs[i-1].mod) {
			return cursor{since: c.since, page: c.page + 1}, false
		}
	}
	at := docs[len(docs)-1].mod.UTC().Truncate(time.Second).Add(-cursorMargin)
	if !c.since.IsZero() && !at.After(c.since) {
		// The whole page lies within the cursor's window start: move on
		// by page number within it.
		return cursor{since: c.since, page: c.page + 1}, true
	}
	if c.page == 1 && !docs[0].mod.Before(at) {
		// Nothing on the page precedes the new start, so page 1 from
		// there is this very page: take its second page.
		return cursor{since: at, page: 2}, true
	}
	n := cursor{since: at, page: 1, seen: map[string]bool{}}
	for i := len(docs) - 1; i >= 0 && !docs[i].mod.Before(at); i-- {
		if len(n.seen) >= min(maxSeen, maxDrop) {
			n.seen = nil
			break
		}
		n.seen[docHash(docs[i].id, docs[i].mod)] = true
	}
	return n, true
}

func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
