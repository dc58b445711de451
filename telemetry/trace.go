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
// and returns a function that flushes and stops it. Spans are recorded so
// that trace ids reach logs and message metadata; an exporter is attached
// only when one is configured (none is, in the embedded mode).
func SetupTracing(exporters ...sdktrace.SpanExporter) (trace.TracerProvider, func(context.Context) error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(
		propagation.TraceContext{}, propagation.Baggage{}))
	opts := []sdktrace.TracerProviderOption{sdktrace.WithSampler(sdktrace.ParentBased(
		sdktrace.AlwaysSample()))}
	for _, e := range exporters {
		opts = append(opts, sdktrace.WithBatcher(e))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(tp)
	return tp, tp.Shutdown
}
