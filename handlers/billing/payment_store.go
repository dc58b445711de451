package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/providers/calmonypay"
	"github.com/millrace/millrace/store"
)

// succeedPayment marks our payment for pi succeeded, creating it when only
// the metadata knew of it, and returns its id.
func succeedPayment(ctx context.Context, tx *store.Tx, pi calmonypay.PaymentIntent,
	m paymentMatch, now time.Time) (string, error) {
	id := m.PaymentID
	if id == "" {
		id = job.StableID("payment", pi.ID)
		_, err := tx.ExecContext(ctx, `INSERT INTO payments (id, organisation_id,
			provider_payment_intent_id, checkout_session_id, invoice_id, purpose, amount_pence,
			currency, status, paid_at, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'succeeded', $9, $9, $9)
			ON CONFLICT (provider_payment_intent_id) DO UPDATE SET status = 'succeeded',
				paid_at = COALESCE(payments.paid_at, excluded.paid_at),
				updated_at = excluded.updated_at`,
			id, m.Org, pi.ID, store.Nullable(m.SessionID), store.Nullable(m.InvoiceID),
			m.Purpose, pi.Amount, pi.Currency, now)
		if err != nil {
			return "", fmt.Errorf("insert payment: %w", err)
		}
		err = tx.QueryRowContext(ctx, `SELECT id FROM payments
			WHERE provider_payment_intent_id = $1`, pi.ID).Scan(&id)
		if err != nil {
			return "", fmt.Errorf("read payment: %w", err)
		}
		return id, nil
	}
	_, err := tx.ExecContext(ctx, `UPDATE payments SET status = 'succeeded',
		provider_payment_intent_id = $1, paid_at = COALESCE(paid_at, $2), failure_code = NULL,
		updated_at = $2 WHERE id = $3`, pi.ID, now, id)
	if err != nil {
		return "", fmt.Errorf("mark payment succeeded: %w", err)
	}
	return id, nil
}

// recordUnmatched keeps an intent nobody can place, for finance to review.
func recordUnmatched(ctx context.Context, tx *store.Tx, pi calmonypay.PaymentIntent,
	now time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO payments (id, provider_payment_intent_id,
		purpose, amount_pence, currency, status, paid_at, created_at, updated_at)
		VALUES ($1, $2, 'unmatched', $3, $4, 'succeeded', $5, $5, $5)
		ON CONFLICT (provider_payment_intent_id) DO NOTHING`,
		job.StableID("payment", pi.ID), pi.ID, pi.Amount, pi.Currency, now)
	if err != nil {
		return fmt.Errorf("record unmatched payment: %w", err)
	}
	return nil
}
