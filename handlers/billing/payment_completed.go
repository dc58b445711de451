package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/providers/calmonypay"
	"github.com/millrace/millrace/store"
)

type paymentCompleted struct{ d Deps }

// NewPaymentCompletedSync returns the paymentCompletedSync handler of
// billing.payment.completed, which both the checkout and the payment sync
// emit for the same payment; the intent id is the key that absorbs that.
// It fulfils what the payment bought (AML credits, an RGI premium) only when
// the amount is the expected price in gbp; a mismatch is permanent and
// alerts finance.
func NewPaymentCompletedSync(d Deps) job.Handler { return &paymentCompleted{d: d.withDefaults()} }

type paymentCompletedEvent struct {
	OrganisationID    string `json:"organisation_id"`
	PaymentIntentID   string `json:"provider_payment_intent_id"`
	CheckoutSessionID string `json:"checkout_session_id"`
	Purpose           string `json:"purpose"`
	RefID             string `json:"ref_id"`
	AmountPence       int64  `json:"amount_pence"`
	Currency          string `json:"currency"`
}

// errAmountMismatch reports a payment that is not the expected price.
var errAmountMismatch = errors.New("amount paid is not the expected price")

func (h *paymentCompleted) Handle(ctx context.Context, msg job.Message) error {
	var ev paymentCompletedEvent
	if err := json.Unmarshal(msg.Payload, &ev); err != nil || ev.PaymentIntentID == "" ||
		ev.OrganisationID == "" {
		return job.Permanentf("decode payment completed: missing fields")
	}
	expected, err := h.expected(ctx, ev)
	if err != nil {
		return err
	}
	if expected > 0 {
		if err := h.confirm(ctx, ev, expected); err != nil {
			return err
		}
		if err := h.sendReceipt(ctx, ev); err != nil {
			return err
		}
	}
	err = h.d.DB.Handle(ctx, PaymentCompletedSync, ev.PaymentIntentID, func(tx *store.Tx) error {
		if expected > 0 {
			if err := recordNotification(ctx, tx, ev.OrganisationID, receiptKey(ev),
				"payment_receipt", ev.PaymentIntentID, store.Now(h.d.Clock.Now())); err != nil {
				return err
			}
		}
		return h.apply(ctx, tx, ev)
	})
	return ack(err)
}

func receiptKey(ev paymentCompletedEvent) string { return "receipt:" + ev.PaymentIntentID }

// sendReceipt emails the billing contact a receipt for a one-off purchase,
// once per payment intent.
func (h *paymentCompleted) sendReceipt(ctx context.Context, ev paymentCompletedEvent) error {
	what := "AML check credits (" + ev.RefID + ")"
	if ev.Purpose == "rgi_policy" {
		what = "rent guarantee insurance premium"
	}
	text := fmt.Sprintf("Thank you. We received £%d.%02d for %s.\n",
		ev.AmountPence/100, ev.AmountPence%100, what)
	return sendBillingEmail(ctx, h.d, ev.OrganisationID, receiptKey(ev),
		"Your Millrace receipt", text)
}

// expected returns the price of what ev bought, or 0 for invoice purposes,
// which need no fulfilment here.
func (h *paymentCompleted) expected(ctx context.Context, ev paymentCompletedEvent) (int64,
	error) {
	switch ev.Purpose {
	case "subscription_invoice", "overdue_invoice":
		return 0, nil
	case "aml_credits":
		if _, ok := amlPacks[ev.RefID]; !ok {
			return 0, job.Permanentf("check payment: unknown credit pack %q", ev.RefID)
		}
		var amount *int64
		err := h.d.DB.QueryRowContext(ctx, `SELECT amount_pence FROM checkout_sessions
			WHERE provider_session_id = $1 AND organisation_id = $2`,
			ev.CheckoutSessionID, ev.OrganisationID).Scan(&amount)
		if isNoRows(err) || (err == nil && amount == nil) {
			return 0, job.Permanentf("check payment: no priced checkout session for the pack")
		}
		if err != nil {
			return 0, fmt.Errorf("read checkout session: %w", err)
		}
		return *amount, nil
	case "rgi_policy":
		var plan string
		err := h.d.DB.QueryRowContext(ctx, `SELECT payment_plan FROM rgi_policies
			WHERE id = $1 AND organisation_id = $2`, ev.RefID, ev.OrganisationID).Scan(&plan)
		if isNoRows(err) {
			return 0, job.Permanentf("check payment: unknown RGI policy")
		}
		if err != nil {
			return 0, fmt.Errorf("read rgi policy: %w", err)
		}
		p, ok := rgiPremiumPence(plan)
		if !ok {
			return 0, job.Permanentf("check payment: unknown RGI payment plan %q", plan)
		}
		return p, nil
	}
	return 0, job.Permanentf("check payment: unknown purpose %q", ev.Purpose)
}

// confirm checks the event's money, then the provider's own record of the
// intent when a client is configured.
func (h *paymentCompleted) confirm(ctx context.Context, ev paymentCompletedEvent,
	expected int64) error {
	amount, currency := ev.AmountPence, ev.Currency
	if h.d.Calmony != nil {
		pi, err := h.d.Calmony.GetPaymentIntent(ctx, ev.PaymentIntentID)
		if err != nil {
			return providerError(err)
		}
		if pi.Status != "succeeded" {
			return job.Permanentf("confirm payment: intent is %q, not succeeded", pi.Status)
		}
		amount, currency = pi.Amount, lower(pi.Currency)
	}
	if amount != expected || currency != "gbp" || ev.AmountPence != amount {
		alert(ctx, h.d.Logger, "billing_amount_mismatch", "payment is not the expected price",
			slog.String("organisation_id", ev.OrganisationID),
			slog.Int64("expected_pence", expected), slog.Int64("paid_pence", amount))
		return job.Permanent(fmt.Errorf("confirm payment: %w", errAmountMismatch))
	}
	return nil
}

func (h *paymentCompleted) apply(ctx context.Context, tx *store.Tx,
	ev paymentCompletedEvent) error {
	now := store.Now(h.d.Clock.Now())
	m := paymentMatch{Org: ev.OrganisationID, Purpose: ev.Purpose,
		SessionID: ev.CheckoutSessionID}
	if ev.Purpose == "subscription_invoice" || ev.Purpose == "overdue_invoice" {
		m.InvoiceID = ev.RefID
	}
	var existing string
	err := tx.QueryRowContext(ctx, `SELECT id FROM payments WHERE provider_payment_intent_id = $1`,
		ev.PaymentIntentID).Scan(&existing)
	if err != nil && !isNoRows(err) {
		return fmt.Errorf("read payment: %w", err)
	}
	m.PaymentID = existing
	pi := calmonypay.PaymentIntent{ID: ev.PaymentIntentID, Amount: ev.AmountPence,
		Currency: ev.Currency}
	paymentID, err := succeedPayment(ctx, tx, pi, m, now)
	if err != nil {
		return err
	}
	switch ev.Purpose {
	case "aml_credits":
		return h.creditAML(ctx, tx, ev, paymentID, now)
	case "rgi_policy":
		return h.payRGI(ctx, tx, ev, paymentID, now)
	}
	return nil
}
