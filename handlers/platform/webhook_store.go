package platform

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/store"
)

// webhookDelivery is the webhook_deliveries row a message asks to send.
type webhookDelivery struct {
	ID, OrganisationID, EndpointID string
	EventID, EventType             string
	Payload                        string
	Status                         string
	Attempt                        int
	NextAttemptAt                  sql.NullTime
	CreatedAt                      time.Time
}

// webhookEndpoint is the customer endpoint a delivery goes to.
type webhookEndpoint struct {
	ID, OrganisationID string
	URL                string
	SecretEnc          string
	PreviousSecretEnc  sql.NullString
	EventTypes         string // JSON array
	Enabled            bool
}

// loadWebhookDelivery returns the delivery, or nil when the organisation
// has no such delivery.
func loadWebhookDelivery(ctx context.Context, db *store.DB, orgID, id string) (
	*webhookDelivery, error) {
	d := webhookDelivery{ID: id, OrganisationID: orgID}
	err := db.QueryRowContext(ctx, `SELECT endpoint_id, event_id, event_type, payload,
		status, attempt, next_attempt_at, created_at
		FROM webhook_deliveries WHERE id = $1 AND organisation_id = $2`, id, orgID).Scan(
		&d.EndpointID, &d.EventID, &d.EventType, &d.Payload,
		&d.Status, &d.Attempt, &d.NextAttemptAt, &d.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load webhook delivery: %w", err)
	}
	return &d, nil
}

// loadWebhookEndpoint returns the endpoint, or nil when it was deleted.
func loadWebhookEndpoint(ctx context.Context, db *store.DB, orgID, id string) (
	*webhookEndpoint, error) {
	e := webhookEndpoint{ID: id, OrganisationID: orgID}
	err := db.QueryRowContext(ctx, `SELECT url, secret_enc, previous_secret_enc,
		event_types, enabled
		FROM webhook_endpoints WHERE id = $1 AND organisation_id = $2`, id, orgID).Scan(
		&e.URL, &e.SecretEnc, &e.PreviousSecretEnc, &e.EventTypes, &e.Enabled)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load webhook endpoint: %w", err)
	}
	return &e, nil
}

// subscribes reports whether the endpoint asked for eventType.
func (e *webhookEndpoint) subscribes(eventType string) (bool, error) {
	var types []string
	if err := json.Unmarshal([]byte(e.EventTypes), &types); err != nil {
		return false, fmt.Errorf("read event types of endpoint %s: %w", e.ID, err)
	}
	for _, t := range types {
		if t == eventType {
			return true, nil
		}
	}
	return false, nil
}

// abandonWebhookDelivery gives up on a delivery that was never sent because
// its endpoint cannot take it. It reports false when the row moved on since
// it was read.
func abandonWebhookDelivery(ctx context.Context, tx *store.Tx, d *webhookDelivery,
	reason string) (bool, error) {
	res, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries
		SET status = $1, last_error = $2, next_attempt_at = NULL
		WHERE id = $3 AND organisation_id = $4 AND status = $5 AND attempt = $6`,
		deliveryAbandoned, reason, d.ID, d.OrganisationID, deliveryPending, d.Attempt)
	if err != nil {
		return false, fmt.Errorf("abandon webhook delivery: %w", err)
	}
	return webhookRowUpdated(res)
}

// recordWebhookAttempt writes the outcome of attempt to the delivery row,
// provided the row is still pending at the attempt before. It reports false
// when another delivery of the same message got there first.
func recordWebhookAttempt(ctx context.Context, tx *store.Tx, d *webhookDelivery, attempt int,
	o webhookOutcome, now time.Time) (bool, error) {
	var next, delivered, code any
	if !o.NextAttempt.IsZero() {
		next = store.Now(o.NextAttempt)
	}
	if o.Status == deliverySucceeded {
		delivered = store.Now(now)
	}
	if o.StatusCode != 0 {
		code = o.StatusCode
	}
	res, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries
		SET status = $1, attempt = $2, next_attempt_at = $3, last_status_code = $4,
			last_error = $5, delivered_at = $6
		WHERE id = $7 AND organisation_id = $8 AND status = $9 AND attempt = $10`,
		o.Status, attempt, next, code, store.Nullable(o.Error), delivered,
		d.ID, d.OrganisationID, deliveryPending, attempt-1)
	if err != nil {
		return false, fmt.Errorf("record webhook attempt: %w", err)
	}
	return webhookRowUpdated(res)
}

// resetWebhookFailures clears an endpoint's failure streak after a success.
func resetWebhookFailures(ctx context.Context, tx *store.Tx, e *webhookEndpoint) error {
	_, err := tx.ExecContext(ctx, `UPDATE webhook_endpoints
		SET consecutive_failures = 0, failing_since = NULL
		WHERE id = $1 AND organisation_id = $2`, e.ID, e.OrganisationID)
	if err != nil {
		return fmt.Errorf("reset webhook failures: %w", err)
	}
	return nil
}

// countWebhookFailure adds a failure to the endpoint's streak and returns
// the streak's length and start.
func countWebhookFailure(ctx context.Context, tx *store.Tx, e *webhookEndpoint,
	now time.Time) (int, time.Time, error) {
	var failures int
	var since sql.NullTime
	err := tx.QueryRowContext(ctx, `UPDATE webhook_endpoints
		SET consecutive_failures = consecutive_failures + 1,
			failing_since = COALESCE(failing_since, $1)
		WHERE id = $2 AND organisation_id = $3
		RETURNING consecutive_failures, failing_since`,
		store.Now(now), e.ID, e.OrganisationID).Scan(&failures, &since)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("count webhook failure: %w", err)
	}
	return failures, since.Time, nil
}

// disableWebhookEndpoint disables an enabled endpoint and emits
// endpoint.disabled in the same transaction. It reports false when the
// endpoint was disabled already, in which case nothing is emitted.
func disableWebhookEndpoint(ctx context.Context, tx *store.Tx, e *webhookEndpoint,
	reason, cause string, now time.Time) (bool, error) {
	res, err := tx.ExecContext(ctx, `UPDATE webhook_endpoints
		SET enabled = $1, disabled_reason = $2
		WHERE id = $3 AND organisation_id = $4 AND enabled = $5`,
		false, reason, e.ID, e.OrganisationID, true)
	if err != nil {
		return false, fmt.Errorf("disable webhook endpoint: %w", err)
	}
	if ok, err := webhookRowUpdated(res); !ok || err != nil {
		return false, err
	}
	_, err = tx.Emit(ctx, topicWebhookEndpointDisabled, map[string]string{
		"organisation_id": e.OrganisationID,
		"endpoint_id":     e.ID,
		"reason":          reason,
		"disabled_at":     now.UTC().Format(time.RFC3339),
	}, store.EmitOpts{ID: job.StableID("webhook-endpoint-disabled", e.ID, cause)})
	if err != nil {
		return false, fmt.Errorf("disable webhook endpoint: %w", err)
	}
	return true, nil
}

func webhookRowUpdated(res sql.Result) (bool, error) {
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("count updated rows: %w", err)
	}
	return n == 1, nil
}

// webhookAttemptKey is the idempotency key of one delivery attempt.
func webhookAttemptKey(deliveryID string, attempt int) string {
	return deliveryID + ":" + strconv.Itoa(attempt)
}
