package transport

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/codes"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/store"
)

// PublishTxFunc publishes messages inside a database transaction, such as
// the Postgres transport's PublishTx.
type PublishTxFunc func(ctx context.Context, tx *sql.Tx, topic string,
	msgs ...*message.Message) error

// TxPublisher returns the store hook that publishes each enqueued event
// through publish, in the transaction that emits it. Like Guard, it refuses
// a topic outside known and makes the publish a producer span whose context
// the message carries.
func TxPublisher(publish PublishTxFunc, known func(topic string) bool) store.TxPublisher {
	return func(ctx context.Context, tx *sql.Tx, ev job.Event) error {
		if !known(ev.Topic) {
			return fmt.Errorf("publish: %w: %q", ErrUnknownTopic, ev.Topic)
		}
		msg := ToMessage(ctx, ev)
		span := startPublish(ev.Topic, msg)
		defer span.End()
		if err := publish(ctx, tx, ev.Topic, msg); err != nil {
			span.SetStatus(codes.Error, err.Error())
			return fmt.Errorf("publish %s: %w", ev.Topic, err)
		}
		return nil
	}
}
