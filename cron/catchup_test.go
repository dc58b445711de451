package cron

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/store"
	"github.com/millrace/millrace/store/storetest"
)

// hooks records what a ticker reported to its metrics hooks.
type hooks struct {
	mu     sync.Mutex
	fires  []string // "name" or "name catch-up"
	misses map[string]int
}

func (h *hooks) config(db *store.DB, schedules ...Schedule) Config {
	h.misses = map[string]int{}
	return Config{DB: db, Schedules: schedules, Instance: "replica-a", Logger: quiet,
		OnFireFunc: func(name string, catchUp bool) {
			h.mu.Lock()
			defer h.mu.Unlock()
			if catchUp {
				name += " catch-up"
			}
			h.fires = append(h.fires, name)
		},
		OnMissFunc: func(name string, slots int) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.misses[name] += slots
		},
	}
}

// afterOutage returns a ticker for s that last ran at the 03:30 slot of 1
// December and then stopped for three days, and the time it comes back.
func afterOutage(t *testing.T, s Schedule) (*Ticker, *store.DB, *hooks, time.Time) {
	t.Helper()
	db := storetest.New(t)
	h := &hooks{}
	tk, err := NewTicker(h.config(db, s))
	require.NoError(t, err)
	tick(t, tk, londonTime(2026, 11, 30, 12, 0))
	require.Len(t, tick(t, tk, londonTime(2026, 12, 1, 3, 30)), 1)

	return tk, db, h, londonTime(2026, 12, 4, 10, 0)
}

func TestCatchUpFireOnceAfterAnOutage(t *testing.T) {
	t.Parallel()
	s := Schedule{Name: "auditCleanup", Topic: auditTopic, Spec: "30 3 * * *",
		CatchUp: CatchUpFireOnce}
	tk, db, h, back := afterOutage(t, s)

	fired := tick(t, tk, back)
	require.Len(t, fired, 1)
	require.True(t, fired[0].CatchUp)
	require.Len(t, tick(t, tk, back.Add(time.Second)), 0, "caught up twice")

	// One tick, for the most recent missed slot (4 December), as of today.
	rows := ticks(t, db)
	require.Equal(t, []string{"2026-12-01T03:30:00Z", "2026-12-04T03:30:00Z"},
		ticksOf(rows, "auditCleanup"))
	require.True(t, rows[1].Payload.CatchUp)
	require.Equal(t, "2026-12-04", rows[1].Payload.AsOf)
	require.False(t, rows[1].Manual)

	// Nothing is recorded for 2 and 3 December.
	slots := slotRows(t, db, "auditCleanup")
	require.Len(t, slots, 3) // baseline, 1 and 4 December

	// The next slot is on time again.
	fired = tick(t, tk, londonTime(2026, 12, 5, 3, 30))
	require.Len(t, fired, 1)
	require.False(t, fired[0].CatchUp)

	require.Equal(t, []string{"auditCleanup", "auditCleanup catch-up", "auditCleanup"}, h.fires)
	require.Equal(t, map[string]int{"auditCleanup": 2}, h.misses)
}

func TestCatchUpSkipAfterAnOutage(t *testing.T) {
	t.Parallel()
	s := Schedule{Name: "auditCleanup", Topic: auditTopic, Spec: "30 3 * * *",
		CatchUp: CatchUpSkip}
	tk, db, h, back := afterOutage(t, s)

	require.Empty(t, tick(t, tk, back))
	require.Empty(t, tick(t, tk, back.Add(time.Minute)))
	require.Len(t, ticks(t, db), 1, "a skipped slot was published")

	// A marker records where the schedule stands.
	slots := slotRows(t, db, "auditCleanup")
	last := slots[len(slots)-1]
	require.Equal(t, slotRow{Schedule: "auditCleanup",
		ScheduledFor: londonTime(2026, 12, 4, 3, 30).UTC(), Kind: kindSkipped}, last)

	fired := tick(t, tk, londonTime(2026, 12, 5, 3, 30))
	require.Len(t, fired, 1)
	require.False(t, fired[0].CatchUp)
	require.Equal(t, []string{"2026-12-01T03:30:00Z", "2026-12-05T03:30:00Z"},
		ticksOf(ticks(t, db), "auditCleanup"))

	require.Equal(t, []string{"auditCleanup", "auditCleanup"}, h.fires)
	require.Equal(t, map[string]int{"auditCleanup": 3}, h.misses)
}

func TestCatchUpOfASlotClaimedLate(t *testing.T) {
	t.Parallel()
	daily := "30 3 * * *"
	tests := []struct {
		name     string
		policy   CatchUpPolicy
		late     time.Duration
		fired    bool
		catchUp  bool
		wantKind string
	}{
		{"within grace", CatchUpFireOnce, DefaultGrace, true, false, kindFired},
		{"within grace, skip", CatchUpSkip, DefaultGrace, true, false, kindFired},
		{"beyond grace", CatchUpFireOnce, DefaultGrace + time.Second, true, true, kindFired},
		{"beyond grace, skip", CatchUpSkip, DefaultGrace + time.Second, false, false, kindSkipped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := storetest.New(t)
			tk := newTicker(t, db, "replica-a", Schedule{Name: "auditCleanup",
				Topic: auditTopic, Spec: daily, CatchUp: tt.policy})
			tick(t, tk, londonTime(2026, 12, 2, 12, 0))

			slot := londonTime(2026, 12, 3, 3, 30)
			fired := tick(t, tk, slot.Add(tt.late))

			require.Equal(t, tt.fired, len(fired) == 1)
			rows := slotRows(t, db, "auditCleanup")
			require.Equal(t, slot.UTC(), rows[len(rows)-1].ScheduledFor)
			require.Equal(t, tt.wantKind, rows[len(rows)-1].Kind)
			require.Equal(t, tt.catchUp, rows[len(rows)-1].CatchUp)
			if tt.fired {
				require.Equal(t, tt.catchUp, ticks(t, db)[0].Payload.CatchUp)
			}
		})
	}
}

func TestCatchUpOfAnIntervalAfterAnOutage(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	h := &hooks{}
	tk, err := NewTicker(h.config(db, Schedule{Name: "sweep", Topic: retryTopic,
		Spec: "*/5 * * * *"}))
	require.NoError(t, err)
	tick(t, tk, londonTime(2026, 12, 3, 10, 0))

	fired := tick(t, tk, londonTime(2026, 12, 3, 11, 2))

	require.Len(t, fired, 1)
	require.Equal(t, londonTime(2026, 12, 3, 11, 0).UTC(), fired[0].ScheduledFor)
	require.True(t, fired[0].CatchUp)
	require.Equal(t, map[string]int{"sweep": 11}, h.misses) // 10:05 to 10:55
}
