package billing

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/job"
)

// permutations returns every order of items.
func permutations(items []string) [][]string {
	if len(items) <= 1 {
		return [][]string{append([]string(nil), items...)}
	}
	var out [][]string
	for i := range items {
		rest := append(append([]string(nil), items[:i]...), items[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]string{items[i]}, p...))
		}
	}
	return out
}

// snapshot is the billing state the events decide.
func (f *fixture) snapshot() string {
	f.t.Helper()
	ctx := context.Background()
	var status, reason *string
	var due, paid, attempts int64
	var paidAt, invAt, subAt any
	require.NoError(f.t, f.db.QueryRowContext(ctx, `SELECT status, amount_due_pence,
		amount_paid_pence, attempt_count, last_failure_reason, paid_at, provider_updated_at
		FROM invoices`).Scan(&status, &due, &paid, &attempts, &reason, &paidAt, &invAt))
	var subStatus, state string
	require.NoError(f.t, f.db.QueryRowContext(ctx, `SELECT status, provider_updated_at
		FROM subscriptions`).Scan(&subStatus, &subAt))
	require.NoError(f.t, f.db.QueryRowContext(ctx, `SELECT billing_state FROM organisations`).
		Scan(&state))
	open := f.count(`SELECT COUNT(*) FROM dunning_cases WHERE status = 'open'`)
	return fmt.Sprintf("invoice %s due=%d paid=%d attempts=%d reason=%v paid_at=%v at=%v | "+
		"sub %s at=%v | org %s | open dunning %d", deref(status), due, paid, attempts,
		deref(reason), paidAt, invAt, subStatus, subAt, state, open)
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// TestScenarioEveryOrderConverges delivers the same invoice and
// subscription events in every order, each twice, and expects one final
// state.
func TestScenarioEveryOrderConverges(t *testing.T) {
	t.Parallel()
	events := map[string]string{
		"fail":     invoiceJSON("evt_fail", "invoice.payment_failed", t0.Add(time.Hour), 2),
		"paid":     invoiceJSON("evt_paid", "invoice.paid", t0.Add(3*time.Hour), 3),
		"past_due": subscriptionEvent("evt_pd", "past_due", t0.Add(time.Hour)),
		"active":   subscriptionEvent("evt_act", "active", t0.Add(3*time.Hour)),
	}
	names := []string{"fail", "paid", "past_due", "active"}
	var want string
	for _, order := range permutations(names) {
		f := newFixture(t)
		require.NoError(t, f.calmony(checkoutEvent()))
		for _, name := range order {
			require.NoError(t, f.calmony(events[name]), "%v: %s", order, name)
			require.NoError(t, f.calmony(events[name]), "%v: %s again", order, name)
		}
		got := f.snapshot()
		if want == "" {
			want = got
			require.Contains(t, want, "invoice paid")
			require.Contains(t, want, "sub active")
			require.Contains(t, want, "org ok")
			continue
		}
		require.Equal(t, want, got, "order %v", order)
	}
}

func TestScenarioCanceledIsTerminal(t *testing.T) {
	t.Parallel()
	deleted := stripeEvent("evt_del", "customer.subscription.deleted", t0.Add(time.Hour),
		map[string]any{"id": testSub, "customer": testCust, "status": "canceled"})
	flatLate := `{"event":"subscription.updated","created_at":"2026-12-01T13:00:00Z",
		"data":{"id":"sub_1","status":"active","customer_id":"cus_1","plan_id":"pro",
		"updated_at":"2026-12-01T13:00:00Z"}}`
	for _, order := range [][]string{{deleted, flatLate}, {flatLate, deleted}} {
		f := newFixture(t)
		require.NoError(t, f.calmony(checkoutEvent()))
		for _, e := range order {
			require.NoError(t, f.calmony(e))
		}
		require.Equal(t, "canceled", f.str(`SELECT status FROM subscriptions`))
		require.Equal(t, "restricted", f.str(`SELECT billing_state FROM organisations`))
		require.NotEmpty(t, f.str(`SELECT CAST(churned_at AS TEXT) FROM organisations`))
	}
}

func TestScenarioUnknownCustomerGraceThenPermanent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	early := subscriptionEvent("evt_early", "active", f.now.Add(-time.Minute))
	err := f.calmony(early)
	require.Error(t, err)
	require.ErrorIs(t, err, errUnknownCustomer)
	require.Equal(t, job.ClassRetryable, job.Classify(err), "within the grace window")
	late := subscriptionEvent("evt_late", "active", f.now.Add(-time.Hour))
	err = f.calmony(late)
	require.ErrorIs(t, err, errUnknownCustomer)
	require.Equal(t, job.ClassPermanent, job.Classify(err), "after the grace window")
	require.Zero(t, f.count(`SELECT COUNT(*) FROM subscriptions`))
}
