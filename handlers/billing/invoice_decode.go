package billing

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/millrace/millrace/providers/calmonypay"
)

// invoiceEvent is an invoice event of either shape, normalised.
type invoiceEvent struct {
	ProviderID     string
	Customer       string
	ProviderSub    string
	Status         string // invPaid or invPaymentFailed, from the event type
	AmountDue      int64
	AmountPaid     int64
	Currency       string
	AttemptCount   int64
	FailureReason  string
	HostedURL      string
	PaidAt         time.Time
	Created        time.Time
	EventID, Event string
}

type stripeInvoice struct {
	ID           string `json:"id"`
	Customer     string `json:"customer"`
	Subscription string `json:"subscription"`
	Parent       struct {
		SubscriptionDetails struct {
			Subscription string `json:"subscription"`
		} `json:"subscription_details"`
	} `json:"parent"`
	AmountDue         int64  `json:"amount_due"`
	AmountPaid        int64  `json:"amount_paid"`
	Currency          string `json:"currency"`
	AttemptCount      int64  `json:"attempt_count"`
	HostedInvoiceURL  string `json:"hosted_invoice_url"`
	StatusTransitions struct {
		PaidAt int64 `json:"paid_at"`
	} `json:"status_transitions"`
	LastPaymentError *struct {
		Code        string `json:"code"`
		DeclineCode string `json:"decline_code"`
	} `json:"last_payment_error"`
	FailureReason string `json:"failure_reason"`
}

type flatInvoice struct {
	InvoiceID      string `json:"invoice_id"`
	CustomerID     string `json:"customer_id"`
	SubscriptionID string `json:"subscription_id"`
	Amount         int64  `json:"amount"`
	Currency       string `json:"currency"`
	FailureReason  string `json:"failure_reason"`
	AttemptCount   int64  `json:"attempt_count"`
	HostedURL      string `json:"hosted_invoice_url"`
}

// decodeInvoice reads an invoice event. The subscription id is the flat
// shape's subscription_id, Stripe basil's parent.subscription_details, or
// the older subscription field.
func decodeInvoice(ev calmonypay.Event) (invoiceEvent, error) {
	out := invoiceEvent{Status: invPaymentFailed, Created: ev.Created, EventID: ev.ID,
		Event: ev.Type}
	if ev.Type == "invoice.paid" {
		out.Status = invPaid
	}
	var err error
	if ev.Flat {
		err = out.fromFlat(ev.Object)
	} else {
		err = out.fromStripe(ev.Object)
	}
	if err != nil {
		return out, err
	}
	out.Currency = strings.ToLower(out.Currency)
	if out.Status == invPaid && out.PaidAt.IsZero() {
		out.PaidAt = ev.Created
	}
	if out.ProviderID == "" || out.Customer == "" || out.AmountDue < 0 || out.AmountPaid < 0 {
		return out, fmt.Errorf("decode invoice: missing id or customer, or negative amount")
	}
	return out, nil
}

func (out *invoiceEvent) fromFlat(raw []byte) error {
	var f flatInvoice
	if err := json.Unmarshal(raw, &f); err != nil {
		return fmt.Errorf("decode invoice: %w", err)
	}
	out.ProviderID, out.Customer, out.ProviderSub = f.InvoiceID, f.CustomerID, f.SubscriptionID
	out.AmountDue, out.Currency, out.FailureReason = f.Amount, f.Currency, f.FailureReason
	out.AttemptCount, out.HostedURL = f.AttemptCount, f.HostedURL
	if out.Status == invPaid {
		out.AmountPaid = f.Amount
	}
	return nil
}

func (out *invoiceEvent) fromStripe(raw []byte) error {
	var s stripeInvoice
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("decode invoice: %w", err)
	}
	out.ProviderID, out.Customer = s.ID, s.Customer
	out.ProviderSub = s.Parent.SubscriptionDetails.Subscription
	if out.ProviderSub == "" {
		out.ProviderSub = s.Subscription
	}
	out.AmountDue, out.AmountPaid, out.Currency = s.AmountDue, s.AmountPaid, s.Currency
	out.AttemptCount, out.HostedURL, out.FailureReason = s.AttemptCount,
		s.HostedInvoiceURL, s.FailureReason
	if e := s.LastPaymentError; e != nil && out.FailureReason == "" {
		out.FailureReason = e.DeclineCode
		if out.FailureReason == "" {
			out.FailureReason = e.Code
		}
	}
	if s.StatusTransitions.PaidAt > 0 {
		out.PaidAt = time.Unix(s.StatusTransitions.PaidAt, 0).UTC()
	}
	return nil
}
