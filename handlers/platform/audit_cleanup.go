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

// auditCleanupTopic carries the auditCleanup cron tick.
const auditCleanupTopic = "platform.audit.cleanup.tick"

// Defaults of the auditCleanup job.
const (
	// auditCleanupBatchSize is how many rows one DELETE removes.
	auditCleanupBatchSize = 5000
	// auditCleanupBudget is how long one run may keep deleting; the next
	// tick carries on where it stopped.
	auditCleanupBudget = 10 * time.Minute
)

// job_runs statuses written by auditCleanup.
const (
	auditRunRunning   = "running"
	auditRunSucceeded = "succeeded"
	auditRunPartial   = "partial" // stopped by the time budget
)

// errAuditRunLost reports that another delivery of the same tick finished
// the run while this one was still deleting.
var errAuditRunLost = errors.New("audit cleanup run finished elsewhere")

// auditCleaner is the auditCleanup handler.
type auditCleaner struct {
	db    *store.DB
	clock job.Clock
	loc   *time.Location
	log   *slog.Logger

	batchSize int           // rows per DELETE; auditCleanupBatchSize
	budget    time.Duration // per run, on clock; auditCleanupBudget
}

// NewAuditCleanup returns the auditCleanup handler. It consumes
// platform.audit.cleanup.tick and deletes audit_logs rows whose retention has
// run out on the tick's as_of date, category by category, skipping rows
// under an unreleased legal hold. It deletes in batches of 5,000 rows, each
// batch its own transaction, for at most 10 minutes (by d.Clock); a run cut
// short is finished by the next tick, since what is due is worked out afresh
// from the table. Each slot runs once, guarded by its job_runs row, and ends
// with one audit.cleanup.completed audit row holding counts per category.
//
// d.DB is required; d.Clock defaults to the system clock, d.Location to
// Europe/London and d.Logger to slog.Default().
func NewAuditCleanup(d Deps) job.Handler { return newAuditCleaner(d) }

func newAuditCleaner(d Deps) *auditCleaner {
	d = d.withDefaults()
	return &auditCleaner{db: d.DB, clock: d.Clock, loc: d.Location, log: d.Logger,
		batchSize: auditCleanupBatchSize, budget: auditCleanupBudget}
}

// auditTick is the platform.audit.cleanup.tick payload.
type auditTick struct {
	ScheduledFor time.Time `json:"scheduled_for"`
	AsOf         string    `json:"as_of"`
	CatchUp      bool      `json:"catch_up"`
	Manual       bool      `json:"manual"`
}

// auditRunStats is what job_runs.stats holds for a run, kept up to date after
// every batch so that a resumed run carries on counting.
type auditRunStats struct {
	AsOf            string           `json:"as_of"`
	Deleted         map[string]int64 `json:"deleted"`
	Batches         int              `json:"batches"`
	StoppedByBudget bool             `json:"stopped_by_budget"`
	Resumed         bool             `json:"resumed,omitempty"`
	CatchUp         bool             `json:"catch_up,omitempty"`
	Manual          bool             `json:"manual,omitempty"`
}

// Handle runs the cleanup for one tick.
func (h *auditCleaner) Handle(ctx context.Context, msg job.Message) error {
	tick, asOf, err := h.decodeTick(msg.Payload)
	if err != nil {
		return job.Permanent(err)
	}
	run, stats, err := h.claimRun(ctx, tick)
	if err != nil || !run {
		return err
	}
	stats.AsOf, stats.CatchUp, stats.Manual = asOf.Format(time.DateOnly), tick.CatchUp, tick.Manual

	policies, err := h.loadPolicies(ctx)
	if err != nil {
		return err
	}
	err = h.sweep(ctx, tick, auditPlan(asOf, policies, h.loc), &stats)
	if errors.Is(err, errAuditRunLost) {
		h.log.InfoContext(ctx, "audit cleanup run finished by another delivery")
		return nil
	}
	if err != nil {
		return err
	}
	return h.finish(ctx, tick, stats)
}

// decodeTick reads the tick and its London as_of date, at midnight in loc.
// A tick dated after today would delete rows still inside their retention,
// so it is refused.
func (h *auditCleaner) decodeTick(raw []byte) (auditTick, time.Time, error) {
	var tick auditTick
	if err := json.Unmarshal(raw, &tick); err != nil {
		return tick, time.Time{}, fmt.Errorf("decode audit cleanup tick: %w", err)
	}
	if tick.ScheduledFor.IsZero() {
		return tick, time.Time{}, errors.New("decode audit cleanup tick: missing scheduled_for")
	}
	if tick.AsOf == "" {
		tick.AsOf = tick.ScheduledFor.In(h.loc).Format(time.DateOnly)
	}
	asOf, err := time.ParseInLocation(time.DateOnly, tick.AsOf, h.loc)
	if err != nil {
		return tick, time.Time{}, fmt.Errorf("decode audit cleanup tick: as_of: %w", err)
	}
	if today := h.clock.Now().In(h.loc).Format(time.DateOnly); tick.AsOf > today {
		return tick, time.Time{}, fmt.Errorf(
			"check audit cleanup tick: as_of %s is after today %s", tick.AsOf, today)
	}
	return tick, asOf, nil
}

