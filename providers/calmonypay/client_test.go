package calmonypay_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/providers/calmonypay"
	"github.com/millrace/millrace/providers/calmonypay/calmonypaytest"
)

var charge = calmonypay.ChargeParams{AmountPence: 4900, Currency: "gbp", Customer: "cus_1",
	PaymentMethod: "pm_1", Metadata: map[string]string{"invoice_id": "inv_1"}}

func TestClientClassifiesFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		status     int
		retryAfter time.Duration
		retryable  bool
	}{
		{"500", http.StatusInternalServerError, 0, true},
		{"503", http.StatusServiceUnavailable, 0, true},
		{"429 with Retry-After", http.StatusTooManyRequests, 7 * time.Second, true},
		{"400", http.StatusBadRequest, 0, false},
		{"404", http.StatusNotFound, 0, false},
		{"409", http.StatusConflict, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := calmonypaytest.New(t)
			fake.FailNext(tt.status, tt.retryAfter)
			c := fake.Client(time.Second)
			_, err := c.CreatePaymentIntent(context.Background(), charge, "k1")
			require.Error(t, err)
			require.Equal(t, tt.retryable, calmonypay.Retryable(err))
			var api *calmonypay.APIError
			require.ErrorAs(t, err, &api)
			require.Equal(t, tt.status, api.Status)
			require.Equal(t, tt.retryAfter, api.RetryAfter)
			require.Zero(t, fake.Charges(), "a failed request charges nothing")
		})
	}
}

func TestClientAlertsOnBadCredentials(t *testing.T) {
	t.Parallel()
	fake := calmonypaytest.New(t)
	var logs bytes.Buffer
	c := calmonypay.NewClient(calmonypay.Config{BaseURL: fake.URL, APIKey: "sk_wrong",
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	_, err := c.GetSubscription(context.Background(), "sub_1")
	require.False(t, calmonypay.Retryable(err))
	require.Contains(t, logs.String(), `"alert":"calmony_credentials"`)
	require.NotContains(t, logs.String(), "sk_wrong")
}

func TestClientNotConfigured(t *testing.T) {
	t.Parallel()
	_, err := calmonypay.NewClient(calmonypay.Config{BaseURL: "http://x"}).
		GetPaymentIntent(context.Background(), "pi_1")
	require.ErrorIs(t, err, calmonypay.ErrNotConfigured)
	require.False(t, calmonypay.Retryable(err))
}

func TestClientTimeoutThenReplaySameKeyChargesOnce(t *testing.T) {
	t.Parallel()
	fake := calmonypaytest.New(t)
	fake.HangNext()
	c := fake.Client(200 * time.Millisecond)
	_, err := c.CreatePaymentIntent(context.Background(), charge, "autocharge:inv_1:2026-12-03")
	require.Error(t, err)
	require.True(t, calmonypay.Retryable(err), "a timeout is retryable")
	pi, err := c.CreatePaymentIntent(context.Background(), charge, "autocharge:inv_1:2026-12-03")
	require.NoError(t, err)
	require.Equal(t, "succeeded", pi.Status)
	require.Equal(t, int64(4900), pi.Amount)
	require.Equal(t, "inv_1", pi.Metadata["invoice_id"])
	require.Equal(t, 1, fake.Charges())
}

func TestClientDeclines(t *testing.T) {
	t.Parallel()
	for _, code := range []string{"insufficient_funds", "stolen_card", "lost_card",
		"generic_decline", "authentication_required"} {
		t.Run(code, func(t *testing.T) {
			t.Parallel()
			fake := calmonypaytest.New(t)
			fake.Decline("pm_1", code)
			c := fake.Client(time.Second)
			_, err := c.CreatePaymentIntent(context.Background(), charge, "k")
			var api *calmonypay.APIError
			require.True(t, errors.As(err, &api))
			require.True(t, api.IsCardError())
			require.False(t, api.Retryable())
			require.Equal(t, code, api.DeclineCode)
			require.NotNil(t, api.PaymentIntent)
		})
	}
}

func TestCreatePaymentIntentNeedsKey(t *testing.T) {
	t.Parallel()
	fake := calmonypaytest.New(t)
	_, err := fake.Client(time.Second).CreatePaymentIntent(context.Background(), charge, "")
	require.Error(t, err)
	require.Zero(t, fake.Requests("POST"))
}
