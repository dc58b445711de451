package platform

import (
	"context"
	"encoding/json"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/job"
)

func TestUsageMetricRegistryMatchesSchema(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../schemas/topics/platform.usage.recorded.json")
	require.NoError(t, err)
	var schema struct {
		Properties struct {
			Metric struct {
				Enum []string `json:"enum"`
			} `json:"metric"`
		} `json:"properties"`
	}
	require.NoError(t, json.Unmarshal(raw, &schema))

	var registry []string
	for m := range usageMetrics {
		registry = append(registry, m)
	}
	sort.Strings(registry)
	enum := append([]string(nil), schema.Properties.Metric.Enum...)
	sort.Strings(enum)
	require.Equal(t, enum, registry)
}

func TestUsageCounterAccumulates(t *testing.T) {
	t.Parallel()
	f := newUsageFixture(t)
	org := f.addOrg(t, "growth")
	at := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)

	for i, q := range []int64{2, 3, 5, 0} {
		f.record(t, usageEvent{org: org, metric: "esign.envelopes_sent", kind: usageCounter,
			quantity: q, at: at.Add(time.Duration(i) * time.Hour),
			source: "esign-" + string(rune('a'+i))})
	}

	got, ok := f.aggregate(t, org, "esign.envelopes_sent", "2026-12-01")
	require.True(t, ok)
	require.EqualValues(t, 10, got)
	require.Equal(t, 4, f.count(t, "usage_events"))
	require.Empty(t, f.crossings(t), "10 of 200 crosses nothing")
}

func TestUsageGaugeKeepsPeriodPeak(t *testing.T) {
	t.Parallel()
	f := newUsageFixture(t)
	org := f.addOrg(t, "scale")
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

	var peak int64
	for i, q := range []int64{5, 9, 3, 0} {
		f.record(t, usageEvent{org: org, metric: "properties.active", kind: usageGauge,
			quantity: q, at: at.AddDate(0, 0, i), source: "props-" + string(rune('a'+i))})
		peak = max(peak, q)
		got, _ := f.aggregate(t, org, "properties.active", "2026-12-01")
		require.Equal(t, peak, got)
	}

	got, _ := f.aggregate(t, org, "properties.active", "2026-12-01")
	require.EqualValues(t, 9, got, "a falling gauge leaves the peak")

	var last time.Time
	require.NoError(t, f.db.QueryRowContext(context.Background(), `SELECT last_event_at
		FROM usage_aggregates WHERE organisation_id = $1`, org).Scan(&last))
	require.True(t, last.Equal(at.AddDate(0, 0, 3)), "last_event_at is the latest event")
}

func TestUsageDuplicateSourceEventCountsOnce(t *testing.T) {
	t.Parallel()

	t.Run("redelivered message", func(t *testing.T) {
		t.Parallel()
		f := newUsageFixture(t)
		org := f.addOrg(t, "growth")
		ev := usageEvent{org: org, metric: "aml.checks_initiated", kind: usageCounter,
			quantity: 4, at: usageNow, source: "aml-1"}
		f.record(t, ev)
		f.record(t, ev)

		got, _ := f.aggregate(t, org, "aml.checks_initiated", "2026-12-01")
		require.EqualValues(t, 4, got)
		require.Equal(t, 1, f.count(t, "usage_events"))
	})

	t.Run("claim pruned, usage_events still dedupes", func(t *testing.T) {
		t.Parallel()
		f := newUsageFixture(t)
		org := f.addOrg(t, "growth")
		ev := usageEvent{org: org, metric: "aml.checks_initiated", kind: usageCounter,
			quantity: 4, at: usageNow, source: "aml-1"}
		f.record(t, ev)
		_, err := f.db.ExecContext(context.Background(), `DELETE FROM processed_messages`)
		require.NoError(t, err)
		f.record(t, ev)

		got, _ := f.aggregate(t, org, "aml.checks_initiated", "2026-12-01")
		require.EqualValues(t, 4, got)
		require.Equal(t, 1, f.count(t, "usage_events"))
	})
}

