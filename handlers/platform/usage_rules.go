package platform

import (
	"fmt"
	"time"
	_ "time/tzdata" // London month and date rules must not depend on the host's zoneinfo
)

// Usage metric kinds, as the platform.usage.recorded payload names them.
const (
	usageCounter = "counter"
	usageGauge   = "gauge"
)

// usageMetrics is the metric registry: every metric the platform meters and
// the kind it is recorded as. It mirrors the enum of the
// platform.usage.recorded schema.
//
// [ASSUMPTION] The kind of each metric is ours: "*.active" metrics are
// readings of a current level (gauges), the others count things done
// (counters). A payload whose kind disagrees would mix sums and peaks in one
// aggregate, so it is refused.
var usageMetrics = map[string]string{
	"properties.active":              usageGauge,
	"tenancies.active":               usageGauge,
	"seats.active":                   usageGauge,
	"esign.envelopes_sent":           usageCounter,
	"aml.checks_initiated":           usageCounter,
	"referencing.requests_submitted": usageCounter,
	"rgi.policies_activated":         usageCounter,
}

// usagePlanLimits holds each plan's monthly limit per metric, keyed by
// organisations.plan_code.
//
// [ASSUMPTION] Neither the plans nor their limits are published; these
// figures are placeholders until the commercial team confirms them. A plan
// not listed here, or a metric missing from a plan, has no limit, so no
// threshold is ever crossed for it.
var usagePlanLimits = map[string]map[string]int64{
	"starter": {
		"properties.active":              10,
		"tenancies.active":               10,
		"seats.active":                   2,
		"esign.envelopes_sent":           20,
		"aml.checks_initiated":           5,
		"referencing.requests_submitted": 10,
		"rgi.policies_activated":         5,
	},
	"growth": {
		"properties.active":              100,
		"tenancies.active":               100,
		"seats.active":                   10,
		"esign.envelopes_sent":           200,
		"aml.checks_initiated":           50,
		"referencing.requests_submitted": 100,
		"rgi.policies_activated":         50,
	},
	"scale": {
		"properties.active":              1000,
		"tenancies.active":               1000,
		"seats.active":                   50,
		"esign.envelopes_sent":           2000,
		"aml.checks_initiated":           500,
		"referencing.requests_submitted": 1000,
		"rgi.policies_activated":         500,
	},
}

// usageThresholdPercents are the shares of a plan limit that raise
// platform.usage.threshold_crossed, in ascending order.
var usageThresholdPercents = []int{80, 100}

// usagePlanLimit returns the limit of metric on plan, and false when there is
// none.
func usagePlanLimit(plan, metric string) (int64, bool) {
	limit, ok := usagePlanLimits[plan][metric]
	if !ok || limit <= 0 {
		return 0, false
	}
	return limit, true
}

// usageThresholdsReached returns the threshold percentages that quantity has
// reached against limit, in ascending order. Reaching means at least the
// share: 4 of a limit of 5 reaches 80%.
func usageThresholdsReached(quantity, limit int64) []int {
	var out []int
	for _, pct := range usageThresholdPercents {
		// The smallest whole quantity at or above pct% of limit; written
		// this way so a huge quantity cannot overflow a multiplication.
		need := (limit*int64(pct) + 99) / 100
		if quantity >= need {
			out = append(out, pct)
		}
	}
	return out
}

// usagePeriodMonth returns the first day, as 'YYYY-MM-DD', of the calendar
// month in loc that contains t.
func usagePeriodMonth(t time.Time, loc *time.Location) string {
	local := t.In(loc)
	return time.Date(local.Year(), local.Month(), 1, 0, 0, 0, 0, loc).Format(time.DateOnly)
}

// usageThresholdKey is the dedupe key of one threshold crossing:
// org:metric:period:threshold.
func usageThresholdKey(org, metric, period string, pct int) string {
	return fmt.Sprintf("%s:%s:%s:%d", org, metric, period, pct)
}

// londonOr returns loc, or Europe/London when loc is nil. The zone database
// is embedded (time/tzdata), so loading London cannot fail.
func londonOr(loc *time.Location) *time.Location {
	if loc != nil {
		return loc
	}
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		panic(fmt.Sprintf("load Europe/London from embedded tzdata: %v", err))
	}
	return london
}
