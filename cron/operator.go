package cron

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/millrace/millrace/store"
)

// ErrUnknownSchedule is returned for a schedule name the ticker does not
// know.
var ErrUnknownSchedule = errors.New("unknown schedule")

// ErrSlotTaken is returned by Trigger when the schedule already has a slot
// at that second, scheduled or manual.
var ErrSlotTaken = errors.New("slot already claimed")

// Trigger publishes a tick of the schedule called name now, for an
// operator. The slot is now truncated to the second and the tick carries
// manual set. A manual slot counts as the schedule's latest position: the
// next scheduled slot fires as usual, and slots missed before it are not
// caught up again.
func (t *Ticker) Trigger(ctx context.Context, name string, now time.Time) (Slot, error) {
	s, ok := t.lookup(name)
	if !ok {
		return Slot{}, fmt.Errorf("trigger %q: %w; known: %s",
			name, ErrUnknownSchedule, strings.Join(t.names(), ", "))
	}

	at := now.UTC().Truncate(time.Second)
	slot, won, err := t.claim(ctx, s, claim{at: at, kind: kindFired, manual: true}, now)
	if err != nil {
		return Slot{}, fmt.Errorf("trigger %s: %w", name, err)
	}
	if !won {
		return Slot{}, fmt.Errorf("trigger %s at %s: %w",
			name, at.Format(time.RFC3339), ErrSlotTaken)
	}
	t.log.InfoContext(ctx, "cron tick triggered by hand", slog.String("schedule", name),
		slog.Time("scheduled_for", at), slog.String("instance", t.instance))

	return slot, nil
}

// Status describes one schedule for operators.
type Status struct {
	Name    string
	Topic   string
	Spec    string
	CatchUp CatchUpPolicy
	// Last is the latest published tick, scheduled or manual; nil when the
	// schedule has never published one.
	Last *Slot
	// Next is the first slot after the time List was asked about.
	Next time.Time
}

// List returns the status of every schedule, in configuration order.
func (t *Ticker) List(ctx context.Context, now time.Time) ([]Status, error) {
	out := make([]Status, 0, len(t.schedules))
	for _, s := range t.schedules {
		last, err := t.lastFired(ctx, s.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, Status{Name: s.Name, Topic: s.Topic, Spec: s.Spec,
			CatchUp: s.policy(), Last: last, Next: s.expr.next(now, s.loc)})
	}

	return out, nil
}

// lastFired returns the latest published tick of schedule, or nil.
func (t *Ticker) lastFired(ctx context.Context, schedule string) (*Slot, error) {
	slot := Slot{Schedule: schedule}
	err := t.db.QueryRowContext(ctx, `SELECT scheduled_for, claimed_at, claimed_by, catch_up,
		manual, message_uuid FROM cron_slots WHERE schedule = $1 AND kind = $2
		ORDER BY scheduled_for DESC LIMIT 1`, schedule, kindFired).Scan(&slot.ScheduledFor,
		&slot.ClaimedAt, &slot.ClaimedBy, &slot.CatchUp, &slot.Manual, &slot.MessageID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read last slot of %s: %w", schedule, err)
	}
	slot.ScheduledFor, slot.ClaimedAt = slot.ScheduledFor.UTC(), slot.ClaimedAt.UTC()

	return &slot, nil
}

// Prune deletes the cron_slots rows of slots before before, keeping each
// schedule's latest row, which the ticker needs to know where it stands.
// It returns how many rows it deleted. A "* * * * *" schedule adds 1,440
// rows a day, so call it from a periodic job.
func (t *Ticker) Prune(ctx context.Context, before time.Time) (int64, error) {
	res, err := t.db.ExecContext(ctx, `DELETE FROM cron_slots WHERE scheduled_for < $1
		AND scheduled_for < (SELECT MAX(m.scheduled_for) FROM cron_slots m
			WHERE m.schedule = cron_slots.schedule)`, store.Now(before))
	if err != nil {
		return 0, fmt.Errorf("prune cron slots: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune cron slots: %w", err)
	}

	return n, nil
}
