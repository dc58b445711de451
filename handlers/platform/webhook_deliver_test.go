package platform

import (
	"database/sql"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/providers/webhooks"
)

func TestWebhookDeliverSuccess(t *testing.T) {
	t.Parallel()
	rcv := newWebhookReceiver(t, webhookAnswer{status: http.StatusAccepted})
	f := newWebhookFixture(t, rcv.URL+"/hooks")
	f.exec(`UPDATE webhook_endpoints SET consecutive_failures = 3, failing_since = $1`,
		webhookNow.Add(-time.Hour))
	id := f.addDelivery(webhookDeliveryRow{})
	msg := f.message(id, 1)

	require.NoError(t, f.deliver(webhookNow, msg))

	calls := rcv.calls()
	require.Len(t, calls, 1)
	require.NoError(t, webhooks.Verify([]string{f.secret}, calls[0].header, calls[0].body,
		webhookNow, 0))
	var req webhookDeliveryRequest
	require.NoError(t, json.Unmarshal(msg.Payload, &req))
	require.Equal(t, req.EventID, calls[0].header.Get("Webhook-Id"))
	require.JSONEq(t, `{"id":"`+req.EventID+`","type":"tenancy.created",
		"created":`+strconv.FormatInt(webhookNow.Add(-time.Minute).Unix(), 10)+`,
		"organisation_id":"`+f.orgID+`","data":{"tenancy_id":"t-1","status":"active"}}`,
		string(calls[0].body))

	got := f.delivery(id)
	require.Equal(t, deliverySucceeded, got.Status)
	require.Equal(t, 1, got.Attempt)
	require.Equal(t, int64(http.StatusAccepted), got.LastStatusCode.Int64)
	require.False(t, got.LastError.Valid)
	require.False(t, got.NextAttemptAt.Valid)
	require.True(t, got.DeliveredAt.Time.Equal(webhookNow))
	ep := f.endpoint()
	require.Zero(t, ep.ConsecutiveFailures)
	require.False(t, ep.FailingSince.Valid)
}

func TestWebhookDeliverSignsWithBothSecretsDuringRotation(t *testing.T) {
	t.Parallel()
	rcv := newWebhookReceiver(t)
	f := newWebhookFixture(t, rcv.URL)
	previous, err := webhooks.GenerateSecret()
	require.NoError(t, err)
	sealed, err := webhooks.SealSecret(f.key, previous)
	require.NoError(t, err)
	f.exec(`UPDATE webhook_endpoints SET previous_secret_enc = $1`, sealed)
	id := f.addDelivery(webhookDeliveryRow{})

	require.NoError(t, f.deliver(webhookNow, f.message(id, 1)))

	calls := rcv.calls()
	require.Len(t, calls, 1)
	for _, s := range []string{f.secret, previous} {
		require.NoError(t, webhooks.Verify([]string{s}, calls[0].header, calls[0].body,
			webhookNow, 0))
	}
}

func TestWebhookDeliverRetriesThroughTheSweep(t *testing.T) {
	t.Parallel()
	rcv := newWebhookReceiver(t, webhookAnswer{status: http.StatusInternalServerError})
	f := newWebhookFixture(t, rcv.URL)
	id := f.addDelivery(webhookDeliveryRow{})

	require.NoError(t, f.deliver(webhookNow, f.message(id, 1)), "a failed endpoint is data")
	got := f.delivery(id)
	require.Equal(t, deliveryPending, got.Status)
	require.Equal(t, 1, got.Attempt)
	require.Equal(t, int64(500), got.LastStatusCode.Int64)
	require.Equal(t, "endpoint answered 500 Internal Server Error", got.LastError.String)
	require.True(t, got.NextAttemptAt.Time.Equal(webhookNow.Add(time.Minute)))
	ep := f.endpoint()
	require.Equal(t, 1, ep.ConsecutiveFailures)
	require.True(t, ep.FailingSince.Time.Equal(webhookNow))

	retryAt := webhookNow.Add(time.Minute)
	require.NoError(t, f.sweep(retryAt, f.tick(retryAt)))
	requested := f.outbox(topicWebhookDeliveryRequested)
	require.Len(t, requested, 1)
	require.Equal(t, job.StableID("webhook-delivery", id, "2"), requested[0].ID)

	msg := job.Message{ID: requested[0].ID, Topic: requested[0].Topic,
		Payload: requested[0].Payload, Metadata: requested[0].Metadata, Handler: WebhookDeliver}
	require.NoError(t, f.deliver(retryAt, msg))

	require.Len(t, rcv.calls(), 2)
	got = f.delivery(id)
	require.Equal(t, deliverySucceeded, got.Status)
	require.Equal(t, 2, got.Attempt)
	require.Zero(t, f.endpoint().ConsecutiveFailures)
}

func TestWebhookDeliverHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, retryAfter string
		attempt          int
		wait             time.Duration
	}{
		{"longer than the schedule", "600", 1, 10 * time.Minute},
		{"capped at an hour", "86400", 1, time.Hour},
		{"shorter than the schedule", "30", 1, time.Minute},
		{"as an HTTP date", webhookNow.Add(20 * time.Minute).Format(http.TimeFormat), 2,
			20 * time.Minute},
		{"absent", "", 3, 30 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rcv := newWebhookReceiver(t, webhookAnswer{status: http.StatusTooManyRequests,
				retryAfter: tc.retryAfter})
			f := newWebhookFixture(t, rcv.URL)
			id := f.addDelivery(webhookDeliveryRow{Attempt: tc.attempt - 1})

			require.NoError(t, f.deliver(webhookNow, f.message(id, tc.attempt)))

			got := f.delivery(id)
			require.Equal(t, deliveryPending, got.Status)
			require.Equal(t, int64(429), got.LastStatusCode.Int64)
			require.True(t, got.NextAttemptAt.Time.Equal(webhookNow.Add(tc.wait)),
				"next attempt at %v", got.NextAttemptAt.Time)
		})
	}
}

func TestWebhookDeliverGoneDisablesTheEndpoint(t *testing.T) {
	t.Parallel()
	rcv := newWebhookReceiver(t, webhookAnswer{status: http.StatusGone})
	f := newWebhookFixture(t, rcv.URL)
	id := f.addDelivery(webhookDeliveryRow{})

	require.NoError(t, f.deliver(webhookNow, f.message(id, 1)))

	got := f.delivery(id)
	require.Equal(t, deliveryFailed, got.Status)
	require.False(t, got.NextAttemptAt.Valid)
	ep := f.endpoint()
	require.False(t, ep.Enabled)
	require.Equal(t, disabledGone, ep.DisabledReason.String)
	f.requireDisabledEvent(disabledGone)
}

func TestWebhookDeliverDisablesAfterRepeatedFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		failures     int
		failingSince time.Time
		reason       string // "" stays enabled
	}{
		{"14th failure in a row", 13, webhookNow.Add(-time.Hour), ""},
		{"15th failure in a row", 14, webhookNow.Add(-time.Hour), disabledConsecutiveFailures},
		{"failing for almost five days", 2, webhookNow.Add(-119 * time.Hour), ""},
		{"failing for five days", 2, webhookNow.Add(-120 * time.Hour), disabledFailingForDays},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rcv := newWebhookReceiver(t, webhookAnswer{status: http.StatusBadGateway})
			f := newWebhookFixture(t, rcv.URL)
			f.exec(`UPDATE webhook_endpoints SET consecutive_failures = $1, failing_since = $2`,
				tc.failures, tc.failingSince)
			id := f.addDelivery(webhookDeliveryRow{})

			require.NoError(t, f.deliver(webhookNow, f.message(id, 1)))

			ep := f.endpoint()
			require.Equal(t, tc.failures+1, ep.ConsecutiveFailures)
			require.True(t, ep.FailingSince.Time.Equal(tc.failingSince), "streak start kept")
			got := f.delivery(id)
			if tc.reason == "" {
				require.True(t, ep.Enabled)
				require.Equal(t, deliveryPending, got.Status)
				require.Empty(t, f.outbox(topicWebhookEndpointDisabled))
				return
			}
			require.False(t, ep.Enabled)
			require.Equal(t, tc.reason, ep.DisabledReason.String)
			require.Equal(t, deliveryAbandoned, got.Status, "no retry can reach it")
			require.False(t, got.NextAttemptAt.Valid)
			f.requireDisabledEvent(tc.reason)
		})
	}
}

