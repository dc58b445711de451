// Package router holds Millrace's catalogue (every topic's handlers, retry
// policy and schedule, in one place) and assembles the Watermill router from
// it, wrapping each handler in the middleware chain.
//
// Being in the catalogue is the only way to be registered. serve refuses to
// start while the catalogue and the schemas disagree, so an event can never be
// published to a topic that nothing handles.
package router

import (
	"time"

	"github.com/millrace/millrace/cron"
	"github.com/millrace/millrace/handlers/billing"
	"github.com/millrace/millrace/handlers/platform"
	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/middleware"
)

// Deps is what handlers are built from.
type Deps struct {
	Platform platform.Deps
	Billing  billing.Deps
}

// Job kinds.
const (
	KindEvent  = "event"
	KindCron   = "cron"
	KindSystem = "system"
)

// Subscription is one handler of one topic. Its consumer group is
// millrace.<Handler>, so two handlers of a topic never take each other's
// messages.
type Subscription struct {
	Topic   string
	Handler string
	New     func(d *Deps) job.Handler
	// Internal marks a topic that only Millrace itself feeds (a verified
	// provider webhook, another job): the ingest API refuses it, so that a
	// caller with the API token cannot forge, say, a payment.
	Internal bool
}

// Group returns the consumer group of the subscription.
func (s Subscription) Group() string { return "millrace." + s.Handler }

// Job is one of the platform's background jobs: what it consumes, what it
// emits, and how its failures are retried.
type Job struct {
	Name          string
	Kind          string
	Subscriptions []Subscription
	// Emits lists the topics the job publishes. An emitted topic that no job
	// here consumes is for subscribers outside Millrace.
	Emits   []string
	Retry   middleware.RetryPolicy
	Timeout time.Duration
	// Concurrency is how many of the job's messages one subscriber handles
	// at once, on transports that can (default 1).
	Concurrency int
	// Unordered lets one organisation's messages run out of publish order.
	Unordered bool
}

// Catalogue is the whole registration of Millrace.
type Catalogue struct {
	Jobs      []Job
	Schedules []cron.Schedule
}

// defaultTimeout bounds one attempt of a handler that names no timeout.
const defaultTimeout = 2 * time.Minute

// Default returns Millrace's catalogue.
func Default() Catalogue {
	return Catalogue{
		Jobs:      append(append(platformJobs(), billingJobs()...), systemJobs()...),
		Schedules: append(platformSchedules(), billingSchedules()...),
	}
}

func platformJobs() []Job {
	return []Job{
		{
			Name: platform.UsageAggregate, Kind: KindEvent,
			Subscriptions: []Subscription{{Topic: "platform.usage.recorded",
				Handler: platform.UsageAggregate, New: func(d *Deps) job.Handler {
					return platform.NewUsageAggregate(d.Platform)
				}}},
			Emits: []string{"platform.usage.threshold_crossed"},
			// Each organisation's usage stays in order; organisations run side
			// by side.
			Concurrency: 4,
		},
		{
			Name: platform.WebhookDeliver, Kind: KindEvent,
			Subscriptions: []Subscription{
				{Topic: "platform.webhook.delivery.requested", Handler: platform.WebhookDeliver,
					New: func(d *Deps) job.Handler { return platform.NewWebhookDeliver(d.Platform) }},
				{Topic: "platform.webhook.retry.tick", Handler: platform.WebhookRetrySweep,
					New: func(d *Deps) job.Handler { return platform.NewWebhookRetrySweep(d.Platform) }},
			},
			Emits: []string{"platform.webhook.endpoint.disabled",
				"platform.webhook.delivery.requested"},
			// Each attempt makes one HTTP call of at most 10 s; the long
			// schedule lives in webhook_deliveries, so retries here are few.
			Retry: middleware.RetryPolicy{MaxRetries: 2, Initial: time.Second,
				Max: 10 * time.Second, Multiplier: 2, Jitter: 0.2},
			Timeout: 30 * time.Second,
		},
		{
			Name: platform.AuditCleanup, Kind: KindCron,
			Subscriptions: []Subscription{{Topic: "platform.audit.cleanup.tick",
				Handler: platform.AuditCleanup, New: func(d *Deps) job.Handler {
					return platform.NewAuditCleanup(d.Platform)
				}}},
			Timeout: 15 * time.Minute,
		},
		{
			Name: platform.InviteEmail, Kind: KindEvent,
			Subscriptions: []Subscription{{Topic: "platform.user.invited",
				Handler: platform.InviteEmail, New: func(d *Deps) job.Handler {
					return platform.NewInviteEmail(d.Platform)
				}}},
			Timeout: time.Minute,
		},
	}
}

func platformSchedules() []cron.Schedule {
	return []cron.Schedule{
		{Name: platform.AuditCleanup, Topic: "platform.audit.cleanup.tick",
			Spec: "30 3 * * *", CatchUp: cron.CatchUpFireOnce},
		{Name: platform.WebhookRetrySweep, Topic: "platform.webhook.retry.tick",
			Spec: "* * * * *", CatchUp: cron.CatchUpFireOnce},
	}
}

// PoisonStore is the handler that keeps poisoned messages for operators.
const PoisonStore = "poisonStore"

func systemJobs() []Job {
	return []Job{{
		Name: PoisonStore, Kind: KindSystem,
		Subscriptions: []Subscription{{Topic: job.PoisonTopic, Handler: PoisonStore,
			New: func(d *Deps) job.Handler { return newPoisonStore(d.Platform.DB) }}},
	}}
}
