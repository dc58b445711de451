package store_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/store"
	"github.com/millrace/millrace/store/storetest"
)

// gooseTable is goose's own bookkeeping table, which differs by dialect.
const gooseTable = "goose_db_version"

// TestMigrationsMatch migrates a fresh SQLite database and a fresh Postgres
// schema and requires the same tables with the same columns in both: the
// two migration directories are written by hand and must not drift.
func TestMigrationsMatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	lite := columnsOf(t, ctx, storetest.SQLite(t))
	pg := columnsOf(t, ctx, storetest.Postgres(t))
	if diff := schemaDiff(lite, pg); diff != "" {
		t.Fatalf("the SQLite and Postgres migrations disagree:\n%s", diff)
	}
}

// TestMigrationFilesPaired requires each SQLite migration to have a Postgres
// twin of the same name, so that both databases record the same versions.
func TestMigrationFilesPaired(t *testing.T) {
	t.Parallel()
	lite, err := store.MigrationFiles(store.SQLite)
	require.NoError(t, err)
	pg, err := store.MigrationFiles(store.Postgres)
	require.NoError(t, err)
	require.Equal(t, lite, pg, "migration files of sqlite/ and postgres/")
}

// columnsOf returns each table's column names, sorted, without goose's table.
func columnsOf(t *testing.T, ctx context.Context, db *store.DB) map[string][]string {
	t.Helper()
	query := `SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'`
	if db.Dialect == store.Postgres {
		query = `SELECT table_name, column_name FROM information_schema.columns
			WHERE table_schema = current_schema()`
	}
	rows, err := db.QueryContext(ctx, query)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var table, column string
		require.NoError(t, rows.Scan(&table, &column))
		if table != gooseTable {
			out[table] = append(out[table], column)
		}
	}
	require.NoError(t, rows.Err())
	require.NotEmpty(t, out, "no tables found in the %s database", db.Dialect)
	for _, cols := range out {
		slices.Sort(cols)
	}
	return out
}

// schemaDiff describes how two schemas differ, one line per table or column
// that only one side has; it is empty when they match.
func schemaDiff(lite, pg map[string][]string) string {
	var b strings.Builder
	tables := slices.Sorted(func(yield func(string) bool) {
		for name := range lite {
			if !yield(name) {
				return
			}
		}
		for name := range pg {
			if _, ok := lite[name]; !ok && !yield(name) {
				return
			}
		}
	})
	for _, table := range tables {
		l, inLite := lite[table]
		p, inPG := pg[table]
		switch {
		case !inPG:
			fmt.Fprintf(&b, "table %s: only in SQLite\n", table)
		case !inLite:
			fmt.Fprintf(&b, "table %s: only in Postgres\n", table)
		default:
			for _, c := range missing(l, p) {
				fmt.Fprintf(&b, "column %s.%s: only in SQLite\n", table, c)
			}
			for _, c := range missing(p, l) {
				fmt.Fprintf(&b, "column %s.%s: only in Postgres\n", table, c)
			}
		}
	}
	return b.String()
}

// missing returns the names in have that want lacks.
func missing(have, want []string) []string {
	var out []string
	for _, c := range have {
		if !slices.Contains(want, c) {
			out = append(out, c)
		}
	}
	return out
}

func TestSchemaDiff(t *testing.T) {
	t.Parallel()
	lite := map[string][]string{"a": {"id", "x"}, "b": {"id"}}
	pg := map[string][]string{"a": {"id", "y"}, "c": {"id"}}
	require.Equal(t, "column a.x: only in SQLite\ncolumn a.y: only in Postgres\n"+
		"table b: only in SQLite\ntable c: only in Postgres\n", schemaDiff(lite, pg))
	require.Empty(t, schemaDiff(lite, lite))
}
