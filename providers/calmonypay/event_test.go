package calmonypay

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseEvent(t *testing.T) {
	t.Parallel()
	t.Run("stripe envelope", func(t *testing.T) {
		t.Parallel()
		ev, err := ParseEvent([]byte(`{"id":"evt_1","type":"invoice.paid","created":1764752400,
			"livemode":false,"data":{"object":{"id":"in_1"}}}`))
		require.NoError(t, err)
		require.Equal(t, "evt_1", ev.ID)
		require.False(t, ev.Flat)
		require.Equal(t, time.Unix(1764752400, 0).UTC(), ev.Created)
		require.JSONEq(t, `{"id":"in_1"}`, string(ev.Object))
		require.NotNil(t, ev.Livemode)
	})
	t.Run("flat shape gets a derived, stable id", func(t *testing.T) {
		t.Parallel()
		body := []byte(`{"event":"invoice.payment_failed","created_at":"2026-12-03T09:00:00Z",
			"data":{"invoice_id":"in_1","status":"failed","amount":4900}}`)
		a, err := ParseEvent(body)
		require.NoError(t, err)
		b, err := ParseEvent(body)
		require.NoError(t, err)
		require.True(t, a.Flat)
		require.Equal(t, a.ID, b.ID)
		require.Equal(t, FlatEventID("invoice.payment_failed", "2026-12-03T09:00:00Z", "in_1",
			"failed"), a.ID)
	})
	t.Run("flat id differs by status", func(t *testing.T) {
		t.Parallel()
		require.NotEqual(t, FlatEventID("e", "c", "r", "paid"), FlatEventID("e", "c", "r", "open"))
	})
	for name, body := range map[string]string{
		"not json":             `{`,
		"array":                `[]`,
		"no type":              `{"id":"evt_1","data":{"object":{}}}`,
		"envelope without id":  `{"type":"invoice.paid","created":1,"data":{"object":{}}}`,
		"object not an object": `{"id":"e","type":"invoice.paid","created":1,"data":{"object":1}}`,
		"no created":           `{"id":"e","type":"invoice.paid","data":{"object":{}}}`,
		"flat without data":    `{"event":"invoice.paid","created_at":"2026-12-03T09:00:00Z"}`,
		"trailing data":        `{"id":"e","type":"x","created":1,"data":{"object":{}}} {}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseEvent([]byte(body))
			require.ErrorIs(t, err, ErrMalformedEvent)
		})
	}
}

func TestTopicFor(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"checkout.session.completed":    TopicCheckoutCompleted,
		"invoice.paid":                  TopicInvoicePaid,
		"invoice.payment_failed":        TopicInvoicePaymentFail,
		"payment_intent.succeeded":      TopicPaymentSucceeded,
		"customer.subscription.created": TopicSubscriptionChanged,
		"customer.subscription.deleted": TopicSubscriptionChanged,
		"subscription.updated":          TopicSubscriptionChanged,
		"subscription.deleted":          TopicSubscriptionChanged,
		"invoice.created":               "",
		"payment_method.attached":       "",
		"customer.created":              "",
	}
	for typ, want := range tests {
		got, ok := TopicFor(typ)
		require.Equal(t, want, got, typ)
		require.Equal(t, want != "", ok, typ)
	}
}

func FuzzParseEvent(f *testing.F) {
	f.Add([]byte(`{"id":"evt_1","type":"invoice.paid","created":1764752400,
		"data":{"object":{"id":"in_1"}}}`))
	f.Add([]byte(`{"event":"subscription.updated","created_at":"2026-12-03T09:00:00Z",
		"data":{"id":"sub_1","status":"active"}}`))
	f.Add([]byte(`{"event":"x","created_at":17,"data":{"invoice_id":3}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := ParseEvent(body)
		if err != nil {
			return
		}
		if ev.ID == "" || ev.Type == "" || ev.Created.IsZero() || len(ev.Object) == 0 {
			t.Fatalf("accepted an event without id, type, time or object: %q", body)
		}
		again, err := ParseEvent(body)
		if err != nil || again.ID != ev.ID {
			t.Fatalf("decoding is not deterministic for %q", body)
		}
	})
}
