package router

import (
	"time"

	"github.com/millrace/millrace/cron"
	"github.com/millrace/millrace/handlers/billing"
	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/middleware"
)

// billingRetry retries the Calmony syncs on the default curve; the customer
// grace window (10 minutes) outlasts it, so an event that precedes its
// checkout is retried, then poisoned for a replay.
var billingRetry = middleware.RetryPolicy{MaxRetries: 5, Initial: time.Second,
	Max: time.Minute, Multiplier: 2, Jitter: 0.2}

// billingSub subscribes a billing handler. Every billing topic is internal:
// Calmony's come through the signed webhook receiver, the rest from jobs.
func billingSub(topic, handler string, build func(billing.Deps) job.Handler) Subscription {
	return Subscription{Topic: topic, Handler: handler, Internal: true,
		New: func(d *Deps) job.Handler { return build(d.Billing) }}
}

func billingJobs() []Job {
	return []Job{
		{
			Name: billing.CheckoutCompleted, Kind: KindEvent,
			Subscriptions: []Subscription{billingSub("billing.calmony.checkout_session.completed",
				billing.CheckoutCompleted, billing.NewCheckoutCompleted)},
			Emits:   []string{billing.TopicSubscriptionLinked, billing.TopicPaymentCompleted},
			Retry:   billingRetry,
			Timeout: time.Minute,
		},
		{
			Name: billing.InvoiceSync, Kind: KindEvent,
			Subscriptions: []Subscription{
				billingSub("billing.calmony.invoice.paid", billing.InvoiceSync,
					billing.NewInvoiceSync),
				billingSub("billing.calmony.invoice.payment_failed",
					billing.InvoiceSyncFailed, billing.NewInvoiceSync),
			},
			Emits:   []string{billing.TopicInvoiceSynced},
			Retry:   billingRetry,
			Timeout: time.Minute,
		},
		{
			Name: billing.PaymentSync, Kind: KindEvent,
			Subscriptions: []Subscription{billingSub("billing.calmony.payment_intent.succeeded",
				billing.PaymentSync, billing.NewPaymentSync)},
			Emits:   []string{billing.TopicPaymentCompleted, billing.TopicOverdueResolved},
			Retry:   billingRetry,
			Timeout: time.Minute,
		},
		{
			Name: billing.SubscriptionSync, Kind: KindEvent,
			Subscriptions: []Subscription{billingSub("billing.calmony.subscription.changed",
				billing.SubscriptionSync, billing.NewSubscriptionSync)},
			Emits:   []string{billing.TopicSubscriptionSynced},
			Retry:   billingRetry,
			Timeout: time.Minute,
		},
		{
			Name: billing.PaymentCompletedSync, Kind: KindEvent,
			Subscriptions: []Subscription{billingSub(billing.TopicPaymentCompleted,
				billing.PaymentCompletedSync, billing.NewPaymentCompletedSync)},
			Emits:   []string{billing.TopicAMLCreditsPurchased, billing.TopicRGIPaymentCompleted},
			Retry:   billingRetry,
			Timeout: time.Minute,
		},
		{
			Name: billing.AutoChargeOverdue, Kind: KindCron,
			Subscriptions: []Subscription{billingSub(billing.TopicAutochargeTick,
				billing.AutoChargeOverdue, billing.NewAutoChargeOverdue)},
			Emits:   []string{billing.TopicAutochargeAttempted},
			Retry:   billingRetry,
			Timeout: 15 * time.Minute,
		},
	}
}

func billingSchedules() []cron.Schedule {
	return []cron.Schedule{{Name: billing.AutoChargeOverdue, Topic: billing.TopicAutochargeTick,
		Spec: "0 9 * * *", CatchUp: cron.CatchUpFireOnce}}
}
