package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// TestClaimPlanIgnoresStatistics: statistics gathered while the queue was
// empty (as autovacuum gathers them on a drained queue) would make the
// planner read and sort every pending row to return the first few. The
// claim function's plan, seen through auto_explain, walks the primary key
// in order without a sort, a bitmap or a sequential scan.
func TestClaimPlanIgnoresStatistics(t *testing.T) {
	t.Parallel()
	dsn := testSchema(t)
	tr := newTransport(t, dsn, Config{})
	ctx := context.Background()
	id, err := register(ctx, tr.pool, "jobs", "g")
	require.NoError(t, err)
	_, err = tr.pool.Exec(ctx, `ANALYZE millrace_queue`)
	require.NoError(t, err)
	require.NoError(t, tr.Publisher().Publish("jobs", keyed("", 3000)...))

	cfg, err := pgx.ParseConfig(dsn)
	require.NoError(t, err)
	var mu sync.Mutex
	var notices []string
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		mu.Lock()
		notices = append(notices, n.Message)
		mu.Unlock()
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	defer func() { _ = conn.Close(ctx) }()
	if _, err := conn.Exec(ctx, `LOAD 'auto_explain'`); err != nil {
		t.Skipf("auto_explain unavailable: %v", err)
	}
	for _, q := range []string{`SET auto_explain.log_min_duration = 0`,
		`SET auto_explain.log_nested_statements = on`, `SET client_min_messages = log`} {
		_, err := conn.Exec(ctx, q)
		require.NoError(t, err)
	}
	var n int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM millrace_queue_claim(
		$1, 100, 30000, gen_random_uuid(), 0, true)`, id).Scan(&n))
	require.Equal(t, 100, n)

	mu.Lock()
	defer mu.Unlock()
	var plan string
	for _, m := range notices {
		if strings.Contains(m, "WITH picked AS") {
			plan = m
		}
	}
	require.NotEmpty(t, plan, "auto_explain logged the claim: %q", notices)
	require.Contains(t, plan, "Index Scan using millrace_queue_pkey")
	for _, bad := range []string{"Sort", "Seq Scan", "Bitmap"} {
		require.NotContains(t, plan, bad)
	}
}

// TestBacklogClaimsGrow: a subscription draining a backlog with a fast
// handler claims more at a time as it finds its handler waiting, so the
// backlog takes far fewer claims than messages/(Concurrency+Prefetch).
func TestBacklogClaimsGrow(t *testing.T) {
	t.Parallel()
	tr := newTransport(t, testSchema(t), Config{PollInterval: time.Minute})
	sub, err := tr.NewSubscriber("g", SubscriberConfig{})
	require.NoError(t, err)
	require.NoError(t, sub.SubscribeInitialize("jobs"))
	const n = 2000
	for i := 0; i < n; i += 500 {
		require.NoError(t, tr.Publisher().Publish("jobs", keyed("", 500)...))
	}
	ch := subscribe(t, sub, "jobs")
	for range n {
		receive(t, ch, wait).Ack()
	}
	require.Less(t, claims(sub), int64(100), "%d messages, 2 at a time without growth", n)
	require.Eventually(t, func() bool { return queueRows(t, tr) == 0 }, wait,
		10*time.Millisecond)
}

// TestKeyedBacklogKeepsOrder: a backlog over a few partition keys drains
// in order per key with a minute-long poll, so the claims that skip a key
// waiting for its previous message's ack come back to it after that ack,
// not after the poll.
func TestKeyedBacklogKeepsOrder(t *testing.T) {
	t.Parallel()
	tr := newTransport(t, testSchema(t), Config{PollInterval: time.Minute})
	sub, err := tr.NewSubscriber("g", SubscriberConfig{Concurrency: 4})
	require.NoError(t, err)
	require.NoError(t, sub.SubscribeInitialize("jobs"))
	keys := []string{"a", "b", "c"}
	const perKey = 200
	batches := map[string][]string{}
	var msgs []*message.Message
	for i := range perKey {
		for _, k := range keys {
			m := message.NewMessage(fmt.Sprintf("%s-%d", k, i), []byte(k))
			m.Metadata.Set("partition_key", k)
			batches[k] = append(batches[k], m.UUID)
			msgs = append(msgs, m)
		}
	}
	for i := 0; i < len(msgs); i += 50 {
		require.NoError(t, tr.Publisher().Publish("jobs", msgs[i:i+50]...))
	}
	ch := subscribe(t, sub, "jobs")
	seen := map[string][]string{}
	var mu sync.Mutex
	done := make(chan struct{})
	total := 0
	for range len(keys) * perKey {
		m := receive(t, ch, wait)
		go func() {
			mu.Lock()
			k := m.Metadata.Get("partition_key")
			seen[k] = append(seen[k], m.UUID)
			total++
			if total == len(keys)*perKey {
				close(done)
			}
			mu.Unlock()
			m.Ack()
		}()
	}
	<-done
	mu.Lock()
	defer mu.Unlock()
	for _, k := range keys {
		require.Equal(t, batches[k], seen[k], "order of %s", k)
	}
}

// TestAcksStoredByClose: acks are deleted in batches in the background, and
// closing the subscriber stores every ack it was given before returning.
func TestAcksStoredByClose(t *testing.T) {
	t.Parallel()
	tr := newTransport(t, testSchema(t), Config{})
	sub, err := tr.NewSubscriber("g", SubscriberConfig{Concurrency: 8})
	require.NoError(t, err)
	require.NoError(t, sub.SubscribeInitialize("jobs"))
	require.NoError(t, tr.Publisher().Publish("jobs", keyed("", 100)...))
	ch := subscribe(t, sub, "jobs")
	for range 100 {
		receive(t, ch, wait).Ack()
	}
	require.NoError(t, sub.Close())
	require.Zero(t, queueRows(t, tr), "every ack stored when Close returns")
}

// TestAckLostWithProcessIsRedelivered: a message acked by a process that
// dies before its ack reaches the database is delivered again once its lease
// runs out: an ack is only as good as the delete behind it, and losing one
// costs a duplicate, never a message.
func TestAckLostWithProcessIsRedelivered(t *testing.T) {
	t.Parallel()
	dsn := testSchema(t)
	pool := crashablePool(t, dsn)
	a := newTransport(t, dsn, Config{Pool: pool, Lease: time.Second,
		PollInterval: time.Minute, CloseTimeout: 100 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	subA, _ := a.Subscriber("g")
	chA := subscribe(t, subA, "jobs")
	require.NoError(t, a.Publisher().Publish("jobs", keyed("k", 1)...))
	m := receive(t, chA, wait)
	pool.Close() // the crash, between the handler's ack and its delete
	m.Ack()

	b := newTransport(t, dsn, Config{PollInterval: 100 * time.Millisecond})
	subB, _ := b.Subscriber("g")
	again := receive(t, subscribe(t, subB, "jobs"), wait)
	require.Equal(t, "k-0", again.UUID)
	again.Ack()
	require.Eventually(t, func() bool { return queueRows(t, b) == 0 }, wait,
		10*time.Millisecond)
}

// TestStuckPrefetchGoesBack: a subscription whose prefetch grew while its
// handler was fast hands the extra messages back once the handler stops
// taking them, so another subscriber of the group gets them long before
// the first would.
func TestStuckPrefetchGoesBack(t *testing.T) {
	t.Parallel()
	dsn := testSchema(t)
	a := newTransport(t, dsn, Config{Lease: 600 * time.Millisecond, PollInterval: time.Minute})
	subA, err := a.NewSubscriber("g", SubscriberConfig{})
	require.NoError(t, err)
	require.NoError(t, subA.SubscribeInitialize("jobs"))
	const n, fast = 600, 100
	for i := 0; i < n; i += 100 {
		require.NoError(t, a.Publisher().Publish("jobs", keyed("", 100)...))
	}
	chA := subscribe(t, subA, "jobs")
	for range fast {
		receive(t, chA, wait).Ack()
	}
	held := receive(t, chA, wait) // the handler stops here

	b := newTransport(t, dsn, Config{PollInterval: 100 * time.Millisecond})
	subB, err := b.NewSubscriber("g", SubscriberConfig{})
	require.NoError(t, err)
	chB := subscribe(t, subB, "jobs")
	// All but the held message and the one A keeps claimed ahead.
	for range n - fast - 2 {
		receive(t, chB, wait).Ack()
	}
	held.Ack()
}
