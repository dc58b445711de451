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

// Attempt records each handling attempt as a span, a child of the delivery
// span, so that a retried attempt is a new span in the same trace. It sits
// inside Retry; maxRetries is the policy's, to tell a retried attempt from a
// final one. It also counts retried attempts in m.
func Attempt(tracer trace.Tracer, m *Metrics, topic, handler string,
	maxRetries int) message.HandlerMiddleware {
	name := handler + " attempt"
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			st := StateFrom(msg)
			ctx, span := tracer.Start(msg.Context(), name)
			defer span.End()
			// Attributes cost allocations even on a span nobody records.
			recording := span.IsRecording()
			if recording {
				span.SetAttributes(
					attribute.String("messaging.destination.name", topic),
					attribute.String("millrace.handler", handler),
					attribute.String("messaging.message.id", msg.UUID),
					attribute.Int("millrace.attempt", st.Attempts))
			}
			msg.SetContext(ctx)
			out, err := h(msg)
			outcome := attemptOutcome(st, err, maxRetries)
			if outcome == AttemptRetried {
				m.retried(handler, topic)
			}
			if !recording {
				return out, err
			}
			span.SetAttributes(attribute.String("millrace.outcome", outcome))
			if err != nil {
				span.SetAttributes(attribute.String("error.type", string(job.Classify(err))))
				span.SetStatus(codes.Error, err.Error())
			}
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
