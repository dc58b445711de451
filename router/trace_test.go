package router

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/store"
	"github.com/millrace/millrace/telemetry"
	"github.com/millrace/millrace/transport"
)

var (
	recorderOnce sync.Once
	recorder     *tracetest.SpanRecorder
)

// spanRecorder installs, once per test binary, a global tracer provider that
// samples everything into a recorder. Tests pick their spans by trace id.
func spanRecorder() *tracetest.SpanRecorder {
	recorderOnce.Do(func() {
		recorder = tracetest.NewSpanRecorder()
		telemetry.SetupTracing()
		otel.SetTracerProvider(sdktrace.NewTracerProvider(
			sdktrace.WithSampler(sdktrace.AlwaysSample()),
			sdktrace.WithSpanProcessor(recorder)))
	})
	return recorder
}

func spansOf(rec *tracetest.SpanRecorder, id trace.TraceID) map[string][]sdktrace.ReadOnlySpan {
	out := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID() == id {
			out[s.Name()] = append(out[s.Name()], s)
		}
	}
	return out
}

func attr(s sdktrace.ReadOnlySpan, key string) attribute.Value {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// A message published inside a span is handled in the same trace: publish
// (producer) under the caller, the delivery (consumer) under the publish, one
// span per attempt under the delivery, and the handler's SQL under its
// attempt.
func TestTraceCrossesTheBroker(t *testing.T) {
	rec := spanRecorder()
	h := setup(t, func(ctx context.Context, db *store.DB, m job.Message) error {
		if m.Attempt == 1 {
			return errors.New("flaky")
		}
		var one int
		return db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
	})
	ctx, root := otel.Tracer("test").Start(context.Background(), "caller")
	m := message.NewMessage(job.NewID(), []byte(`{"n":1}`))
	m.SetContext(ctx)
	require.NoError(t, h.pub.Publish(testTopic, m))
	root.End()
	id := root.SpanContext().TraceID()

	var spans map[string][]sdktrace.ReadOnlySpan
	require.Eventually(t, func() bool {
		spans = spansOf(rec, id)
		return len(spans["thing "+testTopic]) == 1
	}, 10*time.Second, 5*time.Millisecond)

	publish := spans["publish "+testTopic]
	require.Len(t, publish, 1)
	require.Equal(t, trace.SpanKindProducer, publish[0].SpanKind())
	require.Equal(t, root.SpanContext().SpanID(), publish[0].Parent().SpanID())
	delivery := spans["thing "+testTopic][0]
	require.Equal(t, trace.SpanKindConsumer, delivery.SpanKind())
	require.Equal(t, publish[0].SpanContext().SpanID(), delivery.Parent().SpanID())
	require.Equal(t, "acked", attr(delivery, "millrace.outcome").AsString())

	attempts := spans["thing attempt"]
	require.Len(t, attempts, 2, "a retried attempt is a new span in the same trace")
	outcomes := map[int64]string{}
	var second trace.SpanID
	for _, a := range attempts {
		require.Equal(t, delivery.SpanContext().SpanID(), a.Parent().SpanID())
		require.Equal(t, testTopic, attr(a, "messaging.destination.name").AsString())
		require.Equal(t, m.UUID, attr(a, "messaging.message.id").AsString())
		n := attr(a, "millrace.attempt").AsInt64()
		outcomes[n] = attr(a, "millrace.outcome").AsString()
		if n == 2 {
			second = a.SpanContext().SpanID()
		}
	}
	require.Equal(t, map[int64]string{1: "retried", 2: "acked"}, outcomes)

	var sqlUnderAttempt bool
	for _, s := range spans["sql.conn.query"] {
		sqlUnderAttempt = sqlUnderAttempt || s.Parent().SpanID() == second
	}
	require.True(t, sqlUnderAttempt, "the handler's SQL is traced under its attempt: %v",
		keys(spans))
}

func keys(m map[string][]sdktrace.ReadOnlySpan) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

type discardPublisher struct{}

func (discardPublisher) Publish(string, ...*message.Message) error { return nil }
func (discardPublisher) Close() error                              { return nil }

// An event a handler emits is published by the relay after commit, outside
// any context; its publish span still continues the handler's trace, under
// the attempt that emitted it.
func TestEmittedEventContinuesTheTrace(t *testing.T) {
	rec := spanRecorder()
	payload, err := os.ReadFile(
		"../schemas/examples/platform.usage.threshold_crossed/valid.json")
	require.NoError(t, err)
	const emitted = "platform.usage.threshold_crossed"
	h := setup(t, func(ctx context.Context, db *store.DB, m job.Message) error {
		return db.InTx(ctx, func(tx *store.Tx) error {
			_, err := tx.Emit(ctx, emitted, json.RawMessage(payload), store.EmitOpts{})
			return err
		})
	})
	ctx, root := otel.Tracer("test").Start(context.Background(), "caller")
	m := message.NewMessage(job.NewID(), []byte(`{"n":1}`))
	m.SetContext(ctx)
	require.NoError(t, h.pub.Publish(testTopic, m))
	root.End()
	id := root.SpanContext().TraceID()
	require.Eventually(t, func() bool {
		return len(spansOf(rec, id)["thing attempt"]) == 1
	}, 10*time.Second, 5*time.Millisecond)

	relay := &transport.Relay{DB: h.db, Logger: slog.New(slog.DiscardHandler),
		Publisher: transport.Guard(discardPublisher{}, func(string) bool { return true })}
	n, err := relay.Flush(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, n)

	spans := spansOf(rec, id)
	require.Len(t, spans["publish "+emitted], 1, "the relayed publish is in the handler's trace")
	require.Equal(t, spans["thing attempt"][0].SpanContext().SpanID(),
		spans["publish "+emitted][0].Parent().SpanID())
}
