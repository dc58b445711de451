package calmonypay

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrMalformedEvent reports a webhook body that is not a Calmony event.
var ErrMalformedEvent = errors.New("malformed event")

// Event is a decoded webhook event in either of Calmony's shapes: the
// Stripe-style envelope {id, type, created, data.object} or the flat shape
// {event, created_at, data} that carries no id.
type Event struct {
	// ID is the envelope id, or for the flat shape a key derived from the
	// event's content, so that a redelivery has the same ID.
	ID string
	// Type is the event type as sent, e.g. "invoice.paid".
	Type string
	// Created is when the provider created the event.
	Created time.Time
	// Object is data.object of the envelope, or data of the flat shape.
	Object json.RawMessage
	// Flat is true for the flat shape.
	Flat bool
	// Livemode is the envelope's livemode, nil when absent.
	Livemode *bool
}

type envelope struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Event     string          `json:"event"`
	Created   json.RawMessage `json:"created"`
	CreatedAt json.RawMessage `json:"created_at"`
	Livemode  *bool           `json:"livemode"`
	Data      json.RawMessage `json:"data"`
}

// ParseEvent decodes a webhook body. It never panics on any input.
func ParseEvent(body []byte) (Event, error) {
	var env envelope
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&env); err != nil {
		return Event{}, fmt.Errorf("%w: %w", ErrMalformedEvent, err)
	}
	if dec.More() {
		return Event{}, fmt.Errorf("%w: trailing data", ErrMalformedEvent)
	}
	if env.Type != "" {
		return parseEnvelope(env)
	}
	if env.Event != "" {
		return parseFlat(env)
	}
	return Event{}, fmt.Errorf("%w: neither type nor event", ErrMalformedEvent)
}

func parseEnvelope(env envelope) (Event, error) {
	var data struct {
		Object json.RawMessage `json:"object"`
	}
	if env.ID == "" {
		return Event{}, fmt.Errorf("%w: envelope without id", ErrMalformedEvent)
	}
	if err := json.Unmarshal(env.Data, &data); err != nil || !isObject(data.Object) {
		return Event{}, fmt.Errorf("%w: data.object is not an object", ErrMalformedEvent)
	}
	created, err := parseTime(env.Created)
	if err != nil {
		return Event{}, err
	}
	return Event{ID: env.ID, Type: env.Type, Created: created, Object: data.Object,
		Livemode: env.Livemode}, nil
}

func parseFlat(env envelope) (Event, error) {
	if !isObject(env.Data) {
		return Event{}, fmt.Errorf("%w: data is not an object", ErrMalformedEvent)
	}
	created, err := parseTime(env.CreatedAt)
	if err != nil {
		return Event{}, err
	}
	var d struct {
		ID        any `json:"id"`
		InvoiceID any `json:"invoice_id"`
		Status    any `json:"status"`
	}
	_ = json.Unmarshal(env.Data, &d)
	ref := scalar(d.InvoiceID)
	if ref == "" {
		ref = scalar(d.ID)
	}
	return Event{ID: FlatEventID(env.Event, rawScalar(env.CreatedAt), ref, scalar(d.Status)),
		Type: env.Event, Created: created, Object: env.Data, Flat: true}, nil
}

// FlatEventID derives the dedupe id of a flat-shape event:
// "flat_" + hex(sha256(event ":" created_at ":" ref ":" status)), where ref is
// data.invoice_id, or data.id when there is none.
func FlatEventID(event, createdAt, ref, status string) string {
	sum := sha256.Sum256([]byte(event + ":" + createdAt + ":" + ref + ":" + status))
	return "flat_" + hex.EncodeToString(sum[:])
}

// parseTime reads unix seconds (a number) or an RFC 3339 string.
func parseTime(raw json.RawMessage) (time.Time, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, fmt.Errorf("%w: no creation time", ErrMalformedEvent)
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("%w: creation time: %w", ErrMalformedEvent, err)
		}
		return t.UTC(), nil
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || n <= 0 || n > 1<<40 {
		return time.Time{}, fmt.Errorf("%w: creation time is not unix seconds", ErrMalformedEvent)
	}
	return time.Unix(n, 0).UTC(), nil
}

func isObject(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) > 1 && t[0] == '{'
}

func rawScalar(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return strings.TrimSpace(string(raw))
}

func scalar(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return ""
}

// Topics the webhook receiver publishes to.
const (
	TopicCheckoutCompleted   = "billing.calmony.checkout_session.completed"
	TopicInvoicePaid         = "billing.calmony.invoice.paid"
	TopicInvoicePaymentFail  = "billing.calmony.invoice.payment_failed"
	TopicPaymentSucceeded    = "billing.calmony.payment_intent.succeeded"
	TopicSubscriptionChanged = "billing.calmony.subscription.changed"
)

// TopicFor returns the topic an event type is handled on, and false for
// types nobody handles (stored and acknowledged only). Both spellings of
// the subscription events map to one topic.
func TopicFor(eventType string) (string, bool) {
	switch eventType {
	case "checkout.session.completed":
		return TopicCheckoutCompleted, true
	case "invoice.paid":
		return TopicInvoicePaid, true
	case "invoice.payment_failed":
		return TopicInvoicePaymentFail, true
	case "payment_intent.succeeded":
		return TopicPaymentSucceeded, true
	}
	rest, ok := strings.CutPrefix(eventType, "customer.")
	if !ok {
		rest = eventType
	}
	switch rest {
	case "subscription.created", "subscription.updated", "subscription.deleted":
		return TopicSubscriptionChanged, true
	}
	return "", false
}

// IsSubscriptionDeleted reports whether eventType ends a subscription.
func IsSubscriptionDeleted(eventType string) bool {
	return strings.HasSuffix(eventType, "subscription.deleted")
}
