package cron

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The UK clock changes of 2026: on 29 March 01:00 GMT becomes 02:00 BST (at
// 01:00 UTC), on 25 October 02:00 BST becomes 01:00 GMT (at 01:00 UTC).
// Both are Sundays.
var (
	springForward = time.Date(2026, 3, 29, 0, 0, 0, 0, London)
	fallBack      = time.Date(2026, 10, 25, 0, 0, 0, 0, London)
)

// dstCase is a schedule with the slots it must have on each clock-change
// day, as UTC times on that date (or, before midnight UTC, the day before).
type dstCase struct {
	spec             string
	spring, autumn   []string // "15:04" UTC; nil when checked by count
	springN, autumnN int      // slot counts for intervals
}

var dstCases = []dstCase{
	{spec: "30 3 * * *", spring: []string{"02:30"}, autumn: []string{"03:30"}},
	{spec: "0 4 * * 0", spring: []string{"03:00"}, autumn: []string{"04:00"}},
	{spec: "30 6 * * *", spring: []string{"05:30"}, autumn: []string{"06:30"}},
	{spec: "0 7 * * *", spring: []string{"06:00"}, autumn: []string{"07:00"}},
	{spec: "0 8 * * 1-5", spring: []string{}, autumn: []string{}},
	{spec: "0 9 * * *", spring: []string{"08:00"}, autumn: []string{"09:00"}},
	// 01:30 does not exist in spring: it fires when the clocks jump, 02:00
	// BST. In autumn it happens twice: it fires at the first, 01:30 BST.
	{spec: "30 1 * * *", spring: []string{"01:00"}, autumn: []string{"00:30"}},
	// A time of day with several skipped times fires once at the jump; in
	// the repeated hour it fires at the first pass only.
	{spec: "*/15 1 * * *", spring: []string{"01:00"},
		autumn: []string{"00:00", "00:15", "00:30", "00:45"}},
	// Intervals keep their spacing: a 23-hour day and a 25-hour day.
	{spec: "*/5 * * * *", springN: 23 * 12, autumnN: 25 * 12},
	{spec: "* * * * *", springN: 23 * 60, autumnN: 25 * 60},
	{spec: "0 * * * *", springN: 23, autumnN: 25},
}

// slotsOnDay lists the slots of s from local midnight to local midnight.
func slotsOnDay(s Schedule, day time.Time) []time.Time {
	end := day.AddDate(0, 0, 1)
	var out []time.Time
	for at := s.Next(day.Add(-time.Nanosecond), nil); at.Before(end); at = s.Next(at, nil) {
		out = append(out, at)
	}
	return out
}

func TestScheduleOnClockChangeDays(t *testing.T) {
	t.Parallel()
	for _, tc := range dstCases {
		days := []struct {
			name  string
			day   time.Time
			times []string
			count int
		}{
			{"spring", springForward, tc.spring, tc.springN},
			{"autumn", fallBack, tc.autumn, tc.autumnN},
		}
		for _, d := range days {
			t.Run(tc.spec+"/"+d.name, func(t *testing.T) {
				t.Parallel()
				s := Schedule{Name: "s", Topic: "t", Spec: tc.spec}
				slots := slotsOnDay(s, d.day)
				if d.times != nil {
					require.Equal(t, d.times, formatUTC(slots))
					return
				}
				require.Len(t, slots, d.count)
				step := slots[1].Sub(slots[0])
				for i := 1; i < len(slots); i++ {
					require.Equal(t, step, slots[i].Sub(slots[i-1]),
						"uneven step at %s", slots[i].Format(time.RFC3339))
				}
			})
		}
	}
}

// TestScheduleNextPrevAgree walks every slot of the clock-change days and
// checks that Next and Prev describe the same sequence.
func TestScheduleNextPrevAgree(t *testing.T) {
	t.Parallel()
	for _, tc := range dstCases {
		t.Run(tc.spec, func(t *testing.T) {
			t.Parallel()
			s := Schedule{Name: "s", Topic: "t", Spec: tc.spec}
			for _, day := range []time.Time{springForward, fallBack} {
				slots := slotsOnDay(s, day.AddDate(0, 0, -1))
				slots = append(slots, slotsOnDay(s, day)...)
				slots = append(slots, slotsOnDay(s, day.AddDate(0, 0, 1))...)
				for i, at := range slots {
					require.Equal(t, at, s.Prev(at, nil))
					if i > 0 {
						require.Equal(t, slots[i-1], s.Prev(at.Add(-time.Second), nil))
						require.Equal(t, at, s.Next(slots[i-1], nil))
					}
				}
			}
		})
	}
}

func TestScheduleTimeOfDayAroundTheChange(t *testing.T) {
	t.Parallel()
	s := Schedule{Name: "s", Topic: "t", Spec: "30 1 * * *"}
	utc := func(mo time.Month, d, h, mi int) time.Time {
		return time.Date(2026, mo, d, h, mi, 0, 0, time.UTC)
	}

	// Spring: the day before fires at 01:30 GMT, the day at the jump, the day
	// after at 01:30 BST.
	require.Equal(t, utc(3, 29, 1, 0), s.Next(utc(3, 28, 1, 30), nil))
	require.Equal(t, utc(3, 30, 0, 30), s.Next(utc(3, 29, 1, 0), nil))
	require.Equal(t, utc(3, 28, 1, 30), s.Prev(utc(3, 29, 0, 59), nil))

	// Autumn: at 01:45 GMT, the slot was the first 01:30, 01:30 BST, and the
	// second 01:30 (GMT) is not a slot.
	require.Equal(t, utc(10, 25, 0, 30), s.Prev(utc(10, 25, 1, 45), nil))
	require.Equal(t, utc(10, 26, 1, 30), s.Next(utc(10, 25, 0, 30), nil))
}

func formatUTC(ts []time.Time) []string {
	out := make([]string, len(ts))
	for i, at := range ts {
		out[i] = at.UTC().Format("15:04")
	}
	return out
}
