package telemetry

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTraceSettingsFromEnv(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		env     map[string]string
		want    TraceSettings
		enabled bool
		err     string
	}{
		{"off without an endpoint", nil, TraceSettings{Exporter: "otlp",
			Protocol: "http/protobuf", ServiceName: "millrace"}, false, ""},
		{"otlp over grpc", map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
			"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_SERVICE_NAME": "mr-1",
			"OTEL_TRACES_SAMPLER": "parentbased_traceidratio"},
			TraceSettings{Exporter: "otlp", Endpoint: "http://127.0.0.1:4317",
				Protocol: "grpc", ServiceName: "mr-1", Sampler: "parentbased_traceidratio"},
			true, ""},
		{"the traces endpoint and protocol win", map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT":        "http://a:4318",
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:4318/v1/traces",
			"OTEL_EXPORTER_OTLP_PROTOCOL":        "grpc",
			"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"},
			TraceSettings{Exporter: "otlp", Endpoint: "http://b:4318/v1/traces",
				Protocol: "http/protobuf", ServiceName: "millrace"}, true, ""},
		{"console needs no endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "console"},
			TraceSettings{Exporter: "console", Protocol: "http/protobuf",
				ServiceName: "millrace"}, true, ""},
		{"none wins over an endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "none",
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318"},
			TraceSettings{Exporter: "none", Endpoint: "http://a:4318",
				Protocol: "http/protobuf", ServiceName: "millrace"}, false, ""},
		{"unknown exporter", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"},
			TraceSettings{}, false, "OTEL_TRACES_EXPORTER"},
		{"unknown protocol", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
			TraceSettings{}, false, "OTEL_EXPORTER_OTLP_PROTOCOL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := TraceSettingsFromEnv(func(k string) (string, bool) {
				v, ok := tc.env[k]
				return v, ok
			})
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.enabled, got.Enabled())
		})
	}
}

func TestNoExporterWhenOff(t *testing.T) {
	t.Parallel()
	exp, err := NewTraceExporter(context.Background(), TraceSettings{Exporter: ExporterNone})
	require.NoError(t, err)
	require.Nil(t, exp)
}
