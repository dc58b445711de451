// Package kafka is the Kafka transport: watermill-kafka v3.1 on IBM/sarama
// for publishing and consuming, with the settings Watermill's defaults get
// wrong for Millrace, a marshaler that keys records by organisation and
// writes CloudEvents headers, and franz-go's admin client for readiness and
// topic creation (its requests take a context, sarama's do not).
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
//   - The protocol version is Config.Version, parsed by sarama and required.
//   - The producer waits for all in-sync replicas and is idempotent, so
//     sarama's retries neither duplicate nor reorder records; publishing
//     is one record at a time (watermill-kafka has only a sync producer)
//     and gives up when the message's context ends or after
//     Config.PublishTimeout. With every broker off the network a publish
//     failed after 1.8s in TestBrokerOutage (sarama's retries and short
//     network timeouts; a broker that accepts connections but never
//     answers takes up to the 15s read timeout, or the message's context).
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
//   - sarama hashes keys with FNV-1a, the Java client with murmur2: a Java
//     producer writing the same key may choose a different partition.
//   - Closing a subscriber abandons its messages in flight; they are
//     delivered again to the group's next owner of their partition.
package kafka
