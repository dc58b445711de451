package transport_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
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
	dsn := schemaURL(t, db)
	tr, err := postgres.New(ctx, postgres.Config{DSN: dsn, MaxConns: 2,
		PollInterval: 50 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { tr.Close() })
	db.SetTxPublisher(transport.TxPublisher(postgres.PublishTx, schemas.Default().Has))
	return db, tr
}

// schemaURL returns the URL of db's schema.
func schemaURL(t *testing.T, db *store.DB) string {
	t.Helper()
	var schema string
	require.NoError(t, db.QueryRowContext(context.Background(), "SELECT current_schema()").
		Scan(&schema))
	dsn, err := storetest.WithSearchPath(storetest.PostgresURL(), schema)
	require.NoError(t, err)
	return dsn
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

// TestRelayInTxPublishesEachRowOnce relays rows another process wrote to the
// outbox from two replicas at once: each row reaches the queue once.
func TestRelayInTxPublishesEachRowOnce(t *testing.T) {
	db, tr := pgPair(t)
	ctx := context.Background()
	sub, err := tr.NewSubscriber("millrace.test", postgres.SubscriberConfig{})
	require.NoError(t, err)
	require.NoError(t, sub.SubscribeInitialize(usageTopic))
	open := func(hook bool) *store.DB {
		d, err := store.Open(ctx, schemaURL(t, db))
		require.NoError(t, err)
		d.SetMaxOpenConns(2)
		t.Cleanup(func() { d.Close() })
		if hook {
			d.SetTxPublisher(transport.TxPublisher(postgres.PublishTx, schemas.Default().Has))
		}
		return d
	}
	cli := open(false)
	const n = 20
	require.NoError(t, cli.InTx(ctx, func(tx *store.Tx) error {
		for i := range n {
			ev := job.Event{ID: fmt.Sprintf("ev-%d", i), Topic: usageTopic,
				Payload: []byte(`{}`), Metadata: map[string]string{}}
			if err := tx.Enqueue(ctx, ev); err != nil {
				return err
			}
		}
		return nil
	}))

	relays := []*transport.Relay{{DB: db, Batch: 5}, {DB: open(true), Batch: 5}}
	published := make(chan int, len(relays))
	var wg sync.WaitGroup
	for _, r := range relays {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := r.Flush(ctx)
			assert.NoError(t, err)
			published <- k
		}()
	}
	wg.Wait()
	close(published)
	total := 0
	for k := range published {
		total += k
	}
	require.Equal(t, n, total)
	var queued, distinct int
	require.NoError(t, db.QueryRowContext(ctx,
		"SELECT count(*), count(DISTINCT uuid) FROM millrace_queue").Scan(&queued, &distinct))
	require.Equal(t, n, queued, "each row queued once")
	require.Equal(t, n, distinct)
	pending, err := db.PendingOutbox(ctx, 100)
	require.NoError(t, err)
	require.Empty(t, pending)
}
