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

// consumerBase is the consumers' connection settings: the protocol version,
// set explicitly (sarama's default may be above an older broker's, and
// watermill-kafka before v3.1 pinned 1.0), and network timeouts short
// enough that a subscription notices an unreachable broker in seconds
// rather than sarama's 30s per dial and read.
func (t *Transport) consumerBase() *sarama.Config {
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

// consumerConfig: a new group starts at the oldest offset (sarama's default,
// the newest, silently skips what was published before the group first
// joined); acked offsets are committed every second and when a member
// gives up its partitions; the range assignor (eager) is kept, since
// watermill-kafka only stops marking offsets when the whole session ends,
// which a cooperative rebalance does not do.
func (t *Transport) consumerConfig() (*sarama.Config, error) {
	c := t.consumerBase()
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
