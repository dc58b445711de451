package billing

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/providers/calmonypay"
	"github.com/millrace/millrace/store"
)

type paymentSync struct{ d Deps }

// NewPaymentSync returns the calmonyPayPaymentSync handler of
// billing.calmony.payment_intent.succeeded. It marks our payment succeeded,
// found by intent id or by the metadata we set (never by an intent → invoice
// back-reference), settles the invoice's dunning case, stores the provider's
// subscription status when nothing is owed any more, and hands one-off
// purchases to paymentCompletedSync.
func NewPaymentSync(d Deps) job.Handler { return &paymentSync{d: d.withDefaults()} }

// paymentMatch is what we know of an intent.
type paymentMatch struct {
	PaymentID, Org, Purpose string
	InvoiceID, SessionID    string
	RefID                   string
	ProviderSub, SubStatus  string
	OwedElsewhere           int
}

func (h *paymentSync) Handle(ctx context.Context, msg job.Message) error {
	ev, err := decodeEvent(msg)
	if err != nil {
		return err
	}
	if seen(ctx, h.d.DB, PaymentSync, eventKey(ev)) {
		return nil
	}
	pi, err := decodeIntent(ev)
	if err != nil {
		return job.Permanent(err)
	}
	m, ok, err := h.match(ctx, pi)
	if err != nil {
		return err
	}
	if !ok {
		alert(ctx, h.d.Logger, "billing_unmatched_payment",
			"payment intent matches no payment, invoice or organisation")
		err = h.d.DB.Handle(ctx, PaymentSync, eventKey(ev), func(tx *store.Tx) error {
			return recordUnmatched(ctx, tx, pi, store.Now(h.d.Clock.Now()))
		})
		return ack(err)
	}
	var sub *calmonypay.Subscription
	if m.SubStatus == subPastDue && m.OwedElsewhere == 0 && m.ProviderSub != "" {
		s, err := h.d.Calmony.GetSubscription(ctx, m.ProviderSub)
		if err != nil {
			return providerError(err)
		}
		sub = &s
	}
	err = h.d.DB.Handle(ctx, PaymentSync, eventKey(ev), func(tx *store.Tx) error {
		return h.apply(ctx, tx, pi, m, sub)
	})
	return ack(err)
}

// decodeIntent reads the payment intent of either shape and checks the
// money: pence above zero, in gbp.
func decodeIntent(ev calmonypay.Event) (calmonypay.PaymentIntent, error) {
	var pi struct {
		calmonypay.PaymentIntent
		CustomerID string `json:"customer_id"`
	}
	if err := json.Unmarshal(ev.Object, &pi); err != nil {
		return pi.PaymentIntent, fmt.Errorf("decode payment intent: %w", err)
	}
	out := pi.PaymentIntent
	if out.Customer == "" {
		out.Customer = pi.CustomerID
	}
	out.Currency = strings.ToLower(out.Currency)
	switch {
	case out.ID == "":
		return out, fmt.Errorf("decode payment intent: missing id")
	case out.Currency != "gbp":
		return out, fmt.Errorf("check payment intent: currency %q is not gbp", out.Currency)
	case out.Amount <= 0:
		return out, fmt.Errorf("check payment intent: amount must be above zero")
	}
	return out, nil
}

// match finds our payment, invoice and subscription for pi.
func (h *paymentSync) match(ctx context.Context, pi calmonypay.PaymentIntent) (paymentMatch,
	bool, error) {
	var m paymentMatch
	var inv, sess *string
	err := h.d.DB.QueryRowContext(ctx, `SELECT id, COALESCE(organisation_id, ''), purpose,
		invoice_id, checkout_session_id FROM payments
		WHERE provider_payment_intent_id = $1 OR id = $2`,
		pi.ID, pi.Metadata["payment_id"]).Scan(&m.PaymentID, &m.Org, &m.Purpose, &inv, &sess)
	if err != nil && !isNoRows(err) {
		return m, false, fmt.Errorf("read payment: %w", err)
	}
	if inv != nil {
		m.InvoiceID = *inv
	}
	if sess != nil {
		m.SessionID = *sess
	}
	if m.InvoiceID == "" && pi.Metadata["invoice_id"] != "" {
		m.InvoiceID = pi.Metadata["invoice_id"]
	}
	if m.Purpose == "" {
		m.Purpose = pi.Metadata["purpose"]
	}
	if m.InvoiceID != "" {
		if err := h.matchInvoice(ctx, &m); err != nil {
			return m, false, err
		}
		if m.Purpose == "" {
			m.Purpose = "subscription_invoice"
		}
	}
	if m.Org == "" && pi.Customer != "" {
		org, _, err := orgByCustomer(ctx, h.d.DB, pi.Customer)
		if err != nil {
			return m, false, err
		}
		m.Org = org
	}
	if m.Org == "" || m.Purpose == "" {
		return m, false, nil
	}
	if m.SessionID != "" {
		_ = h.d.DB.QueryRowContext(ctx, `SELECT COALESCE(ref_id, '') FROM checkout_sessions
			WHERE id = $1 OR provider_session_id = $1`, m.SessionID).Scan(&m.RefID)
	}
	return m, true, nil
}

