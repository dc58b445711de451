package billing

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/job"
)

func TestPaymentSyncRefusesBadMoney(t *testing.T) {
	t.Parallel()
	tests := map[string]map[string]any{
		"not gbp":     {"id": "pi_1", "amount": 100, "currency": "eur", "status": "succeeded"},
		"zero amount": {"id": "pi_1", "amount": 0, "currency": "gbp", "status": "succeeded"},
	}
	for name, obj := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			err := f.calmony(stripeEvent("evt_m", "payment_intent.succeeded", t0, obj))
			require.Equal(t, job.ClassPermanent, job.Classify(err))
			require.Zero(t, f.count(`SELECT COUNT(*) FROM payments`))
			require.Empty(t, f.outboxTopics())
		})
	}
}

func TestPaymentSyncUnmatchedIsRecordedAndAlerts(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	body := stripeEvent("evt_u", "payment_intent.succeeded", t0, map[string]any{
		"id": "pi_stranger", "amount": 1234, "currency": "gbp", "status": "succeeded"})
	require.NoError(t, f.calmony(body))
	require.NoError(t, f.calmony(body))
	require.Equal(t, "unmatched", f.str(`SELECT purpose FROM payments
		WHERE provider_payment_intent_id = 'pi_stranger'`))
	require.Contains(t, f.logs.String(), `"alert":"billing_unmatched_payment"`)
	require.Empty(t, f.outboxTopics())
}

func TestInvoiceSyncFlatShape(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	require.NoError(t, f.calmony(checkoutEvent()))
	failed := `{"event":"invoice.payment_failed","created_at":"2026-12-01T11:00:00Z",
		"data":{"invoice_id":"in_flat","customer_id":"cus_1","subscription_id":"sub_1",
		"amount":4900,"currency":"GBP","status":"failed","failure_reason":"card_declined"}}`
	paid := `{"event":"invoice.paid","created_at":"2026-12-01T12:00:00Z",
		"data":{"invoice_id":"in_flat","customer_id":"cus_1","subscription_id":"sub_1",
		"amount":4900,"currency":"GBP","status":"paid"}}`
	for _, b := range []string{failed, failed, paid, failed} {
		require.NoError(t, f.calmony(b))
	}
	require.Equal(t, "paid", f.str(`SELECT status FROM invoices`))
	require.Equal(t, "gbp", f.str(`SELECT currency FROM invoices`))
	require.Equal(t, 4900, f.count(`SELECT amount_paid_pence FROM invoices`))
	require.NotEmpty(t, f.str(`SELECT subscription_id FROM invoices`))
	require.Equal(t, "resolved", f.str(`SELECT status FROM dunning_cases`))
	require.Equal(t, 2, f.outboxTopics()[TopicInvoiceSynced],
		"one sync per applied event; the duplicate and the stale failure emit nothing")
}

func TestInvoiceSyncUnknownCustomer(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	err := f.calmony(invoiceJSON("evt_i", "invoice.paid", f.now.Add(-time.Hour), 1))
	require.Equal(t, job.ClassPermanent, job.Classify(err))
	require.Zero(t, f.count(`SELECT COUNT(*) FROM invoices`))
	require.Empty(t, f.mail.keys())
}

func TestCheckoutLivemodeMismatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	body := `{"id":"evt_live","type":"checkout.session.completed","created":1764583200,
		"livemode":true,"data":{"object":{"id":"cs_test_1","mode":"subscription",
		"customer":"cus_1","subscription":"sub_1"}}}`
	err := f.calmony(body)
	require.Equal(t, job.ClassPermanent, job.Classify(err))
	require.Zero(t, f.count(`SELECT COUNT(*) FROM subscriptions`))
	require.Zero(t, f.fake.Requests("GET"))
}
