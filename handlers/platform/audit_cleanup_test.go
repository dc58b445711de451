package platform

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/store"
)

// The research date; every boundary below is computed from it.
const auditAsOf = "2026-12-03"

func TestAuditCleanupCategoryBoundaries(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t, auditAsOf)
	org := f.addOrg(t)
	endedBefore := f.addTenancy(t, org, "ended", auditTime(2020, 12, 2, 23, 59))
	endedAtCutoff := f.addTenancy(t, org, "ended", auditTime(2020, 12, 3, 0, 0))
	live := f.addTenancy(t, org, "active", time.Time{})
	liveWithEnd := f.addTenancy(t, org, "set_to_end", auditTime(2015, 1, 1, 0, 0))
	endedNoDate := f.addTenancy(t, org, "ended", time.Time{})
	ancient := auditTime(2012, 3, 1, 0, 0)

	rows := []struct {
		name     string
		category string
		tenancy  string
		created  time.Time
		deleted  bool
	}{
		{"security just over 2 years", store.AuditSecurity, "",
			auditTime(2024, 12, 2, 23, 59), true},
		{"security exactly 2 years at day start", store.AuditSecurity, "",
			auditTime(2024, 12, 3, 0, 0), false},
		{"business just over 2 years", store.AuditBusiness, "",
			auditTime(2024, 12, 2, 23, 59), true},
		{"business under 2 years", store.AuditBusiness, "", auditTime(2025, 6, 1, 0, 0), false},
		// FY 2019/20 ended 5 April 2020; six years ran out on 5 April 2026.
		{"billing in FY 2019/20", store.AuditBilling, "", auditTime(2020, 4, 5, 23, 59), true},
		// FY 2020/21 ends 5 April 2021; it may go from 6 April 2027.
		{"billing in FY 2020/21", store.AuditBilling, "", auditTime(2020, 4, 6, 0, 0), false},
		{"evidence, tenancy ended over 6 years ago", store.AuditComplianceEvidence,
			endedBefore, ancient, true},
		{"evidence, tenancy ended exactly 6 years ago today", store.AuditComplianceEvidence,
			endedAtCutoff, ancient, false},
		{"evidence, live tenancy", store.AuditComplianceEvidence, live, ancient, false},
		{"evidence, live tenancy with an ended_at", store.AuditComplianceEvidence,
			liveWithEnd, ancient, false},
		{"evidence, ended tenancy without ended_at", store.AuditComplianceEvidence,
			endedNoDate, ancient, false},
		{"evidence without a tenancy", store.AuditComplianceEvidence, "", ancient, false},
		{"aml is kept until its anchor exists", store.AuditAML, "", ancient, false},
		{"unknown category is kept", "marketing", "", ancient, false},
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = f.addAudit(t, org, r.category, r.tenancy, r.created)
	}

	f.tick(t, auditAsOf)

	for i, r := range rows {
		require.Equal(t, !r.deleted, f.exists(t, ids[i]), r.name)
	}
	require.Equal(t, []map[string]int64{auditCounts(map[string]int64{
		store.AuditSecurity: 1, store.AuditBusiness: 1, store.AuditBilling: 1,
		store.AuditComplianceEvidence: 1,
	})}, f.summaries(t))
	status, stats := f.run(t, auditAsOf)
	require.Equal(t, auditRunSucceeded, status)
	require.Equal(t, auditAsOf, stats.AsOf)
	require.False(t, stats.StoppedByBudget)
}

func TestAuditCleanupEvidenceFollowsTenancyEnd(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t, "2027-06-15")
	org := f.addOrg(t)
	ended := f.addTenancy(t, org, "ended", auditTime(2021, 6, 15, 10, 0))
	live := f.addTenancy(t, org, "periodic", time.Time{})
	old := auditTime(2013, 1, 1, 0, 0)
	endedEvidence := f.addAudit(t, org, store.AuditComplianceEvidence, ended, old)
	liveEvidence := f.addAudit(t, org, store.AuditComplianceEvidence, live, old)

	// Six years after 10:00 on 15 June 2021 is later than the start of
	// 15 June 2027: kept.
	f.tick(t, "2027-06-15")
	require.True(t, f.exists(t, endedEvidence))

	f.clock.set(auditSlot(t, "2027-06-16"), 0)
	f.tick(t, "2027-06-16")
	require.False(t, f.exists(t, endedEvidence))

	f.clock.set(auditSlot(t, "2090-01-01"), 0)
	f.tick(t, "2090-01-01")
	require.True(t, f.exists(t, liveEvidence), "a live tenancy's evidence is never due")
}

