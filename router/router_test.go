package router

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/handlers/platform"
	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/middleware"
	"github.com/millrace/millrace/schemas"
	"github.com/millrace/millrace/store"
	"github.com/millrace/millrace/store/storetest"
	"github.com/millrace/millrace/transport"
	"github.com/millrace/millrace/transport/memory"
)

const testTopic = "test.thing.happened"

func testRegistry(t testing.TB) *schemas.Registry {
	t.Helper()
	reg, err := schemas.LoadFS(os.DirFS("testdata"), "topics")
	require.NoError(t, err)
	return reg
}

// testCatalogue has one job, "thing", on testTopic, plus the poison store.
func testCatalogue(h job.Handler, retry middleware.RetryPolicy) Catalogue {
	return Catalogue{Jobs: append([]Job{{
		Name: "thing", Kind: KindEvent,
		Subscriptions: []Subscription{{Topic: testTopic, Handler: "thing",
			New: func(*Deps) job.Handler { return h }}},
		Emits: []string{"test.other.happened"},
		Retry: retry,
	}}, systemJobs()...)}
}

type harness struct {
	db     *store.DB
	rt     *Router
	pub    message.Publisher
	calls  atomic.Int32
	cancel context.CancelFunc
}

var fastRetry = middleware.RetryPolicy{MaxRetries: 3, Initial: time.Millisecond,
	Max: 2 * time.Millisecond, Multiplier: 2}

// setup runs a router with handler fn on the memory transport and a fresh
// SQLite store, counting calls of fn.
func setup(t *testing.T, fn func(ctx context.Context, db *store.DB, m job.Message) error) *harness {
	t.Helper()
	h := &harness{db: storetest.New(t)}
	handler := job.HandlerFunc(func(ctx context.Context, m job.Message) error {
		h.calls.Add(1)
		return fn(ctx, h.db, m)
	})
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	tr := memory.New(memory.Config{})
	rt, err := New(Config{
		Catalogue: testCatalogue(handler, fastRetry),
		Deps:      &Deps{Platform: platform.Deps{DB: h.db}},
		Transport: tr, Registry: testRegistry(t), Ledger: h.db, Logger: logger,
	})
	require.NoError(t, err)
	h.rt, h.pub = rt, rt.Publisher()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { _ = rt.Run(ctx) }()
	<-rt.Running()
	t.Cleanup(func() { rt.Close(); cancel(); tr.Close() })
	return h
}

func (h *harness) publish(t *testing.T, id string, payload string) {
	t.Helper()
	m := message.NewMessage(id, []byte(payload))
	require.NoError(t, h.pub.Publish(testTopic, m))
}

// waitPoison waits until the poison store holds a record for message id.
func (h *harness) waitPoison(t *testing.T, id string) store.PoisonRecord {
	t.Helper()
	var rec store.PoisonRecord
	require.Eventually(t, func() bool {
		r, err := h.db.GetPoison(context.Background(), job.StableID("poison", id, "thing"))
		rec = r
		return err == nil
	}, 10*time.Second, 5*time.Millisecond)
	return rec
}

func TestChainOrder(t *testing.T) {
	t.Parallel()
	h := setup(t, func(context.Context, *store.DB, job.Message) error { return nil })
	cat := h.rt.cfg.Catalogue
	var names []string
	for _, l := range h.rt.chain(cat.Jobs[0], cat.Jobs[0].Subscriptions[0]) {
		names = append(names, l.name)
	}
	require.Equal(t, []string{"tracing", "observe", "correlation", "redelivery", "poison", "retry",
		"attempt", "timeout", "recoverer", "validate", "idempotency"}, names)
}

