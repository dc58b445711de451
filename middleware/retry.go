package middleware

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/job"
)

// RetryPolicy is the retry of a handler. A backoff up to DeferAfter is
// slept in the process; a longer one is handed to a Deferrer, which
// schedules the next attempt through the outbox and lets the delivery be
// acked, so that a sleeping handler never holds its subscription (on Kafka,
// its partition and its group's rebalances). Backoffs of minutes to days
// that belong to the domain (webhook deliveries) are kept in the data.
type RetryPolicy struct {
	// MaxRetries is how many times a retryable failure is retried; the
	// handler runs at most 1+MaxRetries times. Default 5.
	MaxRetries int
	// Initial is the first backoff. Default 1s.
	Initial time.Duration
	// Max caps one backoff. Default 1m.
	Max time.Duration
	// Multiplier grows the backoff. Default 2.
	Multiplier float64
	// Jitter is the random fraction added or removed. Default 0.2.
	Jitter float64
	// DeferAfter is the longest backoff slept in the process when a
	// Deferrer is configured. Zero means DefaultDeferAfter.
	DeferAfter time.Duration
}

// DefaultDeferAfter is the longest in-process backoff of a policy that names
// none: long enough that quick blips retry at once, short enough that a
// Kafka partition is never held for more than a few seconds.
const DefaultDeferAfter = 3 * time.Second

// Deferrer schedules the next attempt of a failed message for one handler
// at a later time, durably. Redelivered messages carry job.MetaRedeliverTo
// naming the handler, and the attempts so far.
type Deferrer interface {
	Defer(ctx context.Context, topic string, msg *message.Message, at time.Time) error
}

// RetryConfig is what Retry needs beyond the policy.
type RetryConfig struct {
	Policy RetryPolicy
	Logger *slog.Logger
	// Topic and Handler name the subscription, for deferred redelivery.
	Topic, Handler string
	// Deferrer, when set, takes every backoff longer than
	// Policy.DeferAfter. Nil sleeps every backoff in the process.
	Deferrer Deferrer
}

// DefaultRetryPolicy is the policy of a handler that names none.
var DefaultRetryPolicy = RetryPolicy{
	MaxRetries: 5, Initial: time.Second, Max: time.Minute, Multiplier: 2, Jitter: 0.2,
}

// Backoff returns the wait before retry number n (1-based).
func (p RetryPolicy) Backoff(n int) time.Duration {
	d := float64(p.Initial)
	for i := 1; i < n; i++ {
		d *= p.Multiplier
		if d > float64(p.Max) {
			d = float64(p.Max)
			break
		}
	}
	if p.Jitter > 0 {
		d += d * p.Jitter * (2*rand.Float64() - 1)
	}
	return time.Duration(d)
}

// Retry re-runs the inner chain for retryable errors. Each attempt starts
// from the context the message arrived with, so a timed-out attempt does not
// doom the next one. A permanent error, or a cancelled delivery, returns at
// once. The attempt count and first failure time go into the delivery State
// for the poison queue; for a message redelivered by the Deferrer they carry
// on from the metadata, so MaxRetries bounds the attempts across
// redeliveries.
func Retry(p RetryPolicy, logger *slog.Logger) message.HandlerMiddleware {
	return RetryWith(RetryConfig{Policy: p, Logger: logger})
}

// RetryWith is Retry with deferred redelivery; see RetryConfig.
func RetryWith(c RetryConfig) message.HandlerMiddleware {
	p, logger := c.Policy, c.Logger
	deferAfter := p.DeferAfter
	if deferAfter <= 0 {
		deferAfter = DefaultDeferAfter
	}
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			st := StateFrom(msg)
			if c.Handler != "" && msg.Metadata.Get(job.MetaRedeliverTo) == c.Handler {
				resumeAttempts(st, msg)
			}
			base := msg.Context()
			for {
				st.Attempts++
				msg.SetContext(base)
				out, err := h(msg)
				if err == nil {
					return out, nil
				}
				if st.FirstFailedAt.IsZero() {
					st.FirstFailedAt = time.Now()
				}
				st.LastError = err
				if job.Classify(err) == job.ClassPermanent || st.Attempts > p.MaxRetries ||
					base.Err() != nil {
					return nil, err
				}
				wait := p.Backoff(st.Attempts)
				var ra *job.RetryAfterError
				if errors.As(err, &ra) && ra.After > wait && ra.After <= p.Max {
					wait = ra.After
				}
				if c.Deferrer != nil && wait > deferAfter {
					derr := deferRetry(base, c, msg, st, time.Now().Add(wait))
					if derr == nil {
						st.Deferred = true
						logger.InfoContext(base, "retry deferred", slog.Int("attempt", st.Attempts),
							slog.Duration("backoff", wait), slog.String("error", err.Error()))
						return nil, nil
					}
					// The database is what the deferral needs; without it
					// the retry waits here, as it would without a Deferrer.
					logger.WarnContext(base, "could not defer retry, waiting in process",
						slog.String("error", derr.Error()))
				}
				logger.DebugContext(base, "retrying message", slog.Int("attempt", st.Attempts),
					slog.Duration("backoff", wait), slog.String("error", err.Error()))
				if !sleep(base, wait) {
					return nil, errors.Join(err, base.Err())
				}
			}
		}
	}
}

// resumeAttempts restores the attempts of a message redelivered by a
// Deferrer to this handler.
func resumeAttempts(st *State, msg *message.Message) {
	if n, err := strconv.Atoi(msg.Metadata.Get(job.MetaRetryAttempts)); err == nil && n > 0 {
		st.Attempts = n
	}
	if t, err := time.Parse(time.RFC3339Nano,
		msg.Metadata.Get(job.MetaRetryFirstFailedAt)); err == nil {
		st.FirstFailedAt = t
	}
}

// deferRetry hands a copy of msg, addressed to this handler with its
// attempts so far, to the Deferrer.
func deferRetry(ctx context.Context, c RetryConfig, msg *message.Message, st *State,
	at time.Time) error {
	again := msg.Copy()
	again.Metadata.Set(job.MetaRedeliverTo, c.Handler)
	again.Metadata.Set(job.MetaRetryAttempts, strconv.Itoa(st.Attempts))
	again.Metadata.Set(job.MetaRetryFirstFailedAt, st.FirstFailedAt.UTC().Format(time.RFC3339Nano))
	return c.Deferrer.Defer(ctx, c.Topic, again, at)
}

// Redelivery acks, without effects, a message the Deferrer addressed to
// another handler of the same topic: only the handler that failed runs it
// again.
func Redelivery(handler string) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			if to := msg.Metadata.Get(job.MetaRedeliverTo); to != "" && to != handler {
				StateFrom(msg).Duplicate = true
				return nil, nil
			}
			return h(msg)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
