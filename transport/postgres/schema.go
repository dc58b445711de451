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
}

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
