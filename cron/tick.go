package cron

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/schemas"
	"github.com/millrace/millrace/store"
)

// Slot is a claimed slot of a schedule for which a tick was published.
type Slot struct {
	// Schedule is the schedule's name.
	Schedule string
	// ScheduledFor is the slot's instant, in UTC. A manual slot is the second
	// at which it was triggered.
	ScheduledFor time.Time
	// CatchUp is set on a tick published for a missed slot.
	CatchUp bool
	// Manual is set on a tick an operator triggered.
	Manual bool
	// MessageID is the tick's message id, derived from the schedule's name
	// and ScheduledFor, so every replica would have given it the same id.
	MessageID string
	// ClaimedAt is when the slot was claimed, by the replica ClaimedBy.
	ClaimedAt time.Time
	ClaimedBy string
}

// Kinds of cron_slots rows: a published tick, or a marker of where a
// schedule stands that published nothing.
const (
	kindFired    = "fired"
	kindBaseline = "baseline"
	kindSkipped  = "skipped"
)

// claim is what a tick decided to record for one schedule.
type claim struct {
	at      time.Time
	kind    string
	catchUp bool
	manual  bool
	// missed counts the slots that will never be published.
	missed int
}

// Tick claims and publishes, for every schedule, the slot due at now, if no
// replica has claimed it yet, applying the catch-up policy when slots were
// missed (see Ticker). It returns the ticks this call published. A failure
// for one schedule does not stop the others; the failures are joined.
// Tick is safe to call concurrently, from one replica or many.
func (t *Ticker) Tick(ctx context.Context, now time.Time) ([]Slot, error) {
	var fired []Slot
	var errs []error
	for _, s := range t.schedules {
		slot, ok, err := t.tickOne(ctx, s, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("tick %s: %w", s.Name, err))
			continue
		}
		if ok {
			fired = append(fired, slot)
		}
	}

	return fired, errors.Join(errs...)
}

// tickOne does Tick's work for one schedule. It returns the tick it
// published, if any.
func (t *Ticker) tickOne(ctx context.Context, s compiled, now time.Time) (Slot, bool, error) {
	last, err := t.position(ctx, s.Name)
	if err != nil {
		return Slot{}, false, err
	}
	c, due := t.decide(s, last, now)
	if !due {
		return Slot{}, false, nil
	}
	slot, won, err := t.claim(ctx, s, c, now)
	if err != nil || !won {
		return Slot{}, false, err
	}
	t.report(ctx, s, c)

	return slot, c.kind == kindFired, nil
}

// decide returns what to record for s at now, given its latest row (zero
// when it has none), and false when there is nothing to do.
func (t *Ticker) decide(s compiled, last, now time.Time) (claim, bool) {
	due := s.expr.prev(now, s.loc)
	if due.IsZero() || (!last.IsZero() && !due.After(last)) {
		return claim{}, false
	}
	if last.IsZero() {
		return claim{at: due, kind: kindBaseline}, true
	}

	onTime := now.Sub(due) <= t.grace
	if onTime && !s.expr.next(last, s.loc).Before(due) {
		return claim{at: due, kind: kindFired}, true
	}
	between := s.expr.countBetween(last, due, s.loc)
	if s.policy() == CatchUpSkip {
		return claim{at: due, kind: kindSkipped, missed: between + 1}, true
	}

	return claim{at: due, kind: kindFired, catchUp: true, missed: between}, true
}

