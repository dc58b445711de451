package platform

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/store"
)

func TestUKFinancialYearEnd(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		at   time.Time
		want time.Time
	}{
		{"last minute of 5 April", auditTime(2020, 4, 5, 23, 59), auditTime(2020, 4, 6, 0, 0)},
		{"first minute of 6 April", auditTime(2020, 4, 6, 0, 0), auditTime(2021, 4, 6, 0, 0)},
		{"mid-year", auditTime(2020, 12, 25, 12, 0), auditTime(2021, 4, 6, 0, 0)},
		{"January belongs to the year begun last April", auditTime(2021, 1, 10, 0, 0),
			auditTime(2021, 4, 6, 0, 0)},
		// 23:30 UTC on 5 April 2020 is 00:30 BST on 6 April: the new year.
		{"UTC instant read in London", time.Date(2020, 4, 5, 23, 30, 0, 0, time.UTC),
			auditTime(2021, 4, 6, 0, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.True(t, tt.want.Equal(ukFinancialYearEnd(tt.at, auditLondon)),
				"got %s", ukFinancialYearEnd(tt.at, auditLondon))
		})
	}
}

func TestAuditCutoff(t *testing.T) {
	t.Parallel()
	day := func(s string) time.Time {
		d, err := time.ParseInLocation(time.DateOnly, s, auditLondon)
		require.NoError(t, err)
		return d
	}
	tests := []struct {
		name       string
		category   string
		asOf       string
		policyDays int
		want       time.Time
		ok         bool
	}{
		{"security: 2 years before as_of", store.AuditSecurity, "2026-12-03", 0,
			auditTime(2024, 12, 3, 0, 0), true},
		{"business: 2 years before as_of", store.AuditBusiness, "2026-06-30", 0,
			auditTime(2024, 6, 30, 0, 0), true},
		{"leap day as_of", store.AuditSecurity, "2028-02-29", 0, auditTime(2026, 3, 1, 0, 0), true},
		{"policy longer than statute wins", store.AuditBusiness, "2026-12-03", 1000,
			auditTime(2024, 3, 8, 0, 0), true},
		{"policy shorter than statute is ignored", store.AuditBusiness, "2026-12-03", 30,
			auditTime(2024, 12, 3, 0, 0), true},
		{"billing on the last day of the 6th year", store.AuditBilling, "2026-04-05", 0,
			auditTime(2019, 4, 6, 0, 0), true},
		{"billing the day the 6th year ends", store.AuditBilling, "2026-04-06", 0,
			auditTime(2020, 4, 6, 0, 0), true},
		{"billing mid-year", store.AuditBilling, "2026-12-03", 0,
			auditTime(2020, 4, 6, 0, 0), true},
		{"billing policy counts from the year end", store.AuditBilling, "2026-12-03", 7 * 365,
			auditTime(2019, 4, 6, 0, 0), true},
		{"evidence: 6 years before as_of", store.AuditComplianceEvidence, "2026-12-03", 0,
			auditTime(2020, 12, 3, 0, 0), true},
		{"aml is never due", store.AuditAML, "2026-12-03", 0, time.Time{}, false},
		{"unknown category is never due", "marketing", "2026-12-03", 0, time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := auditCutoff(tt.category, day(tt.asOf), tt.policyDays, auditLondon)
			require.Equal(t, tt.ok, ok)
			require.True(t, tt.want.Equal(got), "got %s, want %s", got, tt.want)
		})
	}
}

func TestAuditPlan(t *testing.T) {
	t.Parallel()
	asOf := auditTime(2026, 12, 3, 0, 0)
	policies := []auditPolicy{
		{Category: store.AuditBusiness, RetentionDays: 3 * 365, Action: "delete"},
		{Category: store.AuditBilling, RetentionDays: 1, Action: "review"},
		{OrganisationID: "org-b", Category: store.AuditSecurity, RetentionDays: 900,
			Action: "delete"},
		{OrganisationID: "org-b", Category: store.AuditSecurity, RetentionDays: 1200,
			Action: "delete"},
		{OrganisationID: "org-a", Category: store.AuditBusiness, RetentionDays: 10,
			StatutoryDays: 1000, Action: "delete"},
		{OrganisationID: "org-a", Category: store.AuditComplianceEvidence, RetentionDays: 1,
			Action: "anonymise"},
	}

	got := auditPlan(asOf, policies, auditLondon)

	want := []auditScope{
		{store.AuditSecurity, "", auditAnchorCreated, auditTime(2024, 12, 3, 0, 0)},
		{store.AuditSecurity, "org-b", auditAnchorCreated, auditTime(2023, 8, 21, 0, 0)},
		{store.AuditBusiness, "", auditAnchorCreated, auditTime(2023, 12, 4, 0, 0)},
		{store.AuditBusiness, "org-a", auditAnchorCreated, auditTime(2024, 3, 8, 0, 0)},
		{store.AuditComplianceEvidence, "", auditAnchorTenancyEnd, auditTime(2020, 12, 3, 0, 0)},
	}
	require.Len(t, got, len(want))
	for i := range want {
		require.Equal(t, want[i].Category, got[i].Category, i)
		require.Equal(t, want[i].OrganisationID, got[i].OrganisationID, i)
		require.Equal(t, want[i].Anchor, got[i].Anchor, i)
		require.True(t, want[i].Cutoff.Equal(got[i].Cutoff), "%d: got %s, want %s",
			i, got[i].Cutoff, want[i].Cutoff)
	}
}
