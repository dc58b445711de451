package kafka

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/millrace/millrace/job"

	"github.com/millrace/millrace/transport/kafka/kafkatest"
)

func TestNewRejectsBadVersion(t *testing.T) {
	c := kafkatest.Start(t, 1)
	for _, v := range []string{"", "banana", "3.x", "0.10.2.0"} {
		cfg := testConfig(c)
		cfg.Version = v
		tr, err := New(context.Background(), cfg)
		if err == nil {
			_ = tr.Close()
			t.Fatalf("version %q accepted", v)
		}
		if !strings.Contains(err.Error(), "version") {
			t.Fatalf("version %q: error %v does not name the version", v, err)
		}
	}
	cfg := testConfig(c)
	cfg.Brokers = nil
	if _, err := New(context.Background(), cfg); err == nil {
		t.Fatal("no brokers accepted")
	}
}

func TestNewFailsWithoutBrokers(t *testing.T) {
	c := kafkatest.Start(t, 1)
	c.Down()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if tr, err := New(ctx, testConfig(c)); err == nil {
		_ = tr.Close()
		t.Fatal("New succeeded with the broker down")
	}
}

func TestEnsureTopics(t *testing.T) {
	c := kafkatest.Start(t, 3)
	cfg := testConfig(c)
	cfg.Partitions = 6
	tr := newTransport(t, cfg)
	adm := kadm.NewClient(kgoClient(t, c))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := adm.CreateTopics(ctx, 2, 1, nil, "existing"); err != nil {
		t.Fatal(err)
	}

	for i := 0; i < 2; i++ { // idempotent
		if err := tr.EnsureTopics(ctx, "a.created", "b.created", "existing", "a.created"); err != nil {
			t.Fatalf("ensure %d: %v", i, err)
		}
	}
	ds, err := adm.ListTopics(ctx, "a.created", "b.created", "existing")
	if err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]int{"a.created": 6, "b.created": 6, "existing": 2} {
		if got := len(ds[topic].Partitions); got != want {
			t.Errorf("%s has %d partitions, want %d", topic, got, want)
		}
	}
	if err := tr.EnsureTopics(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tr.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Ready(ctx); err == nil {
		t.Fatal("Ready after Close")
	}
	err = tr.Publisher().Publish("a.created", message.NewMessage(job.NewID(), []byte(`{}`)))
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("publish after Close: %v", err)
	}
	if _, err := tr.Subscriber("g"); err == nil {
		t.Fatal("subscriber from a closed transport")
	}
}

// New gives up when its context ends, even against a broker that accepts
// connections and never answers.
func TestNewHonoursContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := Config{Brokers: []string{ln.Addr().String()}, Version: "3.6.0"}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	tr, err := New(ctx, cfg)
	if err == nil {
		_ = tr.Close()
		t.Fatal("New succeeded against a silent broker")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want the context's", err)
	}
}
