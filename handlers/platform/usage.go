package platform

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/store"
)

// Topics of the usageAggregate job.
const (
	usageRecordedTopic         = "platform.usage.recorded"
	usageThresholdCrossedTopic = "platform.usage.threshold_crossed"
)

// usageOrgGrace is how long a usage event may name an organisation that is
// not yet visible before the event is refused for good; within it, a missing
// organisation is treated as a replication or commit race and retried.
const usageOrgGrace = 10 * time.Minute

// errUsageOrgMissing reports a usage event for an organisation with no row.
var errUsageOrgMissing = errors.New("organisation not found")

// usageAggregator is the usageAggregate handler.
type usageAggregator struct {
	db    *store.DB
	clock job.Clock
	loc   *time.Location
	log   *slog.Logger
}

// NewUsageAggregate returns the usageAggregate handler. It consumes
// platform.usage.recorded: it records the event, folds it into the
// organisation's aggregate for the London calendar month (counters add,
// gauges keep the month's peak) and emits platform.usage.threshold_crossed
// the first time that aggregate reaches 80% and 100% of the plan limit in the
// month. Everything happens in one transaction keyed by source_event_id.
//
// d.DB is required; d.Clock defaults to the system clock, d.Location to
// Europe/London and d.Logger to slog.Default().
func NewUsageAggregate(d Deps) job.Handler {
	d = d.withDefaults()
	return &usageAggregator{db: d.DB, clock: d.Clock, loc: d.Location, log: d.Logger}
}

// usageRecorded is the platform.usage.recorded payload.
type usageRecorded struct {
	OrganisationID string    `json:"organisation_id"`
	Metric         string    `json:"metric"`
	Quantity       *int64    `json:"quantity"`
	Kind           string    `json:"kind"`
	OccurredAt     time.Time `json:"occurred_at"`
	SourceEventID  string    `json:"source_event_id"`
}

// Handle applies one usage event.
func (h *usageAggregator) Handle(ctx context.Context, msg job.Message) error {
	ev, err := decodeUsageRecorded(msg)
	if err != nil {
		return job.Permanent(err)
	}
	period := usagePeriodMonth(ev.OccurredAt, h.loc)
	err = h.db.Handle(ctx, UsageAggregate, ev.SourceEventID, func(tx *store.Tx) error {
		return h.apply(ctx, tx, ev, period)
	})
	switch {
	case errors.Is(err, store.ErrAlreadyProcessed):
		h.log.DebugContext(ctx, "usage event already processed",
			slog.String("organisation_id", ev.OrganisationID))
		return nil
	case errors.Is(err, errUsageOrgMissing):
		if h.clock.Now().Sub(ev.OccurredAt) < usageOrgGrace {
			return err
		}
		return job.Permanent(err)
	case err != nil:
		return err
	}
	return nil
}

// decodeUsageRecorded reads and checks the payload. Every error it returns
// is permanent: no retry can change the message.
func decodeUsageRecorded(msg job.Message) (usageRecorded, error) {
	var ev usageRecorded
	if err := json.Unmarshal(msg.Payload, &ev); err != nil {
		return ev, fmt.Errorf("decode usage event: %w", err)
	}
	switch {
	case ev.OrganisationID == "" || ev.SourceEventID == "" || ev.Quantity == nil ||
		ev.OccurredAt.IsZero():
		return ev, errors.New("decode usage event: missing required field")
	case msg.OrganisationID() != "" && msg.OrganisationID() != ev.OrganisationID:
		return ev, errors.New("check usage event: organisation differs from message metadata")
	}
	kind, ok := usageMetrics[ev.Metric]
	switch {
	case !ok:
		return ev, fmt.Errorf("check usage event: unknown metric %q", ev.Metric)
	case ev.Kind != kind:
		return ev, fmt.Errorf("check usage event: metric %s is a %s, not a %q",
			ev.Metric, kind, ev.Kind)
	case kind == usageCounter && *ev.Quantity < 0:
		return ev, fmt.Errorf("check usage event: negative quantity on counter %s", ev.Metric)
	}
	return ev, nil
}

