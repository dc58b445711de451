package middleware

import (
	"context"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Ledger remembers which messages a handler has finished.
type Ledger interface {
	IsProcessed(ctx context.Context, handler, key string) (bool, error)
}

// Idempotency acks a message the handler has already finished without calling
// the handler again. It is a read before the work; the authority is the claim
// a handler makes in its own transaction, which also records the message id
// that this check reads. KeyFunc maps a message id to its ledger key.
func Idempotency(l Ledger, handler string, keyFunc func(id string) string,
	logger *slog.Logger) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			done, err := l.IsProcessed(msg.Context(), handler, keyFunc(msg.UUID))
			if err != nil {
				// The handler's own claim still protects the effects.
				logger.WarnContext(msg.Context(), "idempotency check failed",
					slog.String("error", err.Error()))
			}
			if done {
				StateFrom(msg).Duplicate = true
				return nil, nil
			}
			return h(msg)
		}
	}
}
