package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/millrace/millrace/telemetry"
)

// Config configures the transport.
type Config struct {
	// Brokers are the bootstrap brokers, host:port.
	Brokers []string
	// Partitions is the partition count of the topics EnsureTopics
	// creates. Default 8.
	Partitions int32
	// ReplicationFactor of the topics EnsureTopics creates. Default 1.
	ReplicationFactor int16
	// Version is the Kafka protocol version spoken, such as "3.6.0": the
	// version sarama's consumers use, and the highest request versions
	// franz-go's producer and admin client may send. Never above the
	// brokers' own. Required.
	Version string
	// ClientID names Millrace's connections on the brokers. Default
	// "millrace".
	ClientID string
	// Logger logs Watermill's and the transport's events. Default
	// slog.Default().
	Logger *slog.Logger

	// SessionTimeout is how long the group coordinator waits for a
	// member's heartbeat before giving its partitions to the others.
	// Default 10s (the broker's group.min.session.timeout.ms bounds it).
	SessionTimeout time.Duration
	// HeartbeatInterval is how often members heartbeat, and so how soon
	// they notice a rebalance. Default 3s; at most a third of
	// SessionTimeout.
	HeartbeatInterval time.Duration
	// RebalanceTimeout is how long a rebalance waits for members to
	// finish their in-flight messages and rejoin. Default 60s.
	RebalanceTimeout time.Duration
	// NackResendSleep is the pause before a nacked message is delivered
	// again (watermill-kafka sleeps it and the partition waits). Default
	// 50ms.
	NackResendSleep time.Duration
	// ReconnectRetrySleep is the pause between attempts to reconnect a
	// subscription that lost its brokers. Default 1s.
	ReconnectRetrySleep time.Duration
	// PublishTimeout bounds a publish whose message context has no
	// deadline. Default 10s.
	PublishTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.Partitions <= 0 {
		c.Partitions = 8
	}
	if c.ReplicationFactor <= 0 {
		c.ReplicationFactor = 1
	}
	if c.ClientID == "" {
		c.ClientID = "millrace"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = min(3*time.Second, c.SessionTimeout/3)
	}
	if c.RebalanceTimeout <= 0 {
		c.RebalanceTimeout = 60 * time.Second
	}
	if c.NackResendSleep <= 0 {
		c.NackResendSleep = 50 * time.Millisecond
	}
	if c.ReconnectRetrySleep <= 0 {
		c.ReconnectRetrySleep = time.Second
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 10 * time.Second
	}
	return c
}

// ErrClosed is returned by a closed transport.
var ErrClosed = errors.New("kafka transport closed")

// Transport is the Kafka transport.
type Transport struct {
	cfg     Config
	version sarama.KafkaVersion
	log     *slog.Logger
	wlog    watermill.LoggerAdapter

	kcl   *kgo.Client // produces (see produce.go) and runs the admin requests
	admin *kadm.Client

	// mu guards closed; publishes hold it for reading so that Close does
	// not close the producer under them.
	mu     sync.RWMutex
	closed bool
	subsMu sync.Mutex
	subs   map[*wkafka.Subscriber]struct{}
}

// New checks cfg and connects the franz-go client that produces and runs
// the admin requests (New fails when no broker answers). It creates no topic:
// the caller passes the catalogue's topics to EnsureTopics.
func New(ctx context.Context, cfg Config) (*Transport, error) {
	cfg = cfg.withDefaults()
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("invalid kafka config: no brokers")
	}
	if strings.TrimSpace(cfg.Version) == "" {
		return nil, errors.New("invalid kafka config: version is required")
	}
	v, err := sarama.ParseKafkaVersion(cfg.Version)
	if err != nil {
		return nil, fmt.Errorf("invalid kafka config: version %q: %w", cfg.Version, err)
	}
	if !v.IsAtLeast(sarama.V0_11_0_0) {
		return nil, fmt.Errorf("invalid kafka config: version %s: the idempotent producer "+
			"and record headers need 0.11.0 or later", v)
	}
	t := &Transport{cfg: cfg, version: v, log: cfg.Logger,
		wlog: telemetry.WatermillLogger(cfg.Logger, nil), subs: map[*wkafka.Subscriber]struct{}{}}
	t.kcl, err = kgo.NewClient(t.clientOptions()...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	if err := t.kcl.Ping(ctx); err != nil {
		t.kcl.Close()
		return nil, fmt.Errorf("connect kafka producer to %v: %w", cfg.Brokers, err)
	}
	t.admin = kadm.NewClient(t.kcl)
	return t, nil
}

