package rows

import (
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Migration is one embedded schema migration.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

var migrationName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// LoadMigrations reads the NNNN_name.sql files at the top of fsys, sorted by
// version, and checks that versions run 1, 2, … without gaps.
func LoadMigrations(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if e.IsDir() || m == nil {
			return nil, fmt.Errorf("migration file %q is not named NNNN_name.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		out = append(out, Migration{Version: v, Name: strings.TrimSuffix(e.Name(), ".sql"), SQL: string(b)})
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration versions must run 1, 2, …: %s has version %d at position %d", m.Name, m.Version, i+1)
		}
	}
	return out, nil
}

// LatestVersion is the schema version the typed columns of Tables, the
// content hash, the set-aside table and the tombstone columns need.
func LatestVersion() int {
	v := max(HashSince, DeletionSince)
	for _, t := range Tables {
		for _, c := range t.Columns {
			v = max(v, c.Since)
		}
	}
	return v
}

var destructive = regexp.MustCompile(`(?i)\b(drop|truncate|delete\s+from|rename|alter\s+column)\b`)

// CheckNonDestructive returns an error if a migration drops, truncates,
// deletes, renames or retypes anything: migrations only add.
func CheckNonDestructive(ms []Migration) error {
	for _, m := range ms {
		for i, line := range strings.Split(m.SQL, "\n") {
			code, _, _ := strings.Cut(line, "--")
			if w := destructive.FindString(code); w != "" {
				return fmt.Errorf("migration %s line %d is destructive (%s)", m.Name, i+1, w)
			}
		}
	}
	return nil
}