func TestAuditCleanupEvidenceOfAnotherTenantsTenancyIsKept(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t, auditAsOf)
	mine, theirs := f.addOrg(t), f.addOrg(t)
	tenancy := f.addTenancy(t, theirs, "ended", auditTime(2015, 1, 1, 0, 0))
	id := f.addAudit(t, mine, store.AuditComplianceEvidence, tenancy, auditTime(2014, 1, 1, 0, 0))

	f.tick(t, auditAsOf)

	require.True(t, f.exists(t, id))
}

func TestAuditCleanupRespectsLegalHolds(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t, auditAsOf)
	org, heldOrg := f.addOrg(t), f.addOrg(t)
	tenancy := f.addTenancy(t, org, "ended", auditTime(2015, 1, 1, 0, 0))
	old := auditTime(2014, 1, 1, 0, 0)

	heldRow := f.addAudit(t, org, store.AuditSecurity, "", old)
	f.hold(t, "audit_logs", heldRow, false)
	releasedRow := f.addAudit(t, org, store.AuditSecurity, "", old)
	f.hold(t, "audit_logs", releasedRow, true)
	heldTenancyRow := f.addAudit(t, org, store.AuditComplianceEvidence, tenancy, old)
	heldTenancyBusiness := f.addAudit(t, org, store.AuditBusiness, tenancy, old)
	f.hold(t, "tenancies", tenancy, false)
	heldOrgRow := f.addAudit(t, heldOrg, store.AuditBilling, "", old)
	f.hold(t, "organisations", heldOrg, false)
	free := f.addAudit(t, org, store.AuditBusiness, "", old)

	f.tick(t, auditAsOf)

	require.True(t, f.exists(t, heldRow))
	require.False(t, f.exists(t, releasedRow), "a released hold no longer protects")
	require.True(t, f.exists(t, heldTenancyRow))
	require.True(t, f.exists(t, heldTenancyBusiness), "a tenancy hold covers every category")
	require.True(t, f.exists(t, heldOrgRow))
	require.False(t, f.exists(t, free))
}

func TestAuditCleanupDeletesAcrossBatches(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t, auditAsOf)
	f.h.batchSize = 3
	org := f.addOrg(t)
	for i := range 10 {
		f.addAudit(t, org, store.AuditSecurity, "", auditTime(2020, 1, 1+i, 0, 0))
	}
	for i := range 4 {
		f.addAudit(t, org, store.AuditBusiness, "", auditTime(2019, 1, 1+i, 0, 0))
	}
	kept := f.addAudit(t, org, store.AuditSecurity, "", auditTime(2026, 1, 1, 0, 0))

	f.tick(t, auditAsOf)

	require.Equal(t, 1, f.remaining(t))
	require.True(t, f.exists(t, kept))
	_, stats := f.run(t, auditAsOf)
	require.Equal(t, 4+2, stats.Batches, "10 rows in batches of 3, then 4")
	require.Equal(t, []map[string]int64{auditCounts(map[string]int64{
		store.AuditSecurity: 10, store.AuditBusiness: 4})}, f.summaries(t))
}

