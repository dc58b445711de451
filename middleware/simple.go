package middleware

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/job"
)

// Timeout bounds each attempt. The handler must respect its context; a
// handler that ignores it runs on, which is why every provider client here
// takes one.
func Timeout(d time.Duration) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			ctx, cancel := context.WithTimeout(msg.Context(), d)
			defer cancel()
			msg.SetContext(ctx)
			return h(msg)
		}
	}
}

// PanicError is a handler panic turned into an error. It is retryable: a
// panic is a bug, but a bug that depends on a passing state as often as not,
// and the poison queue catches it when it repeats.
type PanicError struct {
	Value any
	Stack string
}

func (e *PanicError) Error() string { return fmt.Sprintf("handler panicked: %v", e.Value) }

// Recoverer turns a panic in the handler into a PanicError, so that retry
// and the poison queue see it like any other failure.
func Recoverer() message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) (out []*message.Message, err error) {
			defer func() {
				if r := recover(); r != nil {
					err = &PanicError{Value: r, Stack: string(debug.Stack())}
				}
			}()
			return h(msg)
		}
	}
}

// Correlation makes sure a message carries a correlation id; a message that
// arrives without one starts its own chain with its id.
func Correlation() message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			if msg.Metadata.Get(job.MetaCorrelationID) == "" {
				msg.Metadata.Set(job.MetaCorrelationID, msg.UUID)
			}
			return h(msg)
		}
	}
}

// Validator checks a payload against its topic's schema.
type Validator interface {
	Validate(topic string, payload []byte) error
}

// Validate rejects a payload that does not match its topic's schema as a
// permanent error: ingest validated it already, so a mismatch here means a
// publisher bypassed ingest or the schema changed under a queued message.
func Validate(v Validator, topic string) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			if err := v.Validate(topic, msg.Payload); err != nil {
				return nil, job.Permanent(err)
			}
			return h(msg)
		}
	}
}
