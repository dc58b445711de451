// Package billing holds the six billing jobs: the four Calmony Pay webhook
// syncs (calmonyPayCheckoutCompleted, calmonyPayInvoiceSync,
// calmonyPayPaymentSync, calmonyPaySubscriptionSync), paymentCompletedSync,
// which fulfils one-off purchases, and autoChargeOverdue, the 09:00 London
// dunning run that charges the stored card of past-due subscriptions.
//
// Calmony's events arrive in any order and more than once. Each sync keys
// its transaction on the event id, applies a change only when it is not
// older than the stored provider_updated_at, and never leaves a terminal
// state (a paid invoice, a canceled subscription), so every order of the
// same events ends in the same rows.
package billing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/providers/calmonypay"
	"github.com/millrace/millrace/providers/mail"
	"github.com/millrace/millrace/store"
)

// Handler names, equal to the job names of the domain specification.
const (
	CheckoutCompleted = "calmonyPayCheckoutCompleted"
	InvoiceSync       = "calmonyPayInvoiceSync"
	// InvoiceSyncFailed is calmonyPayInvoiceSync's subscription to
	// invoice.payment_failed; a handler name serves one topic. Both claim
	// their events under InvoiceSync.
	InvoiceSyncFailed    = "calmonyPayInvoiceSyncFailed"
	PaymentSync          = "calmonyPayPaymentSync"
	SubscriptionSync     = "calmonyPaySubscriptionSync"
	PaymentCompletedSync = "paymentCompletedSync"
	AutoChargeOverdue    = "autoChargeOverdue"
)

// Topics the billing jobs emit or consume besides Calmony's.
const (
	TopicPaymentCompleted    = "billing.payment.completed"
	TopicAutochargeTick      = "billing.autocharge.tick"
	TopicSubscriptionLinked  = "billing.subscription.linked"
	TopicInvoiceSynced       = "billing.invoice.synced"
	TopicOverdueResolved     = "billing.overdue.resolved"
	TopicSubscriptionSynced  = "billing.subscription.synced"
	TopicAutochargeAttempted = "billing.autocharge.attempted"
	TopicAMLCreditsPurchased = "billing.aml_credits.purchased"
	TopicRGIPaymentCompleted = "insurance.rgi_policy.payment_completed"
)

// Deps is what the billing handlers need from the process.
type Deps struct {
	DB       *store.DB
	Clock    job.Clock
	Location *time.Location // Europe/London unless configured otherwise
	Logger   *slog.Logger
	Calmony  *calmonypay.Client
	Mail     mail.Sender
	MailFrom string
	// AppBaseURL is where "update your card" links point.
	AppBaseURL string
	// LiveMode is the Calmony environment this deployment serves; a
	// checkout event whose livemode differs is refused. Nil skips the check.
	LiveMode *bool
}

// withDefaults fills the optional dependencies.
func (d Deps) withDefaults() Deps {
	if d.Clock == nil {
		d.Clock = job.SystemClock{}
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Location == nil {
		if loc, err := time.LoadLocation("Europe/London"); err == nil {
			d.Location = loc
		} else {
			d.Location = time.UTC
		}
	}
	return d
}

// customerGrace is how long an event may name a customer we do not know
// before it is refused: it may legitimately precede the checkout that links
// the customer.
const customerGrace = 10 * time.Minute

// errUnknownCustomer reports an event for a customer with no organisation.
var errUnknownCustomer = errors.New("unknown calmony customer")

// decodeEvent reads a Calmony event from a message; failures are permanent.
func decodeEvent(msg job.Message) (calmonypay.Event, error) {
	ev, err := calmonypay.ParseEvent(msg.Payload)
	if err != nil {
		return ev, job.Permanent(fmt.Errorf("decode calmony event: %w", err))
	}
	return ev, nil
}

// eventKey is the processed_messages key of a Calmony event.
func eventKey(ev calmonypay.Event) string { return "evt:" + ev.ID }

// providerError turns a Calmony client error into a handler outcome.
func providerError(err error) error {
	var api *calmonypay.APIError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &api) && api.RetryAfter > 0 && api.Retryable():
		return &job.RetryAfterError{Err: err, After: api.RetryAfter}
	case calmonypay.Retryable(err):
		return err
	}
	return job.Permanent(err)
}

// unknownCustomer is retryable within the grace window after the event was
// created, then permanent.
func unknownCustomer(now, created time.Time) error {
	if now.Sub(created) < customerGrace {
		return errUnknownCustomer
	}
	return job.Permanent(errUnknownCustomer)
}

// orgByCustomer resolves the organisation of a provider customer id.
func orgByCustomer(ctx context.Context, q querier, customer string) (string, bool, error) {
	var org string
	err := q.QueryRowContext(ctx, `SELECT organisation_id FROM billing_customers
		WHERE provider_customer_id = $1`, customer).Scan(&org)
	if isNoRows(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read billing customer: %w", err)
	}
	return org, true, nil
}

// alert logs an event a person must look at.
func alert(ctx context.Context, lg *slog.Logger, kind, msg string, attrs ...any) {
	lg.ErrorContext(ctx, msg, append([]any{slog.String("alert", kind)}, attrs...)...)
}

// seen reports whether handler has already processed key: a read before
// any provider call, so that a redelivery costs no fetch. The claim in the
// transaction stays the authority.
func seen(ctx context.Context, db *store.DB, handler, key string) bool {
	done, err := db.IsProcessed(ctx, handler, key)
	return err == nil && done
}

// ack turns store.ErrAlreadyProcessed into nil.
func ack(err error) error {
	if errors.Is(err, store.ErrAlreadyProcessed) {
		return nil
	}
	return err
}
