package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/store"
	"github.com/millrace/millrace/store/storetest"
)

// The tests of this package run on the database storetest.New picks: SQLite,
// or Postgres with MILLRACE_TEST_DB=postgres (make test runs both).

var t0 = time.Date(2026, 3, 29, 0, 30, 0, 123456789, time.UTC)

func TestHandleClaimsOnce(t *testing.T) {
	t.Parallel()
	db, ctx := storetest.New(t), context.Background()
	calls := 0
	fn := func(*store.Tx) error { calls++; return nil }

	require.NoError(t, db.Handle(ctx, "h", "k1", fn))
	err := db.Handle(ctx, "h", "k1", fn)
	require.ErrorIs(t, err, store.ErrAlreadyProcessed)
	require.Equal(t, 1, calls)
	require.NoError(t, db.Handle(ctx, "other", "k1", fn), "keys are per handler")

	seen, err := db.IsProcessed(ctx, "h", "k1")
	require.NoError(t, err)
	require.True(t, seen)
	seen, err = db.IsProcessed(ctx, "h", "k2")
	require.NoError(t, err)
	require.False(t, seen)
}

func TestHandleRollsBackOnError(t *testing.T) {
	t.Parallel()
	db, ctx := storetest.New(t), context.Background()
	boom := errors.New("boom")
	err := db.Handle(ctx, "h", "k", func(tx *store.Tx) error {
		require.NoError(t, tx.Enqueue(ctx, event("e1")))
		return boom
	})
	require.ErrorIs(t, err, boom)

	seen, err := db.IsProcessed(ctx, "h", "k")
	require.NoError(t, err)
	require.False(t, seen, "the claim is rolled back with the work")
	require.Empty(t, pending(t, db))
}

func TestIsUniqueViolation(t *testing.T) {
	t.Parallel()
	db, ctx := storetest.New(t), context.Background()
	insert := `INSERT INTO processed_messages (handler, idempotency_key, processed_at)
		VALUES ($1, $2, $3)`
	_, err := db.ExecContext(ctx, insert, "h", "k", store.Now(t0))
	require.NoError(t, err)

	_, err = db.ExecContext(ctx, insert, "h", "k", store.Now(t0))
	require.Error(t, err)
	require.True(t, store.IsUniqueViolation(err), "%v", err)
	require.True(t, store.IsUniqueViolation(errors.Join(errors.New("wrapped"), err)))

	_, err = db.ExecContext(ctx, `INSERT INTO no_such_table (x) VALUES ($1)`, 1)
	require.Error(t, err)
	require.False(t, store.IsUniqueViolation(err), "%v", err)
	require.False(t, store.IsUniqueViolation(nil))
}

func TestOutbox(t *testing.T) {
	t.Parallel()
	db, ctx := storetest.New(t), context.Background()
	err := db.InTx(ctx, func(tx *store.Tx) error {
		for _, id := range []string{"e1", "e2", "e1", "e3"} {
			if err := tx.Enqueue(ctx, event(id)); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)

	rows, err := db.PendingOutbox(ctx, 2)
	require.NoError(t, err)
	require.Len(t, rows, 2)
	require.Equal(t, "e1", rows[0].Event.ID)
	require.Equal(t, "e2", rows[1].Event.ID)
	require.Less(t, rows[0].Seq, rows[1].Seq)
	require.Equal(t, event("e1"), rows[0].Event, "payload and metadata come back as written")

	require.NoError(t, db.MarkPublished(ctx, rows[0].Seq, t0))
	require.NoError(t, db.MarkPublished(ctx, rows[1].Seq, t0.Add(time.Hour)))
	require.Equal(t, []string{"e3"}, pending(t, db), "an event enqueued twice is written once")

	n, err := db.PruneOutbox(ctx, t0.Add(time.Minute))
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "only the row published before the cutoff")
	var left int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT COUNT(*) FROM outbox`).Scan(&left))
	require.Equal(t, 2, left)
}

func TestWriteAudit(t *testing.T) {
	t.Parallel()
	db, ctx := storetest.New(t), context.Background()
	err := db.InTx(ctx, func(tx *store.Tx) error {
		return tx.WriteAudit(ctx, store.AuditEntry{Action: "thing.done",
			Category: store.AuditBusiness, Metadata: map[string]any{"count": 3}, At: t0})
	})
	require.NoError(t, err)

	var actor, md string
	var org *string
	var at time.Time
	require.NoError(t, db.QueryRowContext(ctx, `SELECT actor_type, organisation_id, metadata,
		created_at FROM audit_logs WHERE action = $1`, "thing.done").Scan(&actor, &org, &md, &at))
	require.Equal(t, "system", actor)
	require.Nil(t, org, "an empty id is stored as NULL")
	require.JSONEq(t, `{"count":3}`, md)
	sameInstant(t, store.Now(t0), at)
}

// sameInstant requires got to be want, to the microsecond the store keeps.
// The zone it comes back in is the driver's choice.
func sameInstant(t *testing.T, want, got time.Time) {
	t.Helper()
	require.True(t, want.Equal(got), "want %s, got %s", want, got)
}

func event(id string) job.Event {
	return job.Event{ID: id, Topic: "test.thing.happened",
		Payload:  []byte(`{"b":1, "a":[2,3]}`),
		Metadata: map[string]string{"correlation_id": "c-" + id}}
}

func pending(t *testing.T, db *store.DB) []string {
	t.Helper()
	rows, err := db.PendingOutbox(context.Background(), 100)
	require.NoError(t, err)
	var ids []string
	for _, r := range rows {
		ids = append(ids, r.Event.ID)
	}
	return ids
}
