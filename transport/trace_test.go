package transport

import (
	"context"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/telemetry"
)

type nopPublisher struct{ got []*message.Message }

func (p *nopPublisher) Publish(_ string, msgs ...*message.Message) error {
	p.got = append(p.got, msgs...)
	return nil
}

func (p *nopPublisher) Close() error { return nil }

const origTraceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

func TestGuardTracesEachPublish(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	orig := trace.SpanContextFromContext(job.ExtractTrace(context.Background(),
		map[string]string{job.MetaTraceparent: origTraceparent}))

	cases := []struct {
		name     string
		metadata map[string]string
		check    func(t *testing.T, s sdktrace.ReadOnlySpan)
	}{
		{"continues the trace in the metadata", map[string]string{
			job.MetaTraceparent: origTraceparent},
			func(t *testing.T, s sdktrace.ReadOnlySpan) {
				require.Equal(t, orig.TraceID(), s.SpanContext().TraceID())
				require.Equal(t, orig.SpanID(), s.Parent().SpanID())
				require.Empty(t, s.Links())
			}},
		{"a replay starts a new trace linked to the original", map[string]string{
			job.MetaReplayedFrom: "p1", metaReplayOf: origTraceparent},
			func(t *testing.T, s sdktrace.ReadOnlySpan) {
				require.False(t, s.Parent().IsValid())
				require.NotEqual(t, orig.TraceID(), s.SpanContext().TraceID())
				require.Len(t, s.Links(), 1)
				require.Equal(t, orig.SpanID(), s.Links()[0].SpanContext.SpanID())
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pub := &nopPublisher{}
			m := message.NewMessage(job.NewID(), []byte(`{}`))
			for k, v := range tc.metadata {
				m.Metadata.Set(k, v)
			}
			g := Guard(pub, func(string) bool { return true })
			require.NoError(t, g.Publish("a.topic", m))
			var span sdktrace.ReadOnlySpan
			for _, s := range rec.Ended() {
				if s.SpanContext().SpanID().String() ==
					trace.SpanContextFromContext(job.ExtractTrace(context.Background(),
						pub.got[0].Metadata)).SpanID().String() {
					span = s
				}
			}
			require.NotNil(t, span, "the metadata carries the publish span's context")
			require.Equal(t, trace.SpanKindProducer, span.SpanKind())
			require.Equal(t, "publish a.topic", span.Name())
			tc.check(t, span)
		})
	}
}

func TestGuardRefusesUnknownTopics(t *testing.T) {
	pub := &nopPublisher{}
	g := Guard(pub, func(string) bool { return false })
	err := g.Publish("nope", message.NewMessage(job.NewID(), nil))
	require.ErrorIs(t, err, ErrUnknownTopic)
	require.Empty(t, pub.got, "nothing published")
}

// Under the default sampler, which records a share of new traces, a replay
// from the poison queue is always recorded: its publish span is a root that
// links to the trace it replays.
func TestReplayIsAlwaysSampled(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(
		sdktrace.WithSampler(telemetry.DefaultSampler()), sdktrace.WithSpanProcessor(rec)))
	otel.SetTextMapPropagator(propagation.TraceContext{})
	g := Guard(&nopPublisher{}, func(string) bool { return true })
	const n = 50
	for range n {
		m := message.NewMessage(job.NewID(), []byte(`{}`))
		m.Metadata.Set(job.MetaReplayedFrom, "p1")
		m.Metadata.Set(metaReplayOf, origTraceparent)
		require.NoError(t, g.Publish("a.topic", m))
	}
	require.Len(t, rec.Ended(), n)
	for _, s := range rec.Ended() {
		require.Contains(t, s.Attributes(), attribute.String("messaging.destination.name",
			"a.topic"))
	}
}