func TestUsageLondonMonthBoundary(t *testing.T) {
	t.Parallel()
	f := newUsageFixture(t)
	org := f.addOrg(t, "growth")

	// 23:30Z on 30 June is 00:30 BST on 1 July.
	f.record(t, usageEvent{org: org, metric: "esign.envelopes_sent", kind: usageCounter,
		quantity: 1, at: time.Date(2026, 6, 30, 23, 30, 0, 0, time.UTC), source: "july"})
	// 22:30Z on 30 June is 23:30 BST, still June.
	f.record(t, usageEvent{org: org, metric: "esign.envelopes_sent", kind: usageCounter,
		quantity: 2, at: time.Date(2026, 6, 30, 22, 30, 0, 0, time.UTC), source: "june"})
	// 23:30Z on 31 October is 23:30 GMT, still October.
	f.record(t, usageEvent{org: org, metric: "esign.envelopes_sent", kind: usageCounter,
		quantity: 4, at: time.Date(2026, 10, 31, 23, 30, 0, 0, time.UTC), source: "october"})

	for period, want := range map[string]int64{"2026-06-01": 2, "2026-07-01": 1,
		"2026-10-01": 4} {
		got, ok := f.aggregate(t, org, "esign.envelopes_sent", period)
		require.True(t, ok, period)
		require.Equal(t, want, got, period)
	}
	_, ok := f.aggregate(t, org, "esign.envelopes_sent", "2026-11-01")
	require.False(t, ok)
}

func TestUsageThresholdsEmittedOncePerPeriod(t *testing.T) {
	t.Parallel()
	f := newUsageFixture(t)
	org := f.addOrg(t, "starter") // esign.envelopes_sent limit 20
	at := time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC)
	ev := func(src string, q int64, at time.Time) usageEvent {
		return usageEvent{org: org, metric: "esign.envelopes_sent", kind: usageCounter,
			quantity: q, at: at, source: src}
	}

	f.record(t, ev("a", 10, at))
	require.Empty(t, f.crossings(t))
	f.record(t, ev("b", 6, at)) // 16 = 80%
	f.record(t, ev("b", 6, at)) // redelivery
	f.record(t, ev("c", 1, at)) // 17, still above 80%
	f.record(t, ev("d", 4, at)) // 21 > 100%
	f.record(t, ev("e", 2, at)) // 23
	f.record(t, ev("d", 4, at)) // redelivery

	want := []usageCrossing{
		{OrganisationID: org, Metric: "esign.envelopes_sent", PeriodMonth: "2026-11-01",
			ThresholdPercent: 80, Limit: 20, Quantity: 16, MetaOrg: org},
		{OrganisationID: org, Metric: "esign.envelopes_sent", PeriodMonth: "2026-11-01",
			ThresholdPercent: 100, Limit: 20, Quantity: 21, MetaOrg: org},
	}
	require.Equal(t, want, f.crossings(t))

	// A new month starts from nothing and may cross again.
	f.record(t, ev("f", 16, at.AddDate(0, 1, 0)))
	got := f.crossings(t)
	require.Len(t, got, 3)
	require.Equal(t, "2026-12-01", got[2].PeriodMonth)
	require.Equal(t, 80, got[2].ThresholdPercent)
	require.Equal(t, 3, f.count(t, "usage_thresholds"))
}

func TestUsageGaugeRecrossingIsSilent(t *testing.T) {
	t.Parallel()
	f := newUsageFixture(t)
	org := f.addOrg(t, "starter") // seats.active limit 2
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

	for i, q := range []int64{2, 0, 2, 1, 2} {
		f.record(t, usageEvent{org: org, metric: "seats.active", kind: usageGauge,
			quantity: q, at: at.Add(time.Duration(i) * time.Hour),
			source: "seats-" + string(rune('a'+i))})
	}

	got := f.crossings(t)
	require.Len(t, got, 2, "80% and 100% once each, although the gauge rose three times")
	require.Equal(t, 80, got[0].ThresholdPercent)
	require.Equal(t, 100, got[1].ThresholdPercent)
}

func TestUsageCrossingBothAtOnce(t *testing.T) {
	t.Parallel()
	f := newUsageFixture(t)
	org := f.addOrg(t, "starter") // aml.checks_initiated limit 5

	f.record(t, usageEvent{org: org, metric: "aml.checks_initiated", kind: usageCounter,
		quantity: 7, at: usageNow, source: "aml-bulk"})

	got := f.crossings(t)
	require.Len(t, got, 2)
	require.Equal(t, 80, got[0].ThresholdPercent)
	require.Equal(t, 100, got[1].ThresholdPercent)
	for _, c := range got {
		require.EqualValues(t, 7, c.Quantity)
		require.EqualValues(t, 5, c.Limit)
	}
}

