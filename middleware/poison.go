package middleware

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/job"
)

// maxReasonBytes keeps a poison reason short enough for a Kafka header and a
// log line; the full error stays in the handler's logs.
const maxReasonBytes = 2048

// PoisonConfig configures the Poison middleware.
type PoisonConfig struct {
	Publisher message.Publisher
	Topic     string // the subscribed topic
	Handler   string
	Logger    *slog.Logger
	// Stopping reports whether the process is shutting down. A delivery
	// cancelled by shutdown is nacked for redelivery, never poisoned.
	Stopping func() bool
}

// Poison publishes a message whose handling failed for good to the poison
// topic, with the handler, source topic, error class, reason, attempts and
// first failure time in its metadata, and acks the original. The publish uses
// a context detached from the message's, which retry and timeout may have
// cancelled already. If the poison publish itself fails the message is
// nacked, so it is redelivered rather than lost.
func Poison(cfg PoisonConfig) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := h(msg)
			if err == nil {
				return out, nil
			}
			if cfg.Stopping != nil && cfg.Stopping() && errors.Is(err, context.Canceled) {
				return nil, err
			}
			st := StateFrom(msg)
			pm := poisonMessage(msg, st, err, cfg)
			ctx := context.WithoutCancel(msg.Context())
			pm.SetContext(ctx)
			if perr := cfg.Publisher.Publish(job.PoisonTopic, pm); perr != nil {
				cfg.Logger.ErrorContext(ctx, "cannot poison message, it will be redelivered",
					slog.String("error", perr.Error()))
				return nil, errors.Join(err, perr)
			}
			st.Poisoned = true
			cfg.Logger.WarnContext(ctx, "message poisoned",
				slog.String("error_class", string(job.Classify(err))),
				slog.Int("attempts", st.Attempts), slog.String("error", truncate(err.Error())))
			return nil, nil
		}
	}
}

func poisonMessage(msg *message.Message, st *State, err error, cfg PoisonConfig) *message.Message {
	first := st.FirstFailedAt
	if first.IsZero() {
		first = time.Now()
	}
	attempts := st.Attempts
	if attempts == 0 {
		attempts = 1
	}
	pm := message.NewMessage(job.StableID("poison", msg.UUID, cfg.Handler), msg.Payload)
	for k, v := range msg.Metadata {
		pm.Metadata.Set(k, v)
	}
	// The poison store must not take the message for a redelivery addressed
	// to someone else; the record names the handler in its own field.
	delete(pm.Metadata, job.MetaRedeliverTo)
	pm.Metadata.Set("message_id", msg.UUID)
	pm.Metadata.Set(job.MetaPoisonHandler, cfg.Handler)
	pm.Metadata.Set(job.MetaPoisonSourceTopic, cfg.Topic)
	pm.Metadata.Set(job.MetaPoisonErrorClass, string(job.Classify(err)))
	pm.Metadata.Set(job.MetaPoisonReason, truncate(err.Error()))
	pm.Metadata.Set(job.MetaPoisonAttempts, strconv.Itoa(attempts))
	pm.Metadata.Set(job.MetaPoisonFirstFailedAt, first.UTC().Format(time.RFC3339Nano))
	return pm
}

func truncate(s string) string {
	if len(s) <= maxReasonBytes {
		return s
	}
	return s[:maxReasonBytes] + "…"
}
