package billing

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/providers/calmonypay"
	"github.com/millrace/millrace/providers/calmonypay/calmonypaytest"
	"github.com/millrace/millrace/providers/mail"
	"github.com/millrace/millrace/store"
	"github.com/millrace/millrace/store/storetest"
)

const (
	testOrg     = "8a4c9a52-3f0e-4a43-9d0e-3c2b1f6e7a10"
	testSession = "cs_test_1"
	testCust    = "cus_1"
	testSub     = "sub_1"
	testPM      = "pm_1"
)

// t0 is the checkout; later events count from it.
var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// mailbox is a mail.Sender that keeps what it sends, deduplicating on the
// dedupe key as a provider would.
type mailbox struct {
	mu   sync.Mutex
	sent map[string]mail.Message
}

func (m *mailbox) Send(_ context.Context, msg mail.Message) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sent == nil {
		m.sent = map[string]mail.Message{}
	}
	m.sent[msg.DedupeKey] = msg
	return "id-" + msg.DedupeKey, nil
}

func (m *mailbox) keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for k := range m.sent {
		out = append(out, k)
	}
	return out
}

// fixture is one organisation with a pending subscription checkout.
type fixture struct {
	t    *testing.T
	db   *store.DB
	fake *calmonypaytest.Server
	mail *mailbox
	logs *bytes.Buffer
	now  time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, db: storetest.New(t), fake: calmonypaytest.New(t), mail: &mailbox{},
		logs: &bytes.Buffer{}, now: t0.Add(10 * 24 * time.Hour)}
	f.exec(`INSERT INTO organisations (id, name, created_at) VALUES ($1, 'Acme Lettings', $2)`,
		testOrg, store.Now(t0))
	f.exec(`INSERT INTO checkout_sessions (id, organisation_id, provider_session_id, purpose,
		status, created_at, updated_at) VALUES ($1, $2, $3, 'subscription', 'open', $4, $4)`,
		job.StableID("cs", testSession), testOrg, testSession, store.Now(t0))
	f.fake.SetSubscription(calmonypay.Subscription{ID: testSub, Customer: testCust,
		Status: "active", DefaultPaymentMethod: testPM, Metadata: map[string]string{
			"plan_code": "pro"}})
	return f
}

func (f *fixture) deps() Deps {
	return Deps{DB: f.db, Clock: job.FixedClock(f.now), Calmony: f.fake.Client(300 *
		time.Millisecond), Mail: f.mail, MailFrom: "billing@millrace.test",
		AppBaseURL: "https://app.test", LiveMode: new(bool),
		Logger: slog.New(slog.NewJSONHandler(&lockedWriter{w: f.logs}, nil))}
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (f *fixture) exec(q string, args ...any) {
	f.t.Helper()
	_, err := f.db.ExecContext(context.Background(), q, args...)
	require.NoError(f.t, err)
}

func (f *fixture) count(q string, args ...any) int {
	f.t.Helper()
	var n int
	require.NoError(f.t, f.db.QueryRowContext(context.Background(), q, args...).Scan(&n))
	return n
}

func (f *fixture) str(q string, args ...any) string {
	f.t.Helper()
	var s *string
	require.NoError(f.t, f.db.QueryRowContext(context.Background(), q, args...).Scan(&s))
	if s == nil {
		return ""
	}
	return *s
}

// run hands payload to the handler built by build, as the router would.
func (f *fixture) run(build func(Deps) job.Handler, handler, topic, id string,
	payload []byte) error {
	msg := job.Message{ID: id, Topic: topic, Payload: payload, Handler: handler, Attempt: 1,
		Metadata: map[string]string{}}
	ctx := job.WithMessage(context.Background(), msg)
	return build(f.deps()).Handle(ctx, msg)
}

// calmony delivers a Calmony event on its topic.
func (f *fixture) calmony(body string) error {
	ev, err := calmonypay.ParseEvent([]byte(body))
	require.NoError(f.t, err)
	topic, ok := calmonypay.TopicFor(ev.Type)
	require.True(f.t, ok)
	build, name := map[string]func(Deps) job.Handler{
		calmonypay.TopicCheckoutCompleted:   NewCheckoutCompleted,
		calmonypay.TopicInvoicePaid:         NewInvoiceSync,
		calmonypay.TopicInvoicePaymentFail:  NewInvoiceSync,
		calmonypay.TopicPaymentSucceeded:    NewPaymentSync,
		calmonypay.TopicSubscriptionChanged: NewSubscriptionSync,
	}[topic], topic
	return f.run(build, name, topic, job.StableID("calmony", ev.ID), []byte(body))
}

// stripeEvent builds a Stripe-shaped event.
func stripeEvent(id, typ string, at time.Time, object map[string]any) string {
	b, _ := json.Marshal(map[string]any{"id": id, "type": typ, "created": at.Unix(),
		"livemode": false, "data": map[string]any{"object": object}})
	return string(b)
}

func checkoutEvent() string {
	return stripeEvent("evt_checkout", "checkout.session.completed", t0, map[string]any{
		"id": testSession, "mode": "subscription", "customer": testCust,
		"subscription": testSub, "payment_status": "paid", "client_reference_id": testOrg,
		"customer_details": map[string]any{"email": "accounts@acme.test"}})
}

func invoiceJSON(id, typ string, at time.Time, attempt int) string {
	obj := map[string]any{"id": "in_1", "customer": testCust, "amount_due": 4900,
		"currency": "gbp", "attempt_count": attempt, "hosted_invoice_url": "https://pay.test/in_1",
		"parent": map[string]any{"subscription_details": map[string]any{
			"subscription": testSub}}}
	if typ == "invoice.paid" {
		obj["amount_paid"] = 4900
		obj["status_transitions"] = map[string]any{"paid_at": at.Unix()}
	} else {
		obj["amount_paid"] = 0
		obj["last_payment_error"] = map[string]any{"code": "card_declined",
			"decline_code": "insufficient_funds"}
	}
	return stripeEvent(id, typ, at, obj)
}

func subscriptionEvent(id, status string, at time.Time) string {
	return stripeEvent(id, "customer.subscription.updated", at, map[string]any{
		"id": testSub, "customer": testCust, "status": status,
		"metadata": map[string]any{"plan_code": "pro"}})
}

func tick(asOf string) []byte {
	return []byte(fmt.Sprintf(`{"scheduled_for":"%sT09:00:00Z","as_of":"%s"}`, asOf, asOf))
}

// outboxTopics counts the outbox rows per topic.
func (f *fixture) outboxTopics() map[string]int {
	f.t.Helper()
	rows, err := f.db.PendingOutbox(context.Background(), 1000)
	require.NoError(f.t, err)
	out := map[string]int{}
	for _, r := range rows {
		out[r.Event.Topic]++
	}
	return out
}

func calmonyIntent(id string, amount int64) calmonypay.PaymentIntent {
	return calmonypay.PaymentIntent{ID: id, Amount: amount, Currency: "gbp", Status: "succeeded"}
}