// apply records ev and updates its aggregate within tx. A source_event_id
// already in usage_events means the event was counted before (the claim in
// processed_messages can be pruned; this UNIQUE column cannot): nothing else
// is written.
func (h *usageAggregator) apply(ctx context.Context, tx *store.Tx, ev usageRecorded,
	period string) error {
	var plan string
	err := tx.QueryRowContext(ctx, `SELECT plan_code FROM organisations WHERE id = $1`,
		ev.OrganisationID).Scan(&plan)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("apply usage event: %w", errUsageOrgMissing)
	}
	if err != nil {
		return fmt.Errorf("read organisation plan: %w", err)
	}

	res, err := tx.ExecContext(ctx, `INSERT INTO usage_events (id, organisation_id, metric,
		quantity, occurred_at, source_event_id) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (source_event_id) DO NOTHING`,
		job.NewID(), ev.OrganisationID, ev.Metric, *ev.Quantity, store.Now(ev.OccurredAt),
		ev.SourceEventID)
	if err != nil {
		return fmt.Errorf("insert usage event: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("insert usage event: %w", err)
	} else if n == 0 {
		h.log.DebugContext(ctx, "usage event already recorded",
			slog.String("organisation_id", ev.OrganisationID))
		return nil
	}

	total, err := upsertUsageAggregate(ctx, tx, ev, period)
	if err != nil {
		return err
	}
	return h.crossThresholds(ctx, tx, ev, period, plan, total)
}

// upsertUsageAggregate folds ev into its month's aggregate and returns the
// new aggregate quantity. The update is a single statement so that two
// concurrent events on Postgres cannot lose one another; CASE stands in for
// GREATEST, which SQLite lacks as a two-argument scalar.
func upsertUsageAggregate(ctx context.Context, tx *store.Tx, ev usageRecorded,
	period string) (int64, error) {
	fold := `usage_aggregates.quantity + excluded.quantity`
	if ev.Kind == usageGauge {
		fold = `CASE WHEN excluded.quantity > usage_aggregates.quantity
			THEN excluded.quantity ELSE usage_aggregates.quantity END`
	}
	var total int64
	err := tx.QueryRowContext(ctx, `INSERT INTO usage_aggregates (organisation_id, metric,
		period_month, quantity, last_event_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (organisation_id, metric, period_month) DO UPDATE SET
			quantity = `+fold+`,
			last_event_at = CASE WHEN excluded.last_event_at > usage_aggregates.last_event_at
				THEN excluded.last_event_at ELSE usage_aggregates.last_event_at END
		RETURNING quantity`,
		ev.OrganisationID, ev.Metric, period, *ev.Quantity, store.Now(ev.OccurredAt),
	).Scan(&total)
	if err != nil {
		return 0, fmt.Errorf("upsert usage aggregate: %w", err)
	}
	return total, nil
}

// crossThresholds records and announces every threshold that total reaches
// for the first time in the period. The insert into usage_thresholds decides
// "first": only the transaction whose insert wins emits, so redeliveries,
// later events and concurrent events in the same month stay silent. The
// limit is the organisation's plan at the time the event is applied.
func (h *usageAggregator) crossThresholds(ctx context.Context, tx *store.Tx,
	ev usageRecorded, period, plan string, total int64) error {
	limit, ok := usagePlanLimit(plan, ev.Metric)
	if !ok {
		return nil
	}
	now := store.Now(h.clock.Now())
	for _, pct := range usageThresholdsReached(total, limit) {
		key := usageThresholdKey(ev.OrganisationID, ev.Metric, period, pct)
		res, err := tx.ExecContext(ctx, `INSERT INTO usage_thresholds (dedupe_key,
			organisation_id, crossed_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
			key, ev.OrganisationID, now)
		if err != nil {
			return fmt.Errorf("record usage threshold: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("record usage threshold: %w", err)
		} else if n == 0 {
			continue
		}
		payload := map[string]any{
			"organisation_id":   ev.OrganisationID,
			"metric":            ev.Metric,
			"period_month":      period,
			"threshold_percent": pct,
			"limit":             limit,
			"quantity":          total,
		}
		opts := store.EmitOpts{ID: job.StableID(UsageAggregate, key)}
		if _, err := tx.Emit(ctx, usageThresholdCrossedTopic, payload, opts); err != nil {
			return err
		}
		h.log.InfoContext(ctx, "usage threshold crossed",
			slog.String("organisation_id", ev.OrganisationID),
			slog.String("metric", ev.Metric), slog.String("period_month", period),
			slog.Int("threshold_percent", pct))
	}
	return nil
}
