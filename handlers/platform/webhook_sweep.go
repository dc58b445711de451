package platform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/schemas"
	"github.com/millrace/millrace/store"
)

// A sweep reads due deliveries in batches of webhookSweepBatch, each in its
// own transaction so the one SQLite writer is never held for long, and stops
// after webhookSweepMaxBatches: the next tick resumes where it stopped,
// because what is due is read from the rows, not remembered.
const (
	webhookSweepBatch      = 500
	webhookSweepMaxBatches = 20
)

// webhookRetryTick is the payload of platform.webhook.retry.tick.
type webhookRetryTick struct {
	ScheduledFor string `json:"scheduled_for"`
	AsOf         string `json:"as_of"`
	CatchUp      bool   `json:"catch_up"`
	Manual       bool   `json:"manual"`
}

// dueWebhookDelivery is a pending delivery whose next attempt is due.
type dueWebhookDelivery struct {
	ID, OrganisationID, EndpointID, EventID, EventType string
	Attempt                                            int
}

type webhookRetrySweep struct {
	d          Deps
	clock      job.Clock
	log        *slog.Logger
	batch      int // rows per transaction
	maxBatches int // transactions per tick
}

// NewWebhookRetrySweep returns the handler of platform.webhook.retry.tick:
// it requests the next attempt of every pending delivery whose
// next_attempt_at has passed, and clears next_attempt_at in the same
// transaction so that the next tick does not request it again. The event
// id is derived from the delivery and attempt, so requesting twice is
// harmless anyway.
func NewWebhookRetrySweep(d Deps) job.Handler {
	return &webhookRetrySweep{d: d, clock: webhookClock(d), log: webhookLogger(d),
		batch: webhookSweepBatch, maxBatches: webhookSweepMaxBatches}
}

// Handle implements job.Handler.
func (h *webhookRetrySweep) Handle(ctx context.Context, msg job.Message) error {
	var tick webhookRetryTick
	if err := json.Unmarshal(msg.Payload, &tick); err != nil {
		return job.Permanentf("decode webhook retry tick: %w", err)
	}
	if _, err := time.Parse(time.RFC3339, tick.ScheduledFor); err != nil {
		return job.Permanentf("decode webhook retry tick: scheduled_for: %w", err)
	}
	if msg.ID == "" {
		return job.Permanentf("decode webhook retry tick: message has no id")
	}
	ctx = webhookMessageContext(ctx, msg)
	name := webhookHandlerName(msg, WebhookRetrySweep)
	now := h.clock.Now()

	var after string
	requested := 0
	for batch := range h.maxBatches {
		var n int
		sweep := func(tx *store.Tx) error {
			var err error
			n, after, err = h.sweepBatch(ctx, tx, now, after)
			return err
		}
		var err error
		if batch == 0 {
			// The first batch claims the tick: a redelivered tick stops here.
			err = h.d.DB.Handle(ctx, name, msg.ID, sweep)
		} else {
			err = h.d.DB.InTx(ctx, sweep)
		}
		if errors.Is(err, store.ErrAlreadyProcessed) {
			return nil
		}
		if err != nil {
			return err
		}
		requested += n
		if n < h.batch {
			break
		}
	}
	h.log.DebugContext(ctx, "webhook retry sweep done", slog.String("handler", name),
		slog.Int("requested", requested), slog.Bool("catch_up", tick.CatchUp))

	return nil
}

// sweepBatch handles up to one batch of due deliveries after the id after,
// and returns how many it read and the last id.
func (h *webhookRetrySweep) sweepBatch(ctx context.Context, tx *store.Tx, now time.Time,
	after string) (int, string, error) {
	due, err := loadDueWebhookDeliveries(ctx, tx, now, after, h.batch)
	if err != nil {
		return 0, after, err
	}
	for _, dd := range due {
		if err := h.requestAttempt(ctx, tx, dd); err != nil {
			return 0, after, err
		}
	}
	if len(due) > 0 {
		after = due[len(due)-1].ID
	}

	return len(due), after, nil
}

// requestAttempt emits the delivery's next attempt and clears its
// next_attempt_at. A delivery out of attempts is abandoned instead, and one
// whose row cannot make a valid request is failed rather than blocking
// every later sweep.
func (h *webhookRetrySweep) requestAttempt(ctx context.Context, tx *store.Tx,
	dd dueWebhookDelivery) error {
	if dd.Attempt >= webhookMaxAttempts {
		return settleDueWebhookDelivery(ctx, tx, dd, deliveryAbandoned, "retries exhausted")
	}
	next := dd.Attempt + 1
	_, err := tx.Emit(ctx, topicWebhookDeliveryRequested, webhookDeliveryRequest{
		DeliveryID: dd.ID, EndpointID: dd.EndpointID, EventID: dd.EventID,
		EventType: dd.EventType, OrganisationID: dd.OrganisationID, Attempt: next,
	}, store.EmitOpts{ID: job.StableID("webhook-delivery", dd.ID, strconv.Itoa(next))})
	var invalid *schemas.ValidationError
	if errors.As(err, &invalid) {
		h.log.WarnContext(ctx, "webhook delivery cannot be requested",
			slog.String("delivery_id", dd.ID), slog.String("organisation_id", dd.OrganisationID))
		return settleDueWebhookDelivery(ctx, tx, dd, deliveryFailed,
			"delivery row cannot form a valid request")
	}
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE webhook_deliveries SET next_attempt_at = NULL
		WHERE id = $1 AND organisation_id = $2 AND status = $3 AND attempt = $4`,
		dd.ID, dd.OrganisationID, deliveryPending, dd.Attempt)
	if err != nil {
		return fmt.Errorf("clear webhook next attempt: %w", err)
	}
	return nil
}

func loadDueWebhookDeliveries(ctx context.Context, tx *store.Tx, now time.Time,
	after string, limit int) ([]dueWebhookDelivery, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, organisation_id, endpoint_id, event_id,
		event_type, attempt
		FROM webhook_deliveries
		WHERE status = $1 AND next_attempt_at IS NOT NULL AND next_attempt_at <= $2
			AND id > $3
		ORDER BY id LIMIT $4`, deliveryPending, store.Now(now), after, limit)
	if err != nil {
		return nil, fmt.Errorf("load due webhook deliveries: %w", err)
	}
	defer rows.Close()
	var due []dueWebhookDelivery
	for rows.Next() {
		var dd dueWebhookDelivery
		if err := rows.Scan(&dd.ID, &dd.OrganisationID, &dd.EndpointID, &dd.EventID,
			&dd.EventType, &dd.Attempt); err != nil {
			return nil, fmt.Errorf("load due webhook deliveries: %w", err)
		}
		due = append(due, dd)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load due webhook deliveries: %w", err)
	}
	return due, nil
}

// settleDueWebhookDelivery ends a due delivery without another attempt.
func settleDueWebhookDelivery(ctx context.Context, tx *store.Tx, dd dueWebhookDelivery,
	status, reason string) error {
	_, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries
		SET status = $1, last_error = $2, next_attempt_at = NULL
		WHERE id = $3 AND organisation_id = $4 AND status = $5 AND attempt = $6`,
		status, reason, dd.ID, dd.OrganisationID, deliveryPending, dd.Attempt)
	if err != nil {
		return fmt.Errorf("settle webhook delivery: %w", err)
	}
	return nil
}
