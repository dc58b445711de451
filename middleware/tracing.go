package middleware

import (
	"log/slog"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/telemetry"
)

// Tracing continues the trace whose context the message carries in its
// metadata (Watermill does not carry it across a broker) and records one
// consumer span for the delivery. It also puts the message's identifiers on
// the context's logger attributes so that every log line of the delivery
// names them.
//
// The span is recorded for every sampled message, so its cost is kept down:
// the topic, handler and message id are on each attempt span under it (and
// the first two in its name), not repeated here, and its attributes are set
// once, when the outcome is known, so that their slice is allocated once.
func Tracing(tracer trace.Tracer, topic, handler string) message.HandlerMiddleware {
	spanName := handler + " " + topic
	kind := trace.WithSpanKind(trace.SpanKindConsumer)
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			ctx := job.ExtractTrace(msg.Context(), msg.Metadata)
			ctx, span := tracer.Start(ctx, spanName, kind)
			defer span.End()
			ctx = telemetry.WithLogAttrs(ctx,
				slog.String("handler", handler), slog.String("topic", topic),
				slog.String("message_id", msg.UUID),
				slog.String("organisation_id", msg.Metadata.Get(job.MetaOrganisationID)),
				slog.String("correlation_id", msg.Metadata.Get(job.MetaCorrelationID)))
			msg.SetContext(ctx)
			st := StateFrom(msg)
			out, err := h(msg)
			if !span.IsRecording() {
				return out, err
			}
			span.SetAttributes(attribute.Int("millrace.attempts", st.Attempts),
				attribute.String("millrace.outcome", st.Outcome(err)))
			if err != nil {
				span.SetStatus(codes.Error, err.Error())
			} else if st.Poisoned {
				span.SetStatus(codes.Error, "poisoned")
			}
			return out, err
		}
	}
}
