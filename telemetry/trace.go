package telemetry

import (
	"context"
	"os"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TracerName names Millrace's instrumentation scope.
const TracerName = "github.com/millrace/millrace"

// DefaultSampleRatio is the share of new traces recorded when
// OTEL_TRACES_SAMPLER is unset. A worker handling thousands of messages a
// second pays for every span it records and exports (three per message at
// least: publish, delivery, attempt); recording one new trace in ten keeps
// that cost to a few per cent of throughput, and every kind of trace still
// shows up within seconds. OTEL_TRACES_SAMPLER=parentbased_always_on
// records every trace.
const DefaultSampleRatio = 0.1

// DefaultSampler is the sampler used when OTEL_TRACES_SAMPLER is unset. It
// is parent-based: a span with a parent (an upstream service's traceparent,
// the message that caused this one) follows the parent's decision, so a
// trace is never cut in two. A root span is recorded when its trace id falls
// in DefaultSampleRatio, or when it links to another trace: that is a
// message replayed from the poison queue, rare and worth seeing whole.
func DefaultSampler() sdktrace.Sampler {
	return sdktrace.ParentBased(rootSampler{ratio: sdktrace.TraceIDRatioBased(DefaultSampleRatio)})
}

// rootSampler decides for spans without a parent.
type rootSampler struct{ ratio sdktrace.Sampler }

func (s rootSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	if len(p.Links) > 0 {
		return sdktrace.AlwaysSample().ShouldSample(p)
	}
	return s.ratio.ShouldSample(p)
}

func (s rootSampler) Description() string {
	return "LinkedOr{" + s.ratio.Description() + "}"
}

// DefaultBSPMaxQueueSize is the batch span processor's queue, in spans, when
// OTEL_BSP_MAX_QUEUE_SIZE is unset. The SDK's 2048 is exhausted by a burst
// of a few hundred messages while an export is in flight (the processor
// exports synchronously), and the spans over it are dropped; this holds a
// few seconds of recorded spans at full speed, at about 1 KiB each.
const DefaultBSPMaxQueueSize = 16384

// SetupTracing installs W3C trace-context propagation and a tracer provider,
// and returns a function that flushes and stops it. With no exporter, spans
// still get trace and span ids, which reach logs and message metadata, but
// are not recorded unless an upstream caller sampled them; with exporters,
// the default sampler (DefaultSampler) decides.
func SetupTracing(exporters ...sdktrace.SpanExporter) (trace.TracerProvider,
	func(context.Context) error) {
	return setupTracing(TraceSettings{ServiceName: DefaultServiceName}, exporters...)
}

// TracingOptions are what the benchmarks vary over SetupTracing.
type TracingOptions struct {
	// Sampler decides which traces are recorded; nil is DefaultSampler.
	Sampler sdktrace.Sampler
	// BlockOnQueueFull makes a finished span wait for room in the batch
	// processor's queue instead of being dropped, so that a measurement of
	// recording every trace exports every span.
	BlockOnQueueFull bool
}

// SetupTracingWith is SetupTracing with options, for measuring what tracing
// and sampling cost.
func SetupTracingWith(o TracingOptions, exporters ...sdktrace.SpanExporter) (
	trace.TracerProvider, func(context.Context) error) {
	return setupTracing(TraceSettings{ServiceName: DefaultServiceName, sampler: o.Sampler,
		blockOnQueueFull: o.BlockOnQueueFull}, exporters...)
}

// StartTracing installs the tracer provider the settings describe: an OTLP
// exporter (gRPC or HTTP; the exporter reads its endpoint, headers and TLS
// settings from the standard OTEL_EXPORTER_OTLP_* variables), spans printed
// to stdout for development, or none. The returned function flushes and
// stops the provider.
func StartTracing(ctx context.Context, s TraceSettings) (func(context.Context) error, error) {
	exp, err := NewTraceExporter(ctx, s)
	if err != nil {
		return nil, err
	}
	var exporters []sdktrace.SpanExporter
	if exp != nil {
		exporters = append(exporters, exp)
	}
	_, shutdown := setupTracing(s, exporters...)
	return shutdown, nil
}

func setupTracing(s TraceSettings, exporters ...sdktrace.SpanExporter) (trace.TracerProvider,
	func(context.Context) error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(
		propagation.TraceContext{}, propagation.Baggage{}))
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(resource.NewSchemaless(
			attribute.String("service.name", s.ServiceName))),
	}
	switch {
	case len(exporters) == 0:
		opts = append(opts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
	case s.sampler != nil:
		opts = append(opts, sdktrace.WithSampler(s.sampler))
	case s.Sampler == "":
		opts = append(opts, sdktrace.WithSampler(DefaultSampler()))
	}
	// A sampler named by OTEL_TRACES_SAMPLER is left to the SDK, which reads
	// it and its argument when no sampler option is given.
	for _, e := range exporters {
		bsp := batchOptions(os.LookupEnv)
		if s.blockOnQueueFull {
			bsp = append(bsp, sdktrace.WithBlocking())
		}
		opts = append(opts, sdktrace.WithBatcher(e, bsp...))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(tp)
	return tp, tp.Shutdown
}

// batchOptions are Millrace's batch span processor settings where the
// OTEL_BSP_* variables, which the SDK reads itself, leave them unset.
func batchOptions(lookupEnv func(string) (string, bool)) []sdktrace.BatchSpanProcessorOption {
	var opts []sdktrace.BatchSpanProcessorOption
	if _, ok := lookupEnv("OTEL_BSP_MAX_QUEUE_SIZE"); !ok {
		opts = append(opts, sdktrace.WithMaxQueueSize(DefaultBSPMaxQueueSize))
	}
	return opts
}
