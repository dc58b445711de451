package telemetry

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// CronMetrics counts cron slots fired, caught up and missed.
type CronMetrics struct {
	fired  *prometheus.CounterVec
	missed *prometheus.CounterVec
}

// NewCronMetrics registers the cron series with reg.
func NewCronMetrics(reg prometheus.Registerer) *CronMetrics {
	m := &CronMetrics{
		fired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "millrace_cron_slots_fired_total",
			Help: "Cron slots this replica claimed and published, by schedule and catch_up.",
		}, []string{"schedule", "catch_up"}),
		missed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "millrace_cron_slots_missed_total",
			Help: "Cron slots that passed while no replica ran, by schedule.",
		}, []string{"schedule"}),
	}
	reg.MustRegister(m.fired, m.missed)
	return m
}

// Init creates every series of the schedules at zero, so that dashboards
// and alerts see them before the first slot fires or is missed.
func (m *CronMetrics) Init(schedules ...string) {
	for _, s := range schedules {
		m.fired.WithLabelValues(s, "false")
		m.fired.WithLabelValues(s, "true")
		m.missed.WithLabelValues(s)
	}
}

// OnFire records a fired slot.
func (m *CronMetrics) OnFire(schedule string, catchUp bool) {
	v := "false"
	if catchUp {
		v = "true"
	}
	m.fired.WithLabelValues(schedule, v).Inc()
}

// OnMiss records slots that were missed.
func (m *CronMetrics) OnMiss(schedule string, slots int) {
	m.missed.WithLabelValues(schedule).Add(float64(slots))
}

// RegisterPoisonDepth exposes the number of open poison records, read from
// count at each scrape.
func RegisterPoisonDepth(reg prometheus.Registerer, count func(context.Context) (int, error)) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "millrace_poison_open",
		Help: "Poisoned messages waiting for an operator.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := count(ctx)
		if err != nil {
			return -1
		}
		return float64(n)
	}))
}
