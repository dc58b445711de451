package postgres

import (
	"context"
	"database/sql"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

const wait = 10 * time.Second

// TestGroupSubscribersRunInParallel: the subscribers of a group, or one
// subscriber with Concurrency 4, hold four messages at once. Each handler
// blocks until four are in flight, so a transport that hands out one
// message at a time per group never gets there.
func TestGroupSubscribersRunInParallel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		subscribers int
		concurrency int
	}{
		{"four subscribers", 4, 1},
		{"one subscriber with concurrency 4", 1, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr := newTransport(t, testSchema(t), Config{})
			barrier := make(chan struct{})
			var mu sync.Mutex
			inFlight := 0
			for range tc.subscribers {
				s, err := tr.NewSubscriber("g", SubscriberConfig{Concurrency: tc.concurrency})
				require.NoError(t, err)
				ch := subscribe(t, s, "jobs")
				go func() {
					for m := range ch {
						go func() {
							mu.Lock()
							if inFlight++; inFlight == 4 {
								close(barrier)
							}
							mu.Unlock()
							<-barrier
							m.Ack()
						}()
					}
				}()
			}
			require.NoError(t, tr.Publisher().Publish("jobs", keyed("", 8)...))
			select {
			case <-barrier:
			case <-time.After(wait):
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("never four in flight at once (max %d)", inFlight)
			}
			require.Eventually(t, func() bool { return queueRows(t, tr) == 0 },
				wait, 20*time.Millisecond, "every message acked")
		})
	}
}

// TestSlowTopicDoesNotDelayAnother: while a handler of topic A holds its
// message, this transport keeps no transaction open, and a message on topic
// B is delivered. The poll is a minute, so B arrives by notification.
func TestSlowTopicDoesNotDelayAnother(t *testing.T) {
	t.Parallel()
	dsn := testSchema(t)
	tr := newTransport(t, dsn, Config{PollInterval: time.Minute})
	subA, _ := tr.Subscriber("a")
	subB, _ := tr.Subscriber("b")
	chA := subscribe(t, subA, "topic-a")
	chB := subscribe(t, subB, "topic-b")

	require.NoError(t, tr.Publisher().Publish("topic-a", keyed("a", 1)...))
	held := receive(t, chA, wait)
	var open int
	require.NoError(t, tr.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM pg_stat_activity
		WHERE application_name = $1 AND state LIKE 'idle in transaction%'`,
		applicationName(dsn)).Scan(&open))
	require.Zero(t, open, "no transaction stays open while a handler runs")

	require.NoError(t, tr.Publisher().Publish("topic-b", keyed("b", 1)...))
	got := receive(t, chB, wait)
	require.Equal(t, "b-0", got.UUID)
	select {
	case <-held.Context().Done():
		t.Fatal("A's message context ended while it was held")
	default:
	}
	got.Ack()
	held.Ack()
}

func applicationName(dsn string) string {
	_, after, _ := strings.Cut(dsn, "application_name=")
	name, _, _ := strings.Cut(after, "&")
	return name
}

// TestPartialAckThenCrash: a subscription claims a batch, acks the first
// message and crashes holding the second. After the lease every message it
// did not ack is delivered again, in order, and the acked one is not: an
// ack covers exactly the message acked, never the rest of a batch.
func TestPartialAckThenCrash(t *testing.T) {
	t.Parallel()
	dsn := testSchema(t)
	pool := crashablePool(t, dsn)
	a := newTransport(t, dsn, Config{Pool: pool, Lease: time.Second,
		PollInterval: time.Minute, CloseTimeout: 100 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	subA, err := a.NewSubscriber("g", SubscriberConfig{Prefetch: 4})
	require.NoError(t, err)
	chA := subscribe(t, subA, "jobs")
	require.NoError(t, a.Publisher().Publish("jobs", keyed("", 5)...))

	first := receive(t, chA, wait)
	require.Equal(t, "-0", first.UUID)
	first.Ack()
	held := receive(t, chA, wait)
	require.Equal(t, "-1", held.UUID)
	require.Eventually(t, func() bool { return queueRows(t, a) == 4 }, wait,
		10*time.Millisecond, "the ack of -0 is stored")
	var claimed int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*)
		FROM millrace_queue WHERE locked_until > now()`).Scan(&claimed))
	require.Equal(t, 4, claimed, "the rest of the batch is claimed, not acked")

	pool.Close() // the crash: nothing is handed back, no lease renewed

	b := newTransport(t, dsn, Config{PollInterval: 100 * time.Millisecond})
	subB, _ := b.Subscriber("g")
	chB := subscribe(t, subB, "jobs")
	for _, want := range []string{"-1", "-2", "-3", "-4"} {
		m := receive(t, chB, wait)
		require.Equal(t, want, m.UUID)
		m.Ack()
	}
	require.Eventually(t, func() bool { return queueRows(t, b) == 0 }, wait,
		10*time.Millisecond)
}