func TestUsageUnknownPlanHasNoThresholds(t *testing.T) {
	t.Parallel()
	f := newUsageFixture(t)
	org := f.addOrg(t, "enterprise-custom")

	f.record(t, usageEvent{org: org, metric: "aml.checks_initiated", kind: usageCounter,
		quantity: 1_000_000, at: usageNow, source: "aml-huge"})

	got, _ := f.aggregate(t, org, "aml.checks_initiated", "2026-12-01")
	require.EqualValues(t, 1_000_000, got)
	require.Empty(t, f.crossings(t))
	require.Zero(t, f.count(t, "usage_thresholds"))
}

func TestUsageTenantIsolation(t *testing.T) {
	t.Parallel()
	f := newUsageFixture(t)
	small := f.addOrg(t, "starter") // seats.active limit 2
	large := f.addOrg(t, "scale")   // seats.active limit 50

	f.record(t, usageEvent{org: small, metric: "seats.active", kind: usageGauge,
		quantity: 2, at: usageNow, source: "small-seats"})
	f.record(t, usageEvent{org: large, metric: "seats.active", kind: usageGauge,
		quantity: 30, at: usageNow, source: "large-seats"})
	f.record(t, usageEvent{org: large, metric: "esign.envelopes_sent", kind: usageCounter,
		quantity: 3, at: usageNow, source: "large-esign"})

	gotSmall, _ := f.aggregate(t, small, "seats.active", "2026-12-01")
	gotLarge, _ := f.aggregate(t, large, "seats.active", "2026-12-01")
	require.EqualValues(t, 2, gotSmall)
	require.EqualValues(t, 30, gotLarge)
	_, ok := f.aggregate(t, small, "esign.envelopes_sent", "2026-12-01")
	require.False(t, ok)

	crossings := f.crossings(t)
	require.Len(t, crossings, 2, "only the small organisation reached its limit")
	for _, c := range crossings {
		require.Equal(t, small, c.OrganisationID)
		require.Equal(t, small, c.MetaOrg)
	}
}

func TestUsageBadInputIsPermanentAndWritesNothing(t *testing.T) {
	t.Parallel()
	org := "8a4c9a52-3f0e-4a43-9d0e-3c2b1f6e7a10"
	good := usageEvent{org: org, metric: "esign.envelopes_sent", kind: usageCounter,
		quantity: 1, at: usageNow, source: "src-1"}
	with := func(edit func(*usageEvent)) []byte {
		e := good
		edit(&e)
		return e.payload()
	}
	tests := []struct {
		name    string
		payload []byte
		metaOrg string
	}{
		{"unknown metric", with(func(e *usageEvent) { e.metric = "widgets" }), org},
		{"negative counter", with(func(e *usageEvent) { e.quantity = -1 }), org},
		{"kind disagrees with registry", with(func(e *usageEvent) { e.kind = usageGauge }), org},
		{"unknown kind", with(func(e *usageEvent) { e.kind = "histogram" }), org},
		{"missing source event id", with(func(e *usageEvent) { e.source = "" }), org},
		{"missing quantity", []byte(`{"organisation_id":"` + org + `",
			"metric":"seats.active","kind":"gauge","occurred_at":"2026-12-03T10:00:00Z",
			"source_event_id":"x"}`), org},
		{"malformed JSON", []byte(`{"organisation_id":`), org},
		{"metadata names another organisation", good.payload(),
			"0b6c1d7e-2f3a-4b5c-8d9e-0f1a2b3c4d5e"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newUsageFixture(t)
			_, err := f.db.ExecContext(context.Background(), `INSERT INTO organisations
				(id, name, plan_code, created_at) VALUES ($1, 'Org', 'starter', $2)`,
				org, usageNow)
			require.NoError(t, err)

			err = f.deliver(t, tt.metaOrg, tt.payload)
			require.Error(t, err)
			require.Equal(t, job.ClassPermanent, job.Classify(err))
			f.requireNothingWritten(t)
		})
	}
}

func TestUsageMissingOrganisation(t *testing.T) {
	t.Parallel()
	org := "8a4c9a52-3f0e-4a43-9d0e-3c2b1f6e7a10"
	tests := []struct {
		name string
		at   time.Time
		want job.Class
	}{
		{"recent event may be a race: retry", usageNow.Add(-time.Minute), job.ClassRetryable},
		{"old event: permanent", usageNow.Add(-time.Hour), job.ClassPermanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newUsageFixture(t)
			ev := usageEvent{org: org, metric: "seats.active", kind: usageGauge,
				quantity: 1, at: tt.at, source: "seats-x"}

			err := f.deliver(t, org, ev.payload())
			require.ErrorIs(t, err, errUsageOrgMissing)
			require.Equal(t, tt.want, job.Classify(err))
			f.requireNothingWritten(t)
		})
	}
}
