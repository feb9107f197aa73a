package rows

import (
	"cmp"
	"slices"

	"github.com/erpsync/erpsync-operator/connectors/model"
)

// Group is the records of one kind in a batch.
type Group struct {
	Table   *Table
	Records []*model.Record
}

// Plan prepares a batch for a database write: it checks every record's key
// and kind, groups the records by kind in sync order, keeps for each key only
// the newest version (the last one among equal modified times: a
// record-by-record write would store each of them in turn, since an equal
// time with other content is written), and sorts each group by key so that
// concurrent writers take row locks in the same order. It returns the number
// of records dropped as superseded duplicates, which count as skipped.
func Plan(batch []model.Record) (groups []Group, dropped int, err error) {
	index := make(map[model.Key]int, len(batch))
	keep := make([]bool, len(batch))
	for i := range batch {
		r := &batch[i]
		if err := ValidateKey(r); err != nil {
			return nil, 0, err
		}
		k := r.Key()
		j, seen := index[k]
		if !seen {
			index[k] = i
			keep[i] = true
			continue
		}
		dropped++
		if !StoredTime(r.ModifiedAt).Before(StoredTime(batch[j].ModifiedAt)) {
			keep[j] = false
			keep[i] = true
			index[k] = i
		}
	}
	byKind := map[model.Kind]*Group{}
	for i := range batch {
		if !keep[i] {
			continue
		}
		r := &batch[i]
		g := byKind[r.Kind]
		if g == nil {
			t, _ := Lookup(r.Kind)
			g = &Group{Table: t}
			byKind[r.Kind] = g
		}
		g.Records = append(g.Records, r)
	}
	for _, k := range model.Kinds {
		g := byKind[k]
		if g == nil {
			continue
		}
		slices.SortFunc(g.Records, func(a, b *model.Record) int {
			return cmp.Or(cmp.Compare(a.Company, b.Company), cmp.Compare(a.Vendor, b.Vendor), cmp.Compare(a.VendorID, b.VendorID))
		})
		groups = append(groups, *g)
	}
	return groups, dropped, nil
}
