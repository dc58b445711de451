package router

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/handlers/platform"
	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/store"
	"github.com/millrace/millrace/store/storetest"
	"github.com/millrace/millrace/transport/postgres"
)

// TestCloseDrainsInFlightHandlersOnPostgres closes the router while a slow
// handler runs: the handler finishes with its context intact, its ack is
// stored, and the message behind it is not taken.
func TestCloseDrainsInFlightHandlersOnPostgres(t *testing.T) {
	db := storetest.Postgres(t)
	ctx := context.Background()
	tr := newPostgresTransport(t, db, 10*time.Second)

	started, release := make(chan string, 2), make(chan struct{})
	handled := make(chan error, 2)
	stopWatch := &closeWatch{Handler: slog.NewTextHandler(io.Discard, nil),
		stopped: make(chan struct{})}
	handler := job.HandlerFunc(func(ctx context.Context, m job.Message) error {
		started <- m.ID
		<-release
		handled <- ctx.Err()
		return ctx.Err()
	})
	rt, err := New(Config{
		Catalogue: testCatalogue(handler, fastRetry),
		Deps:      &Deps{Platform: platform.Deps{DB: db}},
		Transport: tr, Registry: testRegistry(t), Ledger: db,
		Logger: slog.New(stopWatch), CloseTimeout: 10 * time.Second,
	})
	require.NoError(t, err)
	go func() { _ = rt.Run(ctx) }()
	<-rt.Running()

	first, second := "msg-in-flight", "msg-waiting"
	require.NoError(t, rt.Publisher().Publish(testTopic,
		message.NewMessage(first, []byte(`{"n":1}`))))
	require.Equal(t, first, <-started)
	require.NoError(t, rt.Publisher().Publish(testTopic,
		message.NewMessage(second, []byte(`{"n":2}`))))

	closed := make(chan error, 1)
	go func() { closed <- rt.Close() }()
	select {
	case <-stopWatch.stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the router never cancelled its subscriptions")
	}
	close(release)
	require.NoError(t, <-handled, "the in-flight handler's context was cancelled")
	require.NoError(t, <-closed)
	require.NoError(t, tr.Close())
	require.Empty(t, started, "a message was taken after Close")

	var left []string
	rows, err := db.QueryContext(ctx, "SELECT uuid FROM millrace_queue")
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		left = append(left, id)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{second}, left,
		"the handled message's ack is stored and only the waiting one remains")
}

// TestCloseHandsBackHandlersPastTheDeadline closes the router while a handler
// outlives the transport's close timeout: its context ends, and the message
// goes back to the queue for another replica, neither acked nor poisoned.
func TestCloseHandsBackHandlersPastTheDeadline(t *testing.T) {
	db := storetest.Postgres(t)
	ctx := context.Background()
	tr := newPostgresTransport(t, db, 200*time.Millisecond)
	started := make(chan struct{}, 8)
	handler := job.HandlerFunc(func(ctx context.Context, m job.Message) error {
		started <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	})
	rt, err := New(Config{
		Catalogue: testCatalogue(handler, fastRetry),
		Deps:      &Deps{Platform: platform.Deps{DB: db}},
		Transport: tr, Registry: testRegistry(t), Ledger: db,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), CloseTimeout: 10 * time.Second,
	})
	require.NoError(t, err)
	go func() { _ = rt.Run(ctx) }()
	<-rt.Running()
	require.NoError(t, rt.Publisher().Publish(testTopic,
		message.NewMessage("msg-slow", []byte(`{"n":1}`))))
	<-started
	require.NoError(t, rt.Close())
	require.NoError(t, tr.Close())

	var id string
	var claimed *string
	require.NoError(t, db.QueryRowContext(ctx, "SELECT uuid, claimed_by FROM millrace_queue").
		Scan(&id, &claimed))
	require.Equal(t, "msg-slow", id)
	require.Nil(t, claimed, "the message is handed back, free for another replica")
	poisoned, err := db.CountPoison(ctx)
	require.NoError(t, err)
	require.Zero(t, poisoned)
}

// newPostgresTransport opens the Postgres transport in db's schema.
func newPostgresTransport(t *testing.T, db *store.DB, closeTimeout time.Duration,
) *postgres.Transport {
	t.Helper()
	ctx := context.Background()
	var schema string
	require.NoError(t, db.QueryRowContext(ctx, "SELECT current_schema()").Scan(&schema))
	dsn, err := storetest.WithSearchPath(storetest.PostgresURL(), schema)
	require.NoError(t, err)
	tr, err := postgres.New(ctx, postgres.Config{DSN: dsn, MaxConns: 2,
		PollInterval: 50 * time.Millisecond, CloseTimeout: closeTimeout})
	require.NoError(t, err)
	t.Cleanup(func() { tr.Close() })
	return tr
}

// closeWatch closes stopped when Watermill logs that it cancelled its
// subscriptions and waits for the messages in flight.
type closeWatch struct {
	slog.Handler
	once    sync.Once
	stopped chan struct{}
}

func (w *closeWatch) Enabled(context.Context, slog.Level) bool { return true }

func (w *closeWatch) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "Waiting for messages" {
		w.once.Do(func() { close(w.stopped) })
	}
	return nil
}