// claimRun records the run in job_runs and reports whether to do the work.
//
// A new row means a new run. A row whose run finished means this tick is a
// duplicate (a second replica, a redelivery): nothing to do. A row still
// 'running' was left by an attempt that did not finish: the router retrying
// after a database error, or a redelivery after the process died mid-run
// (the broker only redelivers a message its consumer never acked). That run
// is resumed with the counts it saved; refusing it would leave the slot
// stuck and unsummarised. Resuming is safe because each batch works out what
// is due afresh, and if the first attempt is in fact still alive the two
// only share the deletes: finish lets exactly one of them close the row and
// write the summary.
func (h *auditCleaner) claimRun(ctx context.Context, tick auditTick) (bool, auditRunStats, error) {
	stats := auditRunStats{Deleted: map[string]int64{}}
	run := false
	slot := store.Now(tick.ScheduledFor)
	err := h.db.InTx(ctx, func(tx *store.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO job_runs (job_name, scheduled_for,
			started_at, status) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
			AuditCleanup, slot, store.Now(h.clock.Now()), auditRunRunning)
		if err != nil {
			return fmt.Errorf("claim audit cleanup run: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("claim audit cleanup run: %w", err)
		}
		if n == 1 {
			run = true
			return nil
		}
		run, stats, err = h.unfinishedRun(ctx, tx, slot)
		return err
	})
	if err != nil {
		return false, stats, err
	}
	if !run {
		h.log.DebugContext(ctx, "audit cleanup slot already done")
	} else if stats.Resumed {
		h.log.InfoContext(ctx, "audit cleanup resuming an unfinished run")
	}
	return run, stats, nil
}

// unfinishedRun reads the existing job_runs row of slot and reports whether
// it is still running, with the counts it saved.
func (h *auditCleaner) unfinishedRun(ctx context.Context, tx *store.Tx,
	slot time.Time) (bool, auditRunStats, error) {
	stats := auditRunStats{Deleted: map[string]int64{}}
	var status string
	var saved sql.NullString
	err := tx.QueryRowContext(ctx, `SELECT status, stats FROM job_runs
		WHERE job_name = $1 AND scheduled_for = $2`, AuditCleanup, slot).Scan(&status, &saved)
	if err != nil {
		return false, stats, fmt.Errorf("read audit cleanup run: %w", err)
	}
	if status != auditRunRunning {
		return false, stats, nil
	}
	if saved.Valid && json.Unmarshal([]byte(saved.String), &stats) != nil {
		h.log.WarnContext(ctx, "audit cleanup: unreadable saved stats; counting afresh")
		stats = auditRunStats{}
	}
	if stats.Deleted == nil {
		stats.Deleted = map[string]int64{}
	}
	stats.Resumed = true
	return true, stats, nil
}

// loadPolicies reads the enabled retention policies for audit_logs.
func (h *auditCleaner) loadPolicies(ctx context.Context) ([]auditPolicy, error) {
	rows, err := h.db.QueryContext(ctx, `SELECT organisation_id, record_category,
		retention_days, statutory_minimum_days, action FROM retention_policies
		WHERE table_name = $1 AND enabled = $2`, "audit_logs", true)
	if err != nil {
		return nil, fmt.Errorf("read retention policies: %w", err)
	}
	defer rows.Close()
	var out []auditPolicy
	for rows.Next() {
		var p auditPolicy
		var org sql.NullString
		err := rows.Scan(&org, &p.Category, &p.RetentionDays, &p.StatutoryDays, &p.Action)
		if err != nil {
			return nil, fmt.Errorf("read retention policies: %w", err)
		}
		p.OrganisationID = org.String
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read retention policies: %w", err)
	}
	return out, nil
}

// sweep deletes what is due, scope after scope, until nothing is left or the
// budget runs out. Stopping for the budget is not an error.
func (h *auditCleaner) sweep(ctx context.Context, tick auditTick, scopes []auditScope,
	stats *auditRunStats) error {
	start := h.clock.Now()
	for _, s := range scopes {
		for {
			if h.clock.Now().Sub(start) >= h.budget {
				stats.StoppedByBudget = true
				h.log.InfoContext(ctx, "audit cleanup stopped by its time budget",
					slog.Duration("budget", h.budget))
				return nil
			}
			n, err := h.deleteBatch(ctx, tick, s, stats)
			if err != nil {
				return err
			}
			if n < h.batchSize {
				break
			}
		}
	}
	return nil
}

// finish closes the run and writes the summary audit row, both only if the
// run is still open: of two deliveries racing on one slot, one summarises.
func (h *auditCleaner) finish(ctx context.Context, tick auditTick, stats auditRunStats) error {
	status := auditRunSucceeded
	if stats.StoppedByBudget {
		status = auditRunPartial
	}
	raw, err := json.Marshal(stats)
	if err != nil {
		return fmt.Errorf("encode audit cleanup stats: %w", err)
	}
	now := h.clock.Now()
	counts := map[string]any{}
	for _, c := range auditCategories {
		counts[c] = stats.Deleted[c]
	}
	slot := store.Now(tick.ScheduledFor)

	err = h.db.InTx(ctx, func(tx *store.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE job_runs SET status = $1, finished_at = $2,
			stats = $3 WHERE job_name = $4 AND scheduled_for = $5 AND status = $6`,
			status, store.Now(now), string(raw), AuditCleanup, slot, auditRunRunning)
		if err != nil {
			return fmt.Errorf("finish audit cleanup run: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		return tx.WriteAudit(ctx, store.AuditEntry{
			ActorType:  "system",
			Action:     "audit.cleanup.completed",
			EntityType: "job_run",
			EntityID:   AuditCleanup + ":" + slot.Format(time.RFC3339),
			Category:   store.AuditBusiness,
			Metadata:   counts,
			At:         now,
		})
	})
	if err != nil {
		return err
	}
	h.log.InfoContext(ctx, "audit cleanup finished", slog.String("status", status),
		slog.Any("deleted", stats.Deleted), slog.Int("batches", stats.Batches))
	return nil
}
