package billing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/providers/calmonypay"
	"github.com/millrace/millrace/store"
)

// chargeResult is the outcome of one charge.
type chargeResult struct {
	Result        string // succeeded, failed or pending
	FailureCode   string
	PaymentIntent string
}

// claimOnce runs fn in a transaction that claims (autoChargeOverdue, key)
// first. Unlike store.DB.Handle it does not also claim the tick's message
// id: one tick makes many claims, and a retry of the tick must still reach
// the invoices not yet done.
func (h *autoCharge) claimOnce(ctx context.Context, key string, fn func(tx *store.Tx) error) error {
	return h.d.DB.InTx(ctx, func(tx *store.Tx) error {
		ok, err := tx.Claim(ctx, AutoChargeOverdue, key)
		if err != nil {
			return err
		}
		if !ok {
			return store.ErrAlreadyProcessed
		}
		return fn(tx)
	})
}

// attempt records a pending payment, charges the card under key and records
// the result. A timeout or 5xx leaves the pending payment and returns a
// retryable error: the retry sends the same key, so the provider answers
// with the first result instead of charging again.
func (h *autoCharge) attempt(ctx context.Context, o overdue, asOf, key string) error {
	paymentID := job.StableID("autocharge", key)
	now := store.Now(h.d.Clock.Now())
	err := h.d.DB.InTx(ctx, func(tx *store.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO payments (id, organisation_id,
			idempotency_key, invoice_id, purpose, payment_method_id, amount_pence, currency,
			status, created_at, updated_at)
			VALUES ($1, $2, $3, $4, 'overdue_invoice', $5, $6, $7, 'pending', $8, $8)
			ON CONFLICT (idempotency_key) DO NOTHING`,
			paymentID, o.Org, key, o.InvoiceID, o.PaymentMethod, o.Amount, o.Currency, now)
		if err != nil {
			return fmt.Errorf("record pending payment: %w", err)
		}
		return openDunning(ctx, tx, o.Org, o.InvoiceID, now)
	})
	if err != nil {
		return err
	}
	res, err := h.charge(ctx, o, paymentID, key)
	if err != nil {
		return err
	}
	attempts := o.Attempts + 1
	if classifyDecline(res.FailureCode) == declineAuth && res.Result == "failed" {
		if err := h.sendAuthEmail(ctx, o); err != nil {
			return err
		}
	}
	if attempts >= maxAutoChargeAttempts && res.Result != "succeeded" {
		if err := h.sendRestrictedEmail(ctx, o); err != nil {
			return err
		}
	}
	err = h.claimOnce(ctx, key, func(tx *store.Tx) error {
		return h.record(ctx, tx, o, asOf, paymentID, attempts, res)
	})
	return ack(err)
}

// charge calls the provider and sorts its answer: declines are results,
// transient failures retryable errors, other refusals permanent.
func (h *autoCharge) charge(ctx context.Context, o overdue, paymentID,
	key string) (chargeResult, error) {
	pi, err := h.d.Calmony.CreatePaymentIntent(ctx, calmonypay.ChargeParams{
		AmountPence: o.Amount, Currency: "gbp", Customer: o.Customer,
		PaymentMethod: o.PaymentMethod,
		Metadata: map[string]string{"invoice_id": o.InvoiceID, "subscription_id": o.SubID,
			"organisation_id": o.Org, "purpose": "overdue_invoice", "payment_id": paymentID},
	}, key)
	var api *calmonypay.APIError
	switch {
	case err == nil && pi.Status == "succeeded":
		return chargeResult{Result: "succeeded", PaymentIntent: pi.ID}, nil
	case err == nil:
		return chargeResult{Result: "pending", PaymentIntent: pi.ID}, nil
	case errors.As(err, &api) && api.IsCardError():
		code := api.DeclineCode
		if code == "" {
			code = api.Code
		}
		r := chargeResult{Result: "failed", FailureCode: code}
		if api.PaymentIntent != nil {
			r.PaymentIntent = api.PaymentIntent.ID
		}
		return r, nil
	}
	return chargeResult{}, providerError(err)
}

// record writes the result, counts the attempt and emits it; at the
// attempt cap it restricts the organisation.
func (h *autoCharge) record(ctx context.Context, tx *store.Tx, o overdue, asOf,
	paymentID string, attempts int, r chargeResult) error {
	now := store.Now(h.d.Clock.Now())
	status := r.Result
	var paidAt any
	if status == "succeeded" {
		paidAt = now
	}
	_, err := tx.ExecContext(ctx, `UPDATE payments SET status = CASE WHEN status = 'succeeded'
		THEN status ELSE $1 END, failure_code = $2,
		provider_payment_intent_id = COALESCE(provider_payment_intent_id, $3),
		paid_at = COALESCE(paid_at, $4), updated_at = $5 WHERE id = $6`,
		status, store.Nullable(r.FailureCode), store.Nullable(r.PaymentIntent), paidAt, now,
		paymentID)
	if err != nil {
		return fmt.Errorf("record charge result: %w", err)
	}
	_, err = tx.ExecContext(ctx, `UPDATE subscriptions SET auto_charge_attempts = $1,
		last_auto_charge_on = $2, updated_at = $3 WHERE id = $4`, attempts, asOf, now, o.SubID)
	if err != nil {
		return fmt.Errorf("count auto-charge attempt: %w", err)
	}
	payload := attemptedPayload(o, asOf, paymentID, attempts, r)
	key := autochargeKey(o.InvoiceID, asOf)
	if _, err := tx.Emit(ctx, TopicAutochargeAttempted, payload,
		store.EmitOpts{ID: job.StableID(AutoChargeOverdue, key)}); err != nil {
		return err
	}
	h.d.Logger.InfoContext(ctx, "overdue invoice charged", slog.String("organisation_id", o.Org),
		slog.String("result", r.Result), slog.Int("attempt", attempts))
	if r.Result == "failed" && classifyDecline(r.FailureCode) == declineAuth {
		if err := recordNotification(ctx, tx, o.Org, authKey(o), "autocharge_authentication",
			o.InvoiceID, now); err != nil {
			return err
		}
	}
	if attempts >= maxAutoChargeAttempts && r.Result != "succeeded" {
		return restrictInTx(ctx, tx, o, now)
	}
	return nil
}

// attemptedPayload is the billing.autocharge.attempted event of r.
func attemptedPayload(o overdue, asOf, paymentID string, attempts int,
	r chargeResult) map[string]any {
	payload := map[string]any{"organisation_id": o.Org, "invoice_id": o.InvoiceID,
		"subscription_id": o.SubID, "payment_id": paymentID, "as_of": asOf,
		"attempt": attempts, "result": r.Result, "amount_pence": o.Amount}
	if r.FailureCode != "" {
		payload["failure_code"] = r.FailureCode
	}
	if r.PaymentIntent != "" {
		payload["provider_payment_intent_id"] = r.PaymentIntent
	}
	return payload
}

// restrict stops dunning for the invoice: the organisation becomes
// restricted (read-only) and its billing contact is told, once.
func (h *autoCharge) restrict(ctx context.Context, o overdue) error {
	if err := h.sendRestrictedEmail(ctx, o); err != nil {
		return err
	}
	err := h.claimOnce(ctx, "restrict:"+o.InvoiceID, func(tx *store.Tx) error {
		return restrictInTx(ctx, tx, o, store.Now(h.d.Clock.Now()))
	})
	return ack(err)
}

func restrictInTx(ctx context.Context, tx *store.Tx, o overdue, now time.Time) error {
	_, err := tx.ExecContext(ctx, `UPDATE organisations SET billing_state = $1 WHERE id = $2`,
		stateRestricted, o.Org)
	if err != nil {
		return fmt.Errorf("restrict organisation: %w", err)
	}
	_, err = tx.ExecContext(ctx, `UPDATE dunning_cases SET restricted_at = COALESCE(restricted_at,
		$1), updated_at = $1 WHERE invoice_id = $2`, now, o.InvoiceID)
	if err != nil {
		return fmt.Errorf("mark dunning case restricted: %w", err)
	}
	return recordNotification(ctx, tx, o.Org, restrictedKey(o.InvoiceID),
		"billing_restricted", o.InvoiceID, now)
}

func restrictedKey(invoiceID string) string { return "billing-restricted:" + invoiceID }

func authKey(o overdue) string {
	return "autocharge-auth:" + o.InvoiceID + ":" + o.PaymentMethod
}

func (h *autoCharge) sendRestrictedEmail(ctx context.Context, o overdue) error {
	return sendBillingEmail(ctx, h.d, o.Org, restrictedKey(o.InvoiceID),
		"Your Millrace account is read-only",
		"We could not collect an overdue payment, so your account is now read-only. "+
			"Update your card to restore it: "+h.link(o)+"\n")
}

func (h *autoCharge) sendAuthEmail(ctx context.Context, o overdue) error {
	return sendBillingEmail(ctx, h.d, o.Org, authKey(o), "Please confirm your payment",
		"Your bank asks you to confirm this payment. Pay the invoice here: "+h.link(o)+"\n")
}

// askForAuthentication emails the hosted invoice link once per card and
// waits for the customer.
func (h *autoCharge) askForAuthentication(ctx context.Context, o overdue) error {
	if err := h.sendAuthEmail(ctx, o); err != nil {
		return err
	}
	return h.d.DB.InTx(ctx, func(tx *store.Tx) error {
		return recordNotification(ctx, tx, o.Org, authKey(o), "autocharge_authentication",
			o.InvoiceID, store.Now(h.d.Clock.Now()))
	})
}

func (h *autoCharge) link(o overdue) string {
	if o.HostedURL != "" {
		return o.HostedURL
	}
	return h.d.AppBaseURL + "/settings/billing"
}
