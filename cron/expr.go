package cron

import (
	"errors"
	"fmt"
	"strings"
	"time"

	robfig "github.com/robfig/cron/v3"
)

// parser reads the five standard fields and nothing else: no seconds, and no
// descriptors, whose meaning on the days the clocks change would need rules
// of their own.
var parser = robfig.NewParser(
	robfig.Minute | robfig.Hour | robfig.Dom | robfig.Month | robfig.Dow)

const (
	// anyBit is the bit robfig/cron's parser sets on a field written as "*"
	// or "?". Day matching needs it: the two day fields are combined with
	// AND when either is unrestricted and with OR otherwise.
	anyBit = 1 << 63
	// allHours has a bit for each hour of the day.
	allHours = 1<<24 - 1
	// searchDays bounds the search for a slot. Nine years always contain a
	// 29 February, even across a century year that is not a leap year.
	searchDays = 9 * 366
)

// expr is a parsed spec: one bit for each allowed value of each field, as
// robfig/cron's parser produces them. Only the parser is borrowed: its
// SpecSchedule.Next skips a local time that the clocks jump over and fires
// twice at one that they repeat, so slots are computed here.
type expr struct {
	minute, hour, dom, month, dow uint64
	// loc is the zone named by a TZ= prefix, or nil.
	loc *time.Location
}

// parseExpr parses spec and checks that it fires at least once.
func parseExpr(spec string) (expr, error) {
	text := strings.TrimSpace(spec)
	var e expr
	if zone, rest, ok := cutZone(text); ok {
		if zone == "" || zone == "Local" {
			return expr{}, fmt.Errorf("time zone %q: name a zone such as Europe/London", zone)
		}
		loc, err := time.LoadLocation(zone)
		if err != nil {
			return expr{}, fmt.Errorf("unknown time zone %q: %w", zone, err)
		}
		e.loc, text = loc, rest
	}
	parsed, err := parser.Parse(text)
	if err != nil {
		return expr{}, err
	}
	fields, ok := parsed.(*robfig.SpecSchedule)
	if !ok {
		return expr{}, fmt.Errorf("unsupported schedule type %T", parsed)
	}
	e.minute, e.hour, e.dom = fields.Minute, fields.Hour, fields.Dom
	e.month, e.dow = fields.Month, fields.Dow

	if !e.firesAtAll() {
		return expr{}, errors.New("never fires")
	}

	return e, nil
}

// cutZone splits a "TZ=Zone rest" or "CRON_TZ=Zone rest" spec.
func cutZone(text string) (zone, rest string, ok bool) {
	for _, prefix := range []string{"TZ=", "CRON_TZ="} {
		if after, found := strings.CutPrefix(text, prefix); found {
			zone, rest, _ = strings.Cut(after, " ")
			return zone, strings.TrimSpace(rest), true
		}
	}
	return "", text, false
}

// zone returns the zone the spec is read in: its own, else loc, else London.
func (e expr) zone(loc *time.Location) *time.Location {
	switch {
	case e.loc != nil:
		return e.loc
	case loc != nil:
		return loc
	default:
		return London
	}
}

// interval reports whether the spec fires every hour, which makes it a
// repeating interval rather than a time of day (see Schedule).
func (e expr) interval() bool { return e.hour&allHours == allHours }

// dayMatches reports whether the spec fires on the civil date day.
func (e expr) dayMatches(day time.Time) bool {
	if e.month&(1<<uint(day.Month())) == 0 {
		return false
	}
	dom := e.dom&(1<<uint(day.Day())) != 0
	dow := e.dow&(1<<uint(day.Weekday())) != 0
	if e.dom&anyBit != 0 || e.dow&anyBit != 0 {
		return dom && dow
	}

	return dom || dow
}

// firesAtAll reports whether some date matches the spec, as "0 0 30 2 *" (30
// February) does not. Every matching date has slots: the parser leaves no
// field empty. A spec that matches any date matches one within every run of
// searchDays dates.
func (e expr) firesAtAll() bool {
	day := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for range searchDays {
		if e.dayMatches(day) {
			return true
		}
		day = day.AddDate(0, 0, 1)
	}
	return false
}

// next returns the first slot strictly after after, or the zero time.
func (e expr) next(after time.Time, loc *time.Location) time.Time {
	// Start a day early: a date's slots can begin before its midnight in UTC.
	day := civilDate(after.In(loc)).AddDate(0, 0, -1)
	for range searchDays {
		if e.dayMatches(day) {
			if slot, ok := e.firstAfter(day, zoneOn(day, loc), after); ok {
				return slot
			}
		}
		day = day.AddDate(0, 0, 1)
	}

	return time.Time{}
}

// prev returns the last slot at or before atOrBefore, or the zero time.
func (e expr) prev(atOrBefore time.Time, loc *time.Location) time.Time {
	day := civilDate(atOrBefore.In(loc)).AddDate(0, 0, 1)
	for range searchDays {
		if e.dayMatches(day) {
			if slot, ok := e.lastAtOrBefore(day, zoneOn(day, loc), atOrBefore); ok {
				return slot
			}
		}
		day = day.AddDate(0, 0, -1)
	}

	return time.Time{}
}

// countBetween returns how many slots lie strictly between from and to.
func (e expr) countBetween(from, to time.Time, loc *time.Location) int {
	n := 0
	day, last := civilDate(from.In(loc)).AddDate(0, 0, -1), civilDate(to.In(loc)).AddDate(0, 0, 1)
	for ; !day.After(last); day = day.AddDate(0, 0, 1) {
		if !e.dayMatches(day) {
			continue
		}
		for _, slot := range e.slotsOn(day, zoneOn(day, loc)) {
			if slot.After(from) && slot.Before(to) {
				n++
			}
		}
	}

	return n
}

// civilDate returns the calendar date of t as midnight UTC.
func civilDate(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}
