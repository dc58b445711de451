package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/providers/calmonypay/calmonypaytest"
	"github.com/millrace/millrace/store"
	"github.com/millrace/millrace/store/demo"
)

// jaegerBinary returns the Jaeger v2 binary: JAEGER_BIN when set (CI, where
// a missing binary fails the test), else bin/jaeger when `make jaeger` built
// it; otherwise the test is skipped.
func jaegerBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("JAEGER_BIN"); p != "" {
		_, err := os.Stat(p)
		require.NoError(t, err, "JAEGER_BIN names no file; run make jaeger")
		return p
	}
	p, err := filepath.Abs("../../bin/jaeger")
	require.NoError(t, err)
	if _, err := os.Stat(p); err != nil {
		t.Skip("no Jaeger: run make jaeger, or set JAEGER_BIN")
	}
	return p
}

const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: mem
    http:
      endpoint: %s
    grpc:
      endpoint: %s
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
      http:
        endpoint: %s
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
`

// startJaeger runs an in-memory Jaeger on free ports and returns its query
// address and its OTLP gRPC and HTTP addresses.
func startJaeger(t *testing.T) (query, otlpGRPC, otlpHTTP string) {
	t.Helper()
	bin := jaegerBinary(t)
	query, otlpGRPC, otlpHTTP = freeAddr(t), freeAddr(t), freeAddr(t)
	cfg := filepath.Join(t.TempDir(), "jaeger.yaml")
	require.NoError(t, os.WriteFile(cfg, fmt.Appendf(nil, jaegerConfig, query, freeAddr(t),
		otlpGRPC, otlpHTTP), 0o600))
	cmd := exec.Command(bin, "--config", cfg)
	logs := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + query + "/api/services")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 60*time.Second, 100*time.Millisecond, "jaeger never answered")
	return query, otlpGRPC, otlpHTTP
}

// jaegerSpan is a span as Jaeger's query API returns it.
type jaegerSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	Tags []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
}

func (s jaegerSpan) parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

func (s jaegerSpan) tag(key string) string {
	for _, tg := range s.Tags {
		if tg.Key == key {
			return fmt.Sprint(tg.Value)
		}
	}
	return ""
}

// traceOf fetches millrace's traces and returns the spans of the one holding
// a span named root.
func traceOf(t *testing.T, query, root string) []jaegerSpan {
	t.Helper()
	resp, err := http.Get("http://" + query + "/api/traces?service=millrace&limit=100")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var out struct {
		Data []struct{ Spans []jaegerSpan }
	}
	if json.NewDecoder(resp.Body).Decode(&out) != nil {
		return nil
	}
	for _, tr := range out.Data {
		for _, s := range tr.Spans {
			if s.OperationName == root {
				return tr.Spans
			}
		}
	}
	return nil
}

// One ingest request's story is one trace in Jaeger: the HTTP span, the
// publish of the invitation, the invitation handler's delivery and attempt
// with its SQL, the publish of the poisoned message it could not handle and
// the poison store's delivery and attempt with its SQL, each under the span
// that caused it.
func TestTraceInJaegerEndToEnd(t *testing.T) {
	query, otlpGRPC, _ := startJaeger(t)
	in := newInstance(t)
	in.env = append(in.env, "OTEL_EXPORTER_OTLP_ENDPOINT=http://"+otlpGRPC,
		"OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_BSP_SCHEDULE_DELAY=100",
		"OTEL_TRACES_SAMPLER=parentbased_always_on",
		"MILLRACE_CRON=false")
	in.run(t, "demo")
	in.serve(t)

	stranger := "0e0e0e0e-0e0e-4e0e-8e0e-0e0e0e0e0e0e"
	status, body := in.post(t, "platform.user.invited", `{"invitation_id":"`+demo.InvitationID+
		`","organisation_id":"`+stranger+`","email":"x@example.com","role":"agent",`+
		`"invited_by_user_id":"`+demo.OwnerUserID+`"}`)
	require.Equal(t, http.StatusAccepted, status, body)

	want := []string{"POST /v1/events/{topic}", "publish platform.user.invited",
		"inviteEmail platform.user.invited", "inviteEmail attempt", "publish platform.poison",
		"poisonStore platform.poison", "poisonStore attempt"}
	var spans []jaegerSpan
	complete := assert.Eventually(t, func() bool {
		spans = traceOf(t, query, "POST /v1/events/{topic}")
		return len(byName(spans, want...)) == len(want)
	}, 30*time.Second, 200*time.Millisecond)
	if !complete {
		t.Fatalf("trace incomplete in jaeger, spans %v", names(spans))
	}

	s := byName(spans, want...)
	byID := map[string]jaegerSpan{}
	for _, sp := range spans {
		byID[sp.SpanID] = sp
	}
	parentOf := func(name string) string { return byID[s[name].parent()].OperationName }
	require.Empty(t, s["POST /v1/events/{topic}"].parent(), "the request is the root")
	require.Equal(t, "POST /v1/events/{topic}", parentOf("publish platform.user.invited"))
	require.Equal(t, "publish platform.user.invited", parentOf("inviteEmail platform.user.invited"))
	require.Equal(t, "inviteEmail platform.user.invited", parentOf("inviteEmail attempt"))
	require.Equal(t, "inviteEmail attempt", parentOf("publish platform.poison"))
	require.Equal(t, "publish platform.poison", parentOf("poisonStore platform.poison"))
	require.Equal(t, "poisonStore platform.poison", parentOf("poisonStore attempt"))

	attempt := s["inviteEmail attempt"]
	require.Equal(t, "1", attempt.tag("millrace.attempt"))
	require.Equal(t, "failed", attempt.tag("millrace.outcome"))
	require.Equal(t, "poisoned", s["inviteEmail platform.user.invited"].tag("millrace.outcome"))
	for _, handler := range []string{"inviteEmail attempt", "poisonStore attempt"} {
		sql := 0
		for _, sp := range spans {
			if strings.HasPrefix(sp.OperationName, "sql.") && sp.parent() == s[handler].SpanID {
				sql++
			}
		}
		require.NotZero(t, sql, "no SQL spans under %s", handler)
	}
}

