package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/providers/mail"
	"github.com/millrace/millrace/store"
)

// invoiceState is a stored invoice.
type invoiceState struct {
	Status                     string
	AmountDue, AmountPaid      int64
	AttemptCount               int64
	Currency                   string
	ProviderUpdatedAt          time.Time
	SubscriptionID, HostedURL  *string
	OrganisationID, ProviderID string
}

func readInvoice(ctx context.Context, q querier, id string) (invoiceState, error) {
	var s invoiceState
	err := q.QueryRowContext(ctx, `SELECT status, amount_due_pence, amount_paid_pence,
		attempt_count, currency, provider_updated_at, subscription_id, hosted_invoice_url,
		organisation_id, provider_invoice_id FROM invoices WHERE id = $1`, id).Scan(
		&s.Status, &s.AmountDue, &s.AmountPaid, &s.AttemptCount, &s.Currency,
		&s.ProviderUpdatedAt, &s.SubscriptionID, &s.HostedURL, &s.OrganisationID, &s.ProviderID)
	if err != nil {
		return s, fmt.Errorf("read invoice: %w", err)
	}
	return s, nil
}

// upsertInvoice stores inv unless the stored invoice is terminal or newer
// (invoiceApplies); it returns our id and whether inv was applied.
func upsertInvoice(ctx context.Context, tx *store.Tx, org string, inv invoiceEvent,
	now time.Time) (string, bool, error) {
	sub, err := localSubscription(ctx, tx, org, inv.ProviderSub)
	if err != nil {
		return "", false, err
	}
	var id string
	err = tx.QueryRowContext(ctx, `SELECT id FROM invoices WHERE provider_invoice_id = $1`,
		inv.ProviderID).Scan(&id)
	if isNoRows(err) {
		id = invoiceIDFor(inv.ProviderID)
		_, err = tx.ExecContext(ctx, `INSERT INTO invoices (id, organisation_id,
			subscription_id, provider_invoice_id, status, amount_due_pence, amount_paid_pence,
			currency, attempt_count, last_failure_reason, hosted_invoice_url, paid_at,
			provider_updated_at, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)`,
			id, org, sub, inv.ProviderID, inv.Status, inv.AmountDue, inv.AmountPaid,
			inv.Currency, inv.AttemptCount, failureReason(inv), store.Nullable(inv.HostedURL),
			nullTime(inv.PaidAt), store.Now(inv.Created), now)
		if err != nil {
			return "", false, fmt.Errorf("insert invoice: %w", err)
		}
		return id, true, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read invoice: %w", err)
	}
	st, err := readInvoice(ctx, tx, id)
	if err != nil {
		return "", false, err
	}
	if st.OrganisationID != org {
		return "", false, job.Permanentf("check invoice: belongs to another organisation")
	}
	if !invoiceApplies(st.Status, st.ProviderUpdatedAt, inv.Status, inv.Created) {
		return id, false, nil
	}
	return id, true, updateInvoice(ctx, tx, id, st, inv, sub, now)
}

