package billing

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/store"
)

func TestScenarioCheckoutLinksSubscription(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	require.NoError(t, f.calmony(checkoutEvent()))
	require.NoError(t, f.calmony(checkoutEvent()), "a redelivery is acked")

	require.Equal(t, testCust, f.str(`SELECT provider_customer_id FROM billing_customers
		WHERE organisation_id = $1`, testOrg))
	require.Equal(t, testPM, f.str(`SELECT default_payment_method_id FROM billing_customers`))
	require.Equal(t, "active", f.str(`SELECT status FROM subscriptions
		WHERE provider_subscription_id = $1`, testSub))
	require.Equal(t, "pro", f.str(`SELECT plan_code FROM organisations WHERE id = $1`, testOrg))
	require.Equal(t, "ok", f.str(`SELECT billing_state FROM organisations WHERE id = $1`, testOrg))
	require.Equal(t, "completed", f.str(`SELECT status FROM checkout_sessions`))
	require.Equal(t, map[string]int{TopicSubscriptionLinked: 1}, f.outboxTopics())
	require.Equal(t, 1, f.fake.Requests("GET /v1/subscriptions/"))
}

func TestScenarioCheckoutRefusals(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"unknown session": stripeEvent("evt_x", "checkout.session.completed", t0,
			map[string]any{"id": "cs_unknown", "mode": "subscription", "customer": testCust,
				"subscription": testSub}),
		"organisation mismatch": stripeEvent("evt_y", "checkout.session.completed", t0,
			map[string]any{"id": testSession, "mode": "subscription", "customer": testCust,
				"subscription": testSub, "client_reference_id": "someone-else"}),
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			err := f.calmony(body)
			require.Equal(t, job.ClassPermanent, job.Classify(err))
			require.Zero(t, f.count(`SELECT COUNT(*) FROM subscriptions`))
			require.Zero(t, f.count(`SELECT COUNT(*) FROM billing_customers`))
			require.Empty(t, f.outboxTopics())
		})
	}
}

// TestScenarioFailedInvoiceChargedOnceAt0900 walks the dunning path: the
// invoice fails, the subscription goes past_due, and the 09:00 run charges
// the card once although the provider times out on the first try and the
// cron message arrives twice.
func TestScenarioFailedInvoiceChargedOnceAt0900(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	require.NoError(t, f.calmony(checkoutEvent()))
	fail := invoiceJSON("evt_fail", "invoice.payment_failed", t0.Add(time.Hour), 3)
	require.NoError(t, f.calmony(fail))
	require.NoError(t, f.calmony(fail))
	require.NoError(t, f.calmony(subscriptionEvent("evt_pd", "past_due", t0.Add(time.Hour))))

	require.Equal(t, "payment_failed", f.str(`SELECT status FROM invoices`))
	require.Equal(t, "open", f.str(`SELECT status FROM dunning_cases`))
	require.Equal(t, "grace", f.str(`SELECT billing_state FROM organisations`))
	inv := f.str(`SELECT id FROM invoices`)
	require.Equal(t, []string{failureKey(inv, 3)}, f.mail.keys(), "one card-update email")

	f.fake.HangNext()
	const tickID = "tick-2026-12-11"
	err := f.run(NewAutoChargeOverdue, AutoChargeOverdue, TopicAutochargeTick, tickID,
		tick("2026-12-11"))
	require.Error(t, err)
	require.Equal(t, job.ClassRetryable, job.Classify(err), "a timeout is retried")
	require.Equal(t, "pending", f.str(`SELECT status FROM payments`))

	for range 2 { // the retry, then the duplicate cron delivery
		require.NoError(t, f.run(NewAutoChargeOverdue, AutoChargeOverdue, TopicAutochargeTick,
			tickID, tick("2026-12-11")))
	}
	require.Equal(t, 1, f.fake.Charges(), "the card is charged once")
	keys := f.fake.IdempotencyKeys()
	require.Len(t, keys, 2)
	require.Equal(t, keys[0], keys[1])
	require.Equal(t, "autocharge:"+inv+":2026-12-11", keys[0])
	require.Equal(t, "succeeded", f.str(`SELECT status FROM payments`))
	require.Equal(t, 1, f.count(`SELECT auto_charge_attempts FROM subscriptions`))
	require.Equal(t, "2026-12-11", f.str(`SELECT last_auto_charge_on FROM subscriptions`))
	require.Equal(t, 1, f.outboxTopics()[TopicAutochargeAttempted])

	// The provider's webhook then settles the invoice through the metadata.
	pi := f.str(`SELECT provider_payment_intent_id FROM payments`)
	require.NoError(t, f.calmony(stripeEvent("evt_pi", "payment_intent.succeeded",
		t0.Add(240*time.Hour), map[string]any{"id": pi, "amount": 4900, "currency": "gbp",
			"status": "succeeded", "metadata": map[string]any{"invoice_id": inv}})))
	require.Equal(t, "paid", f.str(`SELECT status FROM invoices`))
	require.Equal(t, "resolved", f.str(`SELECT status FROM dunning_cases`))
	require.Equal(t, "ok", f.str(`SELECT billing_state FROM organisations`))
	require.Equal(t, 1, f.outboxTopics()[TopicOverdueResolved])
	require.Equal(t, 0, f.count(`SELECT auto_charge_attempts FROM subscriptions`))
}

