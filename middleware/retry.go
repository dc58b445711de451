package middleware

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/job"
)

// RetryPolicy is the short, in-process retry of a handler. Long backoffs
// (minutes to days) do not belong here: they are scheduled in the data, so a
// sleeping handler never blocks its subscription.
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
// for the poison queue.
func Retry(p RetryPolicy, logger *slog.Logger) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			st := StateFrom(msg)
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
				logger.DebugContext(base, "retrying message", slog.Int("attempt", st.Attempts),
					slog.Duration("backoff", wait), slog.String("error", err.Error()))
				if !sleep(base, wait) {
					return nil, errors.Join(err, base.Err())
				}
			}
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