func TestWebhookDeliverPermanentAnswersFail(t *testing.T) {
	t.Parallel()
	for _, code := range []int{400, 401, 403, 404, 405, 413, 422} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			t.Parallel()
			rcv := newWebhookReceiver(t, webhookAnswer{status: code})
			f := newWebhookFixture(t, rcv.URL)
			id := f.addDelivery(webhookDeliveryRow{})

			require.NoError(t, f.deliver(webhookNow, f.message(id, 1)))

			got := f.delivery(id)
			require.Equal(t, deliveryFailed, got.Status)
			require.Equal(t, 1, got.Attempt)
			require.Equal(t, int64(code), got.LastStatusCode.Int64)
			require.False(t, got.NextAttemptAt.Valid)
			ep := f.endpoint()
			require.True(t, ep.Enabled)
			require.Equal(t, 1, ep.ConsecutiveFailures)
		})
	}
}

func TestWebhookDeliverAbandonsUnsendableDeliveries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		update string
		reason string
	}{
		{"endpoint disabled", `UPDATE webhook_endpoints SET enabled = FALSE`,
			"endpoint disabled"},
		{"event type not subscribed",
			`UPDATE webhook_endpoints SET event_types = '["tenancy.ended"]'`,
			"endpoint does not subscribe to tenancy.created"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rcv := newWebhookReceiver(t)
			f := newWebhookFixture(t, rcv.URL)
			f.exec(tc.update)
			id := f.addDelivery(webhookDeliveryRow{})

			require.NoError(t, f.deliver(webhookNow, f.message(id, 1)))

			require.Empty(t, rcv.calls())
			got := f.delivery(id)
			require.Equal(t, deliveryAbandoned, got.Status)
			require.Equal(t, tc.reason, got.LastError.String)
			require.Zero(t, got.Attempt)
			require.Zero(t, f.endpoint().ConsecutiveFailures)
		})
	}
}

func TestWebhookDeliverDuplicateMessageCallsOnce(t *testing.T) {
	t.Parallel()
	rcv := newWebhookReceiver(t, webhookAnswer{status: http.StatusServiceUnavailable})
	f := newWebhookFixture(t, rcv.URL)
	id := f.addDelivery(webhookDeliveryRow{})
	msg := f.message(id, 1)

	require.NoError(t, f.deliver(webhookNow, msg))
	claims := f.count(`SELECT COUNT(*) FROM processed_messages`)
	// Redelivered, even once the retry is due: the same delivery_id:attempt.
	require.NoError(t, f.deliver(webhookNow.Add(time.Hour), msg))

	require.Len(t, rcv.calls(), 1)
	got := f.delivery(id)
	require.Equal(t, 1, got.Attempt)
	require.Equal(t, 1, f.endpoint().ConsecutiveFailures)
	require.Equal(t, claims, f.count(`SELECT COUNT(*) FROM processed_messages`))
	require.Equal(t, 1, f.count(`SELECT COUNT(*) FROM processed_messages
		WHERE handler = $1 AND idempotency_key = $2`, WebhookDeliver, id+":1"))
}

