package router

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/millrace/millrace/handlers/billing"
	"github.com/millrace/millrace/providers/calmonypay"
	"github.com/millrace/millrace/store"
)

// A signed provider webhook's story is one trace although the receiver
// writes the event to the outbox and the relay publishes it later: the HTTP
// span, the relay's publish under it, the handler's delivery and attempt
// under that, with its SQL and its call to the provider.
func TestWebhookTraceCrossesTheOutbox(t *testing.T) {
	rec := spanRecorder()
	w := newBillingWorld(t)
	ctx := context.Background()
	org := "8a4c9a52-3f0e-4a43-9d0e-3c2b1f6e7a10"
	now := store.Now(time.Now())
	_, err := w.db.ExecContext(ctx, `INSERT INTO organisations (id, name, created_at)
		VALUES ($1, 'Acme', $2)`, org, now)
	require.NoError(t, err)
	_, err = w.db.ExecContext(ctx, `INSERT INTO checkout_sessions (id, organisation_id,
		provider_session_id, purpose, status, created_at, updated_at)
		VALUES ('c1', $1, 'cs_1', 'subscription', 'open', $2, $2)`, org, now)
	require.NoError(t, err)
	w.fake.SetSubscription(calmonypay.Subscription{ID: "sub_1", Customer: "cus_1",
		Status: "active", DefaultPaymentMethod: "pm_1"})
	w.webhook(t, map[string]any{"id": "evt_trace", "type": "checkout.session.completed",
		"created": time.Now().Add(-time.Minute).Unix(), "data": map[string]any{"object": map[string]any{
			"id": "cs_1", "mode": "subscription", "customer": "cus_1", "subscription": "sub_1"}}})

	const (
		delivery = "calmonyPayCheckoutCompleted billing.calmony.checkout_session.completed"
		linked   = "publish " + billing.TopicSubscriptionLinked
	)
	var spans map[string][]sdktrace.ReadOnlySpan
	require.Eventually(t, func() bool {
		for _, s := range rec.Ended() {
			if s.Name() == "POST /webhooks/calmony-pay" {
				spans = spansOf(rec, s.SpanContext().TraceID())
			}
		}
		return len(spans[delivery]) == 1 && len(spans[linked]) == 1
	}, 15*time.Second, 10*time.Millisecond, "trace incomplete")

	server := spans["POST /webhooks/calmony-pay"][0]
	require.Equal(t, trace.SpanKindServer, server.SpanKind())
	publish := spans["publish billing.calmony.checkout_session.completed"]
	require.Len(t, publish, 1)
	require.Equal(t, server.SpanContext().SpanID(), publish[0].Parent().SpanID())
	require.Equal(t, publish[0].SpanContext().SpanID(), spans[delivery][0].Parent().SpanID())
	attempt := spans["calmonyPayCheckoutCompleted attempt"]
	require.Len(t, attempt, 1)
	require.Equal(t, spans[delivery][0].SpanContext().SpanID(), attempt[0].Parent().SpanID())
	var sql int
	for _, s := range spans["sql.conn.exec"] {
		if s.Parent().SpanID() == attempt[0].SpanContext().SpanID() {
			sql++
		}
	}
	require.NotZero(t, sql, "the handler's SQL is under its attempt")
	call := spans["calmony-pay GET"]
	require.Len(t, call, 1, "the provider call is traced")
	require.Equal(t, attempt[0].SpanContext().SpanID(), call[0].Parent().SpanID())
	require.Equal(t, attempt[0].SpanContext().SpanID(), spans[linked][0].Parent().SpanID(),
		"the event the handler emitted is published in its trace")
}
