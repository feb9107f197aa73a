package connectortest

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/sinks/memory"
)

// Company is the company id every scenario's connector stamps (Env.Connect
// builds connectors for it).
const Company = "acme"

// maxNamed bounds the ids a Diff names per category.
const maxNamed = 5

// Diff is how a CRM differs from what the ERP holds.
type Diff struct {
	// Wanted is the number of records the ERP holds.
	Wanted int
	// Lost counts wanted records the CRM does not hold; LostIDs names the
	// first few ("kind/id").
	Lost    int
	LostIDs []string
	// Stale counts records the CRM holds in an older version (a Check
	// failed, or the deleted flag differs); StaleIDs names the first few
	// with the reason.
	Stale    int
	StaleIDs []string
	// Extra counts records in the CRM the ERP no longer lists (hard
	// deletes the vendor does not signal); ExtraLive those of them the
	// CRM still holds live (not tombstoned), ExtraIDs names the first few
	// of those. Only the deletion scenarios require ExtraLive to be 0
	// (Exact): the others run no reconciliation.
	Extra     int
	ExtraLive int
	ExtraIDs  []string
}

// Exact reports whether the CRM equals the ERP, deletions included: every
// record the ERP no longer holds is a tombstone.
func (d Diff) Exact() bool { return d.OK() && d.ExtraLive == 0 }

// OK reports whether the CRM equals the ERP.
func (d Diff) OK() bool { return d.Lost == 0 && d.Stale == 0 }

// String summarises the difference for a failure message.
func (d Diff) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d wanted: %d lost, %d stale, %d extra (%d of them live)", d.Wanted, d.Lost, d.Stale, d.Extra, d.ExtraLive)
	if len(d.ExtraIDs) > 0 {
		fmt.Fprintf(&b, "; live extra %s", strings.Join(d.ExtraIDs, ", "))
	}
	if len(d.LostIDs) > 0 {
		fmt.Fprintf(&b, "; lost %s", strings.Join(d.LostIDs, ", "))
	}
	if len(d.StaleIDs) > 0 {
		fmt.Fprintf(&b, "; stale %s", strings.Join(d.StaleIDs, "; "))
	}
	return b.String()
}

// Compare checks the memory sink against what the ERP holds: every Want
// present under (Company, vendor, kind, id), with the same deleted flag and
// a nil Check. Records of a kind no Want names are ignored; records of a
// wanted kind that no Want names count as Extra.
func Compare(sink *memory.Sink, vendor string, want []Want) Diff {
	d := Diff{Wanted: len(want)}
	wantedKinds := map[model.Kind]bool{}
	wanted := make(map[model.Key]bool, len(want))
	// Name lost and stale records in a stable order, so that failures
	// read the same on every run.
	sorted := make([]Want, len(want))
	copy(sorted, want)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].Kind != sorted[j].Kind {
			return sorted[i].Kind.Order() < sorted[j].Kind.Order()
		}
		return sorted[i].VendorID < sorted[j].VendorID
	})
	for _, w := range sorted {
		wantedKinds[w.Kind] = true
		k := model.Key{Company: Company, Vendor: vendor, Kind: w.Kind, VendorID: w.VendorID}
		wanted[k] = true
		r, ok := sink.Get(k)
		if !ok {
			d.Lost++
			if len(d.LostIDs) < maxNamed {
				d.LostIDs = append(d.LostIDs, string(w.Kind)+"/"+w.VendorID)
			}
			continue
		}
		var why string
		switch {
		case r.Deleted != w.Deleted:
			why = fmt.Sprintf("deleted is %t, the ERP says %t", r.Deleted, w.Deleted)
		case w.Check != nil:
			if err := w.Check(&r); err != nil {
				why = err.Error()
			}
		}
		if why != "" {
			d.Stale++
			if len(d.StaleIDs) < maxNamed {
				d.StaleIDs = append(d.StaleIDs, string(w.Kind)+"/"+w.VendorID+": "+why)
			}
		}
	}
	for _, r := range sink.Records() {
		if r.Company == Company && r.Vendor == vendor && wantedKinds[r.Kind] && !wanted[r.Key()] {
			d.Extra++
			if !r.Deleted {
				d.ExtraLive++
				if len(d.ExtraIDs) < maxNamed {
					d.ExtraIDs = append(d.ExtraIDs, string(r.Kind)+"/"+r.VendorID)
				}
			}
		}
	}
	return d
}

// RequireExact fails the test unless the sink equals what env's ERP holds
// now, deletions included: a record the ERP no longer holds must be a
// tombstone.
func RequireExact(t testing.TB, vendor string, sink *memory.Sink, env *Env, what string) {
	t.Helper()
	want := env.Expected()
	if len(want) == 0 {
		t.Fatalf("%s: the harness expects no record at all; a scenario needs a dataset", what)
	}
	if d := Compare(sink, vendor, want); !d.Exact() {
		t.Fatalf("%s: the CRM differs from the ERP, deletions included: %s", what, d)
	}
}

// RequireEqual fails the test unless the sink equals what env's ERP holds
// now; what names the moment ("after the import").
func RequireEqual(t testing.TB, vendor string, sink *memory.Sink, env *Env, what string) {
	t.Helper()
	want := env.Expected()
	if len(want) == 0 {
		t.Fatalf("%s: the harness expects no record at all; a scenario needs a dataset", what)
	}
	if d := Compare(sink, vendor, want); !d.OK() {
		t.Fatalf("%s: the CRM differs from the ERP: %s", what, d)
	}
}
