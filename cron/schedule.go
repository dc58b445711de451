// Package cron publishes the ticks of Millrace's scheduled jobs.
//
// Every replica runs a Ticker. Each slot of a schedule is claimed in the
// cron_slots table by an insert that only one replica can win, and the
// winner writes the tick to the outbox in the same transaction, with a
// message id derived from the slot. Schedules are five-field cron
// expressions read in a time zone, Europe/London unless configured
// otherwise; Schedule documents what happens on the days the clocks change,
// and Ticker what happens after downtime.
package cron

import (
	"errors"
	"fmt"
	"time"
	_ "time/tzdata" // schedules must not depend on the host's zoneinfo
)

// CatchUpPolicy says what a schedule does about slots it missed while no
// ticker was running.
type CatchUpPolicy string

const (
	// CatchUpFireOnce publishes one tick, for the most recent missed slot,
	// with catch_up set. The jobs' scans are state-based windows, so one run
	// covers the whole outage.
	CatchUpFireOnce CatchUpPolicy = "fire_once"
	// CatchUpSkip publishes nothing for missed slots and resumes at the next
	// one. It suits sweepers that run every few minutes anyway.
	CatchUpSkip CatchUpPolicy = "skip"
)

// Schedule publishes a tick to Topic at every slot of Spec.
//
// Spec is a five-field cron expression (minute, hour, day of month, month,
// day of week) read in the ticker's time zone, or in the zone named by a
// leading "TZ=Area/City " or "CRON_TZ=Area/City ". When both day fields are
// restricted, a day matching either of them fires, as in Vixie cron.
// Descriptors such as "@daily" are not accepted.
//
// On the days the clocks change a schedule follows one of two rules,
// depending on its hour field:
//
//   - A time of day (the hour field leaves out some hour) fires once per
//     local date at each time it names. A local time that does not exist
//     because the clocks went forward fires at the first valid instant after
//     the gap, which is the moment of the change: a 01:30 schedule in London
//     fires at 02:00 BST on the last Sunday of March, and times skipped
//     together fire there together, once. A local time that happens twice
//     because the clocks went back fires at its first occurrence only: 01:30
//     BST, not 01:30 GMT, on the last Sunday of October.
//   - A repeating interval (the hour field covers every hour, as in
//     "*/5 * * * *" or "0 * * * *") fires at every instant whose local time
//     matches. It carries on across the gap (00:55 GMT, then 02:00 BST five
//     minutes later) and fires in both passes of the repeated hour, so the
//     time between ticks stays what the spec says.
//
// A slot is identified by its instant, stored in UTC.
type Schedule struct {
	// Name identifies the schedule in cron_slots, message ids, logs and the
	// operator's commands. It is usually the name of the job it drives.
	Name string
	// Topic receives the ticks. Its schema must accept the tick payload.
	Topic string
	// Spec is the cron expression, as described above.
	Spec string
	// CatchUp is the policy after downtime. Default CatchUpFireOnce.
	CatchUp CatchUpPolicy
}

// Validate reports what is wrong with s, naming the schedule: an empty name
// or topic, a spec that does not parse or never fires, an unknown time zone
// or catch-up policy. It does not check that the topic has a schema;
// NewTicker does.
func (s Schedule) Validate() error {
	var errs []error
	if s.Name == "" {
		errs = append(errs, errors.New("name is empty"))
	}
	if s.Topic == "" {
		errs = append(errs, errors.New("topic is empty"))
	}
	if _, err := parseExpr(s.Spec); err != nil {
		errs = append(errs, fmt.Errorf("spec %q: %w", s.Spec, err))
	}
	switch s.CatchUp {
	case "", CatchUpFireOnce, CatchUpSkip:
	default:
		errs = append(errs, fmt.Errorf("catch-up policy %q is not %q or %q",
			s.CatchUp, CatchUpFireOnce, CatchUpSkip))
	}
	if len(errs) == 0 {
		return nil
	}

	return fmt.Errorf("schedule %q: %w", s.Name, errors.Join(errs...))
}

// Next returns the first slot of s strictly after after, in UTC, reading the
// spec in loc (Europe/London when nil) unless the spec names its own zone.
// It returns the zero time when the spec is invalid or has no slot within
// nine years.
func (s Schedule) Next(after time.Time, loc *time.Location) time.Time {
	e, err := parseExpr(s.Spec)
	if err != nil {
		return time.Time{}
	}

	return e.next(after, e.zone(loc))
}

// Prev returns the last slot of s at or before atOrBefore, in UTC, reading
// the spec as Next does. It returns the zero time when the spec is invalid
// or had no slot within the previous nine years.
func (s Schedule) Prev(atOrBefore time.Time, loc *time.Location) time.Time {
	e, err := parseExpr(s.Spec)
	if err != nil {
		return time.Time{}
	}

	return e.prev(atOrBefore, e.zone(loc))
}

// policy returns the catch-up policy with its default applied.
func (s Schedule) policy() CatchUpPolicy {
	if s.CatchUp == "" {
		return CatchUpFireOnce
	}
	return s.CatchUp
}

// London is Europe/London, the default zone of schedules and business dates.
// It comes from the embedded time zone database, so it is always available.
var London = mustLoadLocation("Europe/London")

func mustLoadLocation(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(fmt.Sprintf("load %s from embedded tzdata: %v", name, err))
	}
	return loc
}