// TestScenarioPoisonReplayDoesNotChargeTwice poisons the tick after the
// provider took the charge but the answer was lost, replays it from the
// poison queue as the CLI does, and checks the card was charged once.
func TestScenarioPoisonReplayDoesNotChargeTwice(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	require.NoError(t, f.calmony(checkoutEvent()))
	require.NoError(t, f.calmony(invoiceJSON("evt_fail", "invoice.payment_failed",
		t0.Add(time.Hour), 3)))
	require.NoError(t, f.calmony(subscriptionEvent("evt_pd", "past_due", t0.Add(time.Hour))))

	f.fake.HangNext()
	payload := tick("2026-12-11")
	err := f.run(NewAutoChargeOverdue, AutoChargeOverdue, TopicAutochargeTick, "tick-1", payload)
	require.Error(t, err)
	ctx := context.Background()
	require.NoError(t, f.db.SavePoison(ctx, store.PoisonRecord{ID: "p1", MessageID: "tick-1",
		Topic: TopicAutochargeTick, Handler: AutoChargeOverdue, ErrorClass: "retryable",
		Reason: err.Error(), Attempts: 6, FirstFailedAt: f.now, Payload: payload,
		Metadata: map[string]string{}}, f.now))
	_, err = f.db.ReplayPoison(ctx, "p1", f.now)
	require.NoError(t, err)
	rows, err := f.db.PendingOutbox(ctx, 100)
	require.NoError(t, err)
	var replayed []byte
	for _, r := range rows {
		if r.Event.Topic == TopicAutochargeTick {
			replayed = r.Event.Payload
		}
	}
	require.NotNil(t, replayed, "the replay is in the outbox")
	require.NoError(t, f.run(NewAutoChargeOverdue, AutoChargeOverdue, TopicAutochargeTick,
		"tick-1", replayed))
	require.Equal(t, 1, f.fake.Charges())
	require.Equal(t, "succeeded", f.str(`SELECT status FROM payments`))
}

func TestScenarioAmountMismatchIsPoisonedAndAlerts(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.exec(`INSERT INTO checkout_sessions (id, organisation_id, provider_session_id, purpose,
		ref_id, amount_pence, status, created_at, updated_at)
		VALUES ('c2', $1, 'cs_aml', 'aml_credits', 'aml_25', 5000, 'open', $2, $2)`,
		testOrg, store.Now(t0))
	payload := []byte(`{"organisation_id":"` + testOrg + `","provider_payment_intent_id":"pi_9",
		"checkout_session_id":"cs_aml","purpose":"aml_credits","ref_id":"aml_25",
		"amount_pence":4000,"currency":"gbp"}`)
	f.fake.SetPaymentIntent(calmonyIntent("pi_9", 4000))
	err := f.run(NewPaymentCompletedSync, PaymentCompletedSync, TopicPaymentCompleted, "m1",
		payload)
	require.Equal(t, job.ClassPermanent, job.Classify(err))
	require.True(t, errors.Is(err, errAmountMismatch))
	require.Contains(t, f.logs.String(), `"alert":"billing_amount_mismatch"`)
	require.Zero(t, f.count(`SELECT COUNT(*) FROM aml_credit_ledger`))
	require.Zero(t, f.count(`SELECT COUNT(*) FROM payments`))
	require.Empty(t, f.outboxTopics())
}

func TestScenarioAMLPurchaseCreditsOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.exec(`INSERT INTO checkout_sessions (id, organisation_id, provider_session_id, purpose,
		ref_id, amount_pence, status, created_at, updated_at)
		VALUES ('c2', $1, 'cs_aml', 'aml_credits', 'aml_25', 5000, 'open', $2, $2)`,
		testOrg, store.Now(t0))
	f.fake.SetPaymentIntent(calmonyIntent("pi_9", 5000))
	checkout := stripeEvent("evt_co2", "checkout.session.completed", t0, map[string]any{
		"id": "cs_aml", "mode": "payment", "customer": testCust, "payment_intent": "pi_9",
		"payment_status": "paid", "amount_total": 5000, "currency": "gbp"})
	require.NoError(t, f.calmony(checkout))
	rows, err := f.db.PendingOutbox(context.Background(), 10)
	require.NoError(t, err)
	require.Len(t, rows, 1)
	for range 2 {
		require.NoError(t, f.run(NewPaymentCompletedSync, PaymentCompletedSync,
			TopicPaymentCompleted, rows[0].Event.ID, rows[0].Event.Payload))
	}
	require.Equal(t, 25, f.count(`SELECT balance_after FROM aml_credit_ledger`))
	require.Equal(t, 1, f.count(`SELECT COUNT(*) FROM aml_credit_ledger`))
	require.Equal(t, 1, f.outboxTopics()[TopicAMLCreditsPurchased])
	require.Empty(t, f.mail.keys(), "no billing email is on file before a subscription")
}

func TestScenarioRGIPaymentLinksPolicyAndSendsReceipt(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	require.NoError(t, f.calmony(checkoutEvent())) // records the billing email
	policy := "3f2e1d0c-9b8a-4776-8554-433221100fed"
	f.exec(`INSERT INTO rgi_policies (id, organisation_id, payment_plan, cover_months, status,
		created_at, updated_at) VALUES ($1, $2, 'annual', 12, 'pending', $3, $3)`,
		policy, testOrg, store.Now(t0))
	f.fake.SetPaymentIntent(calmonyIntent("pi_rgi", 19500))
	payload := []byte(`{"organisation_id":"` + testOrg + `","provider_payment_intent_id":"pi_rgi",
		"purpose":"rgi_policy","ref_id":"` + policy + `","amount_pence":19500,"currency":"gbp"}`)
	for range 2 {
		require.NoError(t, f.run(NewPaymentCompletedSync, PaymentCompletedSync,
			TopicPaymentCompleted, "m-rgi", payload))
	}
	require.NotEmpty(t, f.str(`SELECT payment_id FROM rgi_policies WHERE id = $1`, policy))
	require.Equal(t, 1, f.outboxTopics()[TopicRGIPaymentCompleted])
	require.Equal(t, []string{"receipt:pi_rgi"}, f.mail.keys())
	require.Equal(t, "succeeded", f.str(`SELECT status FROM payments`))
}

func TestPaymentCompletedRefusals(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"unknown purpose": `"purpose":"gift","ref_id":"x"`,
		"unknown pack":    `"purpose":"aml_credits","ref_id":"aml_7"`,
		"unknown policy":  `"purpose":"rgi_policy","ref_id":"nope"`,
	}
	for name, part := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			payload := []byte(`{"organisation_id":"` + testOrg + `",
				"provider_payment_intent_id":"pi_x",` + part + `,"amount_pence":100,
				"currency":"gbp"}`)
			err := f.run(NewPaymentCompletedSync, PaymentCompletedSync, TopicPaymentCompleted,
				"m", payload)
			require.Equal(t, job.ClassPermanent, job.Classify(err))
			require.Zero(t, f.count(`SELECT COUNT(*) FROM payments`))
			require.Empty(t, f.outboxTopics())
			require.Zero(t, f.fake.Requests("GET"))
		})
	}
}
