package platform

import (
	"fmt"
	"net/http"
	"time"

	"github.com/millrace/millrace/providers/webhooks"
)

// Topics of the webhookDeliver job.
const (
	topicWebhookDeliveryRequested = "platform.webhook.delivery.requested"
	topicWebhookEndpointDisabled  = "platform.webhook.endpoint.disabled"
)

// Delivery statuses of webhook_deliveries.status.
const (
	deliveryPending   = "pending"
	deliverySucceeded = "succeeded"
	deliveryFailed    = "failed"
	deliveryAbandoned = "abandoned"
)

// Reasons an endpoint is disabled, as webhook_endpoints.disabled_reason and
// the endpoint.disabled event name them.
const (
	disabledConsecutiveFailures = "consecutive_failures"
	disabledFailingForDays      = "failing_for_days"
	disabledGone                = "gone"
)

// webhookRetrySchedule is the wait after each failed attempt, counted from
// the first failure. Its sum, about 2.5 days, is how long a delivery keeps
// trying: comparable to Stripe's three days.
var webhookRetrySchedule = []time.Duration{
	time.Minute, 5 * time.Minute, 30 * time.Minute,
	2 * time.Hour, 8 * time.Hour, 24 * time.Hour, 24 * time.Hour,
}

// webhookMaxAttempts is the first attempt plus one retry per schedule step.
var webhookMaxAttempts = len(webhookRetrySchedule) + 1

// An endpoint is disabled after this many failed deliveries in a row, or
// after failing without a success for this long.
const (
	webhookDisableAfterFailures = 15
	webhookDisableAfterFailing  = 5 * 24 * time.Hour
)

// webhookOutcome is what one attempt means for its delivery row.
type webhookOutcome struct {
	Status      string
	StatusCode  int       // 0 when the endpoint gave no answer
	Error       string    // last_error; empty on success
	NextAttempt time.Time // zero unless Status is pending
	Failed      bool      // counts towards disabling the endpoint
	Gone        bool      // the endpoint answered 410: disable it now
}

// classifyWebhookAttempt turns the answer to attempt into the delivery's
// next state, following the outcome table of the webhookDeliver spec.
func classifyWebhookAttempt(attempt int, resp webhooks.Response, err error,
	now time.Time) webhookOutcome {
	if err != nil {
		if webhooks.IsPermanent(err) {
			return webhookOutcome{Status: deliveryFailed, Error: err.Error(), Failed: true}
		}
		return retryWebhook(attempt, 0, 0, err.Error(), now)
	}

	code := resp.StatusCode
	answered := fmt.Sprintf("endpoint answered %d %s", code, http.StatusText(code))
	switch {
	case code >= 200 && code < 300:
		return webhookOutcome{Status: deliverySucceeded, StatusCode: code}
	case code == http.StatusGone:
		return webhookOutcome{Status: deliveryFailed, StatusCode: code, Error: answered,
			Failed: true, Gone: true}
	case isPermanentWebhookStatus(code):
		return webhookOutcome{Status: deliveryFailed, StatusCode: code, Error: answered,
			Failed: true}
	case code >= 300 && code < 400:
		answered += "; redirects are not followed"
	}
	// 408, 425, 429 and 5xx are the documented retryable answers. Any other
	// status is not on the permanent list either, so it is retried too: a
	// customer can fix a redirect or a stray 4xx within the schedule.
	return retryWebhook(attempt, code, resp.RetryAfter, answered, now)
}

// isPermanentWebhookStatus reports the answers that mean the request itself
// is wrong for this endpoint, so that sending it again cannot succeed.
func isPermanentWebhookStatus(code int) bool {
	switch code {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden,
		http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge,
		http.StatusUnprocessableEntity:
		return true
	}
	return false
}

// retryWebhook schedules the attempt after a retryable failure, waiting
// the schedule's step or the endpoint's Retry-After, whichever is longer,
// and abandons the delivery once the schedule is used up.
func retryWebhook(attempt, code int, retryAfter time.Duration, msg string,
	now time.Time) webhookOutcome {
	out := webhookOutcome{StatusCode: code, Error: msg, Failed: true}
	if attempt < 1 || attempt > len(webhookRetrySchedule) {
		out.Status = deliveryAbandoned
		out.Error += "; retries exhausted"
		return out
	}
	wait := webhookRetrySchedule[attempt-1]
	if ra := min(retryAfter, webhooks.MaxRetryAfter); ra > wait {
		wait = ra
	}
	out.Status = deliveryPending
	out.NextAttempt = now.Add(wait)

	return out
}

// webhookDisableReason says why an endpoint is disabled after a failure,
// given its failure count and failing_since after counting this failure,
// or "" to keep it enabled.
func webhookDisableReason(gone bool, failures int, failingSince, now time.Time) string {
	switch {
	case gone:
		return disabledGone
	case failures >= webhookDisableAfterFailures:
		return disabledConsecutiveFailures
	case !failingSince.IsZero() && now.Sub(failingSince) >= webhookDisableAfterFailing:
		return disabledFailingForDays
	}
	return ""
}
