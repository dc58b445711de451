package billing

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/providers/calmonypay"
	"github.com/millrace/millrace/store"
)

type subscriptionSync struct{ d Deps }

// NewSubscriptionSync returns the calmonyPaySubscriptionSync handler of
// billing.calmony.subscription.changed, which carries created, updated and
// deleted in both spellings (customer.subscription.* and subscription.*).
// It stores the subscription's state unless the stored one is newer or
// canceled, and maps the status to the organisation's billing state.
func NewSubscriptionSync(d Deps) job.Handler { return &subscriptionSync{d: d.withDefaults()} }

// flatSubscription is the subscription of Calmony's flat event shape.
type flatSubscription struct {
	ID          string    `json:"id"`
	Status      string    `json:"status"`
	CustomerID  string    `json:"customer_id"`
	PlanID      string    `json:"plan_id"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	CancelledAt time.Time `json:"cancelled_at"`
}

// decodeSubscription reads the subscription of either shape, with the time
// its state stands for.
func decodeSubscription(ev calmonypay.Event) (calmonypay.Subscription, time.Time, error) {
	var sub calmonypay.Subscription
	at := ev.Created
	if ev.Flat {
		var f flatSubscription
		if err := json.Unmarshal(ev.Object, &f); err != nil {
			return sub, at, fmt.Errorf("decode subscription: %w", err)
		}
		sub = calmonypay.Subscription{ID: f.ID, Customer: f.CustomerID, Status: f.Status,
			Metadata: map[string]string{"plan_code": f.PlanID}}
		for _, t := range []time.Time{f.CreatedAt, f.UpdatedAt, f.CancelledAt} {
			if t.After(at) {
				at = t.UTC()
			}
		}
		if !f.CancelledAt.IsZero() {
			sub.CanceledAt = f.CancelledAt.Unix()
		}
	} else if err := json.Unmarshal(ev.Object, &sub); err != nil {
		return sub, at, fmt.Errorf("decode subscription: %w", err)
	}
	if sub.ID == "" || sub.Customer == "" {
		return sub, at, fmt.Errorf("decode subscription: missing id or customer")
	}
	return sub, at, nil
}

func (h *subscriptionSync) Handle(ctx context.Context, msg job.Message) error {
	ev, err := decodeEvent(msg)
	if err != nil {
		return err
	}
	if seen(ctx, h.d.DB, SubscriptionSync, eventKey(ev)) {
		return nil
	}
	sub, at, err := decodeSubscription(ev)
	if err != nil {
		return job.Permanent(err)
	}
	deleted := calmonypay.IsSubscriptionDeleted(ev.Type)
	status := normaliseStatus(sub.Status)
	if deleted {
		status = subCanceled
	}
	if status == "" {
		return job.Permanentf("check subscription: unknown status %q", sub.Status)
	}
	org, ok, err := orgByCustomer(ctx, h.d.DB, sub.Customer)
	if err != nil {
		return err
	}
	if !ok {
		return unknownCustomer(h.d.Clock.Now(), ev.Created)
	}
	in := subscriptionRow{Org: org, ProviderID: sub.ID, Status: status, Plan: sub.PlanCode(),
		Sub: sub, At: at, Deleted: deleted}
	err = h.d.DB.Handle(ctx, SubscriptionSync, eventKey(ev), func(tx *store.Tx) error {
		return h.apply(ctx, tx, in, ev)
	})
	return ack(err)
}

func (h *subscriptionSync) apply(ctx context.Context, tx *store.Tx, in subscriptionRow,
	ev calmonypay.Event) error {
	now := store.Now(h.d.Clock.Now())
	id, applied, err := upsertSubscription(ctx, tx, in, now)
	if err != nil || !applied {
		return err
	}
	var current string
	if err := tx.QueryRowContext(ctx, `SELECT billing_state FROM organisations WHERE id = $1`,
		in.Org).Scan(&current); err != nil {
		return fmt.Errorf("read organisation: %w", err)
	}
	state := nextBillingState(current, in.Status)
	var churned any
	if in.Deleted {
		churned = store.Now(in.At)
	}
	_, err = tx.ExecContext(ctx, `UPDATE organisations SET billing_state = $1,
		plan_code = CASE WHEN $2 = '' THEN plan_code ELSE $2 END,
		churned_at = COALESCE(churned_at, $3) WHERE id = $4`,
		state, in.Plan, churned, in.Org)
	if err != nil {
		return fmt.Errorf("update organisation billing: %w", err)
	}
	if pm := in.Sub.DefaultPaymentMethod; pm != "" {
		_, err = tx.ExecContext(ctx, `UPDATE billing_customers SET default_payment_method_id = $1,
			updated_at = $2 WHERE organisation_id = $3`, pm, now, in.Org)
		if err != nil {
			return fmt.Errorf("update default payment method: %w", err)
		}
	}
	payload := map[string]any{"organisation_id": in.Org, "subscription_id": id,
		"provider_subscription_id": in.ProviderID, "status": in.Status, "billing_state": state,
		"plan_code": in.Plan}
	_, err = tx.Emit(ctx, TopicSubscriptionSynced, payload,
		store.EmitOpts{ID: job.StableID(SubscriptionSync, ev.ID)})
	return err
}
