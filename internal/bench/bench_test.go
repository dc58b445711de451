package bench

import (
	"context"
	"testing"
)

// benchmark drives b.N messages through sys with 4 publishers and reports
// messages per second and CPU per message beside ns/op.
func benchmark(b *testing.B, start func(*Tracker) (System, error)) {
	t := NewTracker(int64(b.N))
	sys, err := start(t)
	if err != nil {
		b.Fatal(err)
	}
	defer sys.Close()
	b.ResetTimer()
	res, err := Max(context.Background(), t, sys.Publish, int64(b.N), 4)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(res.MsgPerS, "msg/s")
	b.ReportMetric(res.CPUMsPer1k, "cpu-µs/msg")
}

func BenchmarkBareRouter(b *testing.B) { benchmark(b, Bare) }

func BenchmarkFullChain(b *testing.B) {
	benchmark(b, func(t *Tracker) (System, error) { return Full(t, FullOpts{}) })
}

func TestFullChainDeliversEverythingOnce(t *testing.T) {
	t.Parallel()
	const n = 2000
	tr := NewTracker(n)
	sys, err := Full(tr, FullOpts{})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	res, err := Max(context.Background(), tr, sys.Publish, n, 4)
	if err != nil {
		t.Fatal(err)
	}
	if res.N != n || res.Dups != 0 {
		t.Fatalf("delivered %d with %d duplicates, want %d once each", res.N, res.Dups, n)
	}
}

func BenchmarkFullChainTraced(b *testing.B) {
	benchmark(b, func(t *Tracker) (System, error) {
		col, err := StartCollector()
		if err != nil {
			return System{}, err
		}
		b.Cleanup(func() { col.Close() })
		exp, err := col.Exporter(context.Background())
		if err != nil {
			return System{}, err
		}
		return Full(t, FullOpts{Exporter: exp})
	})
}