// Name returns "kafka".
func (t *Transport) Name() string { return "kafka" }

// Durable returns true.
func (t *Transport) Durable() bool { return true }

// Publisher returns the transport's publisher. Closing it does not close
// the transport's producer, which every publisher shares.
func (t *Transport) Publisher() message.Publisher { return publisher{t} }

// Subscriber returns a subscriber in group.
func (t *Transport) Subscriber(group string) (message.Subscriber, error) {
	return t.SubscriberWith(group, 1, false)
}

// SubscriberWith returns a subscriber in group. On Kafka the parallelism is
// the partitions: watermill-kafka hands out one message at a time per
// partition a member owns, and commits offsets in partition order, so a
// subscriber owning n partitions has up to n messages in flight whatever
// concurrency says, and order is kept per partition key (hence per
// organisation) whatever unordered says. Both are accepted for the
// router's sake and otherwise ignored; add partitions or replicas for more
// parallelism.
func (t *Transport) SubscriberWith(group string, concurrency int, unordered bool) (
	message.Subscriber, error) {
	if group == "" {
		return nil, errors.New("kafka subscriber: a consumer group is required")
	}
	sc, err := t.consumerConfig()
	if err != nil {
		return nil, err
	}
	t.subsMu.Lock()
	defer t.subsMu.Unlock()
	if t.subs == nil {
		return nil, ErrClosed
	}
	sub, err := wkafka.NewSubscriber(wkafka.SubscriberConfig{
		Brokers:               t.cfg.Brokers,
		Unmarshaler:           Marshaler{},
		OverwriteSaramaConfig: sc,
		ConsumerGroup:         group,
		NackResendSleep:       t.cfg.NackResendSleep,
		ReconnectRetrySleep:   t.cfg.ReconnectRetrySleep,
	}, t.wlog.With(watermill.LogFields{"consumer_group": group}))
	if err != nil {
		return nil, fmt.Errorf("kafka subscriber for group %s: %w", group, err)
	}
	if concurrency > int(t.cfg.Partitions) {
		t.log.Debug("kafka: concurrency above the partition count has no effect",
			"group", group, "concurrency", concurrency, "partitions", t.cfg.Partitions)
	}
	t.subs[sub] = struct{}{}
	return &subscriber{Subscriber: sub, t: t}, nil
}

// Ready asks a broker for cluster metadata, within ctx (5s when ctx has
// no deadline).
func (t *Transport) Ready(ctx context.Context) error {
	t.mu.RLock()
	closed := t.closed
	t.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	m, err := t.metadata(ctx, []string{})
	if err != nil {
		return fmt.Errorf("kafka not ready: %w", err)
	}
	if len(m.Brokers) == 0 {
		return errors.New("kafka not ready: metadata lists no broker")
	}
	return nil
}

// metadata asks a broker for the metadata of topics (of none when topics
// is empty). A request of our own rather than kadm's, which answers from a
// cache for up to five seconds: readiness and topic creation need the
// cluster's answer now.
func (t *Transport) metadata(ctx context.Context, topics []string) (
	*kmsg.MetadataResponse, error) {
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{}
	for _, topic := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, t.kcl)
	if err != nil {
		return nil, fmt.Errorf("kafka metadata: %w", err)
	}
	return resp, nil
}

