package billing

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNormaliseStatus(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"cancelled": "canceled", "Canceled": "canceled",
		"active": "active", "past_due": "past_due", "weird": "", "": ""} {
		require.Equal(t, want, normaliseStatus(in), in)
	}
}

func TestNextBillingState(t *testing.T) {
	t.Parallel()
	tests := []struct{ current, status, want string }{
		{"ok", "active", "ok"},
		{"restricted", "trialing", "ok"},
		{"ok", "past_due", "grace"},
		{"restricted", "past_due", "restricted"},
		{"ok", "unpaid", "restricted"},
		{"ok", "canceled", "restricted"},
		{"ok", "incomplete_expired", "restricted"},
		{"ok", "paused", "restricted"},
		{"grace", "incomplete", "grace"},
	}
	for _, tt := range tests {
		t.Run(tt.current+"/"+tt.status, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, nextBillingState(tt.current, tt.status))
		})
	}
}

func TestSubscriptionApplies(t *testing.T) {
	t.Parallel()
	t1, t2 := t0, t0.Add(time.Minute)
	tests := []struct {
		name      string
		stored    string
		at, event time.Time
		deleted   bool
		want      bool
	}{
		{"newer applies", "active", t1, t2, false, true},
		{"same time applies", "active", t1, t1, false, true},
		{"stale is a no-op", "past_due", t2, t1, false, false},
		{"canceled is terminal", "canceled", t1, t2, false, false},
		{"deletion always applies", "active", t2, t1, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, subscriptionApplies(tt.stored, tt.at, tt.event, tt.deleted))
		})
	}
}

func TestInvoiceApplies(t *testing.T) {
	t.Parallel()
	t1, t2 := t0, t0.Add(time.Minute)
	tests := []struct {
		name             string
		stored, incoming string
		at, event        time.Time
		want             bool
	}{
		{"failure after paid is a no-op", "paid", "payment_failed", t1, t2, false},
		{"paid again is a no-op", "paid", "paid", t1, t2, false},
		{"void is terminal", "void", "paid", t1, t2, false},
		{"late paid still wins", "payment_failed", "paid", t2, t1, true},
		{"newer failure applies", "payment_failed", "payment_failed", t1, t2, true},
		{"stale failure is a no-op", "open", "payment_failed", t2, t1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, invoiceApplies(tt.stored, tt.at, tt.incoming, tt.event))
		})
	}
}

func TestClassifyDecline(t *testing.T) {
	t.Parallel()
	for code, want := range map[string]string{
		"insufficient_funds": declineSoft, "generic_decline": declineSoft,
		"do_not_honor": declineSoft, "processing_error": declineSoft,
		"lost_card": declineHard, "stolen_card": declineHard, "fraudulent": declineHard,
		"expired_card": declineHard, "pickup_card": declineHard,
		"authentication_required": declineAuth,
	} {
		require.Equal(t, want, classifyDecline(code), code)
	}
}

func TestCapReached(t *testing.T) {
	t.Parallel()
	tests := []struct {
		attempts, days int
		want           bool
	}{{0, 0, false}, {6, 20, false}, {7, 0, true}, {0, 21, true}, {8, 30, true}}
	for _, tt := range tests {
		require.Equal(t, tt.want, capReached(tt.attempts, tt.days), "%+v", tt)
	}
}

func TestSkipReason(t *testing.T) {
	t.Parallel()
	now := t0
	tests := []struct {
		name string
		c    chargeCandidate
		want string
	}{
		{"clean", chargeCandidate{PaymentMethod: "pm_1"}, skipNone},
		{"no payment method", chargeCandidate{}, skipNoMethod},
		{"pending 10 minutes ago", chargeCandidate{PaymentMethod: "pm_1",
			PendingSince: now.Add(-10 * time.Minute)}, skipPending},
		{"pending 40 minutes ago", chargeCandidate{PaymentMethod: "pm_1",
			PendingSince: now.Add(-40 * time.Minute)}, skipNone},
		{"hard decline, same card", chargeCandidate{PaymentMethod: "pm_1",
			LastFailure: &lastFailure{Code: "stolen_card", PaymentMethod: "pm_1"}},
			skipHardDecline},
		{"hard decline, new card", chargeCandidate{PaymentMethod: "pm_2",
			LastFailure: &lastFailure{Code: "stolen_card", PaymentMethod: "pm_1"}}, skipNone},
		{"soft decline", chargeCandidate{PaymentMethod: "pm_1",
			LastFailure: &lastFailure{Code: "insufficient_funds", PaymentMethod: "pm_1"}},
			skipNone},
		{"authentication required", chargeCandidate{PaymentMethod: "pm_1",
			LastFailure: &lastFailure{Code: "authentication_required", PaymentMethod: "pm_1"}},
			skipAuthNeeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, skipReason(tt.c, now))
		})
	}
}

func TestDaysBetween(t *testing.T) {
	t.Parallel()
	london, err := time.LoadLocation("Europe/London")
	require.NoError(t, err)
	// 23:30 UTC on 31 March 2026 is already 1 April in London (BST).
	at := time.Date(2026, 3, 31, 23, 30, 0, 0, time.UTC)
	require.Equal(t, 0, daysBetween(at, "2026-04-01", london))
	require.Equal(t, 21, daysBetween(at, "2026-04-22", london))
}
