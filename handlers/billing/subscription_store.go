package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/providers/calmonypay"
	"github.com/millrace/millrace/store"
)

// subscriptionRow is a subscription state to store.
type subscriptionRow struct {
	Org, ProviderID, Status, Plan string
	Sub                           calmonypay.Subscription
	At                            time.Time // the provider time of this state
	Deleted                       bool
}

// upsertSubscription stores in unless the stored row is newer or terminal
// (subscriptionApplies). It returns the row id and whether in was applied.
func upsertSubscription(ctx context.Context, tx *store.Tx, in subscriptionRow,
	now time.Time) (string, bool, error) {
	var id, stored string
	var storedAt time.Time
	err := tx.QueryRowContext(ctx, `SELECT id, status, provider_updated_at FROM subscriptions
		WHERE provider_subscription_id = $1`, in.ProviderID).Scan(&id, &stored, &storedAt)
	start, end := in.Sub.Period()
	var canceled any
	if in.Sub.CanceledAt > 0 {
		canceled = store.Now(time.Unix(in.Sub.CanceledAt, 0))
	} else if in.Status == subCanceled {
		canceled = store.Now(in.At)
	}
	switch {
	case isNoRows(err):
		id = job.NewID()
		_, err = tx.ExecContext(ctx, `INSERT INTO subscriptions (id, organisation_id,
			provider_subscription_id, status, plan_code, current_period_start,
			current_period_end, cancel_at_period_end, canceled_at, provider_updated_at,
			created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)`,
			id, in.Org, in.ProviderID, in.Status, store.Nullable(in.Plan), nullTime(start),
			nullTime(end), in.Sub.CancelAtPeriodEnd, canceled, store.Now(in.At), now)
		if err != nil {
			return "", false, fmt.Errorf("insert subscription: %w", err)
		}
		return id, true, nil
	case err != nil:
		return "", false, fmt.Errorf("read subscription: %w", err)
	case !subscriptionApplies(stored, storedAt, in.At, in.Deleted):
		return id, false, nil
	}
	at := in.At
	if storedAt.After(at) {
		at = storedAt
	}
	_, err = tx.ExecContext(ctx, `UPDATE subscriptions SET status = $1,
		plan_code = COALESCE($2, plan_code),
		current_period_start = COALESCE($3, current_period_start),
		current_period_end = COALESCE($4, current_period_end),
		cancel_at_period_end = $5, canceled_at = COALESCE($6, canceled_at),
		provider_updated_at = $7, updated_at = $8 WHERE id = $9`,
		in.Status, store.Nullable(in.Plan), nullTime(start), nullTime(end),
		in.Sub.CancelAtPeriodEnd, canceled, store.Now(at), now, id)
	if err != nil {
		return "", false, fmt.Errorf("update subscription: %w", err)
	}
	return id, true, nil
}
