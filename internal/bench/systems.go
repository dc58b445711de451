package bench

import (
	"context"
	"embed"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/middleware"
	"github.com/millrace/millrace/router"
	"github.com/millrace/millrace/schemas"
	"github.com/millrace/millrace/telemetry"
	"github.com/millrace/millrace/transport"
	"github.com/millrace/millrace/transport/memory"
)

//go:embed testdata/topics
var topicsFS embed.FS

// Topic is the benchmark's topic.
const Topic = "bench.noop"

// System is a running system under test: a way to publish and a way to stop.
type System struct {
	Publish PublishFunc
	Close   func()
}

// Bare runs a Watermill router on GoChannel (default configuration) whose
// handler only records the delivery: the floor Millrace is compared with.
func Bare(t *Tracker) (System, error) {
	gc := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	r, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		return System{}, err
	}
	r.AddConsumerHandler("bare", Topic, gc, func(m *message.Message) error {
		return t.Observe(m.Payload)
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = r.Run(ctx) }()
	<-r.Running()
	return System{
		Publish: func(id int64) error {
			return gc.Publish(Topic, message.NewMessage(watermill.NewUUID(), Payload(id)))
		},
		Close: func() { r.Close(); cancel(); gc.Close() },
	}, nil
}

// BareMemory runs a bare Watermill router, as Bare does, on Millrace's
// memory transport instead of GoChannel: set beside Full, it isolates what
// the middleware chain costs from what the transport costs.
func BareMemory(t *Tracker) (System, error) {
	tr := memory.New(memory.Config{})
	sub, _ := tr.Subscriber("bare")
	r, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		return System{}, err
	}
	r.AddConsumerHandler("bare", Topic, sub, func(m *message.Message) error {
		return t.Observe(m.Payload)
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = r.Run(ctx) }()
	<-r.Running()
	pub := tr.Publisher()
	return System{
		Publish: func(id int64) error {
			return pub.Publish(Topic, message.NewMessage(watermill.NewUUID(), Payload(id)))
		},
		Close: func() { r.Close(); cancel(); tr.Close() },
	}, nil
}

// FullOpts selects what the full chain includes.
type FullOpts struct {
	// Ledger answers the idempotency check; nil uses an in-memory ledger,
	// which measures the chain's own cost without a database read.
	Ledger middleware.Ledger
	// Exporter, when set, records the spans the default sampler
	// (telemetry.DefaultSampler) samples and exports them through the batch
	// span processor serve uses with OTEL_EXPORTER_OTLP_ENDPOINT set. Nil
	// leaves tracing off: spans carry ids and are not recorded.
	Exporter sdktrace.SpanExporter
	// Sampler, when set with Exporter, replaces the default sampler.
	Sampler sdktrace.Sampler
	// ExportAll makes the batch span processor wait for room in its queue
	// rather than drop spans, so that every sampled span is exported and
	// paid for: a row recording every trace would otherwise drop spans when
	// the exporter falls behind and measure less work than it claims.
	ExportAll bool
}

// Full runs Millrace's router, with its whole middleware chain (tracing,
// metrics, logging, correlation, poison, retry, timeout, recoverer, schema
// validation, idempotency check) on the memory transport, publishing as
// ingest does: validate, stamp the envelope, publish through the guard. The
// handler records the delivery and does no database work.
func Full(t *Tracker, o FullOpts) (System, error) {
	reg, err := schemas.LoadFS(topicsFS, "testdata/topics")
	if err != nil {
		return System{}, err
	}
	ledger := o.Ledger
	if ledger == nil {
		ledger = &memLedger{}
	}
	var exporters []sdktrace.SpanExporter
	if o.Exporter != nil {
		exporters = append(exporters, o.Exporter)
	}
	_, stopTracing := telemetry.SetupTracingWith(telemetry.TracingOptions{
		Sampler: o.Sampler, BlockOnQueueFull: o.ExportAll}, exporters...)
	h := job.HandlerFunc(func(_ context.Context, m job.Message) error { return t.Observe(m.Payload) })
	cat := router.Catalogue{Jobs: []router.Job{
		{Name: "bench", Kind: router.KindEvent, Subscriptions: []router.Subscription{{
			Topic: Topic, Handler: "bench", New: func(*router.Deps) job.Handler { return h }}}},
		{Name: "poison", Kind: router.KindSystem, Subscriptions: []router.Subscription{{
			Topic: job.PoisonTopic, Handler: "poison", New: func(*router.Deps) job.Handler {
				return job.HandlerFunc(func(context.Context, job.Message) error { return nil })
			}}}},
	}}
	tr := memory.New(memory.Config{})
	logger := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	rt, err := router.New(router.Config{
		Catalogue: cat, Deps: &router.Deps{}, Transport: tr, Registry: reg, Ledger: ledger,
		Logger: logger, Metrics: middleware.NewMetrics(prometheus.NewRegistry()),
	})
	if err != nil {
		return System{}, fmt.Errorf("full chain: %w", err)
	}
	go func() { _ = rt.Run(context.Background()) }()
	<-rt.Running()
	pub := rt.Publisher()
	return System{
		Publish: func(id int64) error {
			// What ingest does after reading the body: validate, stamp, publish.
			ctx := context.Background()
			payload := Payload(id)
			if err := reg.Validate(Topic, payload); err != nil {
				return err
			}
			ev := job.NewEvent(ctx, "", Topic, payload, "bench", nowFunc())
			return pub.Publish(Topic, transport.ToMessage(ctx, ev))
		},
		Close: func() { rt.Close(); tr.Close(); _ = stopTracing(context.Background()) },
	}, nil
}

// memLedger is an idempotency ledger in memory.
type memLedger struct{ m sync.Map }

func (l *memLedger) IsProcessed(_ context.Context, handler, key string) (bool, error) {
	_, ok := l.m.Load(handler + "\x00" + key)
	return ok, nil
}
