// Package storetest opens a migrated database for a test.
package storetest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/millrace/millrace/store"
)

// New returns a fresh, migrated SQLite database in the test's temporary
// directory, closed when the test ends.
func New(t testing.TB) *store.DB {
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
