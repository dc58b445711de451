package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/store"
)

// creditAML adds the pack's credits to the organisation's ledger, once per
// payment (UNIQUE(type, ref_type, ref_id)), and announces the purchase.
func (h *paymentCompleted) creditAML(ctx context.Context, tx *store.Tx,
	ev paymentCompletedEvent, paymentID string, now time.Time) error {
	credits := amlPacks[ev.RefID]
	var balance int64
	err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(amount), 0) FROM aml_credit_ledger
		WHERE organisation_id = $1`, ev.OrganisationID).Scan(&balance)
	if err != nil {
		return fmt.Errorf("read aml credit balance: %w", err)
	}
	balance += credits
	res, err := tx.ExecContext(ctx, `INSERT INTO aml_credit_ledger (id, organisation_id, type,
		amount, balance_after, ref_type, ref_id, description, created_at)
		VALUES ($1, $2, 'purchase', $3, $4, 'payment', $5, $6, $7)
		ON CONFLICT (type, ref_type, ref_id) DO NOTHING`,
		job.StableID("aml-purchase", paymentID), ev.OrganisationID, credits, balance, paymentID,
		"credit pack "+ev.RefID, now)
	if err != nil {
		return fmt.Errorf("credit aml ledger: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return err
	}
	payload := map[string]any{"organisation_id": ev.OrganisationID, "payment_id": paymentID,
		"provider_payment_intent_id": ev.PaymentIntentID, "pack": ev.RefID,
		"credits": credits, "balance_after": balance}
	_, err = tx.Emit(ctx, TopicAMLCreditsPurchased, payload,
		store.EmitOpts{ID: job.StableID(TopicAMLCreditsPurchased, paymentID)})
	return err
}

// payRGI links the payment to its policy and asks for activation.
func (h *paymentCompleted) payRGI(ctx context.Context, tx *store.Tx,
	ev paymentCompletedEvent, paymentID string, now time.Time) error {
	_, err := tx.ExecContext(ctx, `UPDATE rgi_policies SET payment_id = $1, updated_at = $2
		WHERE id = $3 AND organisation_id = $4`, paymentID, now, ev.RefID, ev.OrganisationID)
	if err != nil {
		return fmt.Errorf("link rgi payment: %w", err)
	}
	payload := map[string]any{"organisation_id": ev.OrganisationID, "rgi_policy_id": ev.RefID,
		"payment_id": paymentID, "provider_payment_intent_id": ev.PaymentIntentID,
		"amount_pence": ev.AmountPence, "currency": ev.Currency}
	_, err = tx.Emit(ctx, TopicRGIPaymentCompleted, payload,
		store.EmitOpts{ID: job.StableID(TopicRGIPaymentCompleted, paymentID)})
	return err
}
