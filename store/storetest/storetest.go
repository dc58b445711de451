// Package storetest opens a migrated database for a test.
//
// New returns SQLite unless MILLRACE_TEST_DB=postgres, in which case it
// returns a Postgres database like Postgres does. Postgres tests each get a
// schema of their own in the database named by MILLRACE_TEST_POSTGRES_URL
// (default DefaultPostgresURL), dropped when the test ends. Without a
// reachable Postgres they skip with a one-line reason, or fail when the CI
// variable is set, so that CI cannot pass by skipping them.
package storetest

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/millrace/millrace/store"
)

// Environment variables that choose the test database.
const (
	// EnvDB selects the database New returns: "postgres", or anything else
	// (usually unset) for SQLite.
	EnvDB = "MILLRACE_TEST_DB"
	// EnvPostgresURL is the Postgres server tests create their schemas in.
	EnvPostgresURL = "MILLRACE_TEST_POSTGRES_URL"
	// DefaultPostgresURL is used when EnvPostgresURL is unset.
	DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
)

// New returns a fresh, migrated database, closed when the test ends: SQLite
// in the test's temporary directory, or a Postgres schema of its own when
// MILLRACE_TEST_DB=postgres.
func New(t testing.TB) *store.DB {
	t.Helper()
	if os.Getenv(EnvDB) == "postgres" {
		return Postgres(t)
	}
	return SQLite(t)
}

// SQLite returns a fresh, migrated SQLite database in the test's temporary
// directory, closed when the test ends, whatever MILLRACE_TEST_DB says.
func SQLite(t testing.TB) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "millrace.db"))
	if err != nil {
		t.Fatalf("open test store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrate test store: %v", err)
	}
	return db
}
