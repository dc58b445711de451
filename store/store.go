// Package store opens Millrace's database, applies its migrations and holds
// the tables every handler shares: processed messages (idempotency), the
// outbox (events emitted inside a transaction) and the poison queue.
//
// SQL in this package and in handlers is written once for SQLite and
// Postgres: numbered placeholders ($1), ON CONFLICT, no dialect-only
// functions, and times computed in Go and passed as parameters.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations
var migrationFS embed.FS

// Dialect names the SQL engine behind a DB.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DB is Millrace's database handle.
type DB struct {
	*sql.DB
	Dialect Dialect

	// committed is signalled after a transaction that wrote to the outbox
	// commits, so the relay publishes at once instead of at its next poll.
	committed chan struct{}
	// txPublish, when set, publishes enqueued events in their transaction
	// instead of writing them to the outbox.
	txPublish TxPublisher
}

// Open opens the database named by url: "sqlite:PATH" or a bare file path for
// SQLite (the directory is created), "postgres://..." or "postgresql://..."
// for Postgres. A Postgres URL may name the schema to work in with
// ?search_path=NAME.
func Open(ctx context.Context, url string) (*DB, error) {
	switch {
	case IsPostgresURL(url):
		return openPostgres(ctx, url)
	default:
		return openSQLite(ctx, strings.TrimPrefix(url, "sqlite:"))
	}
}

func openSQLite(ctx context.Context, path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("open store: empty SQLite path")
	}
	if path != ":memory:" {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
	}
	// WAL lets readers run beside the one writer; busy_timeout makes a second
	// writer wait instead of failing; _txlock=immediate takes the write lock
	// at BEGIN so two transactions never deadlock upgrading a read lock.
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)" +
		"&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate&_time_format=sqlite"
	sqlDB, err := openTraced("sqlite", dsn, "sqlite")
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	sqlDB.SetMaxOpenConns(8)
	if err := sqlDB.PingContext(ctx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	return &DB{DB: sqlDB, Dialect: SQLite, committed: make(chan struct{}, 1)}, nil
}

// Migrate applies every migration not yet applied and returns how many ran.
func (db *DB) Migrate(ctx context.Context) (int, error) {
	fsys, err := fs.Sub(migrationFS, "migrations/"+string(db.Dialect))
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	dialect := goose.DialectSQLite3
	var opts []goose.ProviderOption
	if db.Dialect == Postgres {
		dialect = goose.DialectPostgres
		locker, err := migrationLock(ctx, db)
		if err != nil {
			return 0, fmt.Errorf("migrate: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(dialect, db.DB, fsys, opts...)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	return len(res), nil
}

// Ping reports whether the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.PingContext(ctx) }

// Committed returns a channel that receives after a transaction that emitted
// events commits in this process.
func (db *DB) Committed() <-chan struct{} { return db.committed }

func (db *DB) notifyCommitted() {
	select {
	case db.committed <- struct{}{}:
	default:
	}
}

// Now returns t in the form Millrace stores: UTC, to the microsecond, which is
// what Postgres keeps.
func Now(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// IsPostgresURL reports whether url names a Postgres database.
func IsPostgresURL(url string) bool {
	return strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://")
}

// pgUniqueViolation is Postgres's SQLSTATE for a unique or primary key
// conflict.
const pgUniqueViolation = "23505"

// IsUniqueViolation reports whether err is a unique or primary key conflict.
func IsUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == pgUniqueViolation
	}
	// modernc reports "constraint failed: UNIQUE constraint failed: ...";
	// the driver's error code type would pull its internals into every caller.
	msg := err.Error()
	return strings.Contains(msg, "UNIQUE constraint failed")
}

// MigrationFiles returns the names of the migration files of dialect, in the
// order they apply.
func MigrationFiles(dialect Dialect) ([]string, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations/"+string(dialect))
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, nil
}
