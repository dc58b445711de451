package cron

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/store/storetest"
)

var (
	auditSchedule = Schedule{Name: "auditCleanup", Topic: auditTopic, Spec: "30 3 * * *"}
	sweepSchedule = Schedule{Name: "webhookRetrySweep", Topic: retryTopic, Spec: "* * * * *",
		CatchUp: CatchUpSkip}
)

func TestTrigger(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	tk := newTicker(t, db, "replica-a", auditSchedule, sweepSchedule)
	tick(t, tk, londonTime(2026, 12, 3, 10, 0))
	now := londonTime(2026, 12, 3, 14, 7).Add(12*time.Second + 345*time.Millisecond)

	slot, err := tk.Trigger(context.Background(), "auditCleanup", now)

	require.NoError(t, err)
	at := time.Date(2026, 12, 3, 14, 7, 12, 0, time.UTC)
	require.Equal(t, Slot{Schedule: "auditCleanup", ScheduledFor: at, Manual: true,
		MessageID: messageID("auditCleanup", at), ClaimedAt: now.UTC(),
		ClaimedBy: "replica-a"}, slot)
	rows := ticks(t, db)
	require.Len(t, rows, 1)
	require.Equal(t, tickRow{Schedule: "auditCleanup", ID: slot.MessageID, Topic: auditTopic,
		Payload: tickPayload{ScheduledFor: "2026-12-03T14:07:12Z", AsOf: "2026-12-03",
			Manual: true}, Manual: true, Metadata: rows[0].Metadata}, rows[0])

	// The schedule carries on as usual: its next slot is on time.
	fired := tick(t, tk, londonTime(2026, 12, 4, 3, 30))
	require.Len(t, fired, 1)
	require.Equal(t, "auditCleanup", fired[0].Schedule)
	require.False(t, fired[0].CatchUp)
}

func TestTriggerRejects(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	tk := newTicker(t, db, "replica-a", auditSchedule, sweepSchedule)
	now := londonTime(2026, 12, 3, 14, 7)
	_, err := tk.Trigger(context.Background(), "auditCleanup", now)
	require.NoError(t, err)
	outbox, slots := countRows(t, db, "outbox"), countRows(t, db, "cron_slots")

	t.Run("unknown schedule", func(t *testing.T) {
		_, err := tk.Trigger(context.Background(), "auditCleanUp", now.Add(time.Minute))
		require.ErrorIs(t, err, ErrUnknownSchedule)
		require.ErrorContains(t, err, `"auditCleanUp"`)
		require.ErrorContains(t, err, "known: auditCleanup, webhookRetrySweep")
		require.Equal(t, outbox, countRows(t, db, "outbox"))
		require.Equal(t, slots, countRows(t, db, "cron_slots"))
	})
	t.Run("same second twice", func(t *testing.T) {
		_, err := tk.Trigger(context.Background(), "auditCleanup", now.Add(500*time.Millisecond))
		require.ErrorIs(t, err, ErrSlotTaken)
		require.ErrorContains(t, err, "2026-12-03T14:07:00Z")
		require.Equal(t, outbox, countRows(t, db, "outbox"))
		require.Equal(t, slots, countRows(t, db, "cron_slots"))
	})
}

func TestTriggerAtAScheduledSlot(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	tk := newTicker(t, db, "replica-a", auditSchedule)
	tick(t, tk, londonTime(2026, 12, 2, 12, 0))
	slot := londonTime(2026, 12, 3, 3, 30)

	_, err := tk.Trigger(context.Background(), "auditCleanup", slot)
	require.NoError(t, err)

	// The operator's tick stands for the slot: the ticker does not add one.
	require.Empty(t, tick(t, tk, slot))
	rows := ticks(t, db)
	require.Len(t, rows, 1)
	require.True(t, rows[0].Manual)
}

func TestList(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	tk := newTicker(t, db, "replica-a", auditSchedule, sweepSchedule)
	tick(t, tk, londonTime(2026, 12, 2, 12, 0))
	tick(t, tk, londonTime(2026, 12, 3, 3, 30))
	now := londonTime(2026, 12, 3, 3, 30).Add(20 * time.Second)

	statuses, err := tk.List(context.Background(), now)

	require.NoError(t, err)
	at := londonTime(2026, 12, 3, 3, 30).UTC()
	require.Equal(t, []Status{
		{Name: "auditCleanup", Topic: auditTopic, Spec: "30 3 * * *", CatchUp: CatchUpFireOnce,
			Last: &Slot{Schedule: "auditCleanup", ScheduledFor: at,
				MessageID: messageID("auditCleanup", at), ClaimedAt: at, ClaimedBy: "replica-a"},
			Next: londonTime(2026, 12, 4, 3, 30).UTC()},
		// The sweep was new at 12:00 yesterday and missed every slot since:
		// it has published nothing.
		{Name: "webhookRetrySweep", Topic: retryTopic, Spec: "* * * * *", CatchUp: CatchUpSkip,
			Next: londonTime(2026, 12, 3, 3, 31).UTC()},
	}, statuses)
}

func TestListShowsManualAndCatchUpTicks(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	tk := newTicker(t, db, "replica-a", auditSchedule)
	tick(t, tk, londonTime(2026, 11, 30, 12, 0))
	tick(t, tk, londonTime(2026, 12, 3, 8, 0))

	statuses, err := tk.List(context.Background(), londonTime(2026, 12, 3, 8, 0))
	require.NoError(t, err)
	require.True(t, statuses[0].Last.CatchUp)
	require.False(t, statuses[0].Last.Manual)

	_, err = tk.Trigger(context.Background(), "auditCleanup", londonTime(2026, 12, 3, 9, 0))
	require.NoError(t, err)
	statuses, err = tk.List(context.Background(), londonTime(2026, 12, 3, 9, 0))
	require.NoError(t, err)
	require.True(t, statuses[0].Last.Manual)
	require.False(t, statuses[0].Last.CatchUp)
}

func TestPrune(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	tk := newTicker(t, db, "replica-a", auditSchedule, sweepSchedule)
	tick(t, tk, londonTime(2026, 12, 1, 12, 0))
	tick(t, tk, londonTime(2026, 12, 2, 3, 30))
	for m := range 10 {
		tick(t, tk, londonTime(2026, 12, 3, 10, m))
	}

	n, err := tk.Prune(context.Background(), londonTime(2026, 12, 3, 10, 5))

	require.NoError(t, err)
	// Every audit row is older, but its latest stays. The sweep loses its
	// baseline, two skipped markers and its ticks from 10:01 to 10:04.
	require.EqualValues(t, 2+7, n)
	audit := slotRows(t, db, "auditCleanup")
	require.Len(t, audit, 1)
	require.Equal(t, londonTime(2026, 12, 3, 3, 30).UTC(), audit[0].ScheduledFor)
	sweep := slotRows(t, db, "webhookRetrySweep")
	require.Len(t, sweep, 5)
	require.Equal(t, londonTime(2026, 12, 3, 10, 5).UTC(), sweep[0].ScheduledFor)
}
