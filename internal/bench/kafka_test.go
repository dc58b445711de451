package bench

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace/transport/kafka/kafkatest"
)

// testBrokers returns the broker of MILLRACE_BENCH_KAFKA (a kfake served by
// "millrace-bench -kfake", so that a profile of the benchmarks below shows
// the clients and not the broker), else an in-process kfake.
func testBrokers(tb testing.TB) []string {
	tb.Helper()
	if addr := os.Getenv("MILLRACE_BENCH_KAFKA"); addr != "" {
		return strings.Split(addr, ",")
	}
	return kafkatest.Start(tb, 1).Addrs()
}

func TestParseIDTS(t *testing.T) {
	id, ts, err := parseIDTS(Payload(42))
	if err != nil || id != 42 || ts <= 0 {
		t.Fatalf("parseIDTS(Payload(42)) = %d, %d, %v", id, ts, err)
	}
	if _, _, err := parseIDTS([]byte(`{"ts":1}`)); err == nil {
		t.Fatal("a payload without id parsed")
	}
}

// TestKafkaSystems runs each Kafka system on a small N and checks that every
// message arrived once; the figures themselves are the benchmark's.
func TestKafkaSystems(t *testing.T) {
	if testing.Short() {
		t.Skip("starts consumer groups on kfake")
	}
	brokers := testBrokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	systems := map[string]func(context.Context, KafkaOpts) (Result, error){
		"raw":  KafkaRaw,
		"bare": KafkaBare,
		"full": func(ctx context.Context, o KafkaOpts) (Result, error) {
			return KafkaFull(ctx, o, PGDSN)
		},
	}
	for name, run := range systems {
		t.Run(name, func(t *testing.T) {
			res, err := run(ctx, KafkaOpts{Brokers: brokers, Partitions: 2, N: 300,
				Publishers: 2, Linger: -1})
			if err != nil {
				t.Fatal(err)
			}
			if res.N != 300 || res.Dups != 0 || res.MsgPerS <= 0 {
				t.Fatalf("%s: n %d, dups %d, %.0f msg/s", name, res.N, res.Dups, res.MsgPerS)
			}
		})
	}
}

// BenchmarkKafkaChain measures one Kafka system with b.N messages from 4
// publishers on 8 partitions, for profiling, e.g.
//
//	go test -run '^$' -bench 'KafkaChain/full$' -benchtime 60000x -cpuprofile cpu.out
func BenchmarkKafkaChain(b *testing.B) {
	brokers := testBrokers(b)
	for _, c := range []struct {
		name string
		run  func(context.Context, KafkaOpts) (Result, error)
	}{
		{"bare", KafkaBare},
		{"full", func(ctx context.Context, o KafkaOpts) (Result, error) {
			return KafkaFull(ctx, o, PGDSN)
		}},
		{"full-pg", func(ctx context.Context, o KafkaOpts) (Result, error) {
			o.Ledger = LedgerPG
			return KafkaFull(ctx, o, PGDSN)
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			res, err := c.run(context.Background(), KafkaOpts{Brokers: brokers, Partitions: 8,
				N: int64(max(b.N, 100)), Publishers: 4})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(res.MsgPerS, "msg/s")
			b.ReportMetric(res.CPUMsPer1k, "cpu-µs/msg") // ms per 1000 = µs per message
		})
	}
}
