package router

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/api"
	"github.com/millrace/millrace/handlers/billing"
	"github.com/millrace/millrace/handlers/platform"
	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/providers/calmonypay"
	"github.com/millrace/millrace/providers/calmonypay/calmonypaytest"
	"github.com/millrace/millrace/schemas"
	"github.com/millrace/millrace/store"
	"github.com/millrace/millrace/store/storetest"
	"github.com/millrace/millrace/transport"
	"github.com/millrace/millrace/transport/memory"
)

const e2eSecret = "whsec_e2e"

// billingWorld is the real catalogue on the memory transport, the outbox
// relay, the webhook receiver and a fake Calmony Pay.
type billingWorld struct {
	db   *store.DB
	fake *calmonypaytest.Server
	url  string
}

func newBillingWorld(t *testing.T) *billingWorld {
	t.Helper()
	w := &billingWorld{db: storetest.New(t), fake: calmonypaytest.New(t)}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	tr := memory.New(memory.Config{})
	rt, err := New(Config{Catalogue: Default(), Transport: tr, Registry: schemas.Default(),
		Ledger: w.db, Logger: logger, Deps: &Deps{Platform: platform.Deps{DB: w.db},
			Billing: billing.Deps{DB: w.db, Logger: logger,
				Calmony: w.fake.Client(300 * time.Millisecond)}}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = rt.Run(ctx) }()
	<-rt.Running()
	relay := &transport.Relay{DB: w.db, Publisher: rt.Publisher(), Logger: logger,
		Interval: 20 * time.Millisecond}
	go func() { _ = relay.Run(ctx) }()
	srv := httptest.NewServer(api.NewHandler(api.Config{Publisher: rt.Publisher(),
		Registry: schemas.Default(), Catalogue: Default(), DB: w.db, Logger: logger,
		CalmonySecrets: []string{e2eSecret}}))
	w.url = srv.URL + "/webhooks/calmony-pay"
	t.Cleanup(func() { srv.Close(); rt.Close(); cancel(); tr.Close() })
	return w
}

func (w *billingWorld) webhook(t *testing.T, body map[string]any) {
	t.Helper()
	raw, err := json.Marshal(body)
	require.NoError(t, err)
	status, err := calmonypaytest.SendWebhook(w.url, e2eSecret, raw, time.Now())
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
}

func (w *billingWorld) eventually(t *testing.T, query, want string) {
	t.Helper()
	require.Eventually(t, func() bool {
		var got *string
		err := w.db.QueryRowContext(context.Background(), query).Scan(&got)
		return err == nil && got != nil && *got == want
	}, 15*time.Second, 10*time.Millisecond, "waiting for %q from %s", want, query)
}

// TestBillingEndToEnd sends signed webhooks through the receiver, lets the
// relay and router run the billing jobs, then fires the 09:00 tick twice
// while the provider times out once: the card is charged once.
func TestBillingEndToEnd(t *testing.T) {
	t.Parallel()
	w := newBillingWorld(t)
	ctx := context.Background()
	org := "8a4c9a52-3f0e-4a43-9d0e-3c2b1f6e7a10"
	now := store.Now(time.Now())
	_, err := w.db.ExecContext(ctx, `INSERT INTO organisations (id, name, created_at)
		VALUES ($1, 'Acme', $2)`, org, now)
	require.NoError(t, err)
	_, err = w.db.ExecContext(ctx, `INSERT INTO checkout_sessions (id, organisation_id,
		provider_session_id, purpose, status, created_at, updated_at)
		VALUES ('c1', $1, 'cs_1', 'subscription', 'open', $2, $2)`, org, now)
	require.NoError(t, err)
	w.fake.SetSubscription(calmonypay.Subscription{ID: "sub_1", Customer: "cus_1",
		Status: "active", DefaultPaymentMethod: "pm_1"})

	created := time.Now().Add(-time.Minute).Unix()
	event := func(id, typ string, obj map[string]any) map[string]any {
		return map[string]any{"id": id, "type": typ, "created": created,
			"data": map[string]any{"object": obj}}
	}
	w.webhook(t, event("evt_co", "checkout.session.completed", map[string]any{"id": "cs_1",
		"mode": "subscription", "customer": "cus_1", "subscription": "sub_1"}))
	w.eventually(t, `SELECT status FROM subscriptions`, "active")
	w.webhook(t, event("evt_if", "invoice.payment_failed", map[string]any{"id": "in_1",
		"customer": "cus_1", "subscription": "sub_1", "amount_due": 4900, "currency": "gbp",
		"attempt_count": 3}))
	w.webhook(t, map[string]any{"event": "subscription.updated",
		"created_at": time.Now().UTC().Format(time.RFC3339),
		"data":       map[string]any{"id": "sub_1", "status": "past_due", "customer_id": "cus_1"}})
	w.eventually(t, `SELECT status FROM invoices`, "payment_failed")
	w.eventually(t, `SELECT status FROM subscriptions`, "past_due")

	w.fake.HangNext()
	asOf := time.Now().Format(time.DateOnly)
	tick := []byte(`{"scheduled_for":"` + time.Now().UTC().Format(time.RFC3339) +
		`","as_of":"` + asOf + `"}`)
	for i := range 2 {
		ev := job.NewEvent(ctx, job.StableID("cron", "autoChargeOverdue", asOf),
			billing.TopicAutochargeTick, tick, "cron", time.Now())
		require.NoError(t, w.db.InTx(ctx, func(tx *store.Tx) error {
			return tx.EnqueueReplay(ctx, ev, ev.ID+string(rune('a'+i)))
		}))
	}
	w.eventually(t, `SELECT status FROM payments`, "succeeded")
	w.eventually(t, `SELECT CAST(auto_charge_attempts AS TEXT) FROM subscriptions`, "1")
	require.Equal(t, 1, w.fake.Charges())
}
