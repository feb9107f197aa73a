package xero

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/connectors/xero/sim"
)

// readPass pages one entity through the connector (no engine: what the
// connector alone guarantees), calling between after every page, and
// returns how often each document id arrived and the pages it took.
func readPass(t *testing.T, h *harness, kind model.Kind, since time.Time, between func(page int)) (map[string]int, int) {
	t.Helper()
	got := map[string]int{}
	cursor := ""
	for page := 1; ; page++ {
		if page > 50 {
			t.Fatalf("%s: no end after %d pages", kind, page)
		}
		p, err := h.conn.ListPage(context.Background(), connectors.PageRequest{Entity: kind, Since: since, Page: page, Cursor: cursor})
		if err != nil {
			t.Fatalf("%s page %d: %v", kind, page, err)
		}
		if page > 1 && p.Total != -1 {
			t.Errorf("%s page %d: Total %d; a keyset page after the first counts only what follows its cursor and must say -1", kind, page, p.Total)
		}
		for _, id := range p.Docs {
			got[id]++
		}
		if !p.More {
			return got, page
		}
		if p.Next == "" {
			t.Fatalf("%s page %d: more pages follow but Next is empty", kind, page)
		}
		cursor = p.Next
		if between != nil {
			between(page)
		}
	}
}

// contactIDs returns the ids of every contact the simulator serves.
func contactIDs(d *simkit.Dataset) map[string]bool {
	out := map[string]bool{}
	d.View(func(d *simkit.Dataset) {
		for _, c := range d.Customers {
			out[c.ID] = true
		}
		for _, s := range d.Suppliers {
			out[s.ID] = true
		}
	})
	return out
}

// oldestCustomers returns the n customers with the oldest UpdatedDateUTC
// (those the first page holds), oldest first.
func oldestCustomers(d *simkit.Dataset, n int) []*simkit.Customer {
	var out []*simkit.Customer
	d.View(func(d *simkit.Dataset) {
		out = append(out, d.Customers...)
	})
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Modified.Before(out[j-1].Modified); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out[:min(n, len(out))]
}

// editCustomer changes a customer's phone, stamping it now: Xero moves it to
// the end of a list ordered by UpdatedDateUTC.
func editCustomer(d *simkit.Dataset, id string) {
	d.Update(func(d *simkit.Dataset) {
		for _, c := range d.Customers {
			if c.ID == id {
				c.Modified = d.Stamp()
				c.Phone = fmt.Sprintf("+64 9 777 %04d", c.Seq%10000)
			}
		}
	})
}

// TestKeysetPassSurvivesEdits pages contacts (three pages of 1000) while
// records on pages already read are edited, created and stamped in one
// second: every contact arrives in the pass. Read by page number in
// UpdatedDateUTC order, an edit on page 1 moves that record to the end and
// the first record of page 2 is never read.
func TestKeysetPassSurvivesEdits(t *testing.T) {
	tie := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		// prepare changes the dataset before the pass.
		prepare func(d *simkit.Dataset)
		// between changes it after each page.
		between func(t *testing.T, d *simkit.Dataset, page int)
		// maxPages bounds the requests of the pass.
		maxPages int
	}{
		{name: "a record on a read page is edited", maxPages: 4, between: func(t *testing.T, d *simkit.Dataset, page int) {
			if page == 1 {
				editCustomer(d, oldestCustomers(d, 1)[0].ID)
			}
		}},
		{name: "records on read pages are edited after every page", maxPages: 5, between: func(t *testing.T, d *simkit.Dataset, page int) {
			for _, c := range oldestCustomers(d, 3*page)[:3*page] {
				editCustomer(d, c.ID)
			}
		}},
		{name: "records are archived and created before the cursor", maxPages: 4, between: func(t *testing.T, d *simkit.Dataset, page int) {
			if page != 1 {
				return
			}
			old := oldestCustomers(d, 2)
			d.Update(func(d *simkit.Dataset) {
				old[0].Deleted, old[0].Modified = true, d.Stamp()
				n := *old[1]
				n.Meta = simkit.Meta{ID: "00000000-0000-4000-8000-00000000beef", Seq: 99999, Created: d.Stamp(), Modified: d.Stamp()}
				n.Code = "NEW00001"
				d.Customers = append(d.Customers, &n)
			})
		}},
		{name: "1500 records share one second across page boundaries", maxPages: 5, prepare: func(d *simkit.Dataset) {
			d.Update(func(d *simkit.Dataset) {
				for i, c := range d.Customers[:1500] {
					c.Modified = tie.Add(time.Duration(i%1000) * time.Millisecond)
				}
			})
		}},
		{name: "1500 records share one second; a record before them is edited", maxPages: 5, prepare: func(d *simkit.Dataset) {
			d.Update(func(d *simkit.Dataset) {
				for i, c := range d.Customers[:1500] {
					c.Modified = tie.Add(time.Duration(i%1000) * time.Millisecond)
				}
			})
		}, between: func(t *testing.T, d *simkit.Dataset, page int) {
			if page == 1 {
				editCustomer(d, oldestCustomers(d, 1)[0].ID)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, sim.Options{Dataset: simkit.Options{Seed: 11, Products: 10, Customers: 2500, Orders: 10}}, nil)
			d := h.sim.Dataset()
			if tc.prepare != nil {
				tc.prepare(d)
			}
			got, pages := readPass(t, h, model.KindCustomer, time.Time{}, func(page int) {
				h.clock.Advance(3 * time.Second)
				if tc.between != nil {
					tc.between(t, d, page)
				}
			})
			missing := 0
			for id := range contactIDs(d) {
				if got[id] == 0 {
					missing++
				}
			}
			if missing > 0 {
				t.Errorf("%d of %d contacts never arrived in the pass", missing, len(contactIDs(d)))
			}
			if pages > tc.maxPages {
				t.Errorf("the pass took %d pages, want at most %d", pages, tc.maxPages)
			}
		})
	}
}