func TestFailures(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		fn        func(context.Context, *store.DB, job.Message) error
		payload   string
		calls     int32
		class     string
		reasonHas string
	}{
		{"retryable error is retried then poisoned",
			func(context.Context, *store.DB, job.Message) error { return errors.New("db down") },
			`{"n":1}`, 1 + 3, "retryable", "db down"},
		{"permanent error is poisoned after one attempt",
			func(context.Context, *store.DB, job.Message) error {
				return job.Permanentf("provider said 422")
			}, `{"n":1}`, 1, "permanent", "422"},
		{"panic reaches retry and poison",
			func(context.Context, *store.DB, job.Message) error { panic("boom") },
			`{"n":1}`, 1 + 3, "retryable", "panicked: boom"},
		{"invalid payload is poisoned without calling the handler",
			func(context.Context, *store.DB, job.Message) error { return nil },
			`{"n":"one"}`, 0, "permanent", "/n"},
		{"malformed JSON is poisoned without calling the handler",
			func(context.Context, *store.DB, job.Message) error { return nil },
			`{"n":`, 0, "permanent", "malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := setup(t, tc.fn)
			id := job.NewID()
			h.publish(t, id, tc.payload)
			rec := h.waitPoison(t, id)
			require.Equal(t, tc.calls, h.calls.Load())
			require.Equal(t, tc.class, rec.ErrorClass)
			require.Equal(t, testTopic, rec.Topic)
			require.Equal(t, "thing", rec.Handler)
			require.Equal(t, id, rec.MessageID)
			require.Equal(t, max(int(tc.calls), 1), rec.Attempts)
			require.Contains(t, rec.Reason, tc.reasonHas)
			require.False(t, rec.FirstFailedAt.IsZero())
		})
	}
}

// recordThing is a handler that writes one audit row per message inside the
// idempotent transaction, so effects can be counted.
func recordThing(ctx context.Context, db *store.DB, m job.Message) error {
	return db.Handle(ctx, m.Handler, m.ID, func(tx *store.Tx) error {
		return tx.WriteAudit(ctx, store.AuditEntry{Action: "thing.done", EntityID: m.ID,
			Category: store.AuditBusiness})
	})
}

func countAudit(t *testing.T, db *store.DB, id string) int {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRow(`SELECT COUNT(*) FROM audit_logs WHERE entity_id = $1`, id).
		Scan(&n))
	return n
}

func TestDuplicateDeliveryIsAckedWithoutEffects(t *testing.T) {
	t.Parallel()
	h := setup(t, recordThing)
	id := job.NewID()
	h.publish(t, id, `{"n":1}`)
	require.Eventually(t, func() bool { return countAudit(t, h.db, id) == 1 },
		5*time.Second, 2*time.Millisecond)
	h.publish(t, id, `{"n":1}`)
	h.publish(t, job.NewID(), `{"n":2}`) // a later message proves the duplicate was passed
	require.Eventually(t, func() bool { return h.calls.Load() == 2 },
		5*time.Second, 2*time.Millisecond)
	require.Equal(t, 1, countAudit(t, h.db, id))
}

func TestReplayKeepsMessageID(t *testing.T) {
	t.Parallel()
	var healthy atomic.Bool
	h := setup(t, func(ctx context.Context, db *store.DB, m job.Message) error {
		if !healthy.Load() {
			return job.Permanentf("refused until fixed")
		}
		return recordThing(ctx, db, m)
	})
	id := job.NewID()
	h.publish(t, id, `{"n":7}`)
	rec := h.waitPoison(t, id)

	healthy.Store(true)
	ctx := context.Background()
	_, err := h.db.ReplayPoison(ctx, rec.ID, time.Now())
	require.NoError(t, err)
	relay := &transport.Relay{DB: h.db, Publisher: h.pub, Logger: slog.Default()}
	n, err := relay.Flush(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Eventually(t, func() bool { return countAudit(t, h.db, id) == 1 },
		5*time.Second, 2*time.Millisecond)

	got, err := h.db.GetPoison(ctx, rec.ID)
	require.NoError(t, err)
	require.Equal(t, store.PoisonReplayed, got.Status)
}

func TestPublishToUnknownTopicIsAnError(t *testing.T) {
	t.Parallel()
	h := setup(t, recordThing)
	err := h.pub.Publish("test.nobody.listens", message.NewMessage(job.NewID(), []byte(`{}`)))
	require.ErrorIs(t, err, transport.ErrUnknownTopic)
}