func TestAuditCleanupTimeBudgetStopsAndNextTickResumes(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t, auditAsOf)
	f.h.batchSize = 2
	f.h.budget = 3 * time.Minute
	// Each reading of the clock moves it a minute on: the budget is spent
	// after the second batch.
	f.clock.set(auditSlot(t, auditAsOf), time.Minute)
	org := f.addOrg(t)
	for i := range 10 {
		f.addAudit(t, org, store.AuditSecurity, "", auditTime(2020, 1, 1+i, 0, 0))
	}

	f.tick(t, auditAsOf)

	require.Equal(t, 6, f.remaining(t))
	status, stats := f.run(t, auditAsOf)
	require.Equal(t, auditRunPartial, status)
	require.True(t, stats.StoppedByBudget)
	require.Equal(t, []map[string]int64{auditCounts(map[string]int64{
		store.AuditSecurity: 4})}, f.summaries(t))

	f.clock.set(auditSlot(t, "2026-12-04"), 0)
	f.tick(t, "2026-12-04")

	require.Zero(t, f.remaining(t))
	status, _ = f.run(t, "2026-12-04")
	require.Equal(t, auditRunSucceeded, status)
	require.Len(t, f.summaries(t), 2)
	require.EqualValues(t, 6, f.summaries(t)[1][store.AuditSecurity])
}

func TestAuditCleanupDuplicateTickIsNoOp(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t, auditAsOf)
	org := f.addOrg(t)
	f.addAudit(t, org, store.AuditSecurity, "", auditTime(2020, 1, 1, 0, 0))
	f.tick(t, auditAsOf)
	_, first := f.run(t, auditAsOf)

	late := f.addAudit(t, org, store.AuditSecurity, "", auditTime(2020, 1, 1, 0, 0))
	f.tick(t, auditAsOf)

	require.True(t, f.exists(t, late), "the finished slot does no more work")
	_, second := f.run(t, auditAsOf)
	require.Equal(t, first, second)
	require.Len(t, f.summaries(t), 1)
}

func TestAuditCleanupResumesCrashedRun(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t, auditAsOf)
	org := f.addOrg(t)
	f.addAudit(t, org, store.AuditSecurity, "", auditTime(2020, 1, 1, 0, 0))
	// A process claimed the slot, deleted 5 security rows and died.
	f.exec(t, `INSERT INTO job_runs (job_name, scheduled_for, started_at, status, stats)
		VALUES ($1, $2, $3, 'running', $4)`, AuditCleanup, store.Now(auditSlot(t, auditAsOf)),
		store.Now(auditSlot(t, auditAsOf)), `{"deleted":{"security":5},"batches":1}`)

	f.tick(t, auditAsOf)

	require.Zero(t, f.remaining(t))
	status, stats := f.run(t, auditAsOf)
	require.Equal(t, auditRunSucceeded, status)
	require.True(t, stats.Resumed)
	require.EqualValues(t, 6, stats.Deleted[store.AuditSecurity])
	require.Equal(t, 2, stats.Batches)
	require.Equal(t, []map[string]int64{auditCounts(map[string]int64{
		store.AuditSecurity: 6})}, f.summaries(t))
}

func TestAuditCleanupRunFinishedElsewhere(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t, auditAsOf)
	org := f.addOrg(t)
	due := f.addAudit(t, org, store.AuditSecurity, "", auditTime(2020, 1, 1, 0, 0))
	tick := auditTick{ScheduledFor: auditSlot(t, auditAsOf)}
	f.exec(t, `INSERT INTO job_runs (job_name, scheduled_for, started_at, status)
		VALUES ($1, $2, $3, 'succeeded')`, AuditCleanup, store.Now(tick.ScheduledFor),
		store.Now(tick.ScheduledFor))
	ctx := context.Background()
	stats := auditRunStats{Deleted: map[string]int64{}}
	scope := auditScope{Category: store.AuditSecurity, Anchor: auditAnchorCreated,
		Cutoff: auditTime(2024, 12, 3, 0, 0)}

	_, err := f.h.deleteBatch(ctx, tick, scope, &stats)
	require.ErrorIs(t, err, errAuditRunLost)
	require.True(t, f.exists(t, due), "the losing batch rolls back")
	require.Zero(t, stats.Batches)

	require.NoError(t, f.h.finish(ctx, tick, stats))
	require.Empty(t, f.summaries(t), "only the run that closes the row summarises")
}

