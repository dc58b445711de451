package billing

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/job"
)

// pastDue brings the fixture to a failed invoice on a past_due subscription.
func (f *fixture) pastDue() string {
	f.t.Helper()
	require.NoError(f.t, f.calmony(checkoutEvent()))
	require.NoError(f.t, f.calmony(invoiceJSON("evt_fail", "invoice.payment_failed",
		t0.Add(time.Hour), 3)))
	require.NoError(f.t, f.calmony(subscriptionEvent("evt_pd", "past_due", t0.Add(time.Hour))))
	return f.str(`SELECT id FROM invoices`)
}

func (f *fixture) autocharge(asOf string) error {
	return f.run(NewAutoChargeOverdue, AutoChargeOverdue, TopicAutochargeTick,
		"tick-"+asOf, tick(asOf))
}

func TestAutochargeDeclinesAreRecordedNotPoisoned(t *testing.T) {
	t.Parallel()
	for _, code := range []string{"insufficient_funds", "stolen_card", "authentication_required"} {
		t.Run(code, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			inv := f.pastDue()
			f.fake.Decline(testPM, code)
			require.NoError(t, f.autocharge("2026-12-11"))
			require.Equal(t, "failed", f.str(`SELECT status FROM payments`))
			require.Equal(t, code, f.str(`SELECT failure_code FROM payments`))
			require.Equal(t, 1, f.outboxTopics()[TopicAutochargeAttempted])

			// The next day: soft declines are tried again, the others wait
			// for a new card.
			f.now = f.now.Add(24 * time.Hour)
			require.NoError(t, f.autocharge("2026-12-12"))
			want := 2
			if code != "insufficient_funds" {
				want = 1
			}
			require.Equal(t, want, f.fake.Charges())
			if code == "authentication_required" {
				require.Contains(t, f.mail.keys(), "autocharge-auth:"+inv+":"+testPM)
			}
		})
	}
}

func TestAutochargeSkipsRecentPendingPayment(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	inv := f.pastDue()
	f.exec(`INSERT INTO payments (id, organisation_id, invoice_id, purpose, amount_pence,
		currency, status, created_at, updated_at) VALUES ('p0', $1, $2, 'overdue_invoice', 4900,
		'gbp', 'pending', $3, $3)`, testOrg, inv, f.now.Add(-5*time.Minute))
	require.NoError(t, f.autocharge("2026-12-11"))
	require.Zero(t, f.fake.Charges())
}

func TestAutochargeStopsAtAttemptCap(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	inv := f.pastDue()
	f.exec(`UPDATE subscriptions SET auto_charge_attempts = 6`)
	f.fake.Decline(testPM, "insufficient_funds")
	require.NoError(t, f.autocharge("2026-12-11"))
	require.Equal(t, 1, f.fake.Charges())
	require.Equal(t, "restricted", f.str(`SELECT billing_state FROM organisations`))
	require.Contains(t, f.mail.keys(), restrictedKey(inv))

	f.now = f.now.Add(24 * time.Hour)
	require.NoError(t, f.autocharge("2026-12-12"))
	require.Equal(t, 1, f.fake.Charges(), "no charge after the cap")
	require.Equal(t, 1, f.count(`SELECT COUNT(*) FROM notifications WHERE dedupe_key = $1`,
		restrictedKey(inv)))
}

func TestAutochargeStopsAtDayCap(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.pastDue()
	// The dunning case opened on 1 December; 22 December is day 21.
	require.NoError(t, f.autocharge("2026-12-22"))
	require.Zero(t, f.fake.Charges())
	require.Equal(t, "restricted", f.str(`SELECT billing_state FROM organisations`))
}

func TestAutochargeProviderFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		class  job.Class
	}{
		{"5xx is retried", http.StatusBadGateway, job.ClassRetryable},
		{"429 is retried", http.StatusTooManyRequests, job.ClassRetryable},
		{"400 is permanent", http.StatusBadRequest, job.ClassPermanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.pastDue()
			f.fake.FailNext(tt.status, 0)
			err := f.autocharge("2026-12-11")
			require.Equal(t, tt.class, job.Classify(err))
			require.Zero(t, f.fake.Charges())
			require.Zero(t, f.outboxTopics()[TopicAutochargeAttempted])
			require.Zero(t, f.count(`SELECT auto_charge_attempts FROM subscriptions`))
		})
	}
}

func TestAutochargeRefusesBadTick(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.pastDue()
	err := f.run(NewAutoChargeOverdue, AutoChargeOverdue, TopicAutochargeTick, "t",
		[]byte(`{"scheduled_for":"2026-12-11T09:00:00Z","as_of":"11/12/2026"}`))
	require.Equal(t, job.ClassPermanent, job.Classify(err))
	require.Zero(t, f.fake.Charges())
	require.Zero(t, f.count(`SELECT COUNT(*) FROM payments`))
}
