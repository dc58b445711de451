package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/millrace/millrace/job"
)

// TxPublisher publishes an event inside the transaction that emits it, on a
// transport whose queue lives in the same database: the event exists if and
// only if the transaction commits, with no outbox row and no relay hop.
type TxPublisher func(ctx context.Context, tx *sql.Tx, ev job.Event) error

// SetTxPublisher makes Enqueue (and so Emit) publish through p. Call it
// before the first transaction. Replays (EnqueueReplay) and the rows other
// processes write still go to the outbox, which RelayInTx then empties
// through p.
func (db *DB) SetTxPublisher(p TxPublisher) { db.txPublish = p }

// HasTxPublisher reports whether SetTxPublisher was called.
func (db *DB) HasTxPublisher() bool { return db.txPublish != nil }

// ErrNoTxPublisher is returned by RelayInTx on a DB without a TxPublisher.
var ErrNoTxPublisher = errors.New("no transactional publisher")

// RelayInTx publishes up to limit pending outbox rows through the
// TxPublisher and marks them published, all in one transaction. The rows
// are locked and locked rows skipped, so replicas relaying at once never
// publish the same row: each is published exactly once. It returns how many
// it published. Only Postgres has a TxPublisher.
func (db *DB) RelayInTx(ctx context.Context, limit int, at time.Time) (int, error) {
	if db.txPublish == nil {
		return 0, ErrNoTxPublisher
	}
	n := 0
	err := db.InTx(ctx, func(tx *Tx) error {
		rows, err := pendingOutbox(ctx, tx.Tx, limit, at, " FOR UPDATE SKIP LOCKED")
		if err != nil {
			return err
		}
		for _, r := range rows {
			if err := db.txPublish(ctx, tx.Tx, r.Event); err != nil {
				return fmt.Errorf("relay outbox row %d: %w", r.Seq, err)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE outbox SET published_at = $1
				WHERE seq = $2`, Now(at), r.Seq); err != nil {
				return fmt.Errorf("mark published: %w", err)
			}
		}
		n = len(rows)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// RelayLocked hands up to limit due outbox rows to publish and marks them
// published, in one transaction that holds the rows locked while publish
// runs: replicas relaying at once skip each other's rows, and a relay that
// dies before the commit leaves its rows pending, to be published again with
// the same message ids. This is the outbox forwarder of a transport outside
// the database (Kafka): at least once, never lost. Postgres only; it
// returns how many rows it published.
func (db *DB) RelayLocked(ctx context.Context, limit int, at time.Time,
	publish func(ctx context.Context, rows []OutboxRow) error) (int, error) {
	if db.Dialect != Postgres {
		return 0, fmt.Errorf("relay with row locks: %s has no SKIP LOCKED", db.Dialect)
	}
	n := 0
	err := db.InTx(ctx, func(tx *Tx) error {
		rows, err := pendingOutbox(ctx, tx.Tx, limit, at, " FOR UPDATE SKIP LOCKED")
		if err != nil || len(rows) == 0 {
			return err
		}
		if err := publish(ctx, rows); err != nil {
			return err
		}
		seqs := make([]int64, len(rows))
		for i, r := range rows {
			seqs[i] = r.Seq
		}
		if _, err := tx.ExecContext(ctx, `UPDATE outbox SET published_at = $1
			WHERE seq = ANY($2)`, Now(at), seqs); err != nil {
			return fmt.Errorf("mark published: %w", err)
		}
		n = len(rows)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}
