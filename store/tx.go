package store

import (
	"context"

	"database/sql"
	"errors"
	"fmt"
	"github.com/millrace/millrace/job"
	"time"
)

// Tx is a database transaction that can also emit events. Emitted events are
// written to the outbox in the same transaction, so they are published if and
// only if the transaction commits.
type Tx struct {
	*sql.Tx
	db      *DB
	emitted int
	now     time.Time
}

// InTx runs fn in a transaction and commits it when fn returns nil.
func (db *DB) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	sqlTx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	tx := &Tx{Tx: sqlTx, db: db, now: time.Now()}
	if err := fn(tx); err != nil {
		if rbErr := sqlTx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
			err = errors.Join(err, fmt.Errorf("rollback: %w", rbErr))
		}
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if tx.emitted > 0 {
		db.notifyCommitted()
	}
	return nil
}

// Handle runs fn in a transaction that first records (handler, key) in
// processed_messages. When the pair is already there the message was handled
// before: fn is not called and Handle returns job.ErrDuplicate's twin,
// ErrAlreadyProcessed, so the caller can ack without effects.
func (db *DB) Handle(ctx context.Context, handler, key string, fn func(tx *Tx) error) error {
	return db.InTx(ctx, func(tx *Tx) error {
		claimed, err := tx.Claim(ctx, handler, key)
		if err != nil {
			return err
		}
		if !claimed {
			return ErrAlreadyProcessed
		}
		// Also record the message id, which the router's idempotency check
		// reads before calling the handler at all.
		if m, ok := job.MessageFrom(ctx); ok && MessageKey(m.ID) != key {
			if _, err := tx.Claim(ctx, handler, MessageKey(m.ID)); err != nil {
				return err
			}
		}
		return fn(tx)
	})
}

// ErrAlreadyProcessed is returned by Handle for a message handled before.
var ErrAlreadyProcessed = errors.New("already processed")

// Claim records that handler has processed key. It returns false when the
// pair was recorded before.
func (tx *Tx) Claim(ctx context.Context, handler, key string) (bool, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO processed_messages (handler, idempotency_key, processed_at)
		VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, handler, key, Now(tx.now))
	if err != nil {
		return false, fmt.Errorf("claim message: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("claim message: %w", err)
	}
	return n == 1, nil
}

// IsProcessed reports whether handler has processed key. It is a read outside
// any transaction, used to skip an obvious duplicate before doing work; the
// claim inside the handler's transaction stays the authority.
func (db *DB) IsProcessed(ctx context.Context, handler, key string) (bool, error) {
	var one int
	err := db.QueryRowContext(ctx, `SELECT 1 FROM processed_messages
		WHERE handler = $1 AND idempotency_key = $2`, handler, key).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check processed: %w", err)
	}
	return true, nil
}

// MessageKey is the processed_messages key under which a message id is
// recorded, kept apart from handlers' own domain keys.
func MessageKey(id string) string { return "msg:" + id }
