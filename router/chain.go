package router

import (
	"context"
	"errors"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/middleware"
	"github.com/millrace/millrace/store"
)

// link is one named layer of a handler's middleware chain.
type link struct {
	name string
	mw   message.HandlerMiddleware
}

// chain returns the middleware of one subscription, outermost first. The
// order matters and is tested: tracing must see the whole delivery; the
// poison queue must sit outside retry, or it would swallow the first error;
// retry must sit outside the per-attempt timeout; the recoverer must sit
// inside retry and poison so that a panic reaches both; validation and the
// idempotency check sit next to the handler, as the work they guard.
func (r *Router) chain(j Job, s Subscription) []link {
	policy := j.Retry
	if policy == (middleware.RetryPolicy{}) {
		policy = r.cfg.DefaultRetry
	}
	timeout := j.Timeout
	if timeout == 0 {
		timeout = defaultTimeout
	}
	logger := r.cfg.Logger
	links := []link{
		{"tracing", middleware.Tracing(r.tracer, s.Topic, s.Handler)},
		{"observe", middleware.Observe(r.cfg.Metrics, logger, s.Topic, s.Handler)},
		{"correlation", middleware.Correlation()},
		{"redelivery", middleware.Redelivery(s.Handler)},
	}
	if j.Kind != KindSystem {
		links = append(links, link{"poison", middleware.Poison(middleware.PoisonConfig{
			Publisher: r.publisher, Topic: s.Topic, Handler: s.Handler, Logger: logger,
			Stopping: r.stopping.Load,
		})})
	}
	links = append(links,
		link{"retry", middleware.RetryWith(middleware.RetryConfig{Policy: policy, Logger: logger,
			Topic: s.Topic, Handler: s.Handler, Deferrer: r.cfg.Deferrer})},
		link{"attempt", middleware.Attempt(r.tracer, r.cfg.Metrics, s.Topic, s.Handler,
			policy.MaxRetries)},
		link{"timeout", middleware.Timeout(timeout)},
		link{"recoverer", middleware.Recoverer()},
	)
	if s.Topic != job.PoisonTopic {
		links = append(links, link{"validate", middleware.Validate(r.cfg.Registry, s.Topic)})
	}
	if r.cfg.Ledger != nil {
		links = append(links, link{"idempotency",
			middleware.Idempotency(r.cfg.Ledger, s.Handler, store.MessageKey, logger)})
	}
	return links
}

// adapt turns a job.Handler into the innermost Watermill handler function.
// The handler sees the message as a job.Message, with the message itself in
// its context for the store's Emit and provider idempotency keys.
func adapt(h job.Handler, s Subscription) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		st := middleware.StateFrom(msg)
		jm := job.Message{
			ID: msg.UUID, Topic: s.Topic, Payload: msg.Payload,
			Metadata: msg.Metadata, Handler: s.Handler, Attempt: st.Attempts,
		}
		err := h.Handle(job.WithMessage(msg.Context(), jm), jm)
		if errors.Is(err, store.ErrAlreadyProcessed) || errors.Is(err, job.ErrDuplicate) {
			st.Duplicate = true
			return nil
		}
		return err
	}
}

// wrap applies links to the handler, the first link outermost.
func wrap(h message.HandlerFunc, links []link) message.HandlerFunc {
	for i := len(links) - 1; i >= 0; i-- {
		h = links[i].mw(h)
	}
	return h
}

// noPublish adapts a consumer function to a HandlerFunc.
func noPublish(f message.NoPublishHandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		return nil, f(msg)
	}
}

// OutboxDeferrer puts off a retry by writing the message to the outbox, due
// at the time of its next attempt and addressed to the handler that failed;
// the relay publishes it then. The row keeps the message id, so the trace,
// the idempotency claim and the poison record stay the message's own.
type OutboxDeferrer struct{ DB *store.DB }

// Defer implements middleware.Deferrer.
func (d OutboxDeferrer) Defer(ctx context.Context, topic string, msg *message.Message,
	at time.Time) error {
	md := make(map[string]string, len(msg.Metadata)+2)
	for k, v := range msg.Metadata {
		md[k] = v
	}
	job.InjectTrace(ctx, md)
	key := "retry:" + md[job.MetaRedeliverTo] + ":" + msg.UUID + ":" + md[job.MetaRetryAttempts]
	return d.DB.Schedule(ctx, job.Event{ID: msg.UUID, Topic: topic, Payload: msg.Payload,
		Metadata: md}, key, at)
}

// now is the router's clock; a variable only so tests of poison timing can
// pin it.
var now = time.Now
