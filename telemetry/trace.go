package telemetry

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
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
func SetupTracing(exporters ...sdktrace.SpanExporter) (trace.TracerProvider,
	func(context.Context) error) {
	return setupTracing(TraceSettings{ServiceName: DefaultServiceName}, exporters...)
}

// SetupTracingSampled is SetupTracing with a chosen sampler for recorded
// traces, for measuring what sampling saves.
func SetupTracingSampled(sampler sdktrace.Sampler, exporters ...sdktrace.SpanExporter) (
	trace.TracerProvider, func(context.Context) error) {
	return setupTracing(TraceSettings{ServiceName: DefaultServiceName, sampler: sampler},
		exporters...)
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
		opts = append(opts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())))
	}
	// A sampler named by OTEL_TRACES_SAMPLER is left to the SDK, which reads
	// it and its argument when no sampler option is given.
	for _, e := range exporters {
		opts = append(opts, sdktrace.WithBatcher(e))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(tp)
	return tp, tp.Shutdown
}
