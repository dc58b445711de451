package cron

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/store/storetest"
)

func TestTickPublishesEachSlotOnceAcrossReplicas(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	schedules := []Schedule{
		{Name: "auditCleanup", Topic: auditTopic, Spec: "30 3 * * *"},
		{Name: "webhookRetrySweep", Topic: retryTopic, Spec: "* * * * *"},
	}
	replicas := []*Ticker{
		newTicker(t, db, "replica-a", schedules...),
		newTicker(t, db, "replica-b", schedules...),
	}
	start := londonTime(2026, 12, 3, 3, 0)
	for _, r := range replicas {
		require.Empty(t, tick(t, r, start), "a new schedule fired for the past")
	}

	// Both replicas tick twice at every instant, all four calls at once.
	var mu sync.Mutex
	var fired []Slot
	var errs []error
	for now := start; !now.After(start.Add(time.Hour)); now = now.Add(30 * time.Second) {
		var wg sync.WaitGroup
		for _, r := range append(replicas, replicas...) {
			wg.Go(func() {
				slots, err := r.Tick(context.Background(), now)
				mu.Lock()
				defer mu.Unlock()
				fired = append(fired, slots...)
				errs = append(errs, err)
			})
		}
		wg.Wait()
	}
	require.NoError(t, errors.Join(errs...))

	rows := ticks(t, db)
	require.Len(t, fired, len(rows), "a replica reported a tick it did not publish")
	require.Equal(t, []string{"2026-12-03T03:30:00Z"}, ticksOf(rows, "auditCleanup"))
	var want []string
	for at := start.Add(time.Minute); !at.After(start.Add(time.Hour)); at = at.Add(time.Minute) {
		want = append(want, rfc3339(at))
	}
	require.Equal(t, want, ticksOf(rows, "webhookRetrySweep"))
	for _, r := range rows {
		require.False(t, r.Payload.CatchUp)
		require.False(t, r.Manual)
	}
	require.Equal(t, "2026-12-03", rows[0].Payload.AsOf)
}

func TestTickOnClockChangeDays(t *testing.T) {
	t.Parallel()
	for _, day := range []struct {
		name string
		date time.Time
	}{{"spring", springForward}, {"autumn", fallBack}} {
		t.Run(day.name, func(t *testing.T) {
			t.Parallel()
			db := storetest.New(t)
			var schedules []Schedule
			for _, spec := range []string{"30 1 * * *", "*/15 1 * * *", "30 3 * * *",
				"0 4 * * 0", "0 8 * * 1-5", "0 9 * * *", "0 * * * *", "*/5 * * * *"} {
				schedules = append(schedules, Schedule{Name: spec, Topic: auditTopic, Spec: spec})
			}
			tk := newTicker(t, db, "replica-a", schedules...)
			require.Empty(t, tick(t, tk, day.date.Add(-time.Minute)))

			// Every slot of these schedules, the moment the clocks jump
			// included, falls on a five-minute boundary in UTC. Tick on each
			// and halfway between.
			end := day.date.AddDate(0, 0, 1)
			for now := day.date; now.Before(end); now = now.Add(150 * time.Second) {
				tick(t, tk, now)
			}

			rows := ticks(t, db)
			for _, s := range schedules {
				var want []string
				for _, at := range slotsOnDay(s, day.date) {
					want = append(want, rfc3339(at))
				}
				require.Equal(t, want, ticksOf(rows, s.Name), s.Spec)
			}
			for _, r := range rows {
				require.False(t, r.Payload.CatchUp, "%s at %s", r.Schedule, r.Payload.ScheduledFor)
			}
		})
	}
}

func TestTickDoesNotFireANewScheduleForThePast(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	audit := Schedule{Name: "auditCleanup", Topic: auditTopic, Spec: "30 3 * * *"}
	charge := Schedule{Name: "autoChargeOverdue", Topic: auditTopic, Spec: "0 9 * * *"}

	old := newTicker(t, db, "replica-a", audit)
	tick(t, old, londonTime(2026, 12, 1, 12, 0))
	tick(t, old, londonTime(2026, 12, 2, 3, 30))
	require.Len(t, ticks(t, db), 1)

	// The charge schedule is deployed at 15:00, after its 09:00 slot.
	deployed := newTicker(t, db, "replica-a", audit, charge)
	require.Empty(t, tick(t, deployed, londonTime(2026, 12, 2, 15, 0)))
	require.Len(t, ticks(t, db), 1)
	require.Equal(t, []slotRow{{Schedule: "autoChargeOverdue",
		ScheduledFor: londonTime(2026, 12, 2, 9, 0).UTC(), Kind: kindBaseline}},
		slotRows(t, db, "autoChargeOverdue"))

	// Its next slot fires as usual, on time and not as a catch-up.
	require.Len(t, tick(t, deployed, londonTime(2026, 12, 3, 3, 30)), 1)
	fired := tick(t, deployed, londonTime(2026, 12, 3, 9, 0))
	require.Len(t, fired, 1)
	require.Equal(t, "autoChargeOverdue", fired[0].Schedule)
	require.False(t, fired[0].CatchUp)
	require.Equal(t, []string{"2026-12-03T09:00:00Z"}, ticksOf(ticks(t, db), "autoChargeOverdue"))
}

func TestTickReturnsTheSlotsItPublished(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	tk := newTicker(t, db, "replica-a",
		Schedule{Name: "sweep", Topic: retryTopic, Spec: "*/5 * * * *"})
	tick(t, tk, londonTime(2026, 12, 3, 10, 0))

	now := londonTime(2026, 12, 3, 10, 5).Add(2 * time.Second)
	fired := tick(t, tk, now)

	at := londonTime(2026, 12, 3, 10, 5).UTC()
	require.Equal(t, []Slot{{Schedule: "sweep", ScheduledFor: at,
		MessageID: messageID("sweep", at), ClaimedAt: now.UTC(), ClaimedBy: "replica-a"}}, fired)
	require.Empty(t, tick(t, tk, now), "a second tick at the same time fired again")
}
