package cron

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/schemas"
	"github.com/millrace/millrace/store"
)

// Two topics whose schemas take tick payloads.
const (
	auditTopic = "platform.audit.cleanup.tick"
	retryTopic = "platform.webhook.retry.tick"
)

var quiet = slog.New(slog.DiscardHandler)

func newTicker(t *testing.T, db *store.DB, instance string, schedules ...Schedule) *Ticker {
	t.Helper()
	tk, err := NewTicker(Config{DB: db, Schedules: schedules, Instance: instance, Logger: quiet})
	require.NoError(t, err)
	return tk
}

func tick(t *testing.T, tk *Ticker, now time.Time) []Slot {
	t.Helper()
	fired, err := tk.Tick(context.Background(), now)
	require.NoError(t, err)
	return fired
}

// tickRow is a tick read back from the outbox, with the schedule whose slot
// it belongs to.
type tickRow struct {
	Schedule string
	ID       string
	Topic    string
	Payload  tickPayload
	Manual   bool // the payload carried "manual"
	Metadata map[string]string
}

// ticks returns every tick in the outbox, oldest first, after checking what
// every tick must be: one per claimed slot, with the message id derived from
// the slot, a payload its topic's schema accepts and the cron envelope.
func ticks(t *testing.T, db *store.DB) []tickRow {
	t.Helper()
	ctx := context.Background()
	rows, err := db.QueryContext(ctx, `SELECT s.schedule, o.message_uuid, o.topic, o.payload,
		o.metadata FROM outbox o JOIN cron_slots s ON s.message_uuid = o.message_uuid
		ORDER BY o.seq`)
	require.NoError(t, err)
	defer rows.Close()

	var out []tickRow
	for rows.Next() {
		var r tickRow
		var payload, md string
		require.NoError(t, rows.Scan(&r.Schedule, &r.ID, &r.Topic, &payload, &md))
		require.NoError(t, schemas.Default().Validate(r.Topic, []byte(payload)))
		require.NoError(t, json.Unmarshal([]byte(payload), &r.Payload))
		var fields map[string]any
		require.NoError(t, json.Unmarshal([]byte(payload), &fields))
		_, r.Manual = fields["manual"]
		require.NoError(t, json.Unmarshal([]byte(md), &r.Metadata))

		require.Equal(t, job.StableID("cron", r.Schedule, r.Payload.ScheduledFor), r.ID)
		require.Equal(t, "cron", r.Metadata[job.MetaSource])
		require.Equal(t, r.Topic, r.Metadata[job.MetaEventType])
		out = append(out, r)
	}
	require.NoError(t, rows.Err())
	require.Len(t, out, countRows(t, db, "outbox"), "an outbox row without a claimed slot")

	return out
}

// ticksOf returns the scheduled_for values of the ticks of one schedule.
func ticksOf(rows []tickRow, schedule string) []string {
	var out []string
	for _, r := range rows {
		if r.Schedule == schedule {
			out = append(out, r.Payload.ScheduledFor)
		}
	}
	return out
}

// slotRow is a row of cron_slots.
type slotRow struct {
	Schedule     string
	ScheduledFor time.Time
	Kind         string
	CatchUp      bool
	Manual       bool
	MessageID    string
}

func slotRows(t *testing.T, db *store.DB, schedule string) []slotRow {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), `SELECT schedule, scheduled_for, kind,
		catch_up, manual, message_uuid FROM cron_slots WHERE schedule = $1
		ORDER BY scheduled_for`, schedule)
	require.NoError(t, err)
	defer rows.Close()

	var out []slotRow
	for rows.Next() {
		var r slotRow
		require.NoError(t, rows.Scan(&r.Schedule, &r.ScheduledFor, &r.Kind, &r.CatchUp,
			&r.Manual, &r.MessageID))
		r.ScheduledFor = r.ScheduledFor.UTC()
		out = append(out, r)
	}
	require.NoError(t, rows.Err())

	return out
}

func countRows(t *testing.T, db *store.DB, table string) int {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRowContext(context.Background(),
		"SELECT COUNT(*) FROM "+table).Scan(&n))
	return n
}

// londonTime returns a London wall time.
func londonTime(y int, mo time.Month, d, h, mi int) time.Time {
	return time.Date(y, mo, d, h, mi, 0, 0, London)
}

func rfc3339(at time.Time) string { return at.UTC().Format(time.RFC3339) }
