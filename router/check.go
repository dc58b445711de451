package router

import (
	"errors"
	"fmt"
	"strings"

	"github.com/millrace/millrace/job"
)

// Mismatch kinds the catalogue check reports.
var (
	ErrSchemaWithoutHandler   = errors.New("topic has a schema but no handler and no job emits it")
	ErrHandlerWithoutSchema   = errors.New("handler subscribes to a topic with no schema")
	ErrEmitWithoutSchema      = errors.New("job emits a topic with no schema")
	ErrScheduleUnknownTopic   = errors.New("schedule names a topic with no schema")
	ErrScheduleWithoutHandler = errors.New("schedule publishes to a topic no handler consumes")
	ErrTickWithoutSchedule    = errors.New("tick topic has no schedule")
	ErrDuplicateHandler       = errors.New("handler name is used twice")
	ErrIncompleteJob          = errors.New("job is incomplete")
)

// Topics is the part of the schema registry the check needs.
type Topics interface {
	Topics() []string
	Has(topic string) bool
}

// Check compares the catalogue with the schemas and returns every mismatch,
// each naming its topic, job or schedule, joined in one error.
func (c Catalogue) Check(reg Topics) error {
	var errs []error
	consumed := map[string]bool{}
	emitted := map[string]bool{}
	handlers := map[string]bool{}
	for _, j := range c.Jobs {
		errs = append(errs, c.checkJob(j, reg, consumed, emitted, handlers)...)
	}
	scheduled := map[string]bool{}
	for _, s := range c.Schedules {
		scheduled[s.Topic] = true
		switch {
		case !reg.Has(s.Topic):
			errs = append(errs, fmt.Errorf("%w: schedule %s → %s", ErrScheduleUnknownTopic,
				s.Name, s.Topic))
		case !consumed[s.Topic]:
			errs = append(errs, fmt.Errorf("%w: schedule %s → %s", ErrScheduleWithoutHandler,
				s.Name, s.Topic))
		}
	}
	for _, t := range reg.Topics() {
		if !consumed[t] && !emitted[t] {
			errs = append(errs, fmt.Errorf("%w: %s", ErrSchemaWithoutHandler, t))
		}
		if strings.HasSuffix(t, ".tick") && !scheduled[t] {
			errs = append(errs, fmt.Errorf("%w: %s", ErrTickWithoutSchedule, t))
		}
	}
	return errors.Join(errs...)
}

func (c Catalogue) checkJob(j Job, reg Topics, consumed, emitted, handlers map[string]bool) []error {
	var errs []error
	if j.Name == "" || len(j.Subscriptions) == 0 {
		errs = append(errs, fmt.Errorf("%w: job %q has no name or no subscription",
			ErrIncompleteJob, j.Name))
	}
	for _, s := range j.Subscriptions {
		if handlers[s.Handler] {
			errs = append(errs, fmt.Errorf("%w: %s", ErrDuplicateHandler, s.Handler))
		}
		handlers[s.Handler] = true
		if s.New == nil || s.Handler == "" {
			errs = append(errs, fmt.Errorf("%w: job %s subscription to %s has no handler",
				ErrIncompleteJob, j.Name, s.Topic))
		}
		if !reg.Has(s.Topic) {
			errs = append(errs, fmt.Errorf("%w: %s → %s", ErrHandlerWithoutSchema,
				s.Handler, s.Topic))
		}
		consumed[s.Topic] = true
	}
	for _, t := range j.Emits {
		if !reg.Has(t) {
			errs = append(errs, fmt.Errorf("%w: %s emits %s", ErrEmitWithoutSchema, j.Name, t))
		}
		emitted[t] = true
	}
	return errs
}

// Consumed reports whether a job of the catalogue consumes topic.
func (c Catalogue) Consumed(topic string) bool {
	for _, j := range c.Jobs {
		for _, s := range j.Subscriptions {
			if s.Topic == topic {
				return true
			}
		}
	}
	return false
}

// Ingestible reports whether apps may publish to topic through the API: a
// topic some handler here consumes, other than the poison queue, cron ticks
// and internal topics, which come only from Millrace itself.
func (c Catalogue) Ingestible(topic string) bool {
	if topic == job.PoisonTopic || !c.Consumed(topic) {
		return false
	}
	for _, j := range c.Jobs {
		for _, s := range j.Subscriptions {
			if s.Topic == topic && s.Internal {
				return false
			}
		}
	}
	for _, s := range c.Schedules {
		if s.Topic == topic {
			return false
		}
	}
	return true
}
