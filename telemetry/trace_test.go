package telemetry

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func TestDefaultSampler(t *testing.T) {
	t.Parallel()
	// TraceIDRatioBased keeps a trace when the low half of its id is below
	// the ratio's share of the range: all zeros always is, all ones never.
	low := trace.TraceID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 1}
	high := trace.TraceID{1, 1, 1, 1, 1, 1, 1, 1,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	parent := func(sampled bool) context.Context {
		flags := trace.TraceFlags(0)
		if sampled {
			flags = trace.FlagsSampled
		}
		return trace.ContextWithRemoteSpanContext(context.Background(),
			trace.NewSpanContext(trace.SpanContextConfig{TraceID: high,
				SpanID: trace.SpanID{1}, TraceFlags: flags, Remote: true}))
	}
	link := []trace.Link{{SpanContext: trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: low, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled})}}
	cases := []struct {
		name string
		p    sdktrace.SamplingParameters
		want sdktrace.SamplingDecision
	}{
		{"a root in the ratio", sdktrace.SamplingParameters{ParentContext: context.Background(),
			TraceID: low}, sdktrace.RecordAndSample},
		{"a root outside it", sdktrace.SamplingParameters{ParentContext: context.Background(),
			TraceID: high}, sdktrace.Drop},
		{"a replay, linked to the trace it replays", sdktrace.SamplingParameters{
			ParentContext: context.Background(), TraceID: high, Links: link},
			sdktrace.RecordAndSample},
		{"a sampled parent is followed", sdktrace.SamplingParameters{ParentContext: parent(true),
			TraceID: high}, sdktrace.RecordAndSample},
		{"so is one not sampled", sdktrace.SamplingParameters{ParentContext: parent(false),
			TraceID: low, Links: link}, sdktrace.Drop},
	}
	s := DefaultSampler()
	for _, tc := range cases {
		require.Equal(t, tc.want, s.ShouldSample(tc.p).Decision, tc.name)
	}
}

func TestBatchOptionsLeaveSetVariablesToTheSDK(t *testing.T) {
	t.Parallel()
	applied := func(env map[string]string) sdktrace.BatchSpanProcessorOptions {
		var o sdktrace.BatchSpanProcessorOptions
		for _, opt := range batchOptions(func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		}) {
			opt(&o)
		}
		return o
	}
	require.Equal(t, DefaultBSPMaxQueueSize, applied(nil).MaxQueueSize)
	require.Zero(t, applied(map[string]string{"OTEL_BSP_MAX_QUEUE_SIZE": "100"}).MaxQueueSize,
		"the SDK reads the variable itself when no option overrides it")
}
