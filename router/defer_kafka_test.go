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
	"github.com/millrace/millrace/middleware"
	"github.com/millrace/millrace/store"
	"github.com/millrace/millrace/store/storetest"
	"github.com/millrace/millrace/transport"
	"github.com/millrace/millrace/transport/kafka"
	"github.com/millrace/millrace/transport/kafka/kafkatest"
)

// partitionWatch runs "thing" on a one-partition Kafka topic. The handler
// fails every attempt of the message stuck; for every other message it
// records how many attempts stuck had had by then.
type partitionWatch struct {
	mu           sync.Mutex
	stuck        string
	stuckTries   int
	fixed        bool // stuck succeeds from now on
	stuckDone    bool
	seenByOthers []int
	db           *store.DB
}

func (w *partitionWatch) handle(_ context.Context, m job.Message) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if m.ID == w.stuck {
		w.stuckTries++
		if w.fixed {
			w.stuckDone = true
			return nil
		}
		return errBoom
	}
	w.seenByOthers = append(w.seenByOthers, w.stuckTries)
	return nil
}

func (w *partitionWatch) snapshot() (int, []int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stuckTries, append([]int(nil), w.seenByOthers...)
}

// kafkaRouter runs the test catalogue with handler h on a one-partition
// Kafka topic of a fresh kfake broker, with the outbox relay running, and
// returns its store and publisher.
func kafkaRouter(t *testing.T, h job.Handler, policy middleware.RetryPolicy,
	deferred bool) (*store.DB, message.Publisher) {
	t.Helper()
	cluster := kafkatest.Start(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	tr, err := kafka.New(ctx, kafka.Config{Brokers: cluster.Addrs(), Partitions: 1,
		Version: "3.6.0", Logger: logger, SessionTimeout: 2 * time.Second,
		HeartbeatInterval: 100 * time.Millisecond, RebalanceTimeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { tr.Close() })
	require.NoError(t, tr.EnsureTopics(ctx, testTopic, "test.other.happened", job.PoisonTopic))

	db := storetest.New(t)
	cfg := Config{Catalogue: testCatalogue(h, policy),
		Deps:      &Deps{Platform: platform.Deps{DB: db}},
		Transport: tr, Registry: testRegistry(t), Ledger: db, Logger: logger}
	if deferred {
		cfg.Deferrer = OutboxDeferrer{DB: db}
	}
	rt, err := New(cfg)
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(context.Background())
	go func() { _ = rt.Run(runCtx) }()
	<-rt.Running()
	relay := &transport.Relay{DB: db, Publisher: rt.Publisher(), Logger: logger,
		Interval: 20 * time.Millisecond}
	relayDone := make(chan struct{})
	go func() { defer close(relayDone); _ = relay.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-relayDone; rt.Close() })
	return db, rt.Publisher()
}

// runPartitionWatch publishes stuck then others messages, all with one
// organisation (one partition key), and waits until the others are handled.
func runPartitionWatch(t *testing.T, policy middleware.RetryPolicy, deferred bool,
	others int) (*partitionWatch, time.Duration) {
	t.Helper()
	w := &partitionWatch{stuck: job.NewID()}
	db, pub := kafkaRouter(t, job.HandlerFunc(w.handle), policy, deferred)
	w.db = db
	publish := func(id string) {
		m := message.NewMessage(id, []byte(`{"n":1}`))
		m.Metadata.Set(job.MetaPartitionKey, "org-1")
		require.NoError(t, pub.Publish(testTopic, m))
	}
	start := time.Now()
	publish(w.stuck)
	for range others {
		publish(job.NewID())
	}
	require.Eventually(t, func() bool { _, seen := w.snapshot(); return len(seen) == others },
		45*time.Second, 10*time.Millisecond)
	return w, time.Since(start)
}

func TestFailingMessageDoesNotHoldItsKafkaPartition(t *testing.T) {
	t.Parallel()
	policy := middleware.RetryPolicy{MaxRetries: 3, Initial: time.Second, Max: time.Second,
		Multiplier: 1, DeferAfter: 10 * time.Millisecond}
	w, took := runPartitionWatch(t, policy, true, 30)
	tries, seen := w.snapshot()
	for i, s := range seen {
		require.Less(t, s, 1+policy.MaxRetries,
			"message %d of the partition waited for the failing one to give up", i)
	}
	t.Logf("30 messages behind a failing one handled in %v, while it had %d attempts", took,
		tries)
	// The failing message still gets all its attempts, counted across
	// redeliveries, and is poisoned at the end.
	rec := waitPoisonOf(t, w.db, w.stuck, "thing")
	require.Equal(t, 1+policy.MaxRetries, rec.Attempts)

	// Replayed once fixed, it is handled on Kafka under its own id.
	w.mu.Lock()
	w.fixed = true
	w.mu.Unlock()
	_, err := w.db.ReplayPoison(context.Background(), rec.ID, time.Now())
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.stuckDone
	}, 30*time.Second, 20*time.Millisecond)
}

// The contrast: with every backoff slept in the process, the partition
// waits for the failing message's whole retry schedule.
func TestSleptRetryHoldsItsKafkaPartition(t *testing.T) {
	t.Parallel()
	policy := middleware.RetryPolicy{MaxRetries: 3, Initial: 200 * time.Millisecond,
		Max: 200 * time.Millisecond, Multiplier: 1}
	w, took := runPartitionWatch(t, policy, false, 30)
	_, seen := w.snapshot()
	for _, s := range seen {
		require.Equal(t, 1+policy.MaxRetries, s)
	}
	t.Logf("with in-process backoff, 30 messages waited %v behind a failing one", took)
}
