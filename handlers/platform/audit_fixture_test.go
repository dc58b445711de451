package platform

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/store"
	"github.com/millrace/millrace/store/storetest"
)

// auditLondon is the zone of every audit test date.
var auditLondon = londonOr(nil)

// auditTime returns a wall-clock time in London.
func auditTime(y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, auditLondon)
}

// auditClock is a test clock that advances by step on every reading, so a
// time budget runs out after a known number of batches without sleeping.
type auditClock struct {
	mu   sync.Mutex
	now  time.Time
	step time.Duration
}

func (c *auditClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.now
	c.now = c.now.Add(c.step)
	return t
}

func (c *auditClock) set(now time.Time, step time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now, c.step = now, step
}

// auditFixture is a migrated database with an auditCleanup handler on it.
type auditFixture struct {
	db    *store.DB
	h     *auditCleaner
	clock *auditClock
}

// newAuditFixture returns a fixture whose clock reads 03:30 London on asOf.
func newAuditFixture(t *testing.T, asOf string) *auditFixture {
	t.Helper()
	db := storetest.New(t)
	clock := &auditClock{}
	h := newAuditCleaner(Deps{DB: db, Clock: clock, Location: auditLondon,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	f := &auditFixture{db: db, h: h, clock: clock}
	f.clock.set(auditSlot(t, asOf), 0)
	return f
}

// auditSlot returns the 03:30 London slot of the London date asOf.
func auditSlot(t *testing.T, asOf string) time.Time {
	t.Helper()
	d, err := time.ParseInLocation(time.DateOnly, asOf, auditLondon)
	require.NoError(t, err)
	return d.Add(3*time.Hour + 30*time.Minute)
}

func (f *auditFixture) exec(t *testing.T, query string, args ...any) {
	t.Helper()
	_, err := f.db.ExecContext(context.Background(), query, args...)
	require.NoError(t, err)
}

// addOrg inserts an organisation and returns its id.
func (f *auditFixture) addOrg(t *testing.T) string {
	t.Helper()
	id := uuid.NewString()
	f.exec(t, `INSERT INTO organisations (id, name, created_at) VALUES ($1, 'Org', $2)`,
		id, store.Now(auditTime(2010, 1, 1, 0, 0)))
	return id
}

// addTenancy inserts a tenancy of org with status and ended_at (zero for
// NULL) and returns its id.
func (f *auditFixture) addTenancy(t *testing.T, org, status string, ended time.Time) string {
	t.Helper()
	prop, id := uuid.NewString(), uuid.NewString()
	f.exec(t, `INSERT INTO properties (id, organisation_id, address_line1, town, postcode,
		created_at) VALUES ($1, $2, '1 Mill Lane', 'Leeds', 'LS1 1AA', $3)`,
		prop, org, store.Now(auditTime(2010, 1, 1, 0, 0)))
	var endedAt any
	if !ended.IsZero() {
		endedAt = store.Now(ended)
	}
	f.exec(t, `INSERT INTO tenancies (id, organisation_id, property_id, status, start_date,
		rent_pence, ended_at, created_at) VALUES ($1, $2, $3, $4, '2012-01-01', 95000, $5, $6)`,
		id, org, prop, status, endedAt, store.Now(auditTime(2012, 1, 1, 0, 0)))
	return id
}

// addAudit inserts an audit row and returns its id.
func (f *auditFixture) addAudit(t *testing.T, org, category, tenancy string,
	created time.Time) string {
	t.Helper()
	id := uuid.NewString()
	f.exec(t, `INSERT INTO audit_logs (id, organisation_id, actor_type, action, tenancy_id,
		category, metadata, created_at) VALUES ($1, $2, 'system', 'test.event', $3, $4, '{}', $5)`,
		id, store.Nullable(org), store.Nullable(tenancy), category, store.Now(created))
	return id
}

// hold places a legal hold on table/record, released when released is set.
func (f *auditFixture) hold(t *testing.T, table, record string, released bool) {
	t.Helper()
	var releasedAt any
	if released {
		releasedAt = store.Now(auditTime(2026, 1, 1, 0, 0))
	}
	f.exec(t, `INSERT INTO legal_holds (id, table_name, record_id, reason, placed_by,
		placed_at, released_at) VALUES ($1, $2, $3, 'litigation', 'test', $4, $5)`,
		uuid.NewString(), table, record, store.Now(auditTime(2025, 1, 1, 0, 0)), releasedAt)
}

// auditPolicyRow is a retention_policies row to insert.
type auditPolicyRow struct {
	org, category, action string
	days, statutoryDays   int
	disabled              bool
}

func (f *auditFixture) policy(t *testing.T, p auditPolicyRow) {
	t.Helper()
	if p.action == "" {
		p.action = "delete"
	}
	f.exec(t, `INSERT INTO retention_policies (id, organisation_id, table_name,
		record_category, anchor_column, retention_days, statutory_minimum_days, action, enabled)
		VALUES ($1, $2, 'audit_logs', $3, 'created_at', $4, $5, $6, $7)`,
		uuid.NewString(), store.Nullable(p.org), p.category, p.days, p.statutoryDays,
		p.action, !p.disabled)
}

// tickPayload builds a tick for the 03:30 slot of asOf.
func auditTickPayload(t *testing.T, asOf string) []byte {
	t.Helper()
	raw, err := json.Marshal(map[string]any{
		"scheduled_for": auditSlot(t, asOf).UTC().Format(time.RFC3339),
		"as_of":         asOf,
		"catch_up":      false,
	})
	require.NoError(t, err)
	return raw
}

// deliver hands raw to the handler as one tick.
func (f *auditFixture) deliver(t *testing.T, raw []byte) error {
	t.Helper()
	msg := job.Message{ID: uuid.NewString(), Topic: auditCleanupTopic, Payload: raw,
		Metadata: map[string]string{}, Handler: AuditCleanup, Attempt: 1}
	return f.h.Handle(job.WithMessage(context.Background(), msg), msg)
}

// tick delivers the tick of asOf and requires success.
func (f *auditFixture) tick(t *testing.T, asOf string) {
	t.Helper()
	require.NoError(t, f.deliver(t, auditTickPayload(t, asOf)))
}

// exists reports whether the audit row id is still there.
func (f *auditFixture) exists(t *testing.T, id string) bool {
	t.Helper()
	var one int
	err := f.db.QueryRowContext(context.Background(),
		`SELECT 1 FROM audit_logs WHERE id = $1`, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false
	}
	require.NoError(t, err)
	return true
}

// remaining counts audit rows other than cleanup summaries.
func (f *auditFixture) remaining(t *testing.T) int {
	t.Helper()
	var n int
	require.NoError(t, f.db.QueryRowContext(context.Background(), `SELECT COUNT(*)
		FROM audit_logs WHERE action <> 'audit.cleanup.completed'`).Scan(&n))
	return n
}

// summaries returns the counts of every cleanup summary row, oldest first.
func (f *auditFixture) summaries(t *testing.T) []map[string]int64 {
	t.Helper()
	rows, err := f.db.QueryContext(context.Background(), `SELECT metadata, category,
		organisation_id FROM audit_logs WHERE action = 'audit.cleanup.completed'
		ORDER BY created_at`)
	require.NoError(t, err)
	defer rows.Close()
	var out []map[string]int64
	for rows.Next() {
		var md, category string
		var org sql.NullString
		require.NoError(t, rows.Scan(&md, &category, &org))
		require.Equal(t, store.AuditBusiness, category)
		require.False(t, org.Valid, "the summary belongs to no organisation")
		var counts map[string]int64
		require.NoError(t, json.Unmarshal([]byte(md), &counts))
		out = append(out, counts)
	}
	require.NoError(t, rows.Err())
	return out
}

// run returns the job_runs row of the slot of asOf.
func (f *auditFixture) run(t *testing.T, asOf string) (string, auditRunStats) {
	t.Helper()
	var status string
	var raw sql.NullString
	require.NoError(t, f.db.QueryRowContext(context.Background(), `SELECT status, stats
		FROM job_runs WHERE job_name = $1 AND scheduled_for = $2`,
		AuditCleanup, store.Now(auditSlot(t, asOf))).Scan(&status, &raw))
	var stats auditRunStats
	if raw.Valid {
		require.NoError(t, json.Unmarshal([]byte(raw.String), &stats))
	}
	return status, stats
}

// counts builds the expected summary: zero for every category not given.
func auditCounts(given map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for _, c := range auditCategories {
		out[c] = given[c]
	}
	return out
}
