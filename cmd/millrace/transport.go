package main

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/config"
	"github.com/millrace/millrace/schemas"
	"github.com/millrace/millrace/store"
	"github.com/millrace/millrace/transport"
	"github.com/millrace/millrace/transport/kafka"
	"github.com/millrace/millrace/transport/memory"
	"github.com/millrace/millrace/transport/postgres"
)

// postgresLease is how long a message claimed by a replica that died stays
// invisible to the others. Live replicas renew it every third of it.
const postgresLease = 10 * time.Second

// openTransport builds the configured transport. On the Postgres transport,
// whose queue lives in the store's database, db publishes the events
// handlers emit in their own transactions instead of through the outbox.
func (e env) openTransport(ctx context.Context, db *store.DB) (transport.Transport, error) {
	switch e.cfg.Transport {
	case config.TransportMemory:
		return memory.New(memory.Config{}), nil
	case config.TransportPostgres:
		t, err := postgres.New(ctx, postgres.Config{DSN: e.cfg.DatabaseURL, Lease: postgresLease,
			CloseTimeout: e.cfg.ShutdownTimeout, Logger: e.logger})
		if err != nil {
			return nil, fmt.Errorf("open postgres transport: %w", err)
		}
		db.SetTxPublisher(transport.TxPublisher(postgres.PublishTx, schemas.Default().Has))
		return pgTransport{t}, nil
	case config.TransportKafka:
		t, err := kafka.New(ctx, kafka.Config{Brokers: e.cfg.KafkaBrokers,
			Partitions:        int32(e.cfg.KafkaPartitions),
			ReplicationFactor: int16(e.cfg.KafkaReplicationFactor),
			Version:           e.cfg.KafkaVersion, Logger: e.logger})
		if err != nil {
			return nil, fmt.Errorf("open kafka transport: %w", err)
		}
		// Every topic with a schema exists before anyone subscribes or
		// publishes, with the configured partitions, so that no broker's
		// auto-creation defaults decide them.
		if err := t.EnsureTopics(ctx, schemas.Default().Topics()...); err != nil {
			t.Close()
			return nil, fmt.Errorf("create kafka topics: %w", err)
		}
		return t, nil
	default:
		return nil, fmt.Errorf("transport %q is unknown; use memory, postgres or kafka",
			e.cfg.Transport)
	}
}

// pgTransport gives the router's jobs their own concurrency and ordering.
type pgTransport struct{ *postgres.Transport }

// SubscriberWith implements router.SubscriberTuner.
func (t pgTransport) SubscriberWith(group string, concurrency int, unordered bool) (
	message.Subscriber, error) {
	return t.NewSubscriber(group, postgres.SubscriberConfig{Concurrency: concurrency,
		Unordered: unordered})
}

// backlogTimeout bounds the count behind one queue-depth sample.
const backlogTimeout = 2 * time.Second

// Backlog implements telemetry.Backlogger: the messages waiting for group on
// topic, in flight included. It answers -1 when the database does not.
func (t pgTransport) Backlog(topic, group string) int {
	ctx, cancel := context.WithTimeout(context.Background(), backlogTimeout)
	defer cancel()
	var n int
	err := t.Pool().QueryRow(ctx, `SELECT count(*) FROM millrace_queue q
		JOIN millrace_queue_subscriptions s ON s.id = q.subscription_id
		WHERE s.topic = $1 AND s.consumer_group = $2`, topic, group).Scan(&n)
	if err != nil {
		return -1
	}
	return n
}
