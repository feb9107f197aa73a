package rows

import (
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/model"
)

func TestValidDecimal(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"0", true}, {"12.5", true}, {"-0.01", true}, {"1234567890.123456789", true},
		{"", false}, {"-", false}, {".5", false}, {"5.", false}, {"1e5", false}, {"12,50", false},
		{"+1", false}, {" 1", false}, {"1 ", false}, {"1.2.3", false}, {"NaN", false}, {"--1", false},
		{strings.Repeat("9", 81), false},
	} {
		err := ValidDecimal(model.Decimal(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("ValidDecimal(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}

func rec(id string, at time.Time, kind model.Kind) model.Record {
	var d model.Payload = &model.Product{SKU: id}
	if kind == model.KindCustomer {
		d = &model.Customer{Code: id}
	}
	return model.Record{Company: "acme", Vendor: "v", Kind: kind, VendorID: id, ModifiedAt: at, Data: d}
}

// label names a kept record by its SKU or code (rec sets them to the id;
// a test changes them to tell versions apart).
func label(r *model.Record) string {
	switch p := r.Data.(type) {
	case *model.Product:
		return p.SKU
	case *model.Customer:
		return p.Code
	}
	return r.VendorID
}

func TestPlan(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	for _, tc := range []struct {
		name        string
		batch       []model.Record
		wantGroups  map[model.Kind][]string // kept ids with their minute, in order
		wantDropped int
		wantErr     string
	}{
		{
			name:       "groups by kind in sync order, sorted by key",
			batch:      []model.Record{rec("b", at(1), model.KindProduct), rec("z", at(1), model.KindCustomer), rec("a", at(1), model.KindProduct)},
			wantGroups: map[model.Kind][]string{model.KindCustomer: {"z@1"}, model.KindProduct: {"a@1", "b@1"}},
		},
		{
			name:        "keeps the newest duplicate",
			batch:       []model.Record{rec("a", at(2), model.KindProduct), rec("a", at(5), model.KindProduct), rec("a", at(3), model.KindProduct)},
			wantGroups:  map[model.Kind][]string{model.KindProduct: {"a@5"}},
			wantDropped: 2,
		},
		{
			name: "keeps the last of equal times",
			batch: func() []model.Record {
				a, b, c := rec("a", at(2), model.KindProduct), rec("a", at(2), model.KindProduct), rec("a", at(1), model.KindProduct)
				b.Data = &model.Product{SKU: "second"}
				return []model.Record{a, b, c}
			}(),
			wantGroups:  map[model.Kind][]string{model.KindProduct: {"second@2"}},
			wantDropped: 2,
		},
		{
			name:       "same id in two kinds is two keys",
			batch:      []model.Record{rec("a", at(1), model.KindProduct), rec("a", at(1), model.KindCustomer)},
			wantGroups: map[model.Kind][]string{model.KindCustomer: {"a@1"}, model.KindProduct: {"a@1"}},
		},
		{
			name:    "unknown kind",
			batch:   []model.Record{rec("a", at(1), "widgets")},
			wantErr: "unknown kind",
		},
		{
			name:    "empty vendor id",
			batch:   []model.Record{rec("", at(1), model.KindProduct)},
			wantErr: "empty vendor id",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			groups, dropped, err := Plan(tc.batch)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Plan error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if dropped != tc.wantDropped {
				t.Errorf("dropped %d, want %d", dropped, tc.wantDropped)
			}
			if len(groups) != len(tc.wantGroups) {
				t.Fatalf("%d groups, want %d", len(groups), len(tc.wantGroups))
			}
			last := -1
			for _, g := range groups {
				if g.Table.Kind.Order() <= last {
					t.Errorf("groups out of sync order")
				}
				last = g.Table.Kind.Order()
				var got []string
				for _, r := range g.Records {
					got = append(got, label(r)+"@"+strconv.Itoa(int(r.ModifiedAt.Sub(t0)/time.Minute)))
				}
				if strings.Join(got, ",") != strings.Join(tc.wantGroups[g.Table.Kind], ",") {
					t.Errorf("%s: kept %v, want %v", g.Table.Kind, got, tc.wantGroups[g.Table.Kind])
				}
			}
		})
	}
}

func TestRowValues(t *testing.T) {
	due := time.Date(2025, 2, 3, 4, 5, 6, 789_123_456, time.FixedZone("NZDT", 13*3600))
	r := model.Record{Company: "acme", Vendor: "v", Kind: model.KindInvoice, VendorID: "i1",
		ModifiedAt: time.Date(2025, 1, 1, 0, 0, 0, 1_234_567, time.UTC),
		Data:       &model.Invoice{Number: "INV-1", Total: "10.50", DueDate: &due, Status: ""}}
	tb, _ := Lookup(model.KindInvoice)
	row, err := tb.Row(&r, tb.Columns)
	if err != nil {
		t.Fatal(err)
	}
	if !row.ModifiedAt.Equal(time.Date(2025, 1, 1, 0, 0, 0, 1_234_000, time.UTC)) {
		t.Errorf("modified at %v, want truncated to microseconds", row.ModifiedAt)
	}
	vals := map[string]any{}
	for i, c := range tb.Columns {
		vals[c.Name] = row.Values[i]
	}
	if vals["number"] != "INV-1" || vals["total"] != "10.50" || vals["status"] != nil || vals["sub_total"] != nil {
		t.Errorf("values %v", vals)
	}
	if d, ok := vals["due_date"].(time.Time); !ok || d.Location() != time.UTC || d.Nanosecond() != 789_123_000 {
		t.Errorf("due_date %v, want UTC to the microsecond", vals["due_date"])
	}
}

func TestEveryKindHasATable(t *testing.T) {
	if len(Tables) != len(model.Kinds) {
		t.Fatalf("%d tables for %d kinds", len(Tables), len(model.Kinds))
	}
	for i, k := range model.Kinds {
		if Tables[i].Kind != k {
			t.Errorf("table %d is %s, want %s (sync order)", i, Tables[i].Kind, k)
		}
		if p := Tables[i].NewPayload(); p.Kind() != k {
			t.Errorf("table %s decodes into %T", k, p)
		}
		seen := map[string]bool{}
		for _, c := range append(CommonColumns, ColSyncedAt) {
			seen[c] = true
		}
		for _, c := range Tables[i].Columns {
			if seen[c.Name] {
				t.Errorf("table %s: column %s twice", k, c.Name)
			}
			seen[c.Name] = true
		}
	}
}

func TestMigrationFiles(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fs      fstest.MapFS
		wantErr string
	}{
		{"ok", fstest.MapFS{"0001_a.sql": {Data: []byte("CREATE TABLE x (a int);")}, "0002_b.sql": {Data: []byte("-- drop nothing\nALTER TABLE x ADD COLUMN b int;")}}, ""},
		{"gap", fstest.MapFS{"0001_a.sql": {}, "0003_c.sql": {}}, "run 1, 2"},
		{"bad name", fstest.MapFS{"1_a.sql": {}}, "not named"},
		{"drop", fstest.MapFS{"0001_a.sql": {Data: []byte("DROP TABLE x;")}}, "destructive"},
		{"delete", fstest.MapFS{"0001_a.sql": {Data: []byte("DELETE FROM x;")}}, "destructive"},
		{"rename", fstest.MapFS{"0001_a.sql": {Data: []byte("ALTER TABLE x RENAME TO y;")}}, "destructive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := LoadMigrations(tc.fs)
			if err == nil {
				err = CheckNonDestructive(ms)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestPlanSetAside(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 1_234_567, time.FixedZone("NZDT", 13*3600))
	item := func(company, id, reason string) model.SetAside {
		return model.SetAside{Company: company, Vendor: "xero", Kind: model.KindInvoice, VendorID: id, ModifiedAt: t0, Reason: reason, Raw: []byte(`{"Type":"ACCRECCREDIT"}`)}
	}
	t.Run("last of a key wins, sorted by key", func(t *testing.T) {
		got, err := PlanSetAside([]model.SetAside{item("globex", "b", "one"), item("acme", "b", "two"), item("acme", "a", "three"), item("acme", "b", "four")})
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, r := range got {
			keys = append(keys, r.Company+"/"+r.VendorID+"="+r.Reason)
		}
		if want := "acme/a=three,acme/b=four,globex/b=one"; strings.Join(keys, ",") != want {
			t.Fatalf("planned %v, want %s", keys, want)
		}
		if !got[0].ModifiedAt.Equal(t0.Truncate(time.Microsecond)) || got[0].ModifiedAt.Location() != time.UTC || got[0].ModifiedAt.Nanosecond() != 1_234_000 {
			t.Errorf("modified at %v, want UTC to the microsecond", got[0].ModifiedAt)
		}
	})
	t.Run("unknown modified time stays zero", func(t *testing.T) {
		it := item("acme", "a", "r")
		it.ModifiedAt = time.Time{}
		got, err := PlanSetAside([]model.SetAside{it})
		if err != nil || !got[0].ModifiedAt.IsZero() {
			t.Fatalf("PlanSetAside = %v, %v; want a zero time", got, err)
		}
	})
	for _, tc := range []struct {
		name   string
		mutate func(*model.SetAside)
		want   string
	}{
		{"empty vendor id", func(s *model.SetAside) { s.VendorID = "" }, "empty vendor id"},
		{"unknown kind", func(s *model.SetAside) { s.Kind = "widgets" }, "unknown kind"},
		{"raw not JSON", func(s *model.SetAside) { s.Raw = []byte(`{"a":`) }, "not valid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			it := item("acme", "a", "r")
			tc.mutate(&it)
			if _, err := PlanSetAside([]model.SetAside{it}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("PlanSetAside error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestCleanReason(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"invoice type \"ACCRECCREDIT\" is unknown", "invoice type \"ACCRECCREDIT\" is unknown"},
		{"  a\n\tb \x00c\x1b[31m ", "a b c[31m"},
		{"", "no reason given"},
		{"\x00\x01", "no reason given"},
		{"bad \xff utf8", "bad utf8"},
		{strings.Repeat("é", 400), strings.Repeat("é", model.MaxReasonLen/2)},
	} {
		if got := CleanReason(tc.in); got != tc.want {
			t.Errorf("CleanReason(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := CleanReason(tc.in); len(got) > model.MaxReasonLen {
			t.Errorf("CleanReason(%q) is %d bytes", tc.in, len(got))
		}
	}
}
