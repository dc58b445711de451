package middleware

import (
	"log/slog"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/millrace/millrace/job"
)

// Metrics are the per-handler series of the router.
type Metrics struct {
	handled  *prometheus.CounterVec
	duration *prometheus.HistogramVec
	latency  *prometheus.HistogramVec
}

// NewMetrics registers the router's series with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "millrace_messages_handled_total",
			Help: "Deliveries by handler, topic and outcome (acked, duplicate, poisoned, " +
				"nacked, deferred: retried later through the outbox), and attempts that were " +
				"retried (retried).",
		}, []string{"handler", "topic", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "millrace_handler_duration_seconds",
			Help:    "Time from delivery to outcome, all attempts included.",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 15, 60, 300},
		}, []string{"handler", "topic"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "millrace_publish_to_handle_seconds",
			Help:    "Time from the event's occurred_at to the start of handling.",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 30, 120, 600},
		}, []string{"handler", "topic"}),
	}
	reg.MustRegister(m.handled, m.duration, m.latency)
	return m
}

// retried counts one retried attempt; m may be nil.
func (m *Metrics) retried(handler, topic string) {
	if m != nil {
		m.handled.WithLabelValues(handler, topic, AttemptRetried).Inc()
	}
}

// Observe logs and counts every delivery's outcome. Acks log at Debug, so a
// busy service stays quiet; poison and nacks are logged by the layers that
// decide them.
func Observe(m *Metrics, logger *slog.Logger, topic, handler string) message.HandlerMiddleware {
	var (
		handled  = map[string]prometheus.Counter{}
		duration prometheus.Observer
		latency  prometheus.Observer
	)
	if m != nil {
		for _, o := range []string{OutcomeAcked, OutcomeDuplicate, OutcomePoisoned, OutcomeNacked,
			OutcomeDeferred, AttemptRetried} {
			handled[o] = m.handled.WithLabelValues(handler, topic, o)
		}
		duration = m.duration.WithLabelValues(handler, topic)
		latency = m.latency.WithLabelValues(handler, topic)
	}
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			start := time.Now()
			if latency != nil {
				if at, err := time.Parse(time.RFC3339Nano, msg.Metadata.Get(job.MetaOccurredAt)); err == nil {
					latency.Observe(start.Sub(at).Seconds())
				}
			}
			st := StateFrom(msg)
			out, err := h(msg)
			outcome := st.Outcome(err)
			if m != nil {
				handled[outcome].Inc()
				duration.Observe(time.Since(start).Seconds())
			}
			if logger.Enabled(msg.Context(), slog.LevelDebug) || err != nil {
				level := slog.LevelDebug
				if err != nil {
					level = slog.LevelWarn
				}
				logger.Log(msg.Context(), level, "message handled",
					slog.String("outcome", outcome), slog.Int("attempt", st.Attempts),
					slog.String("duration", strconv.FormatInt(time.Since(start).Microseconds(), 10)+"µs"))
			}
			return out, err
		}
	}
}