func TestAuditCleanupRetentionPolicies(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t, auditAsOf)
	longer, shorter, plain, disabled := f.addOrg(t), f.addOrg(t), f.addOrg(t), f.addOrg(t)
	// Platform default: business 3 years; an attempt to cut security to a
	// month; billing held for review.
	f.policy(t, auditPolicyRow{category: store.AuditBusiness, days: 3 * 365})
	f.policy(t, auditPolicyRow{category: store.AuditSecurity, days: 30})
	f.policy(t, auditPolicyRow{category: store.AuditBilling, days: 1, action: "review"})
	// Organisation overrides.
	f.policy(t, auditPolicyRow{org: longer, category: store.AuditBusiness, days: 5 * 365})
	f.policy(t, auditPolicyRow{org: shorter, category: store.AuditBusiness, days: 100})
	f.policy(t, auditPolicyRow{org: disabled, category: store.AuditBusiness, days: 9 * 365,
		disabled: true})
	f.policy(t, auditPolicyRow{org: plain, category: store.AuditSecurity, days: 10,
		statutoryDays: 4 * 365})

	fourYears, thirtyMonths := auditTime(2022, 11, 1, 0, 0), auditTime(2024, 6, 1, 0, 0)
	rows := []struct {
		name    string
		org     string
		cat     string
		created time.Time
		deleted bool
	}{
		{"default lengthens business to 3 years: 30 months kept", plain,
			store.AuditBusiness, thirtyMonths, false},
		{"default: 4 years deleted", plain, store.AuditBusiness, fourYears, true},
		{"override lengthens to 5 years: 4 years kept", longer,
			store.AuditBusiness, fourYears, false},
		{"override of 100 days falls back to the 2-year floor", shorter,
			store.AuditBusiness, thirtyMonths, true},
		{"override of 100 days keeps 18 months", shorter,
			store.AuditBusiness, auditTime(2025, 6, 1, 0, 0), false},
		{"disabled override is ignored", disabled, store.AuditBusiness, fourYears, true},
		{"a 30-day default cannot shorten security", disabled,
			store.AuditSecurity, auditTime(2025, 6, 1, 0, 0), false},
		{"security past 2 years under the default", disabled,
			store.AuditSecurity, thirtyMonths, true},
		{"statutory_minimum_days lengthens: 30 months kept", plain,
			store.AuditSecurity, thirtyMonths, false},
		{"a review policy keeps billing", plain, store.AuditBilling,
			auditTime(2012, 1, 1, 0, 0), false},
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = f.addAudit(t, r.org, r.cat, "", r.created)
	}

	f.tick(t, auditAsOf)

	for i, r := range rows {
		require.Equal(t, !r.deleted, f.exists(t, ids[i]), r.name)
	}
}

func TestAuditCleanupBadTickIsPermanentAndDeletesNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		payload string
	}{
		{"malformed JSON", `{"scheduled_for":`},
		{"missing scheduled_for", `{"as_of":"2026-12-03"}`},
		{"as_of not a date", `{"scheduled_for":"2026-12-03T03:30:00Z","as_of":"03/12/2026"}`},
		{"as_of in the future", `{"scheduled_for":"2026-12-03T03:30:00Z","as_of":"2030-01-01"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newAuditFixture(t, auditAsOf)
			org := f.addOrg(t)
			f.addAudit(t, org, store.AuditSecurity, "", auditTime(2015, 1, 1, 0, 0))

			err := f.deliver(t, []byte(tt.payload))
			require.Error(t, err)
			require.Equal(t, job.ClassPermanent, job.Classify(err))
			require.Equal(t, 1, f.remaining(t))
			require.Empty(t, f.summaries(t))
			var runs int
			require.NoError(t, f.db.QueryRowContext(context.Background(),
				`SELECT COUNT(*) FROM job_runs`).Scan(&runs))
			require.Zero(t, runs)
		})
	}
}

func TestAuditCleanupAsOfDefaultsToSlotDate(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t, auditAsOf)
	org := f.addOrg(t)
	due := f.addAudit(t, org, store.AuditSecurity, "", auditTime(2024, 12, 2, 12, 0))

	require.NoError(t, f.deliver(t, []byte(`{"scheduled_for":"2026-12-03T03:30:00Z"}`)))

	require.False(t, f.exists(t, due))
	_, stats := f.run(t, auditAsOf)
	require.Equal(t, auditAsOf, stats.AsOf)
}
