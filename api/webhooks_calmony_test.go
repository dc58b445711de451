package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/providers/calmonypay"
	"github.com/millrace/millrace/schemas"
	"github.com/millrace/millrace/store"
	"github.com/millrace/millrace/store/storetest"
)

var webhookNow = time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)

const invoicePaidEvent = `{"id":"evt_1","type":"invoice.paid","created":1764752400,
	"data":{"object":{"id":"in_1","customer":"cus_1","amount_due":4900,"amount_paid":4900,
	"currency":"gbp"}}}`

func newWebhookAPI(t *testing.T, secrets ...string) (http.Handler, *store.DB, *recorder) {
	t.Helper()
	db := storetest.New(t)
	rec := &recorder{}
	h := NewHandler(Config{Publisher: rec, Registry: schemas.Default(), Catalogue: ingestible{},
		DB: db, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		CalmonySecrets: secrets, Now: func() time.Time { return webhookNow }})
	return h, db, rec
}

func sendWebhook(h http.Handler, body, sig string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/webhooks/calmony-pay", strings.NewReader(body))
	if sig != "" {
		req.Header.Set(calmonypay.SignatureHeader, sig)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func countRows(t *testing.T, db *store.DB, table string) int {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRowContext(context.Background(),
		"SELECT COUNT(*) FROM "+table).Scan(&n))
	return n
}

func TestCalmonyWebhookStoresAndQueuesOnce(t *testing.T) {
	t.Parallel()
	h, db, rec := newWebhookAPI(t, "whsec_old", "whsec_new")
	sig := calmonypay.Sign("whsec_new", webhookNow, []byte(invoicePaidEvent))

	w := sendWebhook(h, invoicePaidEvent, sig)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Contains(t, w.Body.String(), `"queued"`)
	w = sendWebhook(h, invoicePaidEvent, sig)
	require.Equal(t, http.StatusOK, w.Code)
	require.Contains(t, w.Body.String(), `"duplicate"`)

	require.Equal(t, 1, countRows(t, db, "inbound_webhook_events"))
	rows, err := db.PendingOutbox(context.Background(), 10)
	require.NoError(t, err)
	require.Len(t, rows, 1, "one message in the outbox, none published directly")
	require.Empty(t, rec.msgs)
	ev := rows[0].Event
	require.Equal(t, calmonypay.TopicInvoicePaid, ev.Topic)
	require.Equal(t, job.StableID("calmony", "evt_1"), ev.ID)
	require.Equal(t, "webhook:calmony_pay", ev.Metadata[job.MetaSource])
	require.JSONEq(t, invoicePaidEvent, string(ev.Payload))
}

func TestCalmonyWebhookFlatShapeAndBothSubscriptionSpellings(t *testing.T) {
	t.Parallel()
	h, db, _ := newWebhookAPI(t, "s")
	bodies := []string{
		`{"event":"subscription.updated","created_at":"2026-12-03T08:59:00Z",
			"data":{"id":"sub_1","status":"active","customer_id":"cus_1"}}`,
		`{"id":"evt_2","type":"customer.subscription.updated","created":1764752400,
			"data":{"object":{"id":"sub_1","customer":"cus_1","status":"past_due"}}}`,
	}
	for _, b := range bodies {
		w := sendWebhook(h, b, calmonypay.Sign("s", webhookNow, []byte(b)))
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		w = sendWebhook(h, b, calmonypay.Sign("s", webhookNow.Add(time.Second), []byte(b)))
		require.Contains(t, w.Body.String(), `"duplicate"`, "redelivery of %s", b)
	}
	rows, err := db.PendingOutbox(context.Background(), 10)
	require.NoError(t, err)
	require.Len(t, rows, 2)
	for _, r := range rows {
		require.Equal(t, calmonypay.TopicSubscriptionChanged, r.Event.Topic)
	}
}

func TestCalmonyWebhookUnhandledTypeStoredAndAcked(t *testing.T) {
	t.Parallel()
	h, db, _ := newWebhookAPI(t, "s")
	body := `{"id":"evt_9","type":"payment_method.attached","created":1764752400,
		"data":{"object":{"id":"pm_1"}}}`
	w := sendWebhook(h, body, calmonypay.Sign("s", webhookNow, []byte(body)))
	require.Equal(t, http.StatusOK, w.Code)
	require.Contains(t, w.Body.String(), `"ignored"`)
	require.Equal(t, 1, countRows(t, db, "inbound_webhook_events"))
	require.Equal(t, 0, countRows(t, db, "outbox"))
}

func TestCalmonyWebhookRejectionsStoreNothing(t *testing.T) {
	t.Parallel()
	body := []byte(invoicePaidEvent)
	tests := []struct {
		name   string
		body   string
		sig    string
		status int
	}{
		{"missing signature", invoicePaidEvent, "", http.StatusUnauthorized},
		{"wrong secret", invoicePaidEvent, calmonypay.Sign("other", webhookNow, body),
			http.StatusUnauthorized},
		{"stale", invoicePaidEvent, calmonypay.Sign("s", webhookNow.Add(-6*time.Minute), body),
			http.StatusUnauthorized},
		{"future", invoicePaidEvent, calmonypay.Sign("s", webhookNow.Add(6*time.Minute), body),
			http.StatusUnauthorized},
		{"seconds timestamp", invoicePaidEvent, "t=1764752400,v1=" +
			strings.SplitN(calmonypay.Sign("s", webhookNow, body), "v1=", 2)[1],
			http.StatusUnauthorized},
		{"body altered after signing", strings.Replace(invoicePaidEvent, "4900", "1", 1),
			calmonypay.Sign("s", webhookNow, body), http.StatusUnauthorized},
		{"unparseable body", "{not json", calmonypay.Sign("s", webhookNow, []byte("{not json")),
			http.StatusBadRequest},
		{"not an event", `{"hello":1}`, calmonypay.Sign("s", webhookNow, []byte(`{"hello":1}`)),
			http.StatusBadRequest},
		{"over 1 MiB", strings.Repeat(" ", MaxBodyBytes+1), "t=1,v1=00",
			http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, db, rec := newWebhookAPI(t, "s")
			w := sendWebhook(h, tt.body, tt.sig)
			require.Equal(t, tt.status, w.Code, w.Body.String())
			require.Equal(t, 0, countRows(t, db, "inbound_webhook_events"))
			require.Equal(t, 0, countRows(t, db, "outbox"))
			require.Empty(t, rec.msgs)
		})
	}
}

