package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/providers/calmonypay"
	"github.com/millrace/millrace/store"
)

type checkoutCompleted struct{ d Deps }

// NewCheckoutCompleted returns the calmonyPayCheckoutCompleted handler of
// billing.calmony.checkout_session.completed. The organisation comes from
// our own checkout_sessions row; a subscription checkout links the customer
// and subscription (fetched from Calmony for its status and period) and
// emits billing.subscription.linked; a paid one-off checkout emits
// billing.payment.completed.
func NewCheckoutCompleted(d Deps) job.Handler { return &checkoutCompleted{d: d.withDefaults()} }

// checkoutSession is the part of a Checkout Session the job reads.
type checkoutSession struct {
	ID                string            `json:"id"`
	Mode              string            `json:"mode"`
	Customer          string            `json:"customer"`
	CustomerID        string            `json:"customer_id"`
	Subscription      string            `json:"subscription"`
	PaymentIntent     string            `json:"payment_intent"`
	PaymentStatus     string            `json:"payment_status"`
	ClientReferenceID string            `json:"client_reference_id"`
	AmountTotal       int64             `json:"amount_total"`
	Currency          string            `json:"currency"`
	Metadata          map[string]string `json:"metadata"`
	CustomerDetails   struct {
		Email string `json:"email"`
	} `json:"customer_details"`
}

// CustomerEmail is the billing email the customer gave at checkout.
func (cs checkoutSession) CustomerEmail() string { return cs.CustomerDetails.Email }

// ourSession is our checkout_sessions row.
type ourSession struct {
	ID, Org, Purpose, RefID string
	Amount                  *int64
}

func (h *checkoutCompleted) Handle(ctx context.Context, msg job.Message) error {
	ev, err := decodeEvent(msg)
	if err != nil {
		return err
	}
	if seen(ctx, h.d.DB, CheckoutCompleted, eventKey(ev)) {
		return nil
	}
	var cs checkoutSession
	if err := json.Unmarshal(ev.Object, &cs); err != nil || cs.ID == "" {
		return job.Permanentf("decode checkout session: missing id")
	}
	if cs.Customer == "" {
		cs.Customer = cs.CustomerID
	}
	if ev.Livemode != nil && h.d.LiveMode != nil && *ev.Livemode != *h.d.LiveMode {
		alert(ctx, h.d.Logger, "billing_livemode", "checkout event from the other environment")
		return job.Permanentf("check checkout: livemode mismatch")
	}
	ours, err := h.session(ctx, cs)
	if err != nil {
		return err
	}
	var sub calmonypay.Subscription
	if cs.Mode == "subscription" {
		if cs.Subscription == "" || cs.Customer == "" {
			return job.Permanentf("check checkout: subscription mode without ids")
		}
		if sub, err = h.d.Calmony.GetSubscription(ctx, cs.Subscription); err != nil {
			return providerError(err)
		}
	}
	err = h.d.DB.Handle(ctx, CheckoutCompleted, eventKey(ev), func(tx *store.Tx) error {
		if err := markSessionCompleted(ctx, tx, ours.ID, h.d.Clock.Now()); err != nil {
			return err
		}
		if cs.Mode == "subscription" {
			return h.link(ctx, tx, ours, cs, sub, ev)
		}
		return h.paid(ctx, tx, ours, cs)
	})
	return ack(err)
}

// session loads our row and checks the references the session carries.
func (h *checkoutCompleted) session(ctx context.Context, cs checkoutSession) (ourSession,
	error) {
	var s ourSession
	var ref *string
	err := h.d.DB.QueryRowContext(ctx, `SELECT id, organisation_id, purpose, ref_id, amount_pence
		FROM checkout_sessions WHERE provider_session_id = $1`, cs.ID).
		Scan(&s.ID, &s.Org, &s.Purpose, &ref, &s.Amount)
	if isNoRows(err) {
		return s, job.Permanentf("resolve checkout session: unknown session")
	}
	if err != nil {
		return s, fmt.Errorf("read checkout session: %w", err)
	}
	if ref != nil {
		s.RefID = *ref
	}
	claimed := []string{cs.ClientReferenceID, cs.Metadata["organisation_id"]}
	for _, c := range claimed {
		if c != "" && c != s.Org {
			alert(ctx, h.d.Logger, "billing_tampering",
				"checkout session names another organisation",
				slog.String("organisation_id", s.Org))
			return s, job.Permanentf("check checkout session: organisation mismatch")
		}
	}
	return s, nil
}

