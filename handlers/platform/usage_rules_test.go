package platform

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestUsagePeriodMonth(t *testing.T) {
	t.Parallel()
	london := londonOr(nil)
	tests := []struct {
		name string
		at   string
		want string
	}{
		{"summer: 23:30Z on 30 June is 00:30 BST on 1 July", "2026-06-30T23:30:00Z", "2026-07-01"},
		{"summer: 22:59Z on 30 June is still June", "2026-06-30T22:59:59Z", "2026-06-01"},
		{"autumn: 23:30Z on 31 October is GMT, still October", "2026-10-31T23:30:00Z",
			"2026-10-01"},
		{"winter: 23:30Z on 31 December is GMT", "2026-12-31T23:30:00Z",
			"2026-12-01"},
		{"spring: 23:30Z on 31 March is 00:30 BST on 1 April", "2026-03-31T23:30:00Z",
			"2026-04-01"},
		{"offset in the input is honoured", "2026-08-01T00:30:00+01:00", "2026-08-01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			at, err := time.Parse(time.RFC3339, tt.at)
			require.NoError(t, err)
			require.Equal(t, tt.want, usagePeriodMonth(at, london))
		})
	}
}

func TestUsageThresholdsReached(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		quantity int64
		limit    int64
		want     []int
	}{
		{"below 80%", 3, 5, nil},
		{"exactly 80%", 4, 5, []int{80}},
		{"80% rounds up: 8 of 9 is 88%", 8, 9, []int{80}},
		{"7 of 9 is 77%", 7, 9, nil},
		{"exactly 100%", 5, 5, []int{80, 100}},
		{"over 100%", 12, 5, []int{80, 100}},
		{"zero usage", 0, 5, nil},
		{"negative usage", -3, 5, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, usageThresholdsReached(tt.quantity, tt.limit))
		})
	}
}

func TestUsagePlanLimit(t *testing.T) {
	t.Parallel()
	limit, ok := usagePlanLimit("starter", "seats.active")
	require.True(t, ok)
	require.Positive(t, limit)

	_, ok = usagePlanLimit("enterprise-custom", "seats.active")
	require.False(t, ok, "unknown plan has no limits")

	for _, plan := range []string{"starter", "growth", "scale"} {
		for metric := range usagePlanLimits[plan] {
			_, known := usageMetrics[metric]
			require.True(t, known, "plan %s limits unknown metric %s", plan, metric)
		}
	}
}

func TestUsageThresholdKey(t *testing.T) {
	t.Parallel()
	require.Equal(t, "org-1:seats.active:2026-12-01:80",
		usageThresholdKey("org-1", "seats.active", "2026-12-01", 80))
}
