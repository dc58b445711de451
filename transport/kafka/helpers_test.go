package kafka

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/millrace/millrace/transport/kafka/kafkatest"
)

// testConfig has group timings short enough for tests: members notice a
// rebalance within 100ms and a vanished member is dropped after 2s.
func testConfig(c *kafkatest.Cluster) Config {
	out := io.Discard
	if os.Getenv("MILLRACE_KAFKA_LOG") != "" {
		out = os.Stderr
	}
	return Config{
		Brokers:    c.Addrs(),
		Partitions: 4,
		Version:    "3.6.0",
		Logger: slog.New(slog.NewTextHandler(out,
			&slog.HandlerOptions{Level: slog.LevelDebug})),
		SessionTimeout:      2 * time.Second,
		HeartbeatInterval:   100 * time.Millisecond,
		RebalanceTimeout:    5 * time.Second,
		ReconnectRetrySleep: 200 * time.Millisecond,
		NackResendSleep:     10 * time.Millisecond,
	}
}

func newTransport(t testing.TB, cfg Config) *Transport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tr, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("new kafka transport: %v", err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

func ensure(t testing.TB, tr *Transport, topics ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tr.EnsureTopics(ctx, topics...); err != nil {
		t.Fatalf("ensure topics: %v", err)
	}
}

func subscribe(t testing.TB, sub message.Subscriber, topic string) <-chan *message.Message {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := sub.Subscribe(ctx, topic)
	if err != nil {
		t.Fatalf("subscribe %s: %v", topic, err)
	}
	return ch
}

func newSub(t testing.TB, tr *Transport, group string) message.Subscriber {
	t.Helper()
	s, err := tr.Subscriber(group)
	if err != nil {
		t.Fatalf("subscriber: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func kgoClient(t testing.TB, c *kafkatest.Cluster) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...))
	if err != nil {
		t.Fatalf("kgo client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// receive reads n messages from ch, acking each, or fails after timeout.
func receive(t testing.TB, ch <-chan *message.Message, n int,
	timeout time.Duration) []*message.Message {
	t.Helper()
	var got []*message.Message
	deadline := time.After(timeout)
	for len(got) < n {
		select {
		case m, ok := <-ch:
			if !ok {
				t.Fatalf("channel closed after %d of %d messages", len(got), n)
			}
			m.Ack()
			got = append(got, m)
		case <-deadline:
			t.Fatalf("received %d of %d messages", len(got), n)
		}
	}
	return got
}
