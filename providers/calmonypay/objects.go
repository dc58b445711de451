package calmonypay

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// PaymentIntent is the part of a Calmony payment intent Millrace reads.
type PaymentIntent struct {
	ID               string            `json:"id"`
	Amount           int64             `json:"amount"`
	Currency         string            `json:"currency"`
	Status           string            `json:"status"`
	Customer         string            `json:"customer"`
	PaymentMethod    string            `json:"payment_method"`
	Metadata         map[string]string `json:"metadata"`
	LastPaymentError *struct {
		Code        string `json:"code"`
		DeclineCode string `json:"decline_code"`
	} `json:"last_payment_error"`
}

// Subscription is the part of a Calmony subscription Millrace reads. From
// Stripe's basil API on, the period sits on the items; Period reads the
// items first.
type Subscription struct {
	ID                 string `json:"id"`
	Customer           string `json:"customer"`
	Status             string `json:"status"`
	CurrentPeriodStart int64  `json:"current_period_start"`
	CurrentPeriodEnd   int64  `json:"current_period_end"`
	CancelAtPeriodEnd  bool   `json:"cancel_at_period_end"`
	CanceledAt         int64  `json:"canceled_at"`
	// DefaultPaymentMethod is the card the subscription charges.
	DefaultPaymentMethod string            `json:"default_payment_method"`
	Metadata             map[string]string `json:"metadata"`
	Items                struct {
		Data []struct {
			CurrentPeriodStart int64 `json:"current_period_start"`
			CurrentPeriodEnd   int64 `json:"current_period_end"`
			Price              struct {
				LookupKey string `json:"lookup_key"`
			} `json:"price"`
		} `json:"data"`
	} `json:"items"`
}

// Period returns the current period, from the first item when it has one.
func (s Subscription) Period() (start, end time.Time) {
	a, b := s.CurrentPeriodStart, s.CurrentPeriodEnd
	if len(s.Items.Data) > 0 && s.Items.Data[0].CurrentPeriodEnd > 0 {
		a, b = s.Items.Data[0].CurrentPeriodStart, s.Items.Data[0].CurrentPeriodEnd
	}
	return unix(a), unix(b)
}

// PlanCode returns metadata.plan_code, else the first item's price lookup key.
func (s Subscription) PlanCode() string {
	if p := s.Metadata["plan_code"]; p != "" {
		return p
	}
	if len(s.Items.Data) > 0 {
		return s.Items.Data[0].Price.LookupKey
	}
	return ""
}

func unix(s int64) time.Time {
	if s <= 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

// GetSubscription fetches GET /v1/subscriptions/{id}.
func (c *Client) GetSubscription(ctx context.Context, id string) (Subscription, error) {
	var s Subscription
	err := c.do(ctx, "GET", "/v1/subscriptions/"+url.PathEscape(id), nil, "", &s)
	if err != nil {
		return s, fmt.Errorf("get subscription: %w", err)
	}
	return s, nil
}

// GetPaymentIntent fetches GET /v1/payment_intents/{id}.
func (c *Client) GetPaymentIntent(ctx context.Context, id string) (PaymentIntent, error) {
	var pi PaymentIntent
	err := c.do(ctx, "GET", "/v1/payment_intents/"+url.PathEscape(id), nil, "", &pi)
	if err != nil {
		return pi, fmt.Errorf("get payment intent: %w", err)
	}
	return pi, nil
}

// ChargeParams is an off-session charge of a stored card.
type ChargeParams struct {
	AmountPence   int64
	Currency      string // "gbp"
	Customer      string
	PaymentMethod string
	Metadata      map[string]string
}

// CreatePaymentIntent charges a stored card off session with POST
// /v1/payment_intents (confirm=true). idemKey is required: the same key
// replays the first answer instead of charging again.
func (c *Client) CreatePaymentIntent(ctx context.Context, p ChargeParams,
	idemKey string) (PaymentIntent, error) {
	var pi PaymentIntent
	if idemKey == "" {
		return pi, fmt.Errorf("create payment intent: %w", errNoIdempotencyKey)
	}
	form := url.Values{}
	form.Set("amount", strconv.FormatInt(p.AmountPence, 10))
	form.Set("currency", p.Currency)
	form.Set("customer", p.Customer)
	form.Set("payment_method", p.PaymentMethod)
	form.Set("off_session", "true")
	form.Set("confirm", "true")
	for k, v := range p.Metadata {
		form.Set("metadata["+k+"]", v)
	}
	if err := c.do(ctx, "POST", "/v1/payment_intents", form, idemKey, &pi); err != nil {
		return pi, fmt.Errorf("create payment intent: %w", err)
	}
	return pi, nil
}
