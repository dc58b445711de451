package platform

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/store"
	"github.com/millrace/millrace/store/storetest"
)

// usageNow is the fixed "now" of the usage tests: the research date.
var usageNow = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

// usageFixture is a migrated database with a usageAggregate handler on it.
type usageFixture struct {
	db *store.DB
	h  job.Handler
}

func newUsageFixture(t *testing.T) *usageFixture {
	t.Helper()
	london, err := time.LoadLocation("Europe/London")
	require.NoError(t, err)
	db := storetest.New(t)
	h := NewUsageAggregate(Deps{
		DB:       db,
		Clock:    job.FixedClock(usageNow),
		Location: london,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	return &usageFixture{db: db, h: h}
}

// addOrg inserts an organisation on plan and returns its id.
func (f *usageFixture) addOrg(t *testing.T, plan string) string {
	t.Helper()
	id := uuid.NewString()
	_, err := f.db.ExecContext(context.Background(), `INSERT INTO organisations
		(id, name, plan_code, created_at) VALUES ($1, $2, $3, $4)`,
		id, "Org "+id[:8], plan, store.Now(usageNow.AddDate(-1, 0, 0)))
	require.NoError(t, err)
	return id
}

// usageEvent builds a platform.usage.recorded payload.
type usageEvent struct {
	org, metric, kind, source string
	quantity                  int64
	at                        time.Time
}

func (e usageEvent) payload() []byte {
	b, _ := json.Marshal(map[string]any{
		"organisation_id": e.org,
		"metric":          e.metric,
		"quantity":        e.quantity,
		"kind":            e.kind,
		"occurred_at":     e.at.Format(time.RFC3339Nano),
		"source_event_id": e.source,
	})
	return b
}

// deliver hands raw as one message to the handler.
func (f *usageFixture) deliver(t *testing.T, org string, raw []byte) error {
	t.Helper()
	msg := job.Message{
		ID:       uuid.NewString(),
		Topic:    usageRecordedTopic,
		Payload:  raw,
		Metadata: map[string]string{job.MetaOrganisationID: org},
		Handler:  UsageAggregate,
		Attempt:  1,
	}
	ctx := job.WithMessage(context.Background(), msg)
	return f.h.Handle(ctx, msg)
}

// record delivers e and requires success.
func (f *usageFixture) record(t *testing.T, e usageEvent) {
	t.Helper()
	require.NoError(t, f.deliver(t, e.org, e.payload()))
}

// aggregate returns the aggregate quantity of org's metric in period, and
// false when there is no row.
func (f *usageFixture) aggregate(t *testing.T, org, metric, period string) (int64, bool) {
	t.Helper()
	var q int64
	err := f.db.QueryRowContext(context.Background(), `SELECT quantity FROM usage_aggregates
		WHERE organisation_id = $1 AND metric = $2 AND period_month = $3`,
		org, metric, period).Scan(&q)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false
	}
	require.NoError(t, err)
	return q, true
}

// usageCrossing is one emitted platform.usage.threshold_crossed event.
type usageCrossing struct {
	OrganisationID   string `json:"organisation_id"`
	Metric           string `json:"metric"`
	PeriodMonth      string `json:"period_month"`
	ThresholdPercent int    `json:"threshold_percent"`
	Limit            int64  `json:"limit"`
	Quantity         int64  `json:"quantity"`
	MetaOrg          string `json:"-"`
}

// crossings returns the threshold events in the outbox, oldest first.
func (f *usageFixture) crossings(t *testing.T) []usageCrossing {
	t.Helper()
	rows, err := f.db.PendingOutbox(context.Background(), 1000)
	require.NoError(t, err)
	var out []usageCrossing
	for _, r := range rows {
		require.Equal(t, usageThresholdCrossedTopic, r.Event.Topic)
		var c usageCrossing
		require.NoError(t, json.Unmarshal(r.Event.Payload, &c))
		c.MetaOrg = r.Event.Metadata[job.MetaOrganisationID]
		out = append(out, c)
	}
	return out
}

// count returns the number of rows in table.
func (f *usageFixture) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	err := f.db.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM `+table).Scan(&n)
	require.NoError(t, err)
	return n
}

// requireNothingWritten checks that no usage message left a trace.
func (f *usageFixture) requireNothingWritten(t *testing.T) {
	t.Helper()
	for _, table := range []string{"usage_events", "usage_aggregates", "usage_thresholds",
		"outbox", "processed_messages"} {
		require.Zero(t, f.count(t, table), table)
	}
}
