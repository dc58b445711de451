package platform

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/providers/webhooks"
)

func TestClassifyWebhookAttempt(t *testing.T) {
	t.Parallel()
	now := webhookNow
	network := fmt.Errorf("deliver webhook: %w",
		&webhooks.NetworkError{Err: errors.New("connection refused")})
	blocked := fmt.Errorf("deliver webhook: %w", webhooks.ErrBlockedAddress)
	answer := func(code int) webhooks.Response { return webhooks.Response{StatusCode: code} }

	tests := []struct {
		name    string
		attempt int
		resp    webhooks.Response
		err     error
		want    webhookOutcome
	}{
		{"200", 1, answer(200), nil, webhookOutcome{Status: deliverySucceeded, StatusCode: 200}},
		{"204", 3, answer(204), nil, webhookOutcome{Status: deliverySucceeded, StatusCode: 204}},
		{"500 first", 1, answer(500), nil, webhookOutcome{Status: deliveryPending,
			StatusCode: 500, Error: "endpoint answered 500 Internal Server Error",
			NextAttempt: now.Add(time.Minute), Failed: true}},
		{"503 sixth", 6, answer(503), nil, webhookOutcome{Status: deliveryPending,
			StatusCode: 503, Error: "endpoint answered 503 Service Unavailable",
			NextAttempt: now.Add(24 * time.Hour), Failed: true}},
		{"408", 2, answer(408), nil, webhookOutcome{Status: deliveryPending, StatusCode: 408,
			Error: "endpoint answered 408 Request Timeout", NextAttempt: now.Add(5 * time.Minute),
			Failed: true}},
		{"425", 1, answer(425), nil, webhookOutcome{Status: deliveryPending, StatusCode: 425,
			Error: "endpoint answered 425 Too Early", NextAttempt: now.Add(time.Minute),
			Failed: true}},
		{"429 with Retry-After", 1, webhooks.Response{StatusCode: 429,
			RetryAfter: 15 * time.Minute}, nil, webhookOutcome{Status: deliveryPending,
			StatusCode: 429, Error: "endpoint answered 429 Too Many Requests",
			NextAttempt: now.Add(15 * time.Minute), Failed: true}},
		{"302", 1, answer(302), nil, webhookOutcome{Status: deliveryPending, StatusCode: 302,
			Error:       "endpoint answered 302 Found; redirects are not followed",
			NextAttempt: now.Add(time.Minute), Failed: true}},
		{"418 is not on the permanent list", 1, answer(418), nil, webhookOutcome{
			Status: deliveryPending, StatusCode: 418,
			Error: "endpoint answered 418 I'm a teapot", NextAttempt: now.Add(time.Minute),
			Failed: true}},
		{"500 last", webhookMaxAttempts, answer(500), nil, webhookOutcome{
			Status: deliveryAbandoned, StatusCode: 500,
			Error: "endpoint answered 500 Internal Server Error; retries exhausted", Failed: true}},
		{"410", 1, answer(410), nil, webhookOutcome{Status: deliveryFailed, StatusCode: 410,
			Error: "endpoint answered 410 Gone", Failed: true, Gone: true}},
		{"422", 1, answer(422), nil, webhookOutcome{Status: deliveryFailed, StatusCode: 422,
			Error: "endpoint answered 422 Unprocessable Entity", Failed: true}},
		{"network", 2, webhooks.Response{}, network, webhookOutcome{Status: deliveryPending,
			Error: network.Error(), NextAttempt: now.Add(5 * time.Minute), Failed: true}},
		{"blocked", 1, webhooks.Response{}, blocked, webhookOutcome{Status: deliveryFailed,
			Error: blocked.Error(), Failed: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, classifyWebhookAttempt(tc.attempt, tc.resp, tc.err, now))
		})
	}
}

func TestWebhookRetryScheduleSpansAboutTwoAndAHalfDays(t *testing.T) {
	t.Parallel()
	var total time.Duration
	for _, d := range webhookRetrySchedule {
		total += d
	}
	require.Equal(t, 58*time.Hour+36*time.Minute, total)
	require.Equal(t, 8, webhookMaxAttempts)
}

func TestWebhookDisableReason(t *testing.T) {
	t.Parallel()
	now := webhookNow
	tests := []struct {
		name     string
		gone     bool
		failures int
		since    time.Time
		want     string
	}{
		{"healthy", false, 1, now, ""},
		{"gone on the first failure", true, 1, now, disabledGone},
		{"fourteen", false, 14, now.Add(-time.Hour), ""},
		{"fifteen", false, 15, now.Add(-time.Hour), disabledConsecutiveFailures},
		{"just under five days", false, 3, now.Add(-120*time.Hour + time.Second), ""},
		{"five days", false, 3, now.Add(-120 * time.Hour), disabledFailingForDays},
		{"no streak start", false, 3, time.Time{}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, webhookDisableReason(tc.gone, tc.failures, tc.since, now))
		})
	}
}

func TestWebhookUnsendable(t *testing.T) {
	t.Parallel()
	h := &webhookDeliver{}
	dl := &webhookDelivery{EventType: "tenancy.created"}

	reason, err := h.unsendable(dl, nil)
	require.NoError(t, err)
	require.Equal(t, "endpoint deleted", reason)

	reason, err = h.unsendable(dl, &webhookEndpoint{Enabled: true,
		EventTypes: `["tenancy.created"]`})
	require.NoError(t, err)
	require.Empty(t, reason)

	_, err = h.unsendable(dl, &webhookEndpoint{Enabled: true, EventTypes: `tenancy.created`})
	require.Equal(t, job.ClassPermanent, job.Classify(err), "a damaged row needs a person")
}
