package platform

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/job"
)

// tick builds the retry tick for the slot at.
func (f *webhookFixture) tick(at time.Time) job.Message {
	payload, err := json.Marshal(webhookRetryTick{
		ScheduledFor: at.UTC().Format(time.RFC3339), AsOf: at.Format(time.DateOnly),
	})
	require.NoError(f.t, err)
	return job.Message{ID: job.StableID(WebhookRetrySweep, at.String()),
		Topic: "platform.webhook.retry.tick", Payload: payload, Handler: WebhookRetrySweep}
}

// sweep runs the retry sweeper on msg with the clock at now.
func (f *webhookFixture) sweep(now time.Time, msg job.Message) error {
	return NewWebhookRetrySweep(f.deps(now)).Handle(context.Background(), msg)
}

func TestWebhookRetrySweepRequestsDueDeliveries(t *testing.T) {
	t.Parallel()
	f := newWebhookFixture(t, "https://hooks.example.com/in")
	at := func(d time.Duration) webhookDeliveryRow {
		r := webhookDeliveryRow{Attempt: 1}
		r.NextAttemptAt.Time, r.NextAttemptAt.Valid = webhookNow.Add(d), true
		return r
	}
	overdue := f.addDelivery(at(-time.Hour))
	dueNow := f.addDelivery(at(0))
	notYet := f.addDelivery(at(time.Second))
	inFlight := f.addDelivery(webhookDeliveryRow{Attempt: 1})
	finished := f.addDelivery(webhookDeliveryRow{Status: deliverySucceeded, Attempt: 1})

	require.NoError(t, f.sweep(webhookNow, f.tick(webhookNow)))

	events := f.outbox(topicWebhookDeliveryRequested)
	require.Len(t, events, 2)
	byID := map[string]job.Event{}
	for _, ev := range events {
		byID[ev.ID] = ev
	}
	for _, id := range []string{overdue, dueNow} {
		ev, ok := byID[job.StableID("webhook-delivery", id, "2")]
		require.True(t, ok, "delivery %s requested", id)
		var req webhookDeliveryRequest
		require.NoError(t, json.Unmarshal(ev.Payload, &req))
		require.Equal(t, f.message(id, 2).Payload, webhookJSON(t, req))
		require.Equal(t, f.orgID, ev.Metadata[job.MetaOrganisationID])
		got := f.delivery(id)
		require.False(t, got.NextAttemptAt.Valid, "cleared so the next tick skips it")
		require.Equal(t, 1, got.Attempt)
		require.Equal(t, deliveryPending, got.Status)
	}
	require.True(t, f.delivery(notYet).NextAttemptAt.Valid)
	require.Equal(t, deliveryPending, f.delivery(inFlight).Status)
	require.Equal(t, deliverySucceeded, f.delivery(finished).Status)

	// The next tick finds nothing left to request.
	next := webhookNow.Add(time.Minute)
	require.NoError(t, f.sweep(webhookNow, f.tick(next)))
	require.Len(t, f.outbox(topicWebhookDeliveryRequested), 2)
}

func TestWebhookRetrySweepClaimsEachTickOnce(t *testing.T) {
	t.Parallel()
	f := newWebhookFixture(t, "https://hooks.example.com/in")
	due := webhookDeliveryRow{Attempt: 1}
	due.NextAttemptAt.Time, due.NextAttemptAt.Valid = webhookNow, true
	f.addDelivery(due)
	tick := f.tick(webhookNow)
	require.NoError(t, f.sweep(webhookNow, tick))

	late := f.addDelivery(due)
	require.NoError(t, f.sweep(webhookNow, tick), "a redelivered tick is a no-op")
	require.Len(t, f.outbox(topicWebhookDeliveryRequested), 1)
	require.True(t, f.delivery(late).NextAttemptAt.Valid)
}