func TestWebhookDeliverSkipsWithoutWriting(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		row     webhookDeliveryRow
		attempt int
	}{
		{"stale attempt", webhookDeliveryRow{Attempt: 2}, 2},
		{"attempt from the future", webhookDeliveryRow{Attempt: 0}, 3},
		{"already succeeded", webhookDeliveryRow{Status: deliverySucceeded, Attempt: 1}, 2},
		{"already failed", webhookDeliveryRow{Status: deliveryFailed, Attempt: 1}, 2},
		{"already abandoned", webhookDeliveryRow{Status: deliveryAbandoned, Attempt: 8}, 9},
		{"not yet due", webhookDeliveryRow{Attempt: 1, NextAttemptAt: sql.NullTime{
			Time: webhookNow.Add(time.Minute), Valid: true}}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rcv := newWebhookReceiver(t)
			f := newWebhookFixture(t, rcv.URL)
			id := f.addDelivery(tc.row)
			before := f.delivery(id)

			require.NoError(t, f.deliver(webhookNow, f.message(id, tc.attempt)))

			require.Empty(t, rcv.calls())
			require.Equal(t, before, f.delivery(id))
			f.requireNothingWritten()
		})
	}
}

func TestWebhookDeliverAbandonsWhenTheScheduleIsExhausted(t *testing.T) {
	t.Parallel()
	rcv := newWebhookReceiver(t, webhookAnswer{status: http.StatusInternalServerError})
	f := newWebhookFixture(t, rcv.URL)
	last := webhookMaxAttempts
	id := f.addDelivery(webhookDeliveryRow{Attempt: last - 1})

	require.NoError(t, f.deliver(webhookNow, f.message(id, last)))

	got := f.delivery(id)
	require.Equal(t, deliveryAbandoned, got.Status)
	require.Equal(t, last, got.Attempt)
	require.False(t, got.NextAttemptAt.Valid)
	require.Equal(t, "endpoint answered 500 Internal Server Error; retries exhausted",
		got.LastError.String)
}

func TestWebhookDeliverRefusesNonPublicEndpoints(t *testing.T) {
	t.Parallel()
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter,
		*http.Request) {
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	require.NoError(t, err)

	f := newWebhookFixture(t, "https://127.0.0.1:"+port+"/hooks")
	f.client = webhooks.NewClient(webhooks.Config{})
	id := f.addDelivery(webhookDeliveryRow{})

	require.NoError(t, f.deliver(webhookNow, f.message(id, 1)))

	require.Zero(t, conns.Load())
	got := f.delivery(id)
	require.Equal(t, deliveryFailed, got.Status)
	require.False(t, got.LastStatusCode.Valid)
	require.Contains(t, got.LastError.String, "webhook address is not public")
	require.Contains(t, got.LastError.String, "127.0.0.1")
	require.False(t, got.NextAttemptAt.Valid)
}

// requireNothingWritten asserts that no message was claimed and no event
// emitted.
func (f *webhookFixture) requireNothingWritten() {
	f.t.Helper()
	require.Zero(f.t, f.count(`SELECT COUNT(*) FROM processed_messages`))
	require.Zero(f.t, f.count(`SELECT COUNT(*) FROM outbox`))
}

// requireDisabledEvent asserts that exactly one endpoint.disabled event
// was emitted, for the fixture's endpoint and reason.
func (f *webhookFixture) requireDisabledEvent(reason string) {
	f.t.Helper()
	events := f.outbox(topicWebhookEndpointDisabled)
	require.Len(f.t, events, 1)
	var got map[string]string
	require.NoError(f.t, json.Unmarshal(events[0].Payload, &got))
	require.Equal(f.t, map[string]string{
		"organisation_id": f.orgID, "endpoint_id": f.endpointID, "reason": reason,
		"disabled_at": webhookNow.Format(time.RFC3339),
	}, got)
	require.Equal(f.t, f.orgID, events[0].Metadata[job.MetaOrganisationID])
}
