package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace/job"
)

// publishSQL inserts one row per message and group registered for the topic,
// in publish order, and notifies the listeners when it inserted anything.
// The messages come as one JSON array so that the statement is the same for
// pgx and for any database/sql driver. NOTIFY is delivered at commit, so a
// publish inside a transaction wakes consumers only if it commits.
const publishSQL = `WITH input AS (
	SELECT e.ord, e.v->>'uuid' AS uuid, decode(e.v->>'payload', 'base64') AS payload,
		e.v->'metadata' AS metadata, NULLIF(e.v->>'key', '') AS partition_key
	FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS e(v, ord)
), ins AS (
	INSERT INTO millrace_queue (subscription_id, uuid, payload, metadata, partition_key)
	SELECT s.id, i.uuid, i.payload, i.metadata, i.partition_key
	FROM input i CROSS JOIN millrace_queue_subscriptions s
	WHERE s.topic = $1
	ORDER BY i.ord, s.id
	RETURNING 1
)
SELECT pg_notify('` + NotifyChannel + `', $1) FROM (SELECT 1 FROM ins LIMIT 1) AS x`

// publishQuietSQL is publishSQL without the notification, for the
// transport's own publisher, which leaves that to its notifier.
const publishQuietSQL = `WITH input AS (
	SELECT e.ord, e.v->>'uuid' AS uuid, decode(e.v->>'payload', 'base64') AS payload,
		e.v->'metadata' AS metadata, NULLIF(e.v->>'key', '') AS partition_key
	FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS e(v, ord)
)
INSERT INTO millrace_queue (subscription_id, uuid, payload, metadata, partition_key)
SELECT s.id, i.uuid, i.payload, i.metadata, i.partition_key
FROM input i CROSS JOIN millrace_queue_subscriptions s
WHERE s.topic = $1
ORDER BY i.ord, s.id`

// publishOneSQL is publishQuietSQL for one message, with its fields as
// arguments: the payload travels as bytes, not base64 inside JSON, and the
// statement has no array to unpack.
const publishOneSQL = `INSERT INTO millrace_queue
	(subscription_id, uuid, payload, metadata, partition_key)
SELECT s.id, $2, $3, $4::jsonb, NULLIF($5, '')
FROM millrace_queue_subscriptions s
WHERE s.topic = $1
ORDER BY s.id`

// ErrNoTopic is returned for a publish without a topic.
var ErrNoTopic = errors.New("empty topic")

type wireMessage struct {
	UUID     string            `json:"uuid"`
	Payload  []byte            `json:"payload"`
	Metadata map[string]string `json:"metadata"`
	Key      string            `json:"key,omitempty"`
}

// encode turns msgs into the JSON array publishSQL reads.
func encode(topic string, msgs []*message.Message) (string, error) {
	if topic == "" {
		return "", ErrNoTopic
	}
	wire := make([]wireMessage, len(msgs))
	for i, m := range msgs {
		md := map[string]string(m.Metadata)
		if md == nil {
			md = map[string]string{}
		}
		wire[i] = wireMessage{UUID: m.UUID, Payload: m.Payload, Metadata: md,
			Key: m.Metadata.Get(job.MetaPartitionKey)}
		if wire[i].Payload == nil {
			wire[i].Payload = []byte{}
		}
	}
	b, err := json.Marshal(wire)
	if err != nil {
		return "", fmt.Errorf("encode messages: %w", err)
	}
	return string(b), nil
}

// PublishTx publishes msgs to topic inside tx, a transaction of a
// database/sql connection to the transport's database (pgx's stdlib driver
// or any other). The messages exist, and consumers are woken, only if tx
// commits. tx must see the queue tables on its search path.
func PublishTx(ctx context.Context, tx *sql.Tx, topic string, msgs ...*message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	arg, err := encode(topic, msgs)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, publishSQL, topic, arg); err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	return nil
}

// PublishPgxTx is PublishTx for a pgx transaction.
func PublishPgxTx(ctx context.Context, tx pgx.Tx, topic string, msgs ...*message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	arg, err := encode(topic, msgs)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, publishSQL, topic, arg); err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	return nil
}

// publisher publishes on the transport's pool, each call in one statement.
type publisher struct{ t *Transport }

// Publish stores msgs for every group of topic. It uses the first message's
// context for its values but not its cancellation, so that a poison queue
// can publish a message whose handler's context has ended; the transport's
// PublishTimeout bounds it. Once the rows are committed it wakes this
// process's subscriptions of topic and has the notifier tell the others.
func (p publisher) Publish(topic string, msgs ...*message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if p.t.isClosed() {
		return ErrClosed
	}
	q, args, err := quietStatement(topic, msgs)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(msgs[0].Context()),
		p.t.cfg.PublishTimeout)
	defer cancel()
	tag, err := p.t.pool.Exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	if tag.RowsAffected() > 0 {
		p.t.wake(topic)
		p.t.notes.mark(topic)
	}
	return nil
}

// quietStatement returns the statement, without notification, that
// publishes msgs to topic, and its arguments.
func quietStatement(topic string, msgs []*message.Message) (string, []any, error) {
	if len(msgs) > 1 {
		arg, err := encode(topic, msgs)
		return publishQuietSQL, []any{topic, arg}, err
	}
	if topic == "" {
		return "", nil, ErrNoTopic
	}
	m := msgs[0]
	md := map[string]string(m.Metadata)
	if md == nil {
		md = map[string]string{}
	}
	b, err := json.Marshal(md)
	if err != nil {
		return "", nil, fmt.Errorf("encode metadata: %w", err)
	}
	payload := m.Payload
	if payload == nil {
		payload = []byte{}
	}
	return publishOneSQL, []any{topic, m.UUID, payload, string(b),
		m.Metadata.Get(job.MetaPartitionKey)}, nil
}

// Close does nothing: the pool belongs to the transport.
func (publisher) Close() error { return nil }
