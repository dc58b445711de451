package telemetry

import (
	"context"
	"fmt"
	"os"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// DefaultServiceName is the service.name of Millrace's spans unless
// OTEL_SERVICE_NAME says otherwise.
const DefaultServiceName = "millrace"

// Trace exporters OTEL_TRACES_EXPORTER may name.
const (
	ExporterOTLP    = "otlp"
	ExporterConsole = "console"
	ExporterNone    = "none"
)

// OTLP protocols OTEL_EXPORTER_OTLP_PROTOCOL may name.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// TraceSettings are the standard OpenTelemetry variables Millrace reads.
type TraceSettings struct {
	// Exporter is otlp, console or none; otlp with no endpoint is none.
	Exporter string
	// Endpoint is OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or else
	// OTEL_EXPORTER_OTLP_ENDPOINT. The exporter reads it again itself.
	Endpoint string
	// Protocol is grpc or http/protobuf (the default).
	Protocol string
	// ServiceName is OTEL_SERVICE_NAME, default millrace.
	ServiceName string
	// Sampler is OTEL_TRACES_SAMPLER as set; empty means DefaultSampler:
	// parent-based, DefaultSampleRatio of root spans.
	Sampler string

	// sampler, when set, overrides both, and blockOnQueueFull makes the
	// batch processor wait instead of dropping spans (benchmarks).
	sampler          sdktrace.Sampler
	blockOnQueueFull bool
}

// TraceSettingsFromEnv reads the OTEL_* variables through lookupEnv (usually
// os.LookupEnv) and reports an unknown exporter or protocol, naming the
// variable.
func TraceSettingsFromEnv(lookupEnv func(string) (string, bool)) (TraceSettings, error) {
	get := func(k string) string { v, _ := lookupEnv(k); return v }
	s := TraceSettings{
		Exporter:    get("OTEL_TRACES_EXPORTER"),
		Endpoint:    get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
		Protocol:    get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"),
		ServiceName: get("OTEL_SERVICE_NAME"),
		Sampler:     get("OTEL_TRACES_SAMPLER"),
	}
	if s.Endpoint == "" {
		s.Endpoint = get("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	if s.Protocol == "" {
		s.Protocol = get("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if s.Protocol == "" {
		s.Protocol = ProtocolHTTP
	}
	if s.ServiceName == "" {
		s.ServiceName = DefaultServiceName
	}
	if s.Exporter == "" {
		s.Exporter = ExporterOTLP
	}
	switch s.Exporter {
	case ExporterOTLP, ExporterConsole, ExporterNone:
	default:
		return s, fmt.Errorf("OTEL_TRACES_EXPORTER: %q: want otlp, console or none", s.Exporter)
	}
	if s.Protocol != ProtocolGRPC && s.Protocol != ProtocolHTTP {
		return s, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL: %q: want grpc or http/protobuf",
			s.Protocol)
	}
	return s, nil
}

// Enabled reports whether spans are exported anywhere.
func (s TraceSettings) Enabled() bool {
	return s.Exporter == ExporterConsole || (s.Exporter == ExporterOTLP && s.Endpoint != "")
}

// NewTraceExporter returns the exporter the settings name, or nil when
// tracing is off.
func NewTraceExporter(ctx context.Context, s TraceSettings) (sdktrace.SpanExporter, error) {
	if !s.Enabled() {
		return nil, nil
	}
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch {
	case s.Exporter == ExporterConsole:
		exp, err = stdouttrace.New(stdouttrace.WithWriter(os.Stdout))
	case s.Protocol == ProtocolGRPC:
		exp, err = otlptracegrpc.New(ctx)
	default:
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("create trace exporter: %w", err)
	}
	return exp, nil
}