// TestKeysetIncrementalSurvivesEdits is the same hole in an incremental
// pass: If-Modified-Since set, three pages of changes, an edit on page 1.
func TestKeysetIncrementalSurvivesEdits(t *testing.T) {
	h := newHarness(t, sim.Options{Dataset: simkit.Options{Seed: 12, Products: 10, Customers: 2600, Orders: 10}}, nil)
	d := h.sim.Dataset()
	since := h.clock.Now().Truncate(time.Second)
	h.clock.Advance(time.Minute)
	var changed []string
	for _, c := range oldestCustomers(d, 2500) {
		editCustomer(d, c.ID)
		changed = append(changed, c.ID)
		h.clock.Advance(7 * time.Millisecond)
	}
	got, _ := readPass(t, h, model.KindCustomer, since, func(page int) {
		if page == 1 {
			h.clock.Advance(time.Second)
			editCustomer(d, changed[0])
		}
	})
	for _, id := range changed {
		if got[id] == 0 {
			t.Fatalf("changed contact %s never arrived (%d of %d did)", id, len(got), len(changed))
		}
	}
}

// TestCursorAlwaysProgresses: whatever a page holds (sorted, unsorted, one
// second, empty), the next cursor is past the current one, so a pass
// always ends; and a cursor survives its encoding.
func TestCursorAlwaysProgresses(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	after := func(a, b cursor) bool {
		if !a.since.Equal(b.since) {
			return a.since.After(b.since)
		}
		return a.page > b.page
	}
	for i := range 2000 {
		c := startCursor(time.Time{}, 1)
		if i%3 != 0 {
			c = cursor{since: base.Add(time.Duration(rng.IntN(100)) * time.Second), page: 1 + rng.IntN(3)}
		}
		docs := make([]docMeta, rng.IntN(6))
		at := c.since
		if at.IsZero() {
			at = base
		}
		for j := range docs {
			if rng.IntN(4) > 0 {
				at = at.Add(time.Duration(rng.IntN(1500)) * time.Millisecond)
			}
			docs[j] = docMeta{id: fmt.Sprint(j), mod: at}
		}
		if i%7 == 0 && len(docs) > 1 {
			docs[0], docs[1] = docs[1], docs[0]
		}
		n, _ := c.next(docs, 3)
		if !after(n, c) && !(c.since.IsZero() && !n.since.IsZero()) {
			t.Fatalf("cursor %v after %v does not progress (docs %v)", n, c, docs)
		}
		back, err := parseCursor(n.String())
		if err != nil || !back.since.Equal(n.since) || back.page != n.page || len(back.seen) != len(n.seen) {
			t.Fatalf("cursor %q decodes to %+v (%v)", n.String(), back, err)
		}
	}
	for _, bad := range []string{"", "k1", "k2.1.1", "k1.x.1", "k1.1.0", "k1.1.1.a.b"} {
		if _, err := parseCursor(bad); err == nil {
			t.Errorf("cursor %q parsed", bad)
		}
	}
}

// TestBadCursorRereadsTheWindow: a cursor this connector did not write (a
// checkpoint of another version) restarts the pass's window from its
// start rather than failing every later sync at the same page.
func TestBadCursorRereadsTheWindow(t *testing.T) {
	h := newHarness(t, sim.Options{}, nil)
	p, err := h.conn.ListPage(context.Background(), connectors.PageRequest{Entity: model.KindCustomer, Page: 3, Cursor: "offset=2000"})
	if err != nil {
		t.Fatalf("a foreign cursor failed the page: %v", err)
	}
	if want := len(contactIDs(h.sim.Dataset())); len(p.Docs) != want {
		t.Fatalf("%d contacts, want the window's first page of %d", len(p.Docs), want)
	}
}
