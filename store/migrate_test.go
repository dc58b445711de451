package store_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/store"
	"github.com/millrace/millrace/store/storetest"
)

// TestPostgresMigrateConcurrently starts two replicas' migrations on one
// empty schema at once: the advisory lock lets one apply everything and the
// other find nothing left to do, instead of failing on tables that exist.
func TestPostgresMigrateConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	schema := emptySchema(t)
	files, err := store.MigrationFiles(store.Postgres)
	require.NoError(t, err)

	var wg sync.WaitGroup
	applied := make([]int, 2)
	errs := make([]error, 2)
	for i := range 2 {
		db := openSchema(t, schema)
		wg.Go(func() { applied[i], errs[i] = db.Migrate(ctx) })
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	require.Equal(t, len(files), applied[0]+applied[1])
}

func TestPostgresMigrateMissingSchema(t *testing.T) {
	t.Parallel()
	storetest.Postgres(t) // skips without a server
	db := openSchema(t, "t_no_such_schema")
	_, err := db.Migrate(context.Background())
	require.ErrorContains(t, err, "search_path")
}

// emptySchema creates a schema with nothing in it, dropped when the test
// ends.
func emptySchema(t *testing.T) string {
	t.Helper()
	admin := storetest.Postgres(t)
	var schema string
	require.NoError(t, admin.QueryRowContext(context.Background(),
		`SELECT current_schema() || '_empty'`).Scan(&schema))
	_, err := admin.ExecContext(context.Background(), `CREATE SCHEMA `+schema)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := admin.ExecContext(context.Background(), `DROP SCHEMA `+schema+` CASCADE`)
		require.NoError(t, err)
	})
	return schema
}

func openSchema(t *testing.T, schema string) *store.DB {
	t.Helper()
	u, err := storetest.WithSearchPath(storetest.PostgresURL(), schema)
	require.NoError(t, err)
	db, err := store.Open(context.Background(), u)
	require.NoError(t, err)
	db.SetMaxOpenConns(2)
	t.Cleanup(func() { db.Close() })
	return db
}
