package transport_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/schemas"
	"github.com/millrace/millrace/store"
	"github.com/millrace/millrace/store/storetest"
	"github.com/millrace/millrace/transport"
	"github.com/millrace/millrace/transport/postgres"
)

const usageTopic = "platform.usage.recorded"

// pgPair returns a Postgres store and the Postgres transport in its schema,
// with the store publishing emitted events in their transactions.
func pgPair(t *testing.T) (*store.DB, *postgres.Transport) {
	t.Helper()
	db := storetest.Postgres(t)
	ctx := context.Background()
	var schema string
	require.NoError(t, db.QueryRowContext(ctx, "SELECT current_schema()").Scan(&schema))
	dsn, err := storetest.WithSearchPath(storetest.PostgresURL(), schema)
	require.NoError(t, err)
	tr, err := postgres.New(ctx, postgres.Config{DSN: dsn, MaxConns: 2,
		PollInterval: 50 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { tr.Close() })
	db.SetTxPublisher(transport.TxPublisher(postgres.PublishTx, schemas.Default().Has))
	return db, tr
}

func usagePayload(source string) map[string]any {
	return map[string]any{"organisation_id": "8a4c9a52-3f0e-4a43-9d0e-3c2b1f6e7a10",
		"metric": "seats.active", "quantity": 2, "kind": "gauge",
		"occurred_at": "2026-12-03T10:00:00Z", "source_event_id": source}
}

func TestTxPublishFollowsTheTransaction(t *testing.T) {
	db, tr := pgPair(t)
	ctx := context.Background()
	sub, err := tr.NewSubscriber("millrace.test", postgres.SubscriberConfig{})
	require.NoError(t, err)
	require.NoError(t, sub.SubscribeInitialize(usageTopic))

	errBoom := errors.New("boom")
	err = db.InTx(ctx, func(tx *store.Tx) error {
		_, err := tx.Emit(ctx, usageTopic, usagePayload("rolled-back"), store.EmitOpts{})
		require.NoError(t, err)
		return errBoom
	})
	require.ErrorIs(t, err, errBoom)
	var committed string
	require.NoError(t, db.InTx(ctx, func(tx *store.Tx) error {
		committed, err = tx.Emit(ctx, usageTopic, usagePayload("committed"), store.EmitOpts{})
		return err
	}))

	var queued, outbox int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT count(*) FROM millrace_queue").
		Scan(&queued))
	require.NoError(t, db.QueryRowContext(ctx, "SELECT count(*) FROM outbox").Scan(&outbox))
	require.Equal(t, 1, queued, "only the committed transaction's event is queued")
	require.Zero(t, outbox, "nothing goes through the outbox")

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := sub.Subscribe(sctx, usageTopic)
	require.NoError(t, err)
	select {
	case m := <-ch:
		require.Equal(t, committed, m.UUID)
		m.Ack()
	case <-time.After(10 * time.Second):
		t.Fatal("the committed event was never delivered")
	}
	require.Eventually(t, func() bool {
		err := db.QueryRowContext(ctx, "SELECT count(*) FROM millrace_queue").Scan(&queued)
		return err == nil && queued == 0
	}, 10*time.Second, 20*time.Millisecond, "the ack was never stored")
}

func TestTxPublishRefusesUnknownTopics(t *testing.T) {
	db, _ := pgPair(t)
	ctx := context.Background()
	err := db.InTx(ctx, func(tx *store.Tx) error {
		return tx.Enqueue(ctx, job.Event{ID: "x", Topic: "no.such.topic", Payload: []byte("{}")})
	})
	require.ErrorIs(t, err, transport.ErrUnknownTopic)
	var queued int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT count(*) FROM millrace_queue").
		Scan(&queued))
	require.Zero(t, queued)
}