func TestWebhookRetrySweepEmitsStableIDs(t *testing.T) {
	t.Parallel()
	f := newWebhookFixture(t, "https://hooks.example.com/in")
	due := webhookDeliveryRow{Attempt: 3}
	due.NextAttemptAt.Time, due.NextAttemptAt.Valid = webhookNow, true
	id := f.addDelivery(due)
	require.NoError(t, f.sweep(webhookNow, f.tick(webhookNow)))

	// Put it back as if the clearing had been lost: a second request of the
	// same attempt is the same event, which the outbox keeps once.
	f.exec(`UPDATE webhook_deliveries SET next_attempt_at = $1 WHERE id = $2`, webhookNow, id)
	require.NoError(t, f.sweep(webhookNow, f.tick(webhookNow.Add(time.Minute))))

	events := f.outbox(topicWebhookDeliveryRequested)
	require.Len(t, events, 1)
	require.Equal(t, job.StableID("webhook-delivery", id, "4"), events[0].ID)
}

func TestWebhookRetrySweepWorksThroughBatches(t *testing.T) {
	t.Parallel()
	f := newWebhookFixture(t, "https://hooks.example.com/in")
	due := webhookDeliveryRow{Attempt: 1}
	due.NextAttemptAt.Time, due.NextAttemptAt.Valid = webhookNow, true
	for range 8 {
		f.addDelivery(due)
	}
	sweep := func(tick job.Message) {
		h := NewWebhookRetrySweep(f.deps(webhookNow)).(*webhookRetrySweep)
		h.batch, h.maxBatches = 3, 2
		require.NoError(t, h.Handle(context.Background(), tick))
	}

	sweep(f.tick(webhookNow))
	require.Len(t, f.outbox(topicWebhookDeliveryRequested), 6, "two batches of three")
	require.Equal(t, 2, f.count(`SELECT COUNT(*) FROM webhook_deliveries
		WHERE next_attempt_at IS NOT NULL`), "left for the next tick")

	sweep(f.tick(webhookNow.Add(time.Minute)))
	require.Len(t, f.outbox(topicWebhookDeliveryRequested), 8)
	require.Zero(t, f.count(`SELECT COUNT(*) FROM webhook_deliveries
		WHERE next_attempt_at IS NOT NULL`))
}

func TestWebhookRetrySweepSettlesRowsItCannotRequest(t *testing.T) {
	t.Parallel()
	f := newWebhookFixture(t, "https://hooks.example.com/in")
	exhausted := webhookDeliveryRow{Attempt: webhookMaxAttempts}
	exhausted.NextAttemptAt.Time, exhausted.NextAttemptAt.Valid = webhookNow, true
	id := f.addDelivery(exhausted)
	bad := f.addDelivery(webhookDeliveryRow{Attempt: 1, NextAttemptAt: exhausted.NextAttemptAt})
	f.exec(`UPDATE webhook_deliveries SET event_type = '' WHERE id = $1`, bad)

	require.NoError(t, f.sweep(webhookNow, f.tick(webhookNow)))

	require.Empty(t, f.outbox(topicWebhookDeliveryRequested))
	got := f.delivery(id)
	require.Equal(t, deliveryAbandoned, got.Status)
	require.Equal(t, "retries exhausted", got.LastError.String)
	require.False(t, got.NextAttemptAt.Valid)
	require.Equal(t, deliveryFailed, f.delivery(bad).Status)
}

func TestWebhookRetrySweepRejectsMalformedTicks(t *testing.T) {
	t.Parallel()
	f := newWebhookFixture(t, "https://hooks.example.com/in")
	due := webhookDeliveryRow{Attempt: 1}
	due.NextAttemptAt.Time, due.NextAttemptAt.Valid = webhookNow, true
	id := f.addDelivery(due)
	good := f.tick(webhookNow)

	notJSON := good
	notJSON.Payload = []byte(`[`)
	badSlot := good
	badSlot.Payload = []byte(`{"scheduled_for":"yesterday","as_of":"2026-12-03"}`)
	noID := good
	noID.ID = ""
	for name, msg := range map[string]job.Message{"not JSON": notJSON,
		"bad scheduled_for": badSlot, "no message id": noID} {
		t.Run(name, func(t *testing.T) {
			err := f.sweep(webhookNow, msg)
			require.Equal(t, job.ClassPermanent, job.Classify(err))
		})
	}
	require.True(t, f.delivery(id).NextAttemptAt.Valid)
	f.requireNothingWritten()
}

func webhookJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}
