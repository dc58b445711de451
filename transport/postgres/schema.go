package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// NotifyChannel is the channel every publish notifies, with the topic as
// payload. Notifications are per database, not per schema.
const NotifyChannel = "millrace_queue"

// schemaSQL creates the queue tables. The queue holds one row per message and
// consumer group (a publish fans out to the groups registered for the topic);
// an ack deletes the row, so the table holds only the backlog and the
// messages in flight. No foreign key: the publish statement already joins
// the subscriptions, and a trigger per row would halve publish throughput.
var schemaSQL = []string{
	`CREATE TABLE IF NOT EXISTS millrace_queue_subscriptions (
		id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		topic text NOT NULL,
		consumer_group text NOT NULL,
		created_at timestamptz NOT NULL DEFAULT now(),
		UNIQUE (topic, consumer_group)
	)`,
	`CREATE TABLE IF NOT EXISTS millrace_queue (
		subscription_id integer NOT NULL,
		id bigint GENERATED ALWAYS AS IDENTITY,
		uuid text NOT NULL,
		partition_key text,
		payload bytea NOT NULL,
		metadata jsonb NOT NULL,
		published_at timestamptz NOT NULL DEFAULT now(),
		locked_until timestamptz,
		claimed_by uuid,
		attempts integer NOT NULL DEFAULT 0,
		PRIMARY KEY (subscription_id, id)
	) WITH (fillfactor = 80)`,
	`CREATE INDEX IF NOT EXISTS millrace_queue_partition
		ON millrace_queue (subscription_id, partition_key, id)
		WHERE partition_key IS NOT NULL`,
	claimFuncSQL,
}

// claimFuncSQL creates millrace_queue_claim(subscription, limit, lease ms,
// token, from id, ordered), which claims up to limit available messages of
// the subscription from the id on, lowest id first. It is a function only
// to carry its planner settings: a queue table is small or empty most of
// the time, and statistics gathered then (autovacuum analyzes a drained
// queue) make the planner read every pending row with a bitmap scan and
// sort them to return the first few, which costs O(backlog) per claim just
// when a backlog builds up (180 ms per claim of 256 at 150,000 rows). With
// sorts, bitmap and sequential scans priced out, the claim always walks the
// primary key (subscription_id, id) in order and stops after limit rows:
// about 2 ms for 256, whatever the backlog and the statistics.
//
// SKIP LOCKED lets subscriptions of one group claim side by side. When
// ordered, a row whose partition key has an earlier row still present
// (pending or in flight: acked rows are deleted) is passed over, so one key
// is never in flight twice and its messages go out in id order; the check
// is a probe of the partial index on (subscription_id, partition_key, id).
const claimFuncSQL = `CREATE OR REPLACE FUNCTION millrace_queue_claim(
	integer, integer, bigint, uuid, bigint, boolean)
RETURNS TABLE (msg_id bigint, msg_uuid text, msg_payload bytea, msg_metadata jsonb,
	msg_keyed boolean)
LANGUAGE sql VOLATILE
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_sort = off
AS $fn$
WITH picked AS (
	SELECT q.id FROM millrace_queue q
	WHERE q.subscription_id = $1 AND q.id >= $5
		AND (q.locked_until IS NULL OR q.locked_until < now())
		AND (NOT $6 OR q.partition_key IS NULL OR NOT EXISTS (
			SELECT 1 FROM millrace_queue p
			WHERE p.subscription_id = q.subscription_id
				AND p.partition_key = q.partition_key AND p.id < q.id))
	ORDER BY q.id
	LIMIT $2
	FOR UPDATE SKIP LOCKED
)
UPDATE millrace_queue q
SET locked_until = now() + $3 * interval '1 millisecond', claimed_by = $4,
	attempts = q.attempts + 1
FROM picked
WHERE q.subscription_id = $1 AND q.id = picked.id
RETURNING q.id, q.uuid, q.payload, q.metadata, q.partition_key IS NOT NULL
$fn$`

// Init creates the queue tables if they do not exist. It takes an advisory
// lock so that replicas starting together do not race on the catalogue.
func Init(ctx context.Context, pool *pgxpool.Pool) error {
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx,
			`SELECT pg_advisory_xact_lock(hashtext('millrace_queue_init'))`); err != nil {
			return err
		}
		for _, q := range schemaSQL {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create queue tables: %w", err)
	}
	return nil
}

// register records that group consumes topic, so that publishes from now on
// keep a row for it, and returns the subscription's id.
func register(ctx context.Context, pool *pgxpool.Pool, topic, group string) (int32, error) {
	const read = `SELECT id FROM millrace_queue_subscriptions
		WHERE topic = $1 AND consumer_group = $2`
	var id int32
	err := pool.QueryRow(ctx, read, topic, group).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("read subscription: %w", err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO millrace_queue_subscriptions (topic, consumer_group)
		VALUES ($1, $2) ON CONFLICT (topic, consumer_group) DO NOTHING`, topic, group); err != nil {
		return 0, fmt.Errorf("register subscription: %w", err)
	}
	if err := pool.QueryRow(ctx, read, topic, group).Scan(&id); err != nil {
		return 0, fmt.Errorf("read subscription: %w", err)
	}
	return id, nil
}
