package cron

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/schemas"
	"github.com/millrace/millrace/store"
)

// Defaults of Config.
const (
	DefaultInterval = time.Second
	DefaultGrace    = time.Minute
)

// Config configures a Ticker.
type Config struct {
	// DB holds cron_slots and the outbox. Required.
	DB *store.DB
	// Schedules are the schedules to tick. Names must be unique and every
	// topic must have a schema that accepts the tick payload.
	Schedules []Schedule
	// Location is the zone in which specs are read and the ticks' as_of
	// dates computed, except for a spec that names its own zone. Default
	// Europe/London.
	Location *time.Location
	// Clock tells Run the time. Default the wall clock.
	Clock job.Clock
	// Instance names this replica in cron_slots.claimed_by. Default the host
	// name.
	Instance string
	// Logger receives the ticker's records. Default slog.Default().
	Logger *slog.Logger
	// Interval is how often Run calls Tick. Default 1s.
	Interval time.Duration
	// Grace is how late a slot may be claimed and still count as on time.
	// A slot claimed later was missed, and its schedule's catch-up policy
	// applies. It must be at least Interval. Default 1 minute.
	Grace time.Duration
	// OnFireFunc, when set, is called after this replica publishes a
	// scheduled tick (not a manual one), for metrics. It must not block.
	OnFireFunc func(schedule string, catchUp bool)
	// OnMissFunc, when set, is called with the number of slots a schedule
	// missed and published nothing for, for metrics. It must not block.
	OnMissFunc func(schedule string, slots int)
}

// Ticker publishes the ticks of a set of schedules. Every replica may run
// one on the same database: each slot is published by exactly one of them.
//
// After downtime (no ticker running, or all of them failing) a schedule
// that missed slots follows its catch-up policy once a ticker is back, and
// so does a slot claimed more than Config.Grace after its time:
//
//   - CatchUpFireOnce publishes one tick, for the most recent missed slot,
//     with catch_up set and as_of the current date, and records nothing for
//     the slots before it.
//   - CatchUpSkip publishes nothing. It records a "skipped" marker at the
//     most recent missed slot, so that the schedule's position is known to
//     every replica and to List, and the next slot fires as usual.
//
// A schedule with no rows at all in cron_slots is new: the first tick
// records a "baseline" marker at its most recent past slot and publishes
// nothing. A ticker cannot tell whether that slot was served by whatever
// ran the job before, and firing at an arbitrary hour on the day a schedule
// is deployed (a 09:00 charge run at 15:00, say) would surprise people; the
// next slot fires as usual. An operator who wants a run now uses Trigger.
type Ticker struct {
	db        *store.DB
	schedules []compiled
	clock     job.Clock
	instance  string
	log       *slog.Logger
	interval  time.Duration
	grace     time.Duration
	onFire    func(schedule string, catchUp bool)
	onMiss    func(schedule string, slots int)
}

// compiled is a validated schedule with its parsed spec and zone.
type compiled struct {
	Schedule
	expr expr
	loc  *time.Location
}

// NewTicker validates cfg, applies its defaults and returns a ticker. Every
// problem is reported at once, each naming its field or schedule.
func NewTicker(cfg Config) (*Ticker, error) {
	cfg = cfg.withDefaults()
	schedules, err := cfg.validate()
	if err != nil {
		return nil, fmt.Errorf("invalid cron config: %w", err)
	}

	return &Ticker{
		db:        cfg.DB,
		schedules: schedules,
		clock:     cfg.Clock,
		instance:  cfg.Instance,
		log:       cfg.Logger,
		interval:  cfg.Interval,
		grace:     cfg.Grace,
		onFire:    cfg.OnFireFunc,
		onMiss:    cfg.OnMissFunc,
	}, nil
}

func (cfg Config) withDefaults() Config {
	if cfg.Location == nil {
		cfg.Location = London
	}
	if cfg.Clock == nil {
		cfg.Clock = job.SystemClock{}
	}
	if cfg.Instance == "" {
		cfg.Instance = hostname()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Grace == 0 {
		cfg.Grace = DefaultGrace
	}
	return cfg
}

func hostname() string {
	name, err := os.Hostname()
	if err != nil || name == "" {
		return "millrace"
	}
	return name
}

// validate checks a defaulted config and compiles its schedules.
func (cfg Config) validate() ([]compiled, error) {
	var errs []error
	if cfg.DB == nil {
		errs = append(errs, errors.New("DB is required"))
	}
	if cfg.Interval < 0 {
		errs = append(errs, fmt.Errorf("interval %s is negative", cfg.Interval))
	}
	if cfg.Grace < cfg.Interval {
		errs = append(errs, fmt.Errorf("grace %s is shorter than interval %s",
			cfg.Grace, cfg.Interval))
	}
	seen := map[string]bool{}
	var out []compiled
	for _, s := range cfg.Schedules {
		if seen[s.Name] {
			errs = append(errs, fmt.Errorf("schedule %q: name is used twice", s.Name))
		}
		seen[s.Name] = true
		c, err := compile(s, cfg.Location)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, c)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	return out, nil
}

// compile validates one schedule, including its topic's schema.
func compile(s Schedule, loc *time.Location) (compiled, error) {
	if err := s.Validate(); err != nil {
		return compiled{}, err
	}
	sample := tickPayload{ScheduledFor: "2026-01-01T03:30:00Z", AsOf: "2026-01-01",
		CatchUp: true, Manual: true}
	if err := schemas.Default().Validate(s.Topic, sample.marshal()); err != nil {
		return compiled{}, fmt.Errorf("schedule %q: topic %q cannot carry ticks: %w",
			s.Name, s.Topic, err)
	}
	e, _ := parseExpr(s.Spec) // Validate parsed it

	return compiled{Schedule: s, expr: e, loc: e.zone(loc)}, nil
}

// Run calls Tick every Interval with the clock's time until ctx is done. A
// failed tick is logged and the loop carries on: the next tick retries, and
// the catch-up policy covers a long failure. Run returns nil when ctx is
// cancelled, and ctx's error when its deadline passes.
func (t *Ticker) Run(ctx context.Context) error {
	t.log.InfoContext(ctx, "cron ticker started", slog.String("instance", t.instance),
		slog.Int("schedules", len(t.schedules)), slog.Duration("interval", t.interval))
	timer := time.NewTicker(t.interval)
	defer timer.Stop()

	for {
		if _, err := t.Tick(ctx, t.clock.Now()); err != nil && ctx.Err() == nil {
			t.log.WarnContext(ctx, "cron tick failed", slog.Any("error", err))
		}
		select {
		case <-ctx.Done():
			t.log.InfoContext(ctx, "cron ticker stopped", slog.String("instance", t.instance))
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil
			}
			return ctx.Err()
		case <-timer.C:
		}
	}
}

// lookup returns the schedule called name.
func (t *Ticker) lookup(name string) (compiled, bool) {
	for _, s := range t.schedules {
		if s.Name == name {
			return s, true
		}
	}
	return compiled{}, false
}

// names returns the schedules' names in configuration order.
func (t *Ticker) names() []string {
	out := make([]string, len(t.schedules))
	for i, s := range t.schedules {
		out[i] = s.Name
	}
	return out
}
