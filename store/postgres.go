package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/crc64"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3/lock"
)

// postgresMaxConns is the pool size of a Postgres store. Handlers keep their
// transactions short, so a few connections serve a replica.
const postgresMaxConns = 8

// openPostgres opens a Postgres store through pgx's database/sql driver.
// Runtime parameters in the URL, such as search_path, apply to every
// connection of the pool.
func openPostgres(ctx context.Context, url string) (*DB, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	connector := stdlib.GetConnector(*cfg, stdlib.OptionAfterConnect(scanTimesInUTC))
	sqlDB := openTracedConnector(connector, "postgresql")
	sqlDB.SetMaxOpenConns(postgresMaxConns)
	sqlDB.SetMaxIdleConns(postgresMaxConns)
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	if err := sqlDB.PingContext(ctx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	return &DB{DB: sqlDB, Dialect: Postgres, committed: make(chan struct{}, 1)}, nil
}

// scanTimesInUTC makes the connection read timestamptz values in UTC, as the
// SQLite store does, instead of the process's local zone. The instant is the
// same either way; the location shows in logs, JSON and comparisons of
// whole structs.
func scanTimesInUTC(_ context.Context, conn *pgx.Conn) error {
	conn.TypeMap().RegisterType(&pgtype.Type{
		Name:  "timestamptz",
		OID:   pgtype.TimestamptzOID,
		Codec: &pgtype.TimestamptzCodec{ScanLocation: time.UTC},
	})
	return nil
}

// migrationLock returns the advisory lock that keeps replicas starting at
// once from migrating the same schema together: the first migrates, the
// others wait and then find nothing to do. The lock is per schema, so that
// databases side by side in one server (tests, staging) do not wait on each
// other.
func migrationLock(ctx context.Context, db *DB) (lock.SessionLocker, error) {
	var schema sql.NullString
	if err := db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return nil, fmt.Errorf("read current schema: %w", err)
	}
	if !schema.Valid {
		return nil, errors.New("no schema to migrate: the search_path names none that exists")
	}
	id := int64(crc64.Checksum([]byte("millrace migrate "+schema.String),
		crc64.MakeTable(crc64.ISO)))
	// Probe every second for up to five minutes.
	return lock.NewPostgresSessionLocker(lock.WithLockID(id), lock.WithLockTimeout(1, 300))
}
