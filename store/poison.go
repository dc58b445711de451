package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/millrace/millrace/job"
)

// Poison statuses.
const (
	PoisonOpen      = "open"
	PoisonReplayed  = "replayed"
	PoisonDiscarded = "discarded"
)

// PoisonRecord is a message a handler gave up on, as operators see it.
type PoisonRecord struct {
	ID            string            `json:"id"`
	MessageID     string            `json:"message_id"`
	Topic         string            `json:"topic"`
	Handler       string            `json:"handler"`
	ErrorClass    string            `json:"error_class"`
	Reason        string            `json:"reason"`
	Attempts      int               `json:"attempts"`
	FirstFailedAt time.Time         `json:"first_failed_at"`
	PoisonedAt    time.Time         `json:"poisoned_at"`
	TimesPoisoned int               `json:"times_poisoned"`
	Status        string            `json:"status"`
	Payload       json.RawMessage   `json:"payload,omitempty"`
	RawPayload    string            `json:"raw_payload,omitempty"`
	Metadata      map[string]string `json:"metadata"`
}

// ErrPoisonNotFound is returned for an unknown poison record id.
var ErrPoisonNotFound = errors.New("poison record not found")

// SavePoison stores a poisoned message. A message poisoned again by the same
// handler (after a replay) reopens its record and counts the time.
func (db *DB) SavePoison(ctx context.Context, r PoisonRecord, now time.Time) error {
	md, err := json.Marshal(r.Metadata)
	if err != nil {
		return fmt.Errorf("save poison: %w", err)
	}
	payload := r.RawPayload
	if payload == "" {
		payload = string(r.Payload)
	}
	_, err = db.ExecContext(ctx, `INSERT INTO poison_messages (id, message_uuid, topic, handler,
		error_class, reason, attempts, first_failed_at, poisoned_at, payload, metadata, status)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'open')
		ON CONFLICT (id) DO UPDATE SET status = 'open', reason = excluded.reason,
			error_class = excluded.error_class, attempts = excluded.attempts,
			poisoned_at = excluded.poisoned_at, metadata = excluded.metadata,
			times_poisoned = poison_messages.times_poisoned + 1`,
		r.ID, r.MessageID, r.Topic, r.Handler, r.ErrorClass, r.Reason, r.Attempts,
		Now(r.FirstFailedAt), Now(now), payload, string(md))
	if err != nil {
		return fmt.Errorf("save poison: %w", err)
	}
	return nil
}

const poisonColumns = `id, message_uuid, topic, handler, error_class, reason, attempts,
	first_failed_at, poisoned_at, times_poisoned, status, payload, metadata`

// ListPoison returns poison records with the given status ("" for all),
// newest first.
func (db *DB) ListPoison(ctx context.Context, status string, limit int) ([]PoisonRecord, error) {
	rows, err := db.QueryContext(ctx, `SELECT `+poisonColumns+` FROM poison_messages
		WHERE ($1 = '' OR status = $1) ORDER BY poisoned_at DESC, id LIMIT $2`, status, limit)
	if err != nil {
		return nil, fmt.Errorf("list poison: %w", err)
	}
	defer rows.Close()
	var out []PoisonRecord
	for rows.Next() {
		r, err := scanPoison(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// GetPoison returns one poison record by id.
func (db *DB) GetPoison(ctx context.Context, id string) (PoisonRecord, error) {
	row := db.QueryRowContext(ctx, `SELECT `+poisonColumns+` FROM poison_messages
		WHERE id = $1`, id)
	r, err := scanPoison(row)
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("%w: %s", ErrPoisonNotFound, id)
	}
	return r, err
}

// CountPoison returns how many records are open.
func (db *DB) CountPoison(ctx context.Context) (int, error) {
	var n int
	err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM poison_messages WHERE status = 'open'`).
		Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count poison: %w", err)
	}
	return n, nil
}

// ReplayPoison puts the poisoned message back on its topic with its original
// id and metadata, through the outbox, and marks the record replayed. The
// message goes to every handler of the topic again; those that had handled
// it skip it as a duplicate.
func (db *DB) ReplayPoison(ctx context.Context, id string, now time.Time) (PoisonRecord, error) {
	r, err := db.GetPoison(ctx, id)
	if err != nil {
		return r, err
	}
	if r.Status == PoisonDiscarded {
		return r, fmt.Errorf("replay poison %s: it was discarded", id)
	}
	md := map[string]string{}
	for k, v := range r.Metadata {
		md[k] = v
	}
	for _, k := range []string{job.MetaPoisonHandler, job.MetaPoisonSourceTopic,
		job.MetaPoisonErrorClass, job.MetaPoisonReason, job.MetaPoisonAttempts,
		job.MetaPoisonFirstFailedAt, job.MetaTraceparent, job.MetaTracestate, "message_id",
		job.MetaRetryAttempts, job.MetaRetryFirstFailedAt, job.MetaRedeliverTo} {
		delete(md, k)
	}
	md[job.MetaReplayedFrom] = r.ID
	// Only the handler that gave up runs a replay; the topic's other
	// handlers finished the message long ago.
	if r.Handler != "" {
		md[job.MetaRedeliverTo] = r.Handler
	}
	if tp := r.Metadata[job.MetaTraceparent]; tp != "" {
		md["replay_of_traceparent"] = tp
	}
	// The outbox is keyed by message id and the original id is already there
	// (published), so a replay goes through a fresh outbox key while the
	// message keeps its id on the wire.
	err = db.InTx(ctx, func(tx *Tx) error {
		ev := job.Event{ID: r.MessageID, Topic: r.Topic, Payload: r.payloadBytes(), Metadata: md}
		if err := tx.EnqueueReplay(ctx, ev, r.ID+":"+now.UTC().Format(time.RFC3339Nano)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE poison_messages SET status = 'replayed',
			replayed_at = $1 WHERE id = $2`, Now(now), id)
		return err
	})
	if err != nil {
		return r, fmt.Errorf("replay poison %s: %w", id, err)
	}
	r.Status = PoisonReplayed
	return r, nil
}

// DiscardPoison marks a record as dealt with by hand; it stays for the record.
func (db *DB) DiscardPoison(ctx context.Context, id string, now time.Time) error {
	res, err := db.ExecContext(ctx, `UPDATE poison_messages SET status = 'discarded',
		discarded_at = $1 WHERE id = $2`, Now(now), id)
	if err != nil {
		return fmt.Errorf("discard poison: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: %s", ErrPoisonNotFound, id)
	}
	return nil
}

func (r PoisonRecord) payloadBytes() []byte {
	if r.RawPayload != "" {
		return []byte(r.RawPayload)
	}
	return r.Payload
}

type scanner interface{ Scan(dest ...any) error }

func scanPoison(s scanner) (PoisonRecord, error) {
	var r PoisonRecord
	var payload, md string
	err := s.Scan(&r.ID, &r.MessageID, &r.Topic, &r.Handler, &r.ErrorClass, &r.Reason,
		&r.Attempts, &r.FirstFailedAt, &r.PoisonedAt, &r.TimesPoisoned, &r.Status, &payload, &md)
	if err != nil {
		return r, err
	}
	if json.Valid([]byte(payload)) {
		r.Payload = json.RawMessage(payload)
	} else {
		r.RawPayload = payload
	}
	if err := json.Unmarshal([]byte(md), &r.Metadata); err != nil {
		return r, fmt.Errorf("read poison %s metadata: %w", r.ID, err)
	}
	return r, nil
}