// EnsureTopics creates the topics that do not exist with the configured
// partition count and replication factor, and waits until every partition
// of them has a leader. Existing topics are left as they are (a partition
// count below the configured one is logged).
func (t *Transport) EnsureTopics(ctx context.Context, topics ...string) error {
	topics = slices.Compact(slices.Sorted(slices.Values(topics)))
	if len(topics) == 0 {
		return nil
	}
	m, err := t.metadata(ctx, topics)
	if err != nil {
		return fmt.Errorf("describe kafka topics: %w", err)
	}
	var missing []string
	for _, d := range m.Topics {
		name := strValue(d.Topic)
		err := kerr.ErrorForCode(d.ErrorCode)
		switch {
		case errors.Is(err, kerr.UnknownTopicOrPartition):
			missing = append(missing, name)
		case err != nil:
			return fmt.Errorf("describe kafka topic %s: %w", name, err)
		case len(d.Partitions) < int(t.cfg.Partitions):
			t.log.Warn("kafka topic has fewer partitions than configured; left as is",
				"topic", name, "partitions", len(d.Partitions),
				"configured", t.cfg.Partitions)
		}
	}
	if len(missing) > 0 {
		resp, err := t.admin.CreateTopics(ctx, t.cfg.Partitions, t.cfg.ReplicationFactor,
			nil, missing...)
		if err != nil {
			return fmt.Errorf("create kafka topics %v: %w", missing, err)
		}
		for _, r := range resp.Sorted() {
			if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
				return fmt.Errorf("create kafka topic %s: %w", r.Topic, r.Err)
			}
			if r.Err == nil {
				t.log.Info("kafka topic created", "topic", r.Topic,
					"partitions", t.cfg.Partitions,
					"replication_factor", t.cfg.ReplicationFactor)
			}
		}
	}
	return t.waitLeaders(ctx, topics)
}

// waitLeaders polls metadata until every partition of topics has a leader:
// a real cluster elects them a moment after CreateTopics answers.
func (t *Transport) waitLeaders(ctx context.Context, topics []string) error {
	for {
		m, err := t.metadata(ctx, topics)
		if err == nil {
			if err = leaderless(m); err == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for kafka topics %v: %w: %w", topics, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// leaderless returns why a topic of m cannot take records yet, or nil.
func leaderless(m *kmsg.MetadataResponse) error {
	for _, d := range m.Topics {
		name := strValue(d.Topic)
		if err := kerr.ErrorForCode(d.ErrorCode); err != nil {
			return fmt.Errorf("topic %s: %w", name, err)
		}
		if len(d.Partitions) == 0 {
			return fmt.Errorf("topic %s has no partition yet", name)
		}
		for _, p := range d.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("topic %s partition %d: %w", name, p.Partition, err)
			}
			if p.Leader < 0 {
				return fmt.Errorf("topic %s partition %d has no leader", name, p.Partition)
			}
		}
	}
	return nil
}

// Close closes the subscribers still open, the producer and the admin
// client.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.mu.Unlock()
	t.subsMu.Lock()
	subs := t.subs
	t.subs = nil
	t.subsMu.Unlock()
	var errs []error
	for s := range subs {
		if err := s.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close kafka subscriber: %w", err))
		}
	}
	t.kcl.Close()
	return errors.Join(errs...)
}

// subscriber adds SubscribeInitialize, which creates the topic, and
// forgets itself in the transport when closed.
type subscriber struct {
	*wkafka.Subscriber
	t *Transport
}

// SubscribeInitialize creates topic if it does not exist.
func (s *subscriber) SubscribeInitialize(topic string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.t.EnsureTopics(ctx, topic)
}

// Close stops the subscriptions; messages in flight are delivered again.
func (s *subscriber) Close() error {
	s.t.subsMu.Lock()
	delete(s.t.subs, s.Subscriber)
	s.t.subsMu.Unlock()
	if err := s.Subscriber.Close(); err != nil {
		return fmt.Errorf("close kafka subscriber: %w", err)
	}
	return nil
}

func strValue(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