// TestCrashedSubscriberMessageComesBack: a message held by a subscriber
// whose process dies goes to another subscriber of the group once the
// lease runs out, as its second attempt.
func TestCrashedSubscriberMessageComesBack(t *testing.T) {
	t.Parallel()
	dsn := testSchema(t)
	pool := crashablePool(t, dsn)
	a := newTransport(t, dsn, Config{Pool: pool, Lease: time.Second,
		PollInterval: time.Minute, CloseTimeout: 100 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	subA, _ := a.Subscriber("g")
	chA := subscribe(t, subA, "jobs")
	require.NoError(t, a.Publisher().Publish("jobs", keyed("k", 1)...))
	require.Equal(t, "k-0", receive(t, chA, wait).UUID)
	pool.Close()

	b := newTransport(t, dsn, Config{PollInterval: 100 * time.Millisecond})
	subB, _ := b.Subscriber("g")
	m := receive(t, subscribe(t, subB, "jobs"), wait)
	require.Equal(t, "k-0", m.UUID)
	var attempts int
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT attempts FROM millrace_queue`).Scan(&attempts))
	require.Equal(t, 2, attempts)
	m.Ack()
}

// crashablePool is a pool the test can close under a transport, as a
// crash would.
func crashablePool(t *testing.T, dsn string) *pgxpool.Pool {
	pc, err := pgxpool.ParseConfig(dsn)
	require.NoError(t, err)
	pc.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// TestCloseHandsBackAtOnce: closing a subscriber that holds an unacked
// message hands it back and notifies, so another subscriber gets it long
// before the lease (30s) or its poll (a minute) would have.
func TestCloseHandsBackAtOnce(t *testing.T) {
	t.Parallel()
	dsn := testSchema(t)
	a := newTransport(t, dsn, Config{CloseTimeout: 50 * time.Millisecond})
	b := newTransport(t, dsn, Config{PollInterval: time.Minute})
	subA, _ := a.Subscriber("g")
	chA := subscribe(t, subA, "jobs")
	subB, _ := b.Subscriber("g")
	require.NoError(t, a.Publisher().Publish("jobs", keyed("k", 1)...))
	held := receive(t, chA, wait)
	chB := subscribe(t, subB, "jobs")
	require.NoError(t, subA.Close())
	<-held.Context().Done()
	m := receive(t, chB, wait)
	require.Equal(t, "k-0", m.UUID)
	m.Ack()
}

// TestPublishTx: a publish in a rolled back transaction leaves nothing; a
// committed one is delivered once; bad input writes nothing.
func TestPublishTx(t *testing.T) {
	t.Parallel()
	dsn := testSchema(t)
	tr := newTransport(t, dsn, Config{})
	db, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	sub, _ := tr.Subscriber("g")
	require.NoError(t, sub.(*Subscriber).SubscribeInitialize("jobs"))
	ctx := context.Background()

	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	require.NoError(t, PublishTx(ctx, tx, "jobs", message.NewMessage("rolled-back", nil)))
	require.NoError(t, tx.Rollback())
	require.Zero(t, queueRows(t, tr))

	tx, err = db.BeginTx(ctx, nil)
	require.NoError(t, err)
	require.ErrorIs(t, PublishTx(ctx, tx, "", message.NewMessage("no-topic", nil)), ErrNoTopic)
	require.NoError(t, PublishTx(ctx, tx, "jobs", message.NewMessage("committed", nil)))
	require.NoError(t, tx.Commit())
	require.Equal(t, 1, queueRows(t, tr))

	ch := subscribe(t, sub, "jobs")
	m := receive(t, ch, wait)
	require.Equal(t, "committed", m.UUID)
	m.Ack()
	require.NoError(t, tr.Publisher().Publish("jobs", message.NewMessage("fence", nil)))
	m = receive(t, ch, wait)
	require.Equal(t, "fence", m.UUID, "the committed message came once")
	m.Ack()
}

// TestOrderPerPartitionKey: two subscribers with Concurrency 4 each, on two
// transports. Messages of one key are handled one at a time in publish
// order, while the four keys are in flight together.
func TestOrderPerPartitionKey(t *testing.T) {
	t.Parallel()
	dsn := testSchema(t)
	trs := []*Transport{newTransport(t, dsn, Config{}), newTransport(t, dsn, Config{})}
	keys := []string{"org-a", "org-b", "org-c", "org-d"}
	var msgs []*message.Message
	perKey := map[string][]*message.Message{}
	for _, k := range keys {
		perKey[k] = keyed(k, 10)
	}
	for i := range 10 {
		for _, k := range keys {
			msgs = append(msgs, perKey[k][i])
		}
	}
	var (
		mu       sync.Mutex
		seen     = map[string][]string{}
		busy     = map[string]bool{}
		maxKeys  int
		joined   bool
		problems []string
		all      = make(chan struct{})
		together = make(chan struct{})
	)
	handle := func(m *message.Message) {
		k := m.Metadata.Get("partition_key")
		mu.Lock()
		if busy[k] {
			problems = append(problems, "two of "+k+" in flight")
		}
		busy[k] = true
		if maxKeys = max(maxKeys, len(busy)); maxKeys == len(keys) && !joined {
			joined = true
			close(together)
		}
		mu.Unlock()
		if strings.HasSuffix(m.UUID, "-0") {
			<-together // the first of each key waits for the others
		}
		mu.Lock()
		delete(busy, k)
		seen[k] = append(seen[k], m.UUID)
		if len(seen[k]) == 10 && len(seen) == len(keys) && done(seen) {
			close(all)
		}
		mu.Unlock()
		m.Ack()
	}
	for _, tr := range trs {
		for range 2 {
			s, err := tr.NewSubscriber("g", SubscriberConfig{Concurrency: 4})
			require.NoError(t, err)
			require.NoError(t, s.SubscribeInitialize("jobs"))
			ch := subscribe(t, s, "jobs")
			go func() {
				for m := range ch {
					go handle(m)
				}
			}()
		}
	}
	require.NoError(t, trs[0].Publisher().Publish("jobs", msgs...))
	select {
	case <-all:
	case <-time.After(wait):
		t.Fatal("not every message handled")
	}
	mu.Lock()
	defer mu.Unlock()
	require.Empty(t, problems)
	require.Equal(t, len(keys), maxKeys, "the keys were in flight together")
	for _, k := range keys {
		want := make([]string, 10)
		for i, m := range perKey[k] {
			want[i] = m.UUID
		}
		require.Equal(t, want, seen[k], "order of %s", k)
	}
}

func done(seen map[string][]string) bool {
	for _, ids := range seen {
		if len(ids) < 10 {
			return false
		}
	}
	return true
}

// TestNotifyWakesSubscribers: with a poll of a minute, once the
// subscription's first claim has found nothing, a publish from another
// process is delivered: nothing but the notification can trigger the claim.
// The notification channel is shared by every schema of the database, so the
// topic is one no other test publishes to: their notifications would wake
// this subscription for a second claim before the publish.
func TestNotifyWakesSubscribers(t *testing.T) {
	t.Parallel()
	const topic = "notify-wakes"
	dsn := testSchema(t)
	tr := newTransport(t, dsn, Config{PollInterval: time.Minute})
	other := newTransport(t, dsn, Config{})
	sub, err := tr.NewSubscriber("g", SubscriberConfig{})
	require.NoError(t, err)
	ch := subscribe(t, sub, topic)
	require.Eventually(t, func() bool { return claims(sub) == 1 }, wait,
		5*time.Millisecond, "the first claim ran")

	require.NoError(t, other.Publisher().Publish(topic, keyed("k", 1)...))
	m := receive(t, ch, wait)
	require.Equal(t, "k-0", m.UUID)
	m.Ack()
}

// claims counts the claims sub's subscriptions ran.
func claims(sub *Subscriber) int64 {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	var n int64
	for s := range sub.subs {
		n += s.claims.Load()
	}
	return n
}

// TestListenerReconnects: when the listening connection is killed, the
// listener connects again and LISTENs, and a message published afterwards
// is delivered without waiting for the minute-long poll.
func TestListenerReconnects(t *testing.T) {
	t.Parallel()
	dsn := testSchema(t)
	tr := newTransport(t, dsn, Config{PollInterval: time.Minute,
		Logger: slog.New(slog.DiscardHandler)})
	sub, _ := tr.Subscriber("g")
	ch := subscribe(t, sub, "jobs")
	listener := func() (pid int) {
		err := tr.pool.QueryRow(context.Background(), `SELECT coalesce(max(pid), 0)
			FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN%'`,
			applicationName(dsn)).Scan(&pid)
		require.NoError(t, err)
		return pid
	}
	old := listener()
	require.NotZero(t, old)
	_, err := tr.pool.Exec(context.Background(), `SELECT pg_terminate_backend($1)`, old)
	require.NoError(t, err)
	require.Eventually(t, func() bool { p := listener(); return p != 0 && p != old },
		wait, 20*time.Millisecond, "a new connection listens")

	require.NoError(t, tr.Publisher().Publish("jobs", keyed("k", 1)...))
	m := receive(t, ch, wait)
	require.Equal(t, "k-0", m.UUID)
	m.Ack()
}
