package platform

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/providers/webhooks"
	"github.com/millrace/millrace/store"
	"github.com/millrace/millrace/store/storetest"
)

// webhookNow is the fixed instant the webhook tests start at.
var webhookNow = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

// webhookFixture is one organisation with one endpoint, the database they
// live in and the Deps the webhook handlers run with.
type webhookFixture struct {
	t          *testing.T
	db         *store.DB
	key        []byte
	secret     string // the endpoint's signing secret, unsealed
	orgID      string
	endpointID string
	client     *webhooks.Client
}

// newWebhookFixture creates the organisation and an enabled endpoint at
// url subscribed to tenancy.created and tenancy.ended, its secret sealed
// with a fresh key. Its client may reach private addresses (httptest).
func newWebhookFixture(t *testing.T, url string) *webhookFixture {
	t.Helper()
	f := &webhookFixture{
		t: t, db: storetest.New(t), key: bytes.Repeat([]byte{0x5a}, 32),
		orgID: uuid.NewString(), endpointID: uuid.NewString(),
		client: webhooks.NewClient(webhooks.Config{AllowPrivate: true}),
	}
	secret, err := webhooks.GenerateSecret()
	require.NoError(t, err)
	f.secret = secret
	sealed, err := webhooks.SealSecret(f.key, secret)
	require.NoError(t, err)

	f.exec(`INSERT INTO organisations (id, name, created_at) VALUES ($1, $2, $3)`,
		f.orgID, "Acme Lettings", store.Now(webhookNow))
	f.exec(`INSERT INTO webhook_endpoints (id, organisation_id, url, secret_enc, event_types,
		enabled, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		f.endpointID, f.orgID, url, sealed, `["tenancy.created","tenancy.ended"]`, true,
		store.Now(webhookNow))
	return f
}

func (f *webhookFixture) exec(query string, args ...any) {
	f.t.Helper()
	_, err := f.db.ExecContext(context.Background(), query, args...)
	require.NoError(f.t, err)
}

// deps returns the handlers' Deps with the clock fixed at now.
func (f *webhookFixture) deps(now time.Time) Deps {
	return Deps{
		DB: f.db, Clock: job.FixedClock(now),
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Webhooks: f.client, SecretKey: f.key,
	}
}

// webhookDeliveryRow is how a test sets up and reads a delivery row.
type webhookDeliveryRow struct {
	Status         string
	Attempt        int
	NextAttemptAt  sql.NullTime
	LastStatusCode sql.NullInt64
	LastError      sql.NullString
	DeliveredAt    sql.NullTime
}

// addDelivery inserts a delivery of a tenancy.created event in state row
// and returns its id.
func (f *webhookFixture) addDelivery(row webhookDeliveryRow) string {
	f.t.Helper()
	id := uuid.NewString()
	if row.Status == "" {
		row.Status = deliveryPending
	}
	var next any
	if row.NextAttemptAt.Valid {
		next = store.Now(row.NextAttemptAt.Time)
	}
	f.exec(`INSERT INTO webhook_deliveries (id, organisation_id, endpoint_id, event_id,
		event_type, payload, status, attempt, next_attempt_at, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		id, f.orgID, f.endpointID, uuid.NewString(), "tenancy.created",
		`{"tenancy_id":"t-1","status":"active"}`, row.Status, row.Attempt, next,
		store.Now(webhookNow.Add(-time.Minute)))
	return id
}

func (f *webhookFixture) delivery(id string) webhookDeliveryRow {
	f.t.Helper()
	var r webhookDeliveryRow
	err := f.db.QueryRowContext(context.Background(), `SELECT status, attempt, next_attempt_at,
		last_status_code, last_error, delivered_at FROM webhook_deliveries WHERE id = $1`, id).
		Scan(&r.Status, &r.Attempt, &r.NextAttemptAt, &r.LastStatusCode, &r.LastError,
			&r.DeliveredAt)
	require.NoError(f.t, err)
	return r
}

// webhookEndpointRow is the state of the fixture's endpoint.
type webhookEndpointRow struct {
	Enabled             bool
	DisabledReason      sql.NullString
	ConsecutiveFailures int
	FailingSince        sql.NullTime
}

func (f *webhookFixture) endpoint() webhookEndpointRow {
	f.t.Helper()
	var r webhookEndpointRow
	err := f.db.QueryRowContext(context.Background(), `SELECT enabled, disabled_reason,
		consecutive_failures, failing_since FROM webhook_endpoints WHERE id = $1`,
		f.endpointID).Scan(&r.Enabled, &r.DisabledReason, &r.ConsecutiveFailures,
		&r.FailingSince)
	require.NoError(f.t, err)
	return r
}

// message builds the delivery.requested message for one attempt, as the
// fan-out or the sweeper emits it.
func (f *webhookFixture) message(deliveryID string, attempt int) job.Message {
	f.t.Helper()
	var eventID, eventType string
	err := f.db.QueryRowContext(context.Background(), `SELECT event_id, event_type
		FROM webhook_deliveries WHERE id = $1`, deliveryID).Scan(&eventID, &eventType)
	require.NoError(f.t, err)
	payload, err := json.Marshal(webhookDeliveryRequest{
		DeliveryID: deliveryID, EndpointID: f.endpointID, EventID: eventID,
		EventType: eventType, OrganisationID: f.orgID, Attempt: attempt,
	})
	require.NoError(f.t, err)
	return job.Message{
		ID: uuid.NewString(), Topic: topicWebhookDeliveryRequested, Payload: payload,
		Metadata: map[string]string{job.MetaOrganisationID: f.orgID},
		Handler:  WebhookDeliver, Attempt: 1,
	}
}

// deliver runs the webhookDeliver handler on msg with the clock at now.
func (f *webhookFixture) deliver(now time.Time, msg job.Message) error {
	return NewWebhookDeliver(f.deps(now)).Handle(context.Background(), msg)
}

// outbox returns the events waiting in the outbox for topic.
func (f *webhookFixture) outbox(topic string) []job.Event {
	f.t.Helper()
	rows, err := f.db.PendingOutbox(context.Background(), 10000)
	require.NoError(f.t, err)
	var out []job.Event
	for _, r := range rows {
		if r.Event.Topic == topic {
			out = append(out, r.Event)
		}
	}
	return out
}

// count returns the number of rows a query counts.
func (f *webhookFixture) count(query string, args ...any) int {
	f.t.Helper()
	var n int
	require.NoError(f.t, f.db.QueryRowContext(context.Background(), query, args...).Scan(&n))
	return n
}

// webhookReceiver is a customer endpoint that answers from a script and
// records what it was sent.
type webhookReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	answers  []webhookAnswer
	received []webhookReceived
}

type webhookAnswer struct {
	status     int
	retryAfter string
}

type webhookReceived struct {
	header http.Header
	body   []byte
}

// newWebhookReceiver answers the given answers in turn, then 200.
func newWebhookReceiver(t *testing.T, answers ...webhookAnswer) *webhookReceiver {
	t.Helper()
	rcv := &webhookReceiver{answers: answers}
	rcv.Server = httptest.NewServer(http.HandlerFunc(rcv.serve))
	t.Cleanup(rcv.Close)
	return rcv
}

func (rcv *webhookReceiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rcv.mu.Lock()
	rcv.received = append(rcv.received, webhookReceived{header: r.Header.Clone(), body: body})
	a := webhookAnswer{status: http.StatusOK}
	if len(rcv.answers) > 0 {
		a, rcv.answers = rcv.answers[0], rcv.answers[1:]
	}
	rcv.mu.Unlock()
	if a.retryAfter != "" {
		w.Header().Set("Retry-After", a.retryAfter)
	}
	w.WriteHeader(a.status)
}

func (rcv *webhookReceiver) calls() []webhookReceived {
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	return append([]webhookReceived(nil), rcv.received...)
}