// claim records c for s and, when it is a tick, writes the tick to the
// outbox in the same transaction. It returns false when another replica (or
// an operator) had already claimed the slot; nothing is published then.
func (t *Ticker) claim(ctx context.Context, s compiled, c claim,
	now time.Time) (Slot, bool, error) {
	slot := Slot{Schedule: s.Name, ScheduledFor: store.Now(c.at), CatchUp: c.catchUp,
		Manual: c.manual, ClaimedAt: store.Now(now), ClaimedBy: t.instance}
	var ev job.Event
	if c.kind == kindFired {
		payload, err := t.payload(s, c, now)
		if err != nil {
			return Slot{}, false, err
		}
		slot.MessageID = messageID(s.Name, slot.ScheduledFor)
		ev = job.NewEvent(ctx, slot.MessageID, s.Topic, payload, "cron", now)
	}

	won := false
	err := t.db.InTx(ctx, func(tx *store.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO cron_slots (schedule, scheduled_for,
			claimed_at, claimed_by, catch_up, manual, message_uuid, kind)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (schedule, scheduled_for) DO NOTHING`,
			s.Name, slot.ScheduledFor, slot.ClaimedAt, slot.ClaimedBy, slot.CatchUp,
			slot.Manual, slot.MessageID, c.kind)
		if err != nil {
			return fmt.Errorf("claim slot: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("claim slot: %w", err)
		}
		won = n == 1
		if !won || c.kind != kindFired {
			return nil
		}
		return tx.Enqueue(ctx, ev)
	})
	if err != nil {
		return Slot{}, false, err
	}

	return slot, won, nil
}

// tickPayload is the payload of every tick topic.
type tickPayload struct {
	ScheduledFor string `json:"scheduled_for"`
	AsOf         string `json:"as_of"`
	CatchUp      bool   `json:"catch_up"`
	Manual       bool   `json:"manual,omitempty"`
}

// marshal encodes p; strings and booleans always encode.
func (p tickPayload) marshal() []byte {
	raw, _ := json.Marshal(p)
	return raw
}

// payload builds and validates the tick for c. Its as_of is the slot's
// date, except on a catch-up tick, which runs as of the current date: the
// scans behind the ticks are windows up to as_of, and the current date
// covers the whole outage.
func (t *Ticker) payload(s compiled, c claim, now time.Time) ([]byte, error) {
	asOf := c.at
	if c.catchUp {
		asOf = now
	}
	raw := tickPayload{
		ScheduledFor: c.at.UTC().Format(time.RFC3339),
		AsOf:         asOf.In(s.loc).Format(time.DateOnly),
		CatchUp:      c.catchUp,
		Manual:       c.manual,
	}.marshal()
	if err := schemas.Default().Validate(s.Topic, raw); err != nil {
		return nil, fmt.Errorf("build tick: %w", err)
	}

	return raw, nil
}

// messageID derives a tick's message id from its slot.
func messageID(schedule string, at time.Time) string {
	return job.StableID("cron", schedule, at.UTC().Format(time.RFC3339))
}

// report logs what a won claim recorded and feeds the metrics hooks.
func (t *Ticker) report(ctx context.Context, s compiled, c claim) {
	attrs := []any{slog.String("schedule", s.Name),
		slog.Time("scheduled_for", c.at.UTC()), slog.String("instance", t.instance)}
	switch {
	case c.kind == kindBaseline:
		t.log.InfoContext(ctx, "cron schedule started from its latest slot", attrs...)
	case c.kind == kindSkipped:
		t.log.InfoContext(ctx, "cron skipped missed slots",
			append(attrs, slog.Int("missed", c.missed))...)
	case c.catchUp:
		t.log.InfoContext(ctx, "cron published a catch-up tick",
			append(attrs, slog.Int("missed", c.missed))...)
	default:
		t.log.DebugContext(ctx, "cron published a tick", attrs...)
	}

	if c.missed > 0 && t.onMiss != nil {
		t.onMiss(s.Name, c.missed)
	}
	if c.kind == kindFired && t.onFire != nil {
		t.onFire(s.Name, c.catchUp)
	}
}

// position returns the latest slot recorded for schedule, of any kind, or
// the zero time when there is none.
func (t *Ticker) position(ctx context.Context, schedule string) (time.Time, error) {
	var at time.Time
	err := t.db.QueryRowContext(ctx, `SELECT scheduled_for FROM cron_slots WHERE schedule = $1
		ORDER BY scheduled_for DESC LIMIT 1`, schedule).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("read cron position: %w", err)
	}

	return at.UTC(), nil
}
