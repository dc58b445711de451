package storetest_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/store"
	"github.com/millrace/millrace/store/storetest"
)

func TestWithSearchPath(t *testing.T) {
	t.Parallel()
	got, err := storetest.WithSearchPath(
		"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "t_abc")
	require.NoError(t, err)
	require.Equal(t,
		"postgres://postgres@127.0.0.1:5432/postgres?search_path=t_abc&sslmode=disable", got)
}

// TestPostgresIsolated checks that each test gets a schema of its own and
// that the schema is dropped when the test ends.
func TestPostgresIsolated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var schemas []string
	for _, name := range []string{"a", "b"} {
		t.Run(name, func(t *testing.T) {
			db := storetest.Postgres(t)
			require.Equal(t, store.Postgres, db.Dialect)
			var schema string
			require.NoError(t, db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema))
			require.Regexp(t, `^t_[0-9a-f]{16}$`, schema)
			schemas = append(schemas, schema)

			var n int
			require.NoError(t, db.QueryRowContext(ctx,
				`SELECT COUNT(*) FROM processed_messages`).Scan(&n))
			require.Zero(t, n, "a fresh schema starts empty")
			_, err := db.ExecContext(ctx, `INSERT INTO processed_messages
				(handler, idempotency_key, processed_at) VALUES ('h', 'k', $1)`,
				store.Now(time.Now()))
			require.NoError(t, err)
		})
	}
	if len(schemas) < 2 {
		t.Skip("postgres tests skipped: the subtests found no PostgreSQL")
	}
	require.NotEqual(t, schemas[0], schemas[1])

	admin, err := sql.Open("pgx", storetest.PostgresURL())
	require.NoError(t, err)
	defer admin.Close()
	var left int
	require.NoError(t, admin.QueryRowContext(ctx, `SELECT COUNT(*) FROM pg_namespace
		WHERE nspname = $1 OR nspname = $2`, schemas[0], schemas[1]).Scan(&left))
	require.Zero(t, left, "the test schemas are dropped")
}
