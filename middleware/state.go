// Package middleware holds the router middleware Millrace wraps around every
// handler: tracing, observation (logs and metrics), correlation, the poison
// queue, retry, the per-attempt timeout, panic recovery, payload validation
// and idempotency. The router assembles them in one order; see router/chain.go.
//
// Each middleware is a watermill message.HandlerMiddleware. They share one
// per-delivery State through the message context, so that the outer layers
// can report what the inner ones decided.
package middleware

import (
	"context"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Outcomes a delivery ends with, as logged and counted.
const (
	OutcomeAcked     = "acked"
	OutcomeDuplicate = "duplicate"
	OutcomePoisoned  = "poisoned"
	OutcomeNacked    = "nacked"
	// OutcomeDeferred: the handler failed and its next attempt was
	// scheduled through the outbox; the delivery itself is acked.
	OutcomeDeferred = "deferred"
)

// State is what one delivery of a message to a handler has gone through.
type State struct {
	Attempts      int
	FirstFailedAt time.Time
	Duplicate     bool
	Poisoned      bool
	Deferred      bool
	LastError     error
}

type stateKey struct{}

// StateFrom returns the delivery state of msg, creating it on first use.
func StateFrom(msg *message.Message) *State {
	if s, ok := msg.Context().Value(stateKey{}).(*State); ok {
		return s
	}
	s := &State{}
	msg.SetContext(context.WithValue(msg.Context(), stateKey{}, s))
	return s
}

// Outcome names how the delivery ended given the handler chain's error.
func (s *State) Outcome(err error) string {
	switch {
	case err != nil:
		return OutcomeNacked
	case s.Poisoned:
		return OutcomePoisoned
	case s.Duplicate:
		return OutcomeDuplicate
	case s.Deferred:
		return OutcomeDeferred
	}
	return OutcomeAcked
}
