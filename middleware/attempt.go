package middleware

import (
	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/millrace/millrace/job"
)

// Outcomes of one attempt, as the attempt span records them: an attempt
// that failed is retried or, when retrying cannot help or the retries are
// spent, handed to the poison queue (or nacked) by the outer layers.
const (
	AttemptRetried = "retried"
	AttemptFailed  = "failed"
)

// Attempt records each handling attempt as a consumer span, a child of the
// delivery span, so that a retried attempt is a new span in the same trace.
// It sits inside Retry; maxRetries is the policy's, to tell a retried
// attempt from a final one. It also counts retried attempts in m.
//
// The span's attributes are set in one call once the outcome is known: one
// allocation of the attribute slice instead of a grow per call, and none at
// all for a span nobody records.
func Attempt(tracer trace.Tracer, m *Metrics, topic, handler string,
	maxRetries int) message.HandlerMiddleware {
	name := handler + " attempt"
	kind := trace.WithSpanKind(trace.SpanKindConsumer)
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			st := StateFrom(msg)
			ctx, span := tracer.Start(msg.Context(), name, kind)
			defer span.End()
			msg.SetContext(ctx)
			out, err := h(msg)
			outcome := attemptOutcome(st, err, maxRetries)
			if outcome == AttemptRetried {
				m.retried(handler, topic)
			}
			if !span.IsRecording() {
				return out, err
			}
			attrs := [6]attribute.KeyValue{
				attribute.String("messaging.destination.name", topic),
				attribute.String("millrace.handler", handler),
				attribute.String("messaging.message.id", msg.UUID),
				attribute.Int("millrace.attempt", st.Attempts),
				attribute.String("millrace.outcome", outcome),
			}
			n := 5
			if err != nil {
				attrs[n] = attribute.String("error.type", string(job.Classify(err)))
				n++
				span.SetStatus(codes.Error, err.Error())
			}
			span.SetAttributes(attrs[:n]...)
			return out, err
		}
	}
}

func attemptOutcome(st *State, err error, maxRetries int) string {
	switch {
	case err == nil && st.Duplicate:
		return OutcomeDuplicate
	case err == nil:
		return OutcomeAcked
	case job.Classify(err) == job.ClassPermanent || st.Attempts > maxRetries:
		return AttemptFailed
	}
	return AttemptRetried
}
