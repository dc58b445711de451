package billing

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/store"
)

type invoiceSync struct{ d Deps }

// NewInvoiceSync returns the calmonyPayInvoiceSync handler of
// billing.calmony.invoice.paid and billing.calmony.invoice.payment_failed.
// Paid is terminal; it closes the dunning case, resets the auto-charge count
// and lifts the organisation back to ok when nothing else is owed. A failure
// opens a dunning case and emails the billing contact once per attempt.
func NewInvoiceSync(d Deps) job.Handler { return &invoiceSync{d: d.withDefaults()} }

func (h *invoiceSync) Handle(ctx context.Context, msg job.Message) error {
	ev, err := decodeEvent(msg)
	if err != nil {
		return err
	}
	if seen(ctx, h.d.DB, InvoiceSync, eventKey(ev)) {
		return nil
	}
	inv, err := decodeInvoice(ev)
	if err != nil {
		return job.Permanent(err)
	}
	org, ok, err := orgByCustomer(ctx, h.d.DB, inv.Customer)
	if err != nil {
		return err
	}
	if !ok {
		return unknownCustomer(h.d.Clock.Now(), ev.Created)
	}
	if inv.Status == invPaymentFailed {
		if err := h.emailFailure(ctx, org, inv); err != nil {
			return err
		}
	}
	err = h.d.DB.Handle(ctx, InvoiceSync, eventKey(ev), func(tx *store.Tx) error {
		return h.apply(ctx, tx, org, inv)
	})
	return ack(err)
}

func (h *invoiceSync) apply(ctx context.Context, tx *store.Tx, org string,
	inv invoiceEvent) error {
	now := store.Now(h.d.Clock.Now())
	id, applied, err := upsertInvoice(ctx, tx, org, inv, now)
	if err != nil {
		return err
	}
	if inv.Status == invPaymentFailed {
		// Recorded whether or not the event changed the invoice: the email
		// went out under this key before the transaction.
		if err := recordNotification(ctx, tx, org, failureKey(id, inv.AttemptCount),
			"invoice_payment_failed", id, now); err != nil {
			return err
		}
	}
	if !applied {
		return nil
	}
	if inv.Status == invPaid {
		_, err = settleInvoice(ctx, tx, org, id, "", now)
	} else {
		err = openDunning(ctx, tx, org, id, store.Now(inv.Created))
	}
	if err != nil {
		return err
	}
	var st invoiceState
	if st, err = readInvoice(ctx, tx, id); err != nil {
		return err
	}
	payload := map[string]any{"organisation_id": org, "invoice_id": id,
		"provider_invoice_id": inv.ProviderID, "status": st.Status,
		"amount_due_pence": st.AmountDue, "amount_paid_pence": st.AmountPaid,
		"currency": st.Currency, "attempt_count": st.AttemptCount}
	_, err = tx.Emit(ctx, TopicInvoiceSynced, payload,
		store.EmitOpts{ID: job.StableID(InvoiceSync, inv.EventID)})
	return err
}

// failureKey is the dedupe key of the "update your card" email.
func failureKey(invoiceID string, attempt int64) string {
	return fmt.Sprintf("invoice-failed:%s:%d", invoiceID, attempt)
}

// emailFailure sends the "update your card" email before the transaction,
// once per (invoice, attempt_count): the notification row decides "once" and
// the dedupe key makes a resend after a crash the same email. A failure on
// a paid invoice, or on one not yet stored, is looked up first.
func (h *invoiceSync) emailFailure(ctx context.Context, org string, inv invoiceEvent) error {
	var id, status string
	err := h.d.DB.QueryRowContext(ctx, `SELECT id, status FROM invoices
		WHERE provider_invoice_id = $1`, inv.ProviderID).Scan(&id, &status)
	switch {
	case isNoRows(err):
		id = invoiceIDFor(inv.ProviderID)
	case err != nil:
		return fmt.Errorf("read invoice: %w", err)
	case status == invPaid || status == invVoid:
		return nil
	}
	key := failureKey(id, inv.AttemptCount)
	link := h.d.AppBaseURL + "/settings/billing"
	if inv.HostedURL != "" {
		link = inv.HostedURL
	}
	return sendBillingEmail(ctx, h.d, org, key, "Your Millrace payment failed",
		"We could not take your payment. Please update your card: "+link+"\n")
}

// invoiceIDFor derives our id of a provider invoice, so that the email key
// and the row agree whichever event stores the invoice first.
func invoiceIDFor(providerID string) string { return job.StableID("invoice", providerID) }

// logSkip records why an email was not sent.
func logSkip(ctx context.Context, lg *slog.Logger, msg, org string) {
	lg.InfoContext(ctx, msg, slog.String("organisation_id", org))
}
