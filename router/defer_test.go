package router

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
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
	"github.com/millrace/millrace/transport/memory"
)

// deferWorld runs two handlers on testTopic, "thing" (under test) and
// "bystander" (always succeeds), with every backoff deferred through the
// outbox and a relay publishing due rows.
type deferWorld struct {
	db        *store.DB
	pub       message.Publisher
	mu        sync.Mutex
	attempts  map[string][]int // message id → job.Message.Attempt of each call of thing
	bystander map[string]int
}

func newDeferWorld(t *testing.T, thing func(m job.Message) error) *deferWorld {
	t.Helper()
	w := &deferWorld{db: storetest.New(t), attempts: map[string][]int{},
		bystander: map[string]int{}}
	record := func(name string, fn func(job.Message) error) func(*Deps) job.Handler {
		return func(*Deps) job.Handler {
			return job.HandlerFunc(func(_ context.Context, m job.Message) error {
				w.mu.Lock()
				if name == "thing" {
					w.attempts[m.ID] = append(w.attempts[m.ID], m.Attempt)
				} else {
					w.bystander[m.ID]++
				}
				w.mu.Unlock()
				return fn(m)
			})
		}
	}
	policy := middleware.RetryPolicy{MaxRetries: 3, Initial: 30 * time.Millisecond,
		Max: 30 * time.Millisecond, Multiplier: 1, DeferAfter: time.Millisecond}
	cat := Catalogue{Jobs: append([]Job{{
		Name: "thing", Kind: KindEvent,
		Subscriptions: []Subscription{
			{Topic: testTopic, Handler: "thing", New: record("thing", thing)},
			{Topic: testTopic, Handler: "bystander",
				New: record("bystander", func(job.Message) error { return nil })},
		},
		Emits: []string{"test.other.happened"},
		Retry: policy,
	}}, systemJobs()...)}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	tr := memory.New(memory.Config{})
	rt, err := New(Config{Catalogue: cat, Deps: &Deps{Platform: platform.Deps{DB: w.db}},
		Transport: tr, Registry: testRegistry(t), Ledger: w.db, Logger: logger,
		Deferrer: OutboxDeferrer{DB: w.db}})
	require.NoError(t, err)
	w.pub = rt.Publisher()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = rt.Run(ctx) }()
	<-rt.Running()
	relay := &transport.Relay{DB: w.db, Publisher: w.pub, Logger: logger,
		Interval: 5 * time.Millisecond}
	relayDone := make(chan struct{})
	go func() { defer close(relayDone); _ = relay.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-relayDone; rt.Close(); tr.Close() })
	return w
}

func (w *deferWorld) calls(id string) ([]int, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]int(nil), w.attempts[id]...), w.bystander[id]
}

func TestLongBackoffIsDeferredThroughTheOutbox(t *testing.T) {
	t.Parallel()
	var failing sync.Map
	w := newDeferWorld(t, func(m job.Message) error {
		if _, ok := failing.Load(m.ID); ok {
			return errBoom
		}
		return nil
	})
	stuck, fine := job.NewID(), job.NewID()
	failing.Store(stuck, true)
	require.NoError(t, w.pub.Publish(testTopic, message.NewMessage(stuck, []byte(`{"n":1}`))))
	require.NoError(t, w.pub.Publish(testTopic, message.NewMessage(fine, []byte(`{"n":2}`))))

	rec := waitPoisonOf(t, w.db, stuck, "thing")
	got, bystander := w.calls(stuck)
	require.Equal(t, []int{1, 2, 3, 4}, got,
		"attempts count on across redeliveries and stop at 1+MaxRetries")
	require.Equal(t, 4, rec.Attempts)
	require.Equal(t, 1, bystander, "redeliveries are addressed to the handler that failed")

	got, bystander = w.calls(fine)
	require.Equal(t, []int{1}, got)
	require.Equal(t, 1, bystander)

	var deferred int
	require.NoError(t, w.db.QueryRow(`SELECT count(*) FROM outbox WHERE deliver_at IS NOT NULL
		AND message_uuid = $1`, stuck).Scan(&deferred))
	require.Equal(t, 3, deferred, "each retry was a scheduled outbox row, none a sleep")
}

func TestDeferredRetryThatSucceedsIsNotPoisoned(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	w := newDeferWorld(t, func(m job.Message) error {
		if n.Add(1) < 3 {
			return errBoom
		}
		return nil
	})
	id := job.NewID()
	require.NoError(t, w.pub.Publish(testTopic, message.NewMessage(id, []byte(`{"n":1}`))))
	require.Eventually(t, func() bool { got, _ := w.calls(id); return len(got) == 3 },
		10*time.Second, 5*time.Millisecond)
	got, bystander := w.calls(id)
	require.Equal(t, []int{1, 2, 3}, got)
	require.Equal(t, 1, bystander)
	_, err := w.db.GetPoison(context.Background(), job.StableID("poison", id, "thing"))
	require.ErrorIs(t, err, store.ErrPoisonNotFound)
}

// waitPoisonOf waits until handler's poison record for message id exists.
func waitPoisonOf(t *testing.T, db *store.DB, id, handler string) store.PoisonRecord {
	t.Helper()
	var rec store.PoisonRecord
	require.Eventually(t, func() bool {
		r, err := db.GetPoison(context.Background(), job.StableID("poison", id, handler))
		rec = r
		return err == nil
	}, 10*time.Second, 5*time.Millisecond)
	return rec
}

var errBoom = errors.New("provider answered 500")
