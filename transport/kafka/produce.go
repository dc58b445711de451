package kafka

import (
	"context"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kversion"
)

// clientOptions configure the franz-go client that produces Millrace's
// records and runs its admin requests.
//
// Records are produced by franz-go rather than watermill-kafka's sarama
// producer. Both wait for every in-sync replica and are idempotent, so
// retries neither duplicate nor reorder a partition's records; but sarama
// allows an idempotent producer one request in flight per broker, and four
// publishers then got 0.6-0.7 of the throughput of sarama's default
// producer, while franz-go keeps up to five in flight in order (see the
// Kafka rows in README.md). Consumers stay watermill-kafka on sarama.
//
// Keys are hashed to partitions with murmur2, as the Java client and
// kafkajs's default partitioner do, so another producer writing the same
// key picks the same partition. Records go out at once (no linger: each
// publish waits for its acknowledgement anyway).
func (t *Transport) clientOptions() []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(t.cfg.Brokers...),
		kgo.ClientID(t.cfg.ClientID),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.ProducerLinger(0),
		kgo.RecordDeliveryTimeout(min(deliveryTimeout, t.cfg.PublishTimeout)),
		kgo.RecordRetries(recordRetries),
	}
	if v := kversion.FromString(t.version.String()); v != nil {
		opts = append(opts, kgo.MaxVersions(v))
	}
	return opts
}

// deliveryTimeout and recordRetries bound how long franz-go keeps a record
// it may safely fail: one never sent (no broker reachable, no leader for
// its partition) or answered with an error. A record that was sent and not
// answered (its connection dropped) is kept until the brokers return, since
// failing it could leave a gap in the partition's sequence; its Publish
// gives up at the deadline and the record may still be written later. In
// the broker outage tests every publish caught by the outage was of that
// kind, or queued behind one in its partition, and failed at its deadline.
const (
	deliveryTimeout = 3 * time.Second
	recordRetries   = 4
)

// publisher publishes through the transport's franz-go client.
type publisher struct{ t *Transport }

// Publish writes msgs to topic and waits until every in-sync replica has
// them. The records are sent together; when one fails, Publish returns its
// error, and the others may have been written, which at least once delivery
// and deduplication by message id allow for. It gives up once the first
// message's context ends, or after Config.PublishTimeout when that context
// has no deadline.
func (p publisher) Publish(topic string, msgs ...*message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	recs := make([]*kgo.Record, len(msgs))
	for i, m := range msgs {
		r, err := Marshaler{}.Record(topic, m)
		if err != nil {
			return fmt.Errorf("kafka publish to %s: %w", topic, err)
		}
		recs[i] = r
	}
	ctx := msgs[0].Context()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.t.cfg.PublishTimeout)
		defer cancel()
	}
	// The read lock keeps Close from closing the client under a publish;
	// Close waits for publishes, which their deadline bounds.
	p.t.mu.RLock()
	defer p.t.mu.RUnlock()
	if p.t.closed {
		return ErrClosed
	}
	// franz-go waits for a record it has sent whatever the context says, for
	// as long as a broker that stopped answering holds the connection open,
	// so the wait is ours: a record still in flight at the deadline may be
	// written later, which at least once delivery allows for.
	errs := make(chan error, len(recs))
	for _, r := range recs {
		p.t.kcl.Produce(ctx, r, func(_ *kgo.Record, err error) { errs <- err })
	}
	for range recs {
		select {
		case err := <-errs:
			if err != nil {
				return fmt.Errorf("kafka publish to %s: %w", topic, err)
			}
		case <-ctx.Done():
			return fmt.Errorf("kafka publish to %s: %w", topic, context.Cause(ctx))
		}
	}
	return nil
}

// Close does nothing: the client belongs to the transport.
func (publisher) Close() error { return nil }
