// Package postgres is the durable transport: a queue in the Postgres
// database Millrace already uses, with its own subscriber, so that
// publishing can join a handler's transaction and delivery scales with
// subscribers and replicas.
//
// Watermill's SQL Pub/Sub could not be bent that far: it hands out one
// message at a time per topic and consumer group, holds a transaction open
// while the handler runs (which, through the cluster-wide snapshot xmin,
// stalls every other topic), polls for new messages, and its queue schema
// acks a whole batch when it stops partway (and has no consumer groups).
// This package keeps the shape of its publisher (one INSERT per publish,
// usable inside a caller's transaction) but has its own schema, publisher
// and subscriber; it does not depend on watermill-sql.
//
// # Tables
//
// Init creates them, idempotently, under an advisory lock:
//
//   - millrace_queue_subscriptions(id, topic, consumer_group): the groups
//     of each topic, registered by SubscribeInitialize and Subscribe and
//     kept across restarts, so messages published while a group's
//     consumers are down wait for them.
//   - millrace_queue(subscription_id, id, uuid, partition_key, payload,
//     metadata, published_at, locked_until, claimed_by, attempts), primary
//     key (subscription_id, id): one row per message and group. A publish
//     inserts a row for every group registered for the topic (none if no
//     group is: the catalogue makes sure each consumed topic has its
//     groups), an ack deletes the group's row, so the table holds only the
//     backlog and what is in flight, and retention needs no sweeper. The
//     payload is stored once per group, a fair price for topics with one to
//     three handlers. A partial index on (subscription_id, partition_key,
//     id) serves the ordering check.
//
// # Delivery
//
// Each Subscribe call claims with one short statement, a call of
// millrace_queue_claim (see claimFuncSQL): SELECT ... FOR UPDATE SKIP LOCKED
// of the lowest available ids of its subscription, walking the primary key
// in order whatever the table's statistics, then sets a lease (locked_until,
// Config.Lease, default 30s), its claim token and attempts+1. Nothing stays
// open while handlers run. Up to SubscriberConfig.Concurrency messages
// (default 1) are in flight per Subscribe call, plus Prefetch claimed ahead;
// while a backlog keeps the handlers waiting for claims, the prefetch
// doubles up to MaxPrefetch (default 512) and falls back once a claim comes
// back short, so a backlog drains in claims of a few hundred rows while slow
// handlers still share their messages between replicas. While claims come
// back full, each starts scanning after the last row the previous one took,
// so a claim does not step over the index entries of every row acked since
// the last vacuum. Subscribers of a group in any process share its rows; a
// crashed subscriber's rows come back when their lease ends, since only a
// live one renews them (all of them in one statement, every third of the
// lease). Claims and publishes use separate pools, so publishers saturating
// theirs never hold up the consumers.
//
// An ack deletes exactly the acked row. Acks are deleted in the background,
// in one statement for all the acks that arrived during the previous delete
// (at most one per millisecond per subscription), so an ack is stored
// within a round trip or two of Ack, not before Ack returns; closing a
// subscription stores every ack it was given before it returns. Claims and
// acks commit without waiting for the WAL flush: a Postgres crash can undo
// the last few hundred milliseconds of them, which redelivers those messages
// (a process crash likewise loses the acks not yet deleted); neither loses a
// message, and handlers deduplicate by their idempotency claim. A nack hands
// the row back at once, with the prefetched ones, so the next claim takes it
// first. Closing, or ending the Subscribe context, stops handing out, hands
// back the prefetched rows, waits up to Config.CloseTimeout (default 10s)
// for the messages in flight to be acked, storing those acks, then ends
// their contexts, hands them back and notifies, so another replica takes
// them at once.
//
// # Order
//
// Messages carry the organisation in the partition_key metadata. By default
// a group does not hand out a message while an earlier message with the same
// key is pending or in flight (the claim skips rows with an earlier row of
// their key still present), so one organisation's messages are handled one
// at a time in publish order while other organisations run in parallel.
// Messages without a key have no constraint, except that a lone subscriber
// with Concurrency 1 sees them in publish order. A publish that commits
// before another starts is always delivered first; two transactions that
// publish for one key at the same time may be delivered in either order.
// SubscriberConfig.Unordered turns the check off for handlers that do not
// need it.
//
// # Wake-up
//
// PublishTx and PublishPgxTx call pg_notify on NotifyChannel with the topic
// in the caller's transaction; Postgres delivers it at commit, so a
// transactional publish wakes consumers only if it commits. The transport's
// own publisher does not: Postgres serialises the commits of transactions
// that sent a NOTIFY, WAL flush included, which held 4 concurrent
// publishers to one commit at a time. It commits its INSERT alone, wakes
// this process's subscriptions itself and has a notifier send one
// notification per topic for all the publishes of the last few milliseconds,
// in a statement that writes nothing. One connection per transport LISTENs
// and wakes the topic's subscriptions; it reconnects when the connection
// drops and then wakes them all. Config.PollInterval (default 1s) is only
// the fallback, for expired leases and notifications missed meanwhile.
//
// # Publishing in a transaction
//
// PublishTx publishes in a database/sql transaction, PublishPgxTx in a pgx
// one. The messages travel as one JSON argument, so the statement works
// with any driver. The NOTIFY they send makes their commits take Postgres's
// notification lock in turn: many connections committing publishes at once
// are serialised, so a burst is better published in fewer, larger
// transactions.
//
// # Measurements
//
// The peers benchmark (../shared/peers-bench, with cmd/millrace-bench's
// svc/pg rows added) has the figures beside watermill-sql, River and
// pgbench; README.md has them. BenchmarkPublishConsume and
// BenchmarkPublish here measure the transport alone.
package postgres
