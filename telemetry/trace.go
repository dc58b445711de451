package telemetry

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TracerName names Millrace's instrumentation scope.
const TracerName = "github.com/millrace/millrace"

// SetupTracing installs W3C trace-context propagation and a tracer provider,
// and returns a function that flushes and stops it. With no exporter, spans
// still get trace and span ids, which reach logs and message metadata, but
// are not recorded unless an upstream caller sampled them; with exporters,
// every root span is sampled.
func SetupTracing(exporters ...sdktrace.SpanExporter) (trace.TracerProvider, func(context.Context) error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(
		propagation.TraceContext{}, propagation.Baggage{}))
	root := sdktrace.NeverSample()
	if len(exporters) > 0 {
		root = sdktrace.AlwaysSample()
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithSampler(sdktrace.ParentBased(root))}
	for _, e := range exporters {
		opts = append(opts, sdktrace.WithBatcher(e))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(tp)
	return tp, tp.Shutdown
}
