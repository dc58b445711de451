package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/millrace/millrace/job"
)

type autoCharge struct{ d Deps }

// NewAutoChargeOverdue returns the autoChargeOverdue handler of
// billing.autocharge.tick (09:00 Europe/London). For each open invoice of a
// past_due subscription it charges the stored card at most once per London
// day: the Idempotency-Key autocharge:<invoice_id>:<as_of> is both the
// provider's dedupe key and our claim, so a redelivered tick, a retry after
// a timeout and a poison replay all reach the same single charge.
//
// Pending payments from the last 30 minutes, hard declines and
// authentication_required on an unchanged card are skipped; after 7
// attempts or 21 days past due the organisation is restricted and its
// billing contact told once.
func NewAutoChargeOverdue(d Deps) job.Handler { return &autoCharge{d: d.withDefaults()} }

type autochargeTick struct {
	ScheduledFor time.Time `json:"scheduled_for"`
	AsOf         string    `json:"as_of"`
}

// overdue is one invoice the run may charge.
type overdue struct {
	InvoiceID, Org, SubID, Customer, Currency string
	PaymentMethod, HostedURL                  string
	Amount                                    int64
	Attempts                                  int
	PastDueSince                              time.Time
}

func (h *autoCharge) Handle(ctx context.Context, msg job.Message) error {
	var t autochargeTick
	if err := json.Unmarshal(msg.Payload, &t); err != nil {
		return job.Permanent(fmt.Errorf("decode autocharge tick: %w", err))
	}
	if _, err := time.Parse(time.DateOnly, t.AsOf); err != nil {
		return job.Permanent(fmt.Errorf("decode autocharge tick: as_of: %w", err))
	}
	list, err := h.overdue(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, o := range list {
		if err := h.chargeOne(ctx, o, t.AsOf); err != nil {
			errs = append(errs, err)
		}
	}
	return joinOutcomes(errs)
}

// joinOutcomes returns nil, the errors joined as retryable when any is, or
// as permanent when all are.
func joinOutcomes(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	all := errors.Join(errs...)
	for _, e := range errs {
		if job.Classify(e) == job.ClassRetryable {
			var ra *job.RetryAfterError
			if errors.As(e, &ra) {
				return &job.RetryAfterError{Err: all, After: ra.After}
			}
			return fmt.Errorf("charge overdue invoices: %w", stripPermanent(all))
		}
	}
	return job.Permanent(all)
}

// stripPermanent hides permanent errors inside a joined retryable one.
func stripPermanent(err error) error { return errors.New(err.Error()) }

// overdue lists the open invoices of past_due subscriptions.
func (h *autoCharge) overdue(ctx context.Context) ([]overdue, error) {
	rows, err := h.d.DB.QueryContext(ctx, `SELECT i.id, i.organisation_id, s.id,
		c.provider_customer_id, i.currency, COALESCE(c.default_payment_method_id, ''),
		COALESCE(i.hosted_invoice_url, ''), i.amount_due_pence, s.auto_charge_attempts,
		d.opened_at, i.provider_updated_at
		FROM invoices i
		JOIN subscriptions s ON s.id = i.subscription_id
		JOIN billing_customers c ON c.organisation_id = i.organisation_id
		LEFT JOIN dunning_cases d ON d.invoice_id = i.id
		WHERE s.status = 'past_due' AND i.status IN ('open', 'payment_failed')
			AND i.amount_due_pence > 0
		ORDER BY i.organisation_id, i.id`)
	if err != nil {
		return nil, fmt.Errorf("list overdue invoices: %w", err)
	}
	defer rows.Close()
	var out []overdue
	for rows.Next() {
		var o overdue
		var opened *time.Time
		if err := rows.Scan(&o.InvoiceID, &o.Org, &o.SubID, &o.Customer, &o.Currency,
			&o.PaymentMethod, &o.HostedURL, &o.Amount, &o.Attempts, &opened,
			&o.PastDueSince); err != nil {
			return nil, fmt.Errorf("list overdue invoices: %w", err)
		}
		if opened != nil {
			o.PastDueSince = *opened
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// autochargeKey is the Idempotency-Key and claim of one day's attempt.
func autochargeKey(invoiceID, asOf string) string {
	return "autocharge:" + invoiceID + ":" + asOf
}

// chargeOne applies the rules to one invoice and, when they allow, charges.
func (h *autoCharge) chargeOne(ctx context.Context, o overdue, asOf string) error {
	key := autochargeKey(o.InvoiceID, asOf)
	done, err := h.d.DB.IsProcessed(ctx, AutoChargeOverdue, key)
	if err != nil || done {
		return err
	}
	if capReached(o.Attempts, daysBetween(o.PastDueSince, asOf, h.d.Location)) {
		return h.restrict(ctx, o)
	}
	c, err := h.candidate(ctx, o, key)
	if err != nil {
		return err
	}
	switch reason := skipReason(c, h.d.Clock.Now()); reason {
	case skipNone:
	case skipAuthNeeded:
		return h.askForAuthentication(ctx, o)
	default:
		h.d.Logger.InfoContext(ctx, "overdue invoice skipped",
			slog.String("organisation_id", o.Org), slog.String("reason", reason))
		return nil
	}
	return h.attempt(ctx, o, asOf, key)
}

// candidate reads what the skip rules need: another run's recent pending
// payment and the last failure.
func (h *autoCharge) candidate(ctx context.Context, o overdue, key string) (chargeCandidate,
	error) {
	c := chargeCandidate{PaymentMethod: o.PaymentMethod}
	err := h.d.DB.QueryRowContext(ctx, `SELECT created_at FROM payments WHERE invoice_id = $1
		AND status = 'pending' AND (idempotency_key IS NULL OR idempotency_key <> $2)
		ORDER BY created_at DESC LIMIT 1`, o.InvoiceID, key).Scan(&c.PendingSince)
	if err != nil && !isNoRows(err) {
		return c, fmt.Errorf("read pending payment: %w", err)
	}
	var f lastFailure
	var code, pm *string
	err = h.d.DB.QueryRowContext(ctx, `SELECT failure_code, payment_method_id FROM payments
		WHERE invoice_id = $1 AND status = 'failed' ORDER BY created_at DESC LIMIT 1`,
		o.InvoiceID).Scan(&code, &pm)
	switch {
	case isNoRows(err):
		return c, nil
	case err != nil:
		return c, fmt.Errorf("read last failure: %w", err)
	}
	if code != nil {
		f.Code = *code
	}
	if pm != nil {
		f.PaymentMethod = *pm
	}
	c.LastFailure = &f
	return c, nil
}
