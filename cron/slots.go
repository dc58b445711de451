package cron

import (
	"iter"
	"slices"
	"time"
)

// Civil dates and wall times are held in UTC, which has no clock changes,
// so that adding days and minutes to them is plain arithmetic. A wall time w
// read with offset o is the instant w.Add(-o).

// dayZone describes the clocks of a zone on one civil date: the offset
// before and after the change of that date, if any. Zones change their offset
// at most once a day, so one change is all a date can have.
type dayZone struct {
	before, after time.Duration
	// change is the instant the offset changes; zero on most dates, which
	// have one offset throughout (then before equals after).
	change time.Time
}

// zoneOn returns the clocks of loc on the civil date day.
func zoneOn(day time.Time, loc *time.Location) dayZone {
	noon := time.Date(day.Year(), day.Month(), day.Day(), 12, 0, 0, 0, loc)
	offset := zoneOffset(noon)
	start, end := noon.ZoneBounds()
	if !start.IsZero() {
		z := dayZone{before: zoneOffset(start.Add(-time.Nanosecond)), after: offset, change: start}
		if z.moves(day) {
			return z
		}
	}
	if !end.IsZero() {
		z := dayZone{before: offset, after: zoneOffset(end), change: end}
		if z.moves(day) {
			return z
		}
	}

	return dayZone{before: offset, after: offset}
}

// moves reports whether the change skips or repeats a wall time of the civil
// date day. The wall times it affects are those between the change read with
// the smaller offset and the change read with the larger one.
func (z dayZone) moves(day time.Time) bool {
	if z.before == z.after {
		return false
	}
	lo := z.change.Add(min(z.before, z.after))
	hi := z.change.Add(max(z.before, z.after))

	return lo.Before(day.Add(24*time.Hour)) && hi.After(day)
}

// zoneOffset returns the UTC offset in force at t in t's location.
func zoneOffset(t time.Time) time.Duration {
	_, secs := t.Zone()
	return time.Duration(secs) * time.Second
}

// reading turns a wall time into a slot, or reports that it gives none.
type reading func(wall time.Time) (time.Time, bool)

// readings returns how the spec turns the wall times of a date whose clocks
// are z into slots, applying the rules Schedule documents. Read in order,
// each over the wall times in ascending order, they give the date's slots in
// ascending order, with a repeat where a time of day skipped by the clocks
// fires at the same instant as the next.
//
// Read with the old offset, a wall time is valid if it falls before the
// change; read with the new one, if it falls at or after it. Going back, both
// readings of a repeated time are valid, the old one first; going forward,
// neither reading of a skipped time is. An interval fires at every valid
// reading: first all the old ones, then all the new ones. A time of day fires
// at its first valid reading or, in a gap, at the change, the first valid
// instant after the gap.
func (e expr) readings(z dayZone) []reading {
	if z.change.IsZero() {
		steady := func(wall time.Time) (time.Time, bool) { return wall.Add(-z.before), true }
		return []reading{steady}
	}
	byOld := func(wall time.Time) (time.Time, bool) {
		at := wall.Add(-z.before)
		return at, at.Before(z.change)
	}
	byNew := func(wall time.Time) (time.Time, bool) {
		at := wall.Add(-z.after)
		return at, !at.Before(z.change)
	}
	if e.interval() {
		return []reading{byOld, byNew}
	}
	timeOfDay := func(wall time.Time) (time.Time, bool) {
		if at, ok := byOld(wall); ok {
			return at, true
		}
		if at, ok := byNew(wall); ok {
			return at, true
		}
		return z.change.UTC(), true
	}

	return []reading{timeOfDay}
}

// minutesPerDay counts the wall times of a civil date, one a minute.
const minutesPerDay = 24 * 60

// walls yields the wall times of the civil date day that the spec's hour
// and minute fields name, from the minute of the day first to the minute
// last, ascending, or descending when backwards is set.
func (e expr) walls(day time.Time, first, last int, backwards bool) iter.Seq[time.Time] {
	first, last = max(first, 0), min(last, minutesPerDay-1)
	return func(yield func(time.Time) bool) {
		for i := range last - first + 1 {
			minute := first + i
			if backwards {
				minute = last - i
			}
			h, m := minute/60, minute%60
			if e.hour&(1<<uint(h)) == 0 || e.minute&(1<<uint(m)) == 0 {
				continue
			}
			if !yield(day.Add(time.Duration(minute) * time.Minute)) {
				return
			}
		}
	}
}

// minuteOf returns the minute of the civil date day at which the wall time
// wall falls: negative before the day, minutesPerDay or more after it. The
// callers only narrow a search with it, so rounding does not matter.
func minuteOf(day, wall time.Time) int { return int(wall.Sub(day) / time.Minute) }

// firstAfter returns the first slot of the civil date day, whose clocks are
// z, strictly after after.
func (e expr) firstAfter(day time.Time, z dayZone, after time.Time) (time.Time, bool) {
	// The slot a wall time gives is never later than the wall time read with
	// the smaller offset (the change, for a skipped time, lies between its
	// two readings), so earlier wall times cannot give a slot after after.
	first := minuteOf(day, after.Add(min(z.before, z.after)))
	for _, read := range e.readings(z) {
		for wall := range e.walls(day, first, minutesPerDay-1, false) {
			if at, ok := read(wall); ok && at.After(after) {
				return at, true
			}
		}
	}

	return time.Time{}, false
}

// lastAtOrBefore returns the last slot of the civil date day, whose clocks
// are z, at or before atOrBefore.
func (e expr) lastAtOrBefore(day time.Time, z dayZone, atOrBefore time.Time) (time.Time, bool) {
	// Likewise the slot is never earlier than the wall time read with the
	// larger offset.
	last := minuteOf(day, atOrBefore.Add(max(z.before, z.after)))
	readings := e.readings(z)
	for i := len(readings) - 1; i >= 0; i-- {
		for wall := range e.walls(day, 0, last, true) {
			if at, ok := readings[i](wall); ok && !at.After(atOrBefore) {
				return at, true
			}
		}
	}

	return time.Time{}, false
}

// slotsOn returns the slots of the civil date day, whose clocks are z, in
// UTC and ascending without repeats.
func (e expr) slotsOn(day time.Time, z dayZone) []time.Time {
	var slots []time.Time
	for _, read := range e.readings(z) {
		for wall := range e.walls(day, 0, minutesPerDay-1, false) {
			if at, ok := read(wall); ok {
				slots = append(slots, at)
			}
		}
	}

	return slices.CompactFunc(slots, time.Time.Equal)
}
