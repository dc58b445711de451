package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/schemas"
)

// Emit writes an event to the outbox in this transaction. The payload is
// validated against its topic's schema first: a handler that emits something
// no consumer could read fails here, not three hops later. The event's id is
// returned.
func (tx *Tx) Emit(ctx context.Context, topic string, payload any, opts EmitOpts) (string, error) {
	raw, err := marshalPayload(payload)
	if err != nil {
		return "", fmt.Errorf("emit %s: %w", topic, err)
	}
	if err := schemas.Default().Validate(topic, raw); err != nil {
		return "", fmt.Errorf("emit %s: %w", topic, err)
	}
	source := opts.Source
	if source == "" {
		source = "handler"
		if parent, ok := job.MessageFrom(ctx); ok {
			source = "handler:" + parent.Handler
		}
	}
	ev := job.NewEvent(ctx, opts.ID, topic, raw, source, tx.now)
	for k, v := range opts.Metadata {
		ev.Metadata[k] = v
	}
	if err := tx.Enqueue(ctx, ev); err != nil {
		return "", err
	}
	return ev.ID, nil
}

// EmitOpts are the optional parts of an emitted event.
type EmitOpts struct {
	// ID is the event id; empty for a fresh one. Set it to a StableID when a
	// retry of the same work must produce the same event.
	ID string
	// Source overrides the source metadata (default "handler:<name>").
	Source string
	// Metadata is merged over the envelope.
	Metadata map[string]string
}

// Enqueue writes a fully built event to the outbox. An event whose id is
// already there is left alone: the outbox is keyed by message id, which makes
// re-enqueueing the same event (a replay, a second cron claimant) harmless.
// With a TxPublisher set, the event is published in the transaction instead.
func (tx *Tx) Enqueue(ctx context.Context, ev job.Event) error {
	if tx.db.txPublish != nil {
		if err := tx.db.txPublish(ctx, tx.Tx, ev); err != nil {
			return fmt.Errorf("enqueue %s: %w", ev.Topic, err)
		}
		return nil
	}
	return tx.EnqueueReplay(ctx, ev, ev.ID)
}

// EnqueueReplay writes an event to the outbox under dedupeKey instead of its
// id, so that an event already sent once can be sent again with the same id.
func (tx *Tx) EnqueueReplay(ctx context.Context, ev job.Event, dedupeKey string) error {
	md, err := json.Marshal(ev.Metadata)
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", ev.Topic, err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO outbox (dedupe_key, message_uuid, topic, payload,
		metadata, created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (dedupe_key) DO NOTHING`,
		dedupeKey, ev.ID, ev.Topic, string(ev.Payload), string(md), Now(tx.now))
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", ev.Topic, err)
	}
	tx.emitted++
	return nil
}

func marshalPayload(p any) ([]byte, error) {
	switch v := p.(type) {
	case []byte:
		return v, nil
	case json.RawMessage:
		return v, nil
	default:
		return json.Marshal(v)
	}
}

// OutboxRow is an event waiting in the outbox.
type OutboxRow struct {
	Seq   int64
	Event job.Event
}

// PendingOutbox returns up to limit unpublished events that are due,
// oldest first.
func (db *DB) PendingOutbox(ctx context.Context, limit int) ([]OutboxRow, error) {
	return pendingOutbox(ctx, db.DB, limit, time.Now(), "")
}

// pendingOutbox reads the rows due at now through q, the statement ending in
// lock. A row held back by deliver_at is skipped until then.
func pendingOutbox(ctx context.Context, q querier, limit int, now time.Time, lock string) (
	[]OutboxRow, error) {
	rows, err := q.QueryContext(ctx, `SELECT seq, message_uuid, topic, payload, metadata
		FROM outbox WHERE published_at IS NULL AND (deliver_at IS NULL OR deliver_at <= $2)
		ORDER BY seq LIMIT $1`+lock, limit, Now(now))
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	var out []OutboxRow
	for rows.Next() {
		var r OutboxRow
		var payload, md string
		if err := rows.Scan(&r.Seq, &r.Event.ID, &r.Event.Topic, &payload, &md); err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		r.Event.Payload = []byte(payload)
		if err := json.Unmarshal([]byte(md), &r.Event.Metadata); err != nil {
			return nil, fmt.Errorf("read outbox row %d metadata: %w", r.Seq, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Schedule writes ev to the outbox to be published at at, under dedupeKey,
// outside any handler transaction and past any TxPublisher: the row waits in
// the outbox until it is due, which is how a retry with a long backoff is
// put off without a subscriber sleeping on it. A second call with the same
// dedupeKey is a no-op.
func (db *DB) Schedule(ctx context.Context, ev job.Event, dedupeKey string, at time.Time) error {
	md, err := json.Marshal(ev.Metadata)
	if err != nil {
		return fmt.Errorf("schedule %s: %w", ev.Topic, err)
	}
	_, err = db.ExecContext(ctx, `INSERT INTO outbox (dedupe_key, message_uuid, topic, payload,
		metadata, created_at, deliver_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (dedupe_key) DO NOTHING`,
		dedupeKey, ev.ID, ev.Topic, string(ev.Payload), string(md), Now(time.Now()), Now(at))
	if err != nil {
		return fmt.Errorf("schedule %s: %w", ev.Topic, err)
	}
	return nil
}

// MarkPublished records that the outbox row seq reached the transport.
func (db *DB) MarkPublished(ctx context.Context, seq int64, at time.Time) error {
	_, err := db.ExecContext(ctx, `UPDATE outbox SET published_at = $1 WHERE seq = $2`, Now(at), seq)
	if err != nil {
		return fmt.Errorf("mark published: %w", err)
	}
	return nil
}

// PruneOutbox deletes published rows older than before and returns how many.
func (db *DB) PruneOutbox(ctx context.Context, before time.Time) (int64, error) {
	res, err := db.ExecContext(ctx, `DELETE FROM outbox WHERE published_at IS NOT NULL
		AND published_at < $1`, Now(before))
	if err != nil {
		return 0, fmt.Errorf("prune outbox: %w", err)
	}
	return res.RowsAffected()
}