// matchInvoice resolves m.InvoiceID (ours or the provider's) and reads the
// subscription status and what else the organisation owes.
func (h *paymentSync) matchInvoice(ctx context.Context, m *paymentMatch) error {
	var org string
	var sub, subStatus *string
	err := h.d.DB.QueryRowContext(ctx, `SELECT i.id, i.organisation_id,
		s.provider_subscription_id, s.status FROM invoices i
		LEFT JOIN subscriptions s ON s.id = i.subscription_id
		WHERE i.id = $1 OR i.provider_invoice_id = $1`, m.InvoiceID).
		Scan(&m.InvoiceID, &org, &sub, &subStatus)
	if isNoRows(err) {
		m.InvoiceID = ""
		return nil
	}
	if err != nil {
		return fmt.Errorf("read invoice: %w", err)
	}
	if m.Org != "" && m.Org != org {
		return job.Permanentf("check payment: invoice belongs to another organisation")
	}
	m.Org = org
	if sub != nil && subStatus != nil {
		m.ProviderSub, m.SubStatus = *sub, *subStatus
	}
	err = h.d.DB.QueryRowContext(ctx, `SELECT COUNT(*) FROM invoices WHERE organisation_id = $1
		AND id <> $2 AND status IN ('open', 'payment_failed') AND amount_due_pence > 0`,
		org, m.InvoiceID).Scan(&m.OwedElsewhere)
	if err != nil {
		return fmt.Errorf("count owed invoices: %w", err)
	}
	return nil
}

func (h *paymentSync) apply(ctx context.Context, tx *store.Tx, pi calmonypay.PaymentIntent,
	m paymentMatch, sub *calmonypay.Subscription) error {
	now := store.Now(h.d.Clock.Now())
	paymentID, err := succeedPayment(ctx, tx, pi, m, now)
	if err != nil {
		return err
	}
	if m.InvoiceID != "" {
		if err := h.settle(ctx, tx, pi, m, paymentID, sub); err != nil {
			return err
		}
	}
	if (m.Purpose == "aml_credits" || m.Purpose == "rgi_policy") && m.RefID != "" {
		payload := map[string]any{"organisation_id": m.Org,
			"provider_payment_intent_id": pi.ID, "purpose": m.Purpose, "ref_id": m.RefID,
			"amount_pence": pi.Amount, "currency": pi.Currency}
		if m.SessionID != "" {
			payload["checkout_session_id"] = m.SessionID
		}
		_, err = tx.Emit(ctx, TopicPaymentCompleted, payload,
			store.EmitOpts{ID: job.StableID("payment.completed", pi.ID)})
	}
	return err
}

// settle marks the invoice paid provisionally (invoice.paid confirms it),
// resolves its dunning case and stores the fetched subscription.
func (h *paymentSync) settle(ctx context.Context, tx *store.Tx, pi calmonypay.PaymentIntent,
	m paymentMatch, paymentID string, sub *calmonypay.Subscription) error {
	now := store.Now(h.d.Clock.Now())
	_, err := tx.ExecContext(ctx, `UPDATE invoices SET status = 'paid', amount_paid_pence = $1,
		paid_at = COALESCE(paid_at, $2), last_failure_reason = NULL, updated_at = $2
		WHERE id = $3 AND status NOT IN ('paid', 'void')`, pi.Amount, now, m.InvoiceID)
	if err != nil {
		return fmt.Errorf("mark invoice paid: %w", err)
	}
	caseID, err := settleInvoice(ctx, tx, m.Org, m.InvoiceID, paymentID, now)
	if err != nil {
		return err
	}
	if sub != nil {
		if st := normaliseStatus(sub.Status); st != "" {
			in := subscriptionRow{Org: m.Org, ProviderID: sub.ID, Status: st,
				Plan: sub.PlanCode(), Sub: *sub, At: now}
			if _, _, err := upsertSubscription(ctx, tx, in, now); err != nil {
				return err
			}
		}
	}
	if caseID == "" {
		return nil
	}
	h.d.Logger.InfoContext(ctx, "overdue invoice resolved",
		slog.String("organisation_id", m.Org))
	payload := map[string]any{"organisation_id": m.Org, "invoice_id": m.InvoiceID,
		"dunning_case_id": caseID, "payment_id": paymentID, "provider_payment_intent_id": pi.ID}
	_, err = tx.Emit(ctx, TopicOverdueResolved, payload,
		store.EmitOpts{ID: job.StableID(TopicOverdueResolved, caseID)})
	return err
}