// localSubscription returns our id of the organisation's provider
// subscription, or nil when it is not stored (yet).
func localSubscription(ctx context.Context, tx *store.Tx, org, providerSub string) (*string,
	error) {
	if providerSub == "" {
		return nil, nil
	}
	var id string
	err := tx.QueryRowContext(ctx, `SELECT id FROM subscriptions
		WHERE provider_subscription_id = $1 AND organisation_id = $2`,
		providerSub, org).Scan(&id)
	switch {
	case isNoRows(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read subscription: %w", err)
	}
	return &id, nil
}

func updateInvoice(ctx context.Context, tx *store.Tx, id string, st invoiceState,
	inv invoiceEvent, sub *string, now time.Time) error {
	at, attempts := inv.Created, inv.AttemptCount
	if st.ProviderUpdatedAt.After(at) {
		at = st.ProviderUpdatedAt
	}
	if st.AttemptCount > attempts {
		attempts = st.AttemptCount
	}
	_, err := tx.ExecContext(ctx, `UPDATE invoices SET status = $1, amount_due_pence = $2,
		amount_paid_pence = $3, currency = $4, attempt_count = $5, last_failure_reason = $6,
		hosted_invoice_url = COALESCE($7, hosted_invoice_url), paid_at = $8,
		provider_updated_at = $9, subscription_id = COALESCE($10, subscription_id),
		updated_at = $11 WHERE id = $12`,
		inv.Status, inv.AmountDue, inv.AmountPaid, inv.Currency, attempts, failureReason(inv),
		store.Nullable(inv.HostedURL), nullTime(inv.PaidAt), store.Now(at), sub, now, id)
	if err != nil {
		return fmt.Errorf("update invoice: %w", err)
	}
	return nil
}

// failureReason is stored only on a failed invoice, so that every order of
// the same events leaves the same row.
func failureReason(inv invoiceEvent) any {
	if inv.Status == invPaid {
		return nil
	}
	return store.Nullable(inv.FailureReason)
}

// openDunning opens the invoice's dunning case unless it has one.
func openDunning(ctx context.Context, tx *store.Tx, org, invoiceID string,
	now time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO dunning_cases (id, organisation_id, invoice_id,
		opened_at, status, created_at, updated_at) VALUES ($1, $2, $3, $4, 'open', $4, $4)
		ON CONFLICT (invoice_id) DO NOTHING`,
		job.StableID("dunning", invoiceID), org, invoiceID, now)
	if err != nil {
		return fmt.Errorf("open dunning case: %w", err)
	}
	return nil
}

// settleInvoice closes the invoice's open dunning case (by paymentID when
// known), resets its subscription's auto-charge count and, when the
// organisation owes nothing else, sets its billing state to ok. It returns
// the id of the case it resolved, or "".
func settleInvoice(ctx context.Context, tx *store.Tx, org, invoiceID, paymentID string,
	now time.Time) (string, error) {
	caseID := job.StableID("dunning", invoiceID)
	res, err := tx.ExecContext(ctx, `UPDATE dunning_cases SET status = 'resolved',
		resolved_by_payment_id = $1, resolved_at = $2, updated_at = $2
		WHERE invoice_id = $3 AND status = 'open'`,
		store.Nullable(paymentID), now, invoiceID)
	if err != nil {
		return "", fmt.Errorf("resolve dunning case: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		caseID = ""
	}
	_, err = tx.ExecContext(ctx, `UPDATE subscriptions SET auto_charge_attempts = 0,
		updated_at = $1 WHERE id = (SELECT subscription_id FROM invoices WHERE id = $2)`,
		now, invoiceID)
	if err != nil {
		return "", fmt.Errorf("reset auto-charge attempts: %w", err)
	}
	var owed int
	err = tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM invoices WHERE organisation_id = $1
		AND status IN ('open', 'payment_failed') AND amount_due_pence > 0`, org).Scan(&owed)
	if err != nil {
		return "", fmt.Errorf("count owed invoices: %w", err)
	}
	if owed == 0 {
		_, err = tx.ExecContext(ctx, `UPDATE organisations SET billing_state = $1 WHERE id = $2`,
			stateOK, org)
		if err != nil {
			return "", fmt.Errorf("lift billing state: %w", err)
		}
	}
	return caseID, nil
}

// recordNotification records that a notification with key went out.
func recordNotification(ctx context.Context, tx *store.Tx, org, key, kind, refID string,
	now time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO notifications (id, organisation_id, kind,
		ref_type, ref_id, channel, dedupe_key, status, sent_at, created_at)
		VALUES ($1, $2, $3, 'invoice', $4, 'email', $5, 'sent', $6, $6)
		ON CONFLICT (dedupe_key) DO NOTHING`,
		job.StableID("notification", key), org, kind, refID, key, now)
	if err != nil {
		return fmt.Errorf("record notification: %w", err)
	}
	return nil
}

// sendBillingEmail emails the organisation's billing contact unless the
// notification key was recorded before. The key is the email's dedupe key,
// so a resend after a crash is the same message.
func sendBillingEmail(ctx context.Context, d Deps, org, key, subject, text string) error {
	var one int
	err := d.DB.QueryRowContext(ctx, `SELECT 1 FROM notifications WHERE dedupe_key = $1`,
		key).Scan(&one)
	if err == nil {
		return nil
	}
	if !isNoRows(err) {
		return fmt.Errorf("read notification: %w", err)
	}
	var to *string
	err = d.DB.QueryRowContext(ctx, `SELECT billing_email FROM billing_customers
		WHERE organisation_id = $1`, org).Scan(&to)
	if err != nil && !isNoRows(err) {
		return fmt.Errorf("read billing email: %w", err)
	}
	if to == nil || *to == "" || d.Mail == nil {
		logSkip(ctx, d.Logger, "billing email not sent: no billing contact or mailer", org)
		return nil
	}
	_, err = d.Mail.Send(ctx, mail.Message{From: d.MailFrom, To: []string{*to},
		Subject: subject, Text: text, DedupeKey: key})
	if err != nil {
		return fmt.Errorf("send billing email: %w", err)
	}
	return nil
}
