package router

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/middleware"
	"github.com/millrace/millrace/telemetry"
	"github.com/millrace/millrace/transport"
	"github.com/millrace/millrace/transport/memory"
)

type memLedger struct{}

func (memLedger) IsProcessed(context.Context, string, string) (bool, error) { return false, nil }

// BenchmarkChain measures the CPU one delivery spends in the middleware chain
// alone, with a no-op handler and no transport: the figure held to at most
// 10 µs per message. "ingested" payloads were validated at ingest in this
// process, as on the memory transport; "cold" ones arrive unseen, as from
// another process on a durable transport.
func BenchmarkChain(b *testing.B) {
	for _, warm := range []bool{true, false} {
		name := "cold"
		if warm {
			name = "ingested"
		}
		b.Run(name, func(b *testing.B) { benchmarkChain(b, warm) })
	}
}

func benchmarkChain(b *testing.B, ingested bool) {
	telemetry.SetupTracing()
	noop := job.HandlerFunc(func(context.Context, job.Message) error { return nil })
	reg := testRegistry(b)
	rt, err := New(Config{
		Catalogue: testCatalogue(noop, fastRetry), Deps: &Deps{},
		Transport: memory.New(memory.Config{}), Registry: reg,
		Ledger:  memLedger{},
		Logger:  slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Metrics: middleware.NewMetrics(prometheus.NewRegistry()),
	})
	if err != nil {
		b.Fatal(err)
	}
	j := rt.cfg.Catalogue.Jobs[0]
	s := j.Subscriptions[0]
	fn := wrap(noPublish(adapt(noop, s)), rt.chain(j, s))
	msgs := make([]*message.Message, b.N)
	for i := range msgs {
		payload := []byte(`{"n":` + strconv.Itoa(i) +
			`,"organisation_id":"8a4c9a52-3f0e-4a43-9d0e-3c2b1f6e7a10"}`)
		ev := job.NewEvent(context.Background(), "", testTopic, payload, "bench", time.Now())
		msgs[i] = transport.ToMessage(context.Background(), ev)
	}
	b.ReportAllocs()
	b.ResetTimer()
	// Ingest validates shortly before the consumer sees a message; a chunk
	// at a time keeps that distance well inside the registry's memory.
	const chunk = 10000
	for start := 0; start < len(msgs); start += chunk {
		part := msgs[start:min(start+chunk, len(msgs))]
		if ingested {
			b.StopTimer()
			for _, m := range part {
				if reg.Validate(testTopic, m.Payload) != nil {
					b.Fatal("invalid payload")
				}
			}
			b.StartTimer()
		}
		for _, m := range part {
			if _, err := fn(m); err != nil {
				b.Fatal(err)
			}
		}
	}
}