func byName(spans []jaegerSpan, names ...string) map[string]jaegerSpan {
	out := map[string]jaegerSpan{}
	for _, s := range spans {
		for _, n := range names {
			if s.OperationName == n {
				out[n] = s
			}
		}
	}
	return out
}

func names(spans []jaegerSpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.OperationName)
	}
	return out
}

// The chain: a signed provider webhook whose handler emits a
// follow-up event that a second handler handles. The receiver writes the
// event to the outbox and the relay publishes it, so the trace crosses the
// database twice as well as the broker.
func TestWebhookTraceInJaegerEndToEnd(t *testing.T) {
	query, _, otlpHTTP := startJaeger(t)
	in := newInstance(t)
	in.env = append(in.env, "OTEL_EXPORTER_OTLP_ENDPOINT=http://"+otlpHTTP,
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf", "OTEL_BSP_SCHEDULE_DELAY=100",
		"OTEL_TRACES_SAMPLER=parentbased_always_on",
		"MILLRACE_CRON=false", "MILLRACE_CALMONY_WEBHOOK_SECRETS="+jaegerWebhookSecret)
	in.run(t, "demo")
	db := in.db(t)
	now := store.Now(time.Now())
	_, err := db.ExecContext(t.Context(), `INSERT INTO checkout_sessions (id, organisation_id,
		provider_session_id, purpose, ref_id, amount_pence, status, created_at, updated_at)
		VALUES ('c1', $1, 'cs_trace', 'subscription_invoice', 'in_trace', 4900, 'open', $2, $2)`,
		demo.OrganisationID, now)
	require.NoError(t, err)
	in.serve(t)

	body, err := json.Marshal(map[string]any{"id": "evt_trace", "type": "checkout.session.completed",
		"created": time.Now().Add(-time.Minute).Unix(), "data": map[string]any{"object": map[string]any{
			"id": "cs_trace", "object": "checkout.session", "mode": "payment",
			"payment_status": "paid", "payment_intent": "pi_trace", "amount_total": 4900,
			"currency": "gbp", "customer": "cus_trace"}}})
	require.NoError(t, err)
	status, err := calmonypaytest.SendWebhook("http://"+in.addr+"/webhooks/calmony-pay",
		jaegerWebhookSecret, body, time.Now())
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)

	const (
		first  = "calmonyPayCheckoutCompleted"
		second = "paymentCompletedSync"
	)
	want := []string{"POST /webhooks/calmony-pay",
		"publish billing.calmony.checkout_session.completed",
		first + " billing.calmony.checkout_session.completed", first + " attempt",
		"publish billing.payment.completed",
		second + " billing.payment.completed", second + " attempt"}
	var spans []jaegerSpan
	complete := assert.Eventually(t, func() bool {
		spans = traceOf(t, query, want[0])
		return len(byName(spans, want...)) == len(want)
	}, 30*time.Second, 200*time.Millisecond)
	if !complete {
		t.Fatalf("trace incomplete in jaeger, spans %v", names(spans))
	}
	checkChain(t, spans, want)
}

const jaegerWebhookSecret = "whsec_jaeger_e2e"

// checkChain asserts that each span in want is the child of the one before,
// the first being the root, and that each attempt has SQL spans under it.
func checkChain(t *testing.T, spans []jaegerSpan, want []string) {
	t.Helper()
	s := byName(spans, want...)
	byID := map[string]jaegerSpan{}
	for _, sp := range spans {
		byID[sp.SpanID] = sp
	}
	require.Empty(t, s[want[0]].parent(), "%s is the root", want[0])
	for i := 1; i < len(want); i++ {
		require.Equal(t, want[i-1], byID[s[want[i]].parent()].OperationName,
			"parent of %s", want[i])
	}
	for _, name := range want {
		if !strings.HasSuffix(name, " attempt") {
			continue
		}
		sql := 0
		for _, sp := range spans {
			if strings.HasPrefix(sp.OperationName, "sql.") && sp.parent() == s[name].SpanID {
				sql++
			}
		}
		require.NotZero(t, sql, "no SQL spans under %s", name)
	}
}
