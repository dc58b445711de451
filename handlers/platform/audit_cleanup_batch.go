package platform

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"

	"github.com/millrace/millrace/store"
)

// auditTenancyEndedStatuses are the tenancy statuses after which compliance
// evidence can start its six years. Any other status is live: its evidence
// is never due, whatever ended_at says.
var auditTenancyEndedStatuses = []any{"ended", "cancelled"}

// auditHoldFilter keeps rows under an unreleased legal hold: one on the row
// itself, on the tenancy it belongs to, or on its whole organisation.
const auditHoldFilter = `
	AND NOT EXISTS (SELECT 1 FROM legal_holds h WHERE h.released_at IS NULL AND (
		(h.table_name = 'audit_logs' AND h.record_id = a.id)
		OR (h.table_name = 'tenancies' AND h.record_id = a.tenancy_id)
		OR (h.table_name = 'organisations' AND h.record_id = a.organisation_id)))`

// deleteBatch deletes up to batchSize due rows of scope s in one short
// transaction, saving the run's updated counts in job_runs in the same
// transaction, and returns how many it selected. The ids are selected and
// deleted together so that a legal hold placed in between cannot be missed.
func (h *auditCleaner) deleteBatch(ctx context.Context, tick auditTick, s auditScope,
	stats *auditRunStats) (int, error) {
	next := *stats
	next.Deleted = maps.Clone(stats.Deleted)
	var deleted int
	err := h.db.InTx(ctx, func(tx *store.Tx) error {
		ids, err := selectDueAuditIDs(ctx, tx, s, h.batchSize)
		if err != nil || len(ids) == 0 {
			return err
		}
		n, err := deleteAuditRows(ctx, tx, ids)
		if err != nil {
			return err
		}
		next.Deleted[s.Category] += n
		next.Batches++
		if err := saveAuditProgress(ctx, tx, tick, next); err != nil {
			return err
		}
		deleted = len(ids)
		return nil
	})
	if err != nil {
		return 0, err
	}
	if deleted > 0 {
		*stats = next
	}
	return deleted, nil
}

// selectDueAuditIDs returns up to limit ids of rows of s that are due.
func selectDueAuditIDs(ctx context.Context, tx *store.Tx, s auditScope,
	limit int) ([]string, error) {
	query, args := auditDueQuery(s, limit)
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("select due audit rows: %w", err)
	}
	defer rows.Close()
	ids := make([]string, 0, limit)
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("select due audit rows: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("select due audit rows: %w", err)
	}
	return ids, nil
}

// auditDueQuery builds the SELECT of due ids for s. Only fixed fragments are
// concatenated; every value is a parameter.
func auditDueQuery(s auditScope, limit int) (string, []any) {
	var b strings.Builder
	args := []any{s.Category, store.Now(s.Cutoff)}
	if s.Anchor == auditAnchorTenancyEnd {
		// The tenancy must belong to the row's organisation: a row pointing
		// at another tenant's tenancy cannot be dated and is kept.
		b.WriteString(`SELECT a.id FROM audit_logs a
			JOIN tenancies t ON t.id = a.tenancy_id AND t.organisation_id = a.organisation_id
			WHERE a.category = $1 AND t.ended_at IS NOT NULL AND t.ended_at < $2
			AND t.status IN ($3, $4)`)
		args = append(args, auditTenancyEndedStatuses...)
	} else {
		b.WriteString(`SELECT a.id FROM audit_logs a
			WHERE a.category = $1 AND a.created_at < $2`)
	}

	if s.OrganisationID != "" {
		args = append(args, s.OrganisationID)
		fmt.Fprintf(&b, `
			AND a.organisation_id = $%d`, len(args))
	} else {
		// Organisations with a policy of their own get their own pass.
		args = append(args, "audit_logs", true)
		fmt.Fprintf(&b, `
			AND NOT EXISTS (SELECT 1 FROM retention_policies p
				WHERE p.table_name = $%d AND p.record_category = a.category
				AND p.organisation_id = a.organisation_id AND p.enabled = $%d)`,
			len(args)-1, len(args))
	}

	b.WriteString(auditHoldFilter)
	args = append(args, limit)
	fmt.Fprintf(&b, `
		ORDER BY a.id LIMIT $%d`, len(args))
	return b.String(), args
}

// deleteAuditRows deletes the rows with the given ids that are still not
// under a legal hold, and returns how many it deleted. The hold is checked
// again because on Postgres, under READ COMMITTED, a hold committed after the
// SELECT is visible to this statement though it was not to the select (SQLite
// holds the write lock for the whole transaction, so there it cannot happen).
// Counting what was deleted, not what was selected, also keeps the counts
// right when a racing delivery of the same tick deleted some rows first.
func deleteAuditRows(ctx context.Context, tx *store.Tx, ids []string) (int64, error) {
	marks := make([]string, len(ids))
	args := make([]any, len(ids))
	for i, id := range ids {
		marks[i] = fmt.Sprintf("$%d", i+1)
		args[i] = id
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM audit_logs WHERE id IN (
		SELECT a.id FROM audit_logs a WHERE a.id IN (`+strings.Join(marks, ", ")+`)`+
		auditHoldFilter+`)`, args...)
	if err != nil {
		return 0, fmt.Errorf("delete audit rows: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete audit rows: %w", err)
	}
	return n, nil
}

// saveAuditProgress stores the run's counts so far. It fails with
// errAuditRunLost when the run is no longer open, which rolls the batch
// back: a delivery that lost the run leaves the rest to the one that won.
func saveAuditProgress(ctx context.Context, tx *store.Tx, tick auditTick,
	stats auditRunStats) error {
	raw, err := json.Marshal(stats)
	if err != nil {
		return fmt.Errorf("encode audit cleanup stats: %w", err)
	}
	res, err := tx.ExecContext(ctx, `UPDATE job_runs SET stats = $1
		WHERE job_name = $2 AND scheduled_for = $3 AND status = $4`,
		string(raw), AuditCleanup, store.Now(tick.ScheduledFor), auditRunRunning)
	if err != nil {
		return fmt.Errorf("save audit cleanup progress: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("save audit cleanup progress: %w", err)
	}
	if n == 0 {
		return errAuditRunLost
	}
	return nil
}
