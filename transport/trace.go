package transport

import (
	"context"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/millrace/millrace/job"
)

// tracerName is Millrace's instrumentation scope (telemetry.TracerName).
const tracerName = "github.com/millrace/millrace"

// metaReplayOf carries, on a message replayed from the poison queue, the
// trace context of the original delivery.
const metaReplayOf = "replay_of_traceparent"

// producerKind is built once: each option is an allocation.
var producerKind = trace.WithSpanKind(trace.SpanKindProducer)

// startPublish starts the producer span of one message and writes its
// context into the message's metadata, replacing what was there, so that the
// consumer's span is the publish span's child.
//
// The parent is the span of the message's context when it has one (an HTTP
// request, a handler publishing to the poison queue); otherwise the trace
// context the metadata carries (an event a handler emitted through the
// outbox, relayed later without a context). A message replayed from the
// poison queue carries none: it starts a new trace linked to the original.
func startPublish(topic string, m *message.Message) trace.Span {
	ctx := m.Context()
	if !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = job.ExtractTrace(ctx, m.Metadata)
	}
	opts := []trace.SpanStartOption{
		producerKind,
		trace.WithAttributes(
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.destination.name", topic),
			attribute.String("messaging.message.id", m.UUID)),
	}
	if orig := m.Metadata.Get(metaReplayOf); orig != "" {
		prev := otel.GetTextMapPropagator().Extract(context.Background(),
			propagation.MapCarrier{job.MetaTraceparent: orig})
		if sc := trace.SpanContextFromContext(prev); sc.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc,
				Attributes: []attribute.KeyValue{attribute.String("millrace.link", "replay_of")}}))
		}
	}
	ctx, span := otel.Tracer(tracerName).Start(ctx, publishSpanName(topic), opts...)
	delete(m.Metadata, job.MetaTraceparent)
	delete(m.Metadata, job.MetaTracestate)
	job.InjectTrace(ctx, m.Metadata)
	return span
}

// publishNames holds the producer span name of each topic published to, so
// that publishing does not build the same string for every message. Topics
// come from the catalogue, so the map stays small.
var publishNames sync.Map

func publishSpanName(topic string) string {
	if n, ok := publishNames.Load(topic); ok {
		return n.(string)
	}
	n, _ := publishNames.LoadOrStore(topic, "publish "+topic)
	return n.(string)
}