func TestCalmonyWebhookWithoutSecretsRefusesAll(t *testing.T) {
	t.Parallel()
	h, db, _ := newWebhookAPI(t)
	w := sendWebhook(h, invoicePaidEvent,
		calmonypay.Sign("", webhookNow, []byte(invoicePaidEvent)))
	require.Equal(t, http.StatusUnauthorized, w.Code)
	require.Equal(t, 0, countRows(t, db, "inbound_webhook_events"))
}

func TestCalmonyWebhookPayloadSealedAtRest(t *testing.T) {
	t.Parallel()
	db := storetest.New(t)
	h := NewHandler(Config{Publisher: &recorder{}, Registry: schemas.Default(),
		Catalogue: ingestible{}, DB: db, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		CalmonySecrets: []string{"s"}, PayloadKey: make([]byte, 32),
		Now: func() time.Time { return webhookNow }})
	w := sendWebhook(h, invoicePaidEvent,
		calmonypay.Sign("s", webhookNow, []byte(invoicePaidEvent)))
	require.Equal(t, http.StatusOK, w.Code)
	var stored string
	require.NoError(t, db.QueryRowContext(context.Background(),
		`SELECT payload_enc FROM inbound_webhook_events`).Scan(&stored))
	require.True(t, strings.HasPrefix(stored, "v1:"))
	require.NotContains(t, stored, "in_1")
}
