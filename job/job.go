// Package job is the contract between Millrace's router and its handlers: the
// message a handler receives, the outcome it returns and the metadata keys
// every message carries. It imports nothing of Millrace so that handlers,
// middleware and the store can all depend on it.
package job

import (
	"context"
	"time"
)

// Metadata keys carried by every message. The names follow the domain
// specification's envelope.
const (
	MetaEventType      = "event_type"
	MetaOrganisationID = "organisation_id"
	MetaCorrelationID  = "correlation_id"
	MetaCausationID    = "causation_id"
	MetaOccurredAt     = "occurred_at"
	MetaSchemaVersion  = "schema_version"
	MetaIdempotencyKey = "idempotency_key"
	MetaSource         = "source"
	MetaTraceparent    = "traceparent"
	MetaTracestate     = "tracestate"
	MetaPartitionKey   = "partition_key"

	// Set on a message when it is poisoned.
	MetaPoisonHandler       = "handler"
	MetaPoisonSourceTopic   = "source_topic"
	MetaPoisonErrorClass    = "error_class"
	MetaPoisonReason        = "reason_poisoned"
	MetaPoisonAttempts      = "attempts"
	MetaPoisonFirstFailedAt = "first_failed_at"

	// Set on a message whose retry was put off through the outbox, so that
	// only the handler that failed receives it again and its attempts count
	// on from where they stopped.
	MetaRedeliverTo        = "redeliver_to"
	MetaRetryAttempts      = "retry_attempts"
	MetaRetryFirstFailedAt = "retry_first_failed_at"

	// Set on a message replayed from the poison queue.
	MetaReplayedFrom = "replayed_from_poison"
)

// PoisonTopic receives every message that a handler gave up on.
const PoisonTopic = "platform.poison"

// Message is what a handler receives: one delivery of one event to one
// handler. Attempt counts from 1 within this delivery.
type Message struct {
	ID       string
	Topic    string
	Payload  []byte
	Metadata map[string]string
	Handler  string
	Attempt  int
}

// OrganisationID returns the tenant the message belongs to, or "".
func (m Message) OrganisationID() string { return m.Metadata[MetaOrganisationID] }

// Handler handles one message. It returns nil when the message needs no
// further work (including a no-op), an error wrapped by Permanent when
// retrying cannot help, and any other error when a retry may succeed.
type Handler interface {
	Handle(ctx context.Context, msg Message) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, msg Message) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, msg Message) error { return f(ctx, msg) }

type messageKey struct{}

// WithMessage returns a context carrying the message being handled, so that
// code deep in a handler (the store's Emit, a provider client) can derive
// causation, correlation and idempotency keys from it.
func WithMessage(ctx context.Context, m Message) context.Context {
	return context.WithValue(ctx, messageKey{}, m)
}

// MessageFrom returns the message being handled, if any.
func MessageFrom(ctx context.Context) (Message, bool) {
	m, ok := ctx.Value(messageKey{}).(Message)
	return m, ok
}

// Clock tells the time. Handlers take one so that tests can fix the date.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// FixedClock always answers the same instant. For tests.
type FixedClock time.Time

// Now returns the fixed instant.
func (c FixedClock) Now() time.Time { return time.Time(c) }
