// Package kafka is the Kafka transport: watermill-kafka v3.1 on IBM/sarama
// for consuming, with the settings Watermill's defaults get wrong for
// Millrace; a franz-go client for producing (see clientOptions), readiness
// and topic creation (its requests take a context, sarama's do not); and a
// marshaler that keys records by organisation and writes CloudEvents
// headers.
//
// # Use
//
//	tr, err := kafka.New(ctx, kafka.Config{Brokers: ..., Partitions: 8,
//		ReplicationFactor: 3, Version: "3.6.0", Logger: log})
//	err = tr.EnsureTopics(ctx, catalogueTopics...) // before subscribing
//	sub, err := tr.SubscriberWith(group, concurrency, unordered)
//
// New creates no topic: it does not know the catalogue. EnsureTopics
// creates the missing ones with Config.Partitions and ReplicationFactor and
// leaves existing topics alone. The subscribers' SubscribeInitialize calls
// it too, one topic at a time.
//
// # Settings
//
//   - The protocol version is Config.Version, required: sarama's consumers
//     speak it and franz-go sends no request version above it.
//   - The producer waits for all in-sync replicas and is idempotent, so
//     its retries neither duplicate nor reorder records; Publish waits for
//     the acknowledgement and gives up when the message's context ends or
//     after Config.PublishTimeout. With every broker off the network a
//     publish fails at that deadline (2s in TestBrokerOutage, whose
//     messages carry one); a record sent but not answered may still be
//     written when the brokers return.
//   - A new consumer group starts at the oldest offset, so a handler
//     deployed after events were published still gets them. Acked offsets
//     are committed every second and when a member gives up its partitions
//     in a rebalance; after a crash or an outage up to a second of acked
//     messages is delivered again.
//   - A nacked message is delivered again after Config.NackResendSleep
//     (50ms), its partition waiting meanwhile; a subscription that lost
//     its brokers reconnects every Config.ReconnectRetrySleep (1s).
//
// # Parallelism and order
//
// watermill-kafka hands out one message at a time per partition and
// commits each partition's offsets in order. A subscriber that owns n
// partitions of a topic has up to n messages in flight, and the messages
// of one partition key, hence of one organisation, are handled one after
// the other in publish order. SubscriberWith therefore ignores concurrency
// and unordered: parallelism comes from partitions (Config.Partitions) and
// replicas, one member per replica owning its share of them.
//
// # Records
//
// See Marshaler. Records written by other producers are read too: the id
// comes from ce_id, or from the record's topic, partition and offset when
// there is none, and an unreadable record is delivered as it is rather than
// stalling its partition.
//
// # Caveats
//
//   - A handler that runs long holds its partition and delays rebalances
//     (up to Config.RebalanceTimeout, 60s, after which the member is
//     evicted); its message may then be delivered to the new owner too.
//   - Closing a subscriber abandons its messages in flight; they are
//     delivered again to the group's next owner of their partition.
package kafka
