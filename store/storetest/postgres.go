package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/millrace/millrace/store"
)

// poolSize is the connection limit of each test's database. The server is
// shared by every test package running at once.
const poolSize = 4

// admin is the connection tests create and drop their schemas through,
// opened once per test binary. Its error is kept, so that every test of a
// binary without Postgres skips at once with the same reason.
var admin struct {
	once sync.Once
	url  string
	db   *sql.DB
	err  error
}

// Postgres returns a fresh, migrated Postgres database, closed when the test
// ends: a schema of its own, named t_<random>, dropped with everything in it
// by the test's cleanup. Without a reachable server the test is skipped, or
// fails when the CI variable is set.
func Postgres(t testing.TB) *store.DB {
	t.Helper()
	adminDB, baseURL := adminConn(t)
	ctx := context.Background()
	schema := "t_" + randomHex(t)
	if _, err := adminDB.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create test schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := adminDB.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop test schema %s: %v", schema, err)
		}
	})
	dbURL, err := WithSearchPath(baseURL, schema)
	if err != nil {
		t.Fatalf("open test store: %v", err)
	}
	db, err := store.Open(ctx, dbURL)
	if err != nil {
		t.Fatalf("open test store: %v", err)
	}
	db.SetMaxOpenConns(poolSize)
	db.SetMaxIdleConns(poolSize)
	// Registered after the schema's cleanup, so it runs first: the pool's
	// connections are gone before the schema is dropped.
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrate test store: %v", err)
	}
	return db
}

// PostgresURL returns the server tests use, from MILLRACE_TEST_POSTGRES_URL
// or the default.
func PostgresURL() string {
	if u := os.Getenv(EnvPostgresURL); u != "" {
		return u
	}
	return DefaultPostgresURL
}

// WithSearchPath returns the Postgres URL u with its search_path set to
// schema, so that every connection opened from it works in that schema.
func WithSearchPath(u, schema string) (string, error) {
	parsed, err := url.Parse(u)
	if err != nil {
		return "", fmt.Errorf("parse postgres url: %w", err)
	}
	q := parsed.Query()
	q.Set("search_path", schema)
	parsed.RawQuery = q.Encode()
	return parsed.String(), nil
}

// adminConn returns the shared admin connection and the server's URL, or
// ends the test when the server cannot be reached.
func adminConn(t testing.TB) (*sql.DB, string) {
	t.Helper()
	admin.once.Do(func() {
		admin.url = PostgresURL()
		admin.db, admin.err = openAdmin(admin.url)
	})
	if admin.err != nil {
		unreachable(t, admin.err)
	}
	return admin.db, admin.url
}

func openAdmin(u string) (*sql.DB, error) {
	db, err := sql.Open("pgx", u)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(2)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// unreachable skips the test, or fails it in CI, where the Postgres tests
// are required.
func unreachable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("postgres tests are required in CI, but no PostgreSQL answers: %v", err)
	}
	t.Skipf("postgres tests skipped: no PostgreSQL reachable (%v)", err)
}

func randomHex(t testing.TB) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("name test schema: %v", err)
	}
	return hex.EncodeToString(b)
}