func markSessionCompleted(ctx context.Context, tx *store.Tx, id string, at time.Time) error {
	now := store.Now(at)
	_, err := tx.ExecContext(ctx, `UPDATE checkout_sessions SET status = 'completed',
		completed_at = COALESCE(completed_at, $1), updated_at = $1 WHERE id = $2`, now, id)
	if err != nil {
		return fmt.Errorf("complete checkout session: %w", err)
	}
	return nil
}

// link records the customer and subscription and puts the organisation on
// the plan.
func (h *checkoutCompleted) link(ctx context.Context, tx *store.Tx, s ourSession,
	cs checkoutSession, sub calmonypay.Subscription, ev calmonypay.Event) error {
	now := store.Now(h.d.Clock.Now())
	_, err := tx.ExecContext(ctx, `INSERT INTO billing_customers (organisation_id,
		provider_customer_id, default_payment_method_id, billing_email, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $5)
		ON CONFLICT (organisation_id) DO UPDATE SET
			provider_customer_id = excluded.provider_customer_id,
			default_payment_method_id = COALESCE(excluded.default_payment_method_id,
				billing_customers.default_payment_method_id),
			billing_email = COALESCE(excluded.billing_email, billing_customers.billing_email),
			updated_at = excluded.updated_at`,
		s.Org, cs.Customer, store.Nullable(sub.DefaultPaymentMethod),
		store.Nullable(cs.CustomerEmail()), now)
	if err != nil {
		return fmt.Errorf("upsert billing customer: %w", err)
	}
	if err := h.warnSecondLive(ctx, tx, s.Org, cs.Subscription); err != nil {
		return err
	}
	status := normaliseStatus(sub.Status)
	if status == "" {
		status = subIncomplete
	}
	plan := sub.PlanCode()
	in := subscriptionRow{Org: s.Org, ProviderID: cs.Subscription, Status: status, Plan: plan,
		Sub: sub, At: store.Now(ev.Created)}
	id, _, err := upsertSubscription(ctx, tx, in, now)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE organisations SET billing_state = $1,
		plan_code = CASE WHEN $2 = '' THEN plan_code ELSE $2 END WHERE id = $3`,
		stateOK, plan, s.Org)
	if err != nil {
		return fmt.Errorf("update organisation plan: %w", err)
	}
	payload := map[string]any{"organisation_id": s.Org, "subscription_id": id,
		"provider_subscription_id": cs.Subscription, "provider_customer_id": cs.Customer,
		"status": status, "plan_code": plan}
	_, err = tx.Emit(ctx, TopicSubscriptionLinked, payload,
		store.EmitOpts{ID: job.StableID(CheckoutCompleted, ev.ID)})
	return err
}

// warnSecondLive alerts when the organisation already has another live
// subscription: both are kept, and billing ops decide.
func (h *checkoutCompleted) warnSecondLive(ctx context.Context, tx *store.Tx, org,
	providerSub string) error {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM subscriptions WHERE organisation_id = $1
		AND provider_subscription_id <> $2 AND status IN ('active', 'trialing')`,
		org, providerSub).Scan(&n)
	if err != nil {
		return fmt.Errorf("count live subscriptions: %w", err)
	}
	if n > 0 {
		alert(ctx, h.d.Logger, "billing_second_subscription",
			"organisation has more than one live subscription", slog.String("organisation_id", org))
	}
	return nil
}

// paid emits billing.payment.completed for a paid one-off checkout.
func (h *checkoutCompleted) paid(ctx context.Context, tx *store.Tx, s ourSession,
	cs checkoutSession) error {
	if cs.PaymentStatus != "paid" {
		h.d.Logger.InfoContext(ctx, "checkout completed unpaid; waiting for the payment",
			slog.String("organisation_id", s.Org))
		return nil
	}
	if cs.PaymentIntent == "" || s.RefID == "" {
		return job.Permanent(errors.New("check checkout: paid session without intent or ref"))
	}
	payload := map[string]any{"organisation_id": s.Org,
		"provider_payment_intent_id": cs.PaymentIntent, "checkout_session_id": cs.ID,
		"purpose": s.Purpose, "ref_id": s.RefID, "amount_pence": cs.AmountTotal,
		"currency": lower(cs.Currency)}
	_, err := tx.Emit(ctx, TopicPaymentCompleted, payload,
		store.EmitOpts{ID: job.StableID("payment.completed", cs.PaymentIntent)})
	return err
}

func lower(s string) string { return strings.ToLower(s) }
