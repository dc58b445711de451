package api

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/schemas"
)

// A request is a server span named by chi's route pattern, the message it
// publishes carries that span's trace, and it is counted by route and status.
// Probes make no span.
func TestRequestsAreTracedAndCountedByRoute(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)))
	otel.SetTextMapPropagator(propagation.TraceContext{})
	reg := prometheus.NewRegistry()
	rec := &recorder{}
	h := NewHandler(Config{
		Publisher: rec, Registry: schemas.Default(), Catalogue: ingestible{},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: NewHTTPMetrics(reg),
	})

	require.Equal(t, http.StatusAccepted, post(h, invitedTopic, validInvite, nil).Code)
	require.Equal(t, http.StatusBadRequest, post(h, invitedTopic, `{}`, nil).Code)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	require.Equal(t, http.StatusOK, w.Code)

	var server []sdktrace.ReadOnlySpan
	for _, s := range spans.Ended() {
		if s.SpanKind() == trace.SpanKindServer {
			server = append(server, s)
		}
	}
	require.Len(t, server, 2, "one span per request, none for the probe")
	require.Equal(t, "POST /v1/events/{topic}", server[0].Name())
	require.Len(t, rec.msgs, 1)
	carried := trace.SpanContextFromContext(job.ExtractTrace(t.Context(), rec.msgs[0].Metadata))
	require.Equal(t, server[0].SpanContext().TraceID(), carried.TraceID())

	mfs, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "millrace_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			got[l["method"]+" "+l["route"]+" "+l["status"]] = m.GetCounter().GetValue()
		}
	}
	require.Equal(t, map[string]float64{
		"GET /healthz 200": 1, "POST /v1/events/{topic} 202": 1,
		"POST /v1/events/{topic} 400": 1,
	}, got)
}
