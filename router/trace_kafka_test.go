package router

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/millrace/millrace/job"
)

// Kafka carries no trace context of its own: the publish span's context
// travels in a record header, and the consumer continues it.
func TestTraceCrossesKafka(t *testing.T) {
	rec := spanRecorder()
	_, pub := kafkaRouter(t, job.HandlerFunc(func(context.Context, job.Message) error {
		return nil
	}), fastRetry, false)
	ctx, root := otel.Tracer("test").Start(context.Background(), "caller")
	m := message.NewMessage(job.NewID(), []byte(`{"n":1}`))
	m.SetContext(ctx)
	require.NoError(t, pub.Publish(testTopic, m))
	root.End()

	var spans map[string][]sdktrace.ReadOnlySpan
	require.Eventually(t, func() bool {
		spans = spansOf(rec, root.SpanContext().TraceID())
		return len(spans["thing "+testTopic]) == 1
	}, 30*time.Second, 10*time.Millisecond)
	publish := spans["publish "+testTopic]
	require.Len(t, publish, 1)
	delivery := spans["thing "+testTopic][0]
	require.Equal(t, trace.SpanKindConsumer, delivery.SpanKind())
	require.Equal(t, publish[0].SpanContext().SpanID(), delivery.Parent().SpanID())
	require.Len(t, spans["thing attempt"], 1)
}
