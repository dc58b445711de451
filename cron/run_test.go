package cron

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/store/storetest"
)

// waitLimit only bounds a test that would otherwise hang; no assertion
// depends on how long anything takes.
const waitLimit = 10 * time.Second

// recordHandler passes every log record's level and message to a channel,
// dropping them when nobody reads.
type recordHandler struct{ records chan slog.Record }

func (h recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h recordHandler) WithGroup(string) slog.Handler            { return h }

func (h recordHandler) Handle(_ context.Context, r slog.Record) error {
	select {
	case h.records <- r:
	default:
	}
	return nil
}

func TestRunPublishesDueSlotsAndStopsOnCancel(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	slot := londonTime(2026, 12, 3, 3, 30)
	tk, err := NewTicker(Config{DB: db, Schedules: []Schedule{auditSchedule},
		Instance: "replica-a", Logger: quiet, Clock: job.FixedClock(slot),
		Interval: time.Millisecond})
	require.NoError(t, err)
	tick(t, tk, londonTime(2026, 12, 2, 12, 0))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tk.Run(ctx) }()

	select {
	case <-db.Committed():
	case <-time.After(waitLimit):
		t.Fatal("Run published nothing")
	}
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(waitLimit):
		t.Fatal("Run did not stop")
	}

	// Run ticked again and again at the same instant, and published once.
	require.Equal(t, []string{"2026-12-03T03:30:00Z"}, ticksOf(ticks(t, db), "auditCleanup"))
}

func TestRunKeepsGoingWhenTheDatabaseFails(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	records := make(chan slog.Record, 16)
	tk, err := NewTicker(Config{DB: db, Schedules: []Schedule{auditSchedule},
		Logger: slog.New(recordHandler{records}), Interval: time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, db.Close())

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tk.Run(ctx) }()

	for warnings := 0; warnings < 3; {
		select {
		case r := <-records:
			if r.Level == slog.LevelWarn {
				require.Equal(t, "cron tick failed", r.Message)
				warnings++
			}
		case err := <-done:
			t.Fatalf("Run stopped on a database error: %v", err)
		case <-time.After(waitLimit):
			t.Fatal("Run logged no failure")
		}
	}
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(waitLimit):
		t.Fatal("Run did not stop")
	}
}

func TestRunStops(t *testing.T) {
	t.Parallel()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancelExpired := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancelExpired()

	tests := []struct {
		name string
		ctx  context.Context
		want error
	}{
		{"cancelled is a normal stop", cancelled, nil},
		{"a deadline is reported", expired, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := storetest.New(t)
			records := make(chan slog.Record, 16)
			tk, err := NewTicker(Config{DB: db, Schedules: []Schedule{auditSchedule},
				Logger: slog.New(recordHandler{records})})
			require.NoError(t, err)

			require.ErrorIs(t, tk.Run(tt.ctx), tt.want)
			close(records)
			for r := range records {
				require.NotEqual(t, slog.LevelWarn, r.Level, "a stop was logged as a failure")
			}
			require.Zero(t, countRows(t, db, "outbox"))
		})
	}
}
