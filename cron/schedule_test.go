package cron

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestScheduleValidate(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name  string
		s     Schedule
		wants []string // substrings of the error; none for a valid schedule
	}{
		{"daily", Schedule{Name: "a", Topic: "t", Spec: "30 3 * * *"}, nil},
		{"skip policy", Schedule{Name: "a", Topic: "t", Spec: "*/5 * * * *",
			CatchUp: CatchUpSkip}, nil},
		{"zone prefix", Schedule{Name: "a", Topic: "t",
			Spec: "TZ=America/New_York 0 9 * * *"}, nil},
		{"leap day", Schedule{Name: "a", Topic: "t", Spec: "0 0 29 2 *"}, nil},
		{"empty name and topic", Schedule{Spec: "30 3 * * *"},
			[]string{`schedule ""`, "name is empty", "topic is empty"}},
		{"four fields", Schedule{Name: "a", Topic: "t", Spec: "30 3 * *"},
			[]string{`schedule "a"`, `spec "30 3 * *"`, "expected exactly 5 fields"}},
		{"six fields", Schedule{Name: "a", Topic: "t", Spec: "0 30 3 * * *"},
			[]string{`schedule "a"`, "expected exactly 5 fields"}},
		{"minute out of range", Schedule{Name: "a", Topic: "t", Spec: "61 3 * * *"},
			[]string{`schedule "a"`, `spec "61 3 * * *"`, "61"}},
		{"descriptor", Schedule{Name: "a", Topic: "t", Spec: "@daily"},
			[]string{`schedule "a"`, "descriptors"}},
		{"never fires", Schedule{Name: "a", Topic: "t", Spec: "0 0 30 2 *"},
			[]string{`schedule "a"`, "never fires"}},
		{"unknown zone", Schedule{Name: "a", Topic: "t", Spec: "TZ=Mars/Olympus 0 9 * * *"},
			[]string{`schedule "a"`, `unknown time zone "Mars/Olympus"`}},
		{"empty zone", Schedule{Name: "a", Topic: "t", Spec: "CRON_TZ= 0 9 * * *"},
			[]string{`schedule "a"`, `time zone ""`}},
		{"unknown policy", Schedule{Name: "a", Topic: "t", Spec: "0 9 * * *", CatchUp: "always"},
			[]string{`schedule "a"`, `catch-up policy "always"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.s.Validate()
			if tt.wants == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, want := range tt.wants {
				require.ErrorContains(t, err, want)
			}
		})
	}
}

func TestScheduleNextPrev(t *testing.T) {
	t.Parallel()
	utc := func(y int, mo time.Month, d, h, mi int) time.Time {
		return time.Date(y, mo, d, h, mi, 0, 0, time.UTC)
	}

	tests := []struct {
		name       string
		spec       string
		at         time.Time
		next, prev time.Time
	}{
		{"daily in winter", "30 3 * * *", utc(2026, 12, 3, 10, 0),
			utc(2026, 12, 4, 3, 30), utc(2026, 12, 3, 3, 30)},
		{"daily in summer is an hour earlier in UTC", "30 3 * * *", utc(2026, 7, 1, 0, 0),
			utc(2026, 7, 1, 2, 30), utc(2026, 6, 30, 2, 30)},
		{"at a slot: next is the following one, prev is itself", "30 3 * * *",
			utc(2026, 12, 3, 3, 30), utc(2026, 12, 4, 3, 30), utc(2026, 12, 3, 3, 30)},
		{"just before a slot", "30 3 * * *", utc(2026, 12, 3, 3, 29),
			utc(2026, 12, 3, 3, 30), utc(2026, 12, 2, 3, 30)},
		{"weekdays from a Friday", "0 8 * * 1-5", utc(2026, 12, 4, 9, 0),
			utc(2026, 12, 7, 8, 0), utc(2026, 12, 4, 8, 0)},
		{"weekdays from a Sunday", "0 8 * * 1-5", utc(2026, 12, 6, 12, 0),
			utc(2026, 12, 7, 8, 0), utc(2026, 12, 4, 8, 0)},
		{"Sundays", "0 4 * * 0", utc(2026, 12, 3, 12, 0),
			utc(2026, 12, 6, 4, 0), utc(2026, 11, 29, 4, 0)},
		{"both day fields restricted match either", "0 0 1 * 1", utc(2026, 12, 2, 0, 0),
			utc(2026, 12, 7, 0, 0), utc(2026, 12, 1, 0, 0)},
		{"every five minutes", "*/5 * * * *", utc(2026, 12, 3, 10, 7),
			utc(2026, 12, 3, 10, 10), utc(2026, 12, 3, 10, 5)},
		{"every minute mid-minute", "* * * * *", time.Date(2026, 12, 3, 10, 7, 30, 0, time.UTC),
			utc(2026, 12, 3, 10, 8), utc(2026, 12, 3, 10, 7)},
		{"leap day", "0 0 29 2 *", utc(2026, 12, 3, 0, 0),
			utc(2028, 2, 29, 0, 0), utc(2024, 2, 29, 0, 0)},
		{"own zone overrides the location", "TZ=America/New_York 0 9 * * *",
			utc(2026, 12, 3, 12, 0), utc(2026, 12, 3, 14, 0), utc(2026, 12, 2, 14, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := Schedule{Name: "s", Topic: "t", Spec: tt.spec}
			require.Equal(t, tt.next, s.Next(tt.at, nil))
			require.Equal(t, tt.prev, s.Prev(tt.at, nil))
			require.Equal(t, tt.next, s.Next(tt.at, London), "nil location means London")
		})
	}
}

func TestScheduleNextPrevInOtherLocation(t *testing.T) {
	t.Parallel()
	s := Schedule{Name: "s", Topic: "t", Spec: "0 9 * * *"}
	at := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)

	require.Equal(t, time.Date(2026, 7, 1, 9, 0, 0, 0, time.UTC), s.Next(at, time.UTC))
	require.Equal(t, time.Date(2026, 7, 1, 8, 0, 0, 0, time.UTC), s.Next(at, London))
}

func TestScheduleNextPrevInvalidSpec(t *testing.T) {
	t.Parallel()
	s := Schedule{Name: "s", Topic: "t", Spec: "not a spec"}
	at := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)

	require.True(t, s.Next(at, nil).IsZero())
	require.True(t, s.Prev(at, nil).IsZero())
}
