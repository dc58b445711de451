package kafka

import (
	"fmt"
	"time"

	"github.com/IBM/sarama"
	"github.com/rcrowley/go-metrics"
)

// Sarama keeps go-metrics histograms and meters of every request, record
// and batch it handles, which cost several per cent of a busy process's CPU
// and which nothing reads: Millrace's metrics are its own. go-metrics is
// switched off by this package variable only (sarama's documented way), and
// nothing else in Millrace uses it.
func init() { metrics.UseNilMetrics = true }

// base is what the producer and the consumers share: the protocol version,
// set explicitly (sarama's default may be above an older broker's, and
// watermill-kafka before v3.1 pinned 1.0), and network timeouts short
// enough that an unreachable broker fails a publish in seconds rather than
// sarama's 30s per dial and read.
func (t *Transport) base() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = t.version
	c.ClientID = t.cfg.ClientID
	c.Net.DialTimeout = 5 * time.Second
	c.Net.ReadTimeout = 15 * time.Second
	c.Net.WriteTimeout = 10 * time.Second
	c.Metadata.Retry.Max = 3
	c.Metadata.Retry.Backoff = 250 * time.Millisecond
	c.Metadata.RefreshFrequency = time.Minute
	return c
}

// producerConfig: every record waits for all in-sync replicas, and the
// producer is idempotent, so sarama's own retries after a lost response
// neither duplicate nor reorder records of a partition (idempotence
// requires at most one request in flight per broker). Watermill's
// SyncProducer needs successes returned. The default hash partitioner maps
// a key to a partition; note that it is FNV-1a, not the Java client's
// murmur2, so a Java producer with the same key may pick another partition.
func (t *Transport) producerConfig() (*sarama.Config, error) {
	c := t.base()
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Idempotent = true
	c.Net.MaxOpenRequests = 1
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.Retry.Max = 5
	c.Producer.Retry.Backoff = 250 * time.Millisecond
	c.Producer.Timeout = 10 * time.Second
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("kafka producer config: %w", err)
	}
	return c, nil
}

// consumerConfig: a new group starts at the oldest offset (sarama's default,
// the newest, silently skips what was published before the group first
// joined); acked offsets are committed every second and when a member
// gives up its partitions; the range assignor (eager) is kept, since
// watermill-kafka only stops marking offsets when the whole session ends,
// which a cooperative rebalance does not do.
func (t *Transport) consumerConfig() (*sarama.Config, error) {
	c := t.base()
	c.Consumer.Return.Errors = true
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.AutoCommit.Enable = true
	c.Consumer.Offsets.AutoCommit.Interval = time.Second
	c.Consumer.Group.Session.Timeout = t.cfg.SessionTimeout
	c.Consumer.Group.Heartbeat.Interval = t.cfg.HeartbeatInterval
	c.Consumer.Group.Rebalance.Timeout = t.cfg.RebalanceTimeout
	c.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{
		sarama.NewBalanceStrategyRange()}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("kafka consumer config: %w", err)
	}
	return c, nil
}
