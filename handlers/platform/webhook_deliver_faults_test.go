package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/providers/webhooks"
)

func TestWebhookDeliverTimeoutIsRetried(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	f := newWebhookFixture(t, srv.URL)
	f.client = webhooks.NewClient(webhooks.Config{AllowPrivate: true,
		Timeout: 50 * time.Millisecond})
	id := f.addDelivery(webhookDeliveryRow{})

	require.NoError(t, f.deliver(webhookNow, f.message(id, 1)))

	got := f.delivery(id)
	require.Equal(t, deliveryPending, got.Status)
	require.False(t, got.LastStatusCode.Valid)
	require.Contains(t, got.LastError.String, "deadline exceeded")
	require.True(t, got.NextAttemptAt.Time.Equal(webhookNow.Add(time.Minute)))
}

func TestWebhookDeliverHandlerDeadlineCountsAsATimeout(t *testing.T) {
	t.Parallel()
	// The handler's deadline passes the moment the endpoint has the
	// request, which it then never answers.
	ctx := &expiringContext{Context: context.Background(), done: make(chan struct{})}
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		ctx.expire()
		<-release
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	f := newWebhookFixture(t, srv.URL)
	id := f.addDelivery(webhookDeliveryRow{})

	err := NewWebhookDeliver(f.deps(webhookNow)).Handle(ctx, f.message(id, 1))

	require.NoError(t, err, "recorded in the data, not retried by the router")
	got := f.delivery(id)
	require.Equal(t, deliveryPending, got.Status)
	require.Equal(t, 1, got.Attempt)
	require.Contains(t, got.LastError.String, "deadline exceeded")
}

// expiringContext reaches its deadline when told to, not at a time.
type expiringContext struct {
	context.Context
	once sync.Once
	done chan struct{}
}

func (c *expiringContext) expire()               { c.once.Do(func() { close(c.done) }) }
func (c *expiringContext) Done() <-chan struct{} { return c.done }

func (c *expiringContext) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

func TestWebhookDeliverShutdownRecordsNothing(t *testing.T) {
	t.Parallel()
	rcv := newWebhookReceiver(t)
	f := newWebhookFixture(t, rcv.URL)
	id := f.addDelivery(webhookDeliveryRow{})
	msg := f.message(id, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	err := NewWebhookDeliver(f.deps(webhookNow)).Handle(ctx, msg)

	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, job.ClassRetryable, job.Classify(err))
	require.Empty(t, rcv.calls())
	require.Equal(t, deliveryPending, f.delivery(id).Status)
	f.requireNothingWritten()
}

func TestWebhookDeliverRejectsMalformedMessages(t *testing.T) {
	t.Parallel()
	rcv := newWebhookReceiver(t)
	f := newWebhookFixture(t, rcv.URL)
	id := f.addDelivery(webhookDeliveryRow{})
	good := f.message(id, 1)
	var req webhookDeliveryRequest
	require.NoError(t, json.Unmarshal(good.Payload, &req))
	with := func(edit func(*webhookDeliveryRequest)) job.Message {
		r := req
		edit(&r)
		m := good
		m.Payload, _ = json.Marshal(r)
		return m
	}
	otherOrg := good
	otherOrg.Metadata = map[string]string{job.MetaOrganisationID: "another-org"}
	notJSON := good
	notJSON.Payload = []byte(`{"delivery_id":`)

	tests := map[string]job.Message{
		"not JSON":             notJSON,
		"attempt zero":         with(func(r *webhookDeliveryRequest) { r.Attempt = 0 }),
		"no delivery id":       with(func(r *webhookDeliveryRequest) { r.DeliveryID = "" }),
		"organisation differs": otherOrg,
		"endpoint differs": with(func(r *webhookDeliveryRequest) {
			r.EndpointID = "5d9c1b2a-7e3f-4a1b-9c8d-2e4f6a8b0c1d"
		}),
		"event differs": with(func(r *webhookDeliveryRequest) { r.EventType = "tenancy.ended" }),
	}
	for name, msg := range tests {
		t.Run(name, func(t *testing.T) {
			err := f.deliver(webhookNow, msg)
			require.Error(t, err)
			require.Equal(t, job.ClassPermanent, job.Classify(err))
		})
	}
	require.Empty(t, rcv.calls())
	require.Equal(t, deliveryPending, f.delivery(id).Status)
	require.Zero(t, f.delivery(id).Attempt)
	f.requireNothingWritten()
}

func TestWebhookDeliverWithoutItsSecretIsPermanent(t *testing.T) {
	t.Parallel()
	rcv := newWebhookReceiver(t)
	f := newWebhookFixture(t, rcv.URL)
	f.key = bytes.Repeat([]byte{0x11}, 32) // not the key the secret was sealed with
	id := f.addDelivery(webhookDeliveryRow{})

	err := f.deliver(webhookNow, f.message(id, 1))
	require.Equal(t, job.ClassPermanent, job.Classify(err))
	require.ErrorIs(t, err, webhooks.ErrSealedSecret)
	require.Empty(t, rcv.calls())
	require.Equal(t, deliveryPending, f.delivery(id).Status, "left for a replay")
	f.requireNothingWritten()
}

func TestWebhookDeliverDatabaseErrorsAreRetryable(t *testing.T) {
	t.Parallel()
	rcv := newWebhookReceiver(t)
	f := newWebhookFixture(t, rcv.URL)
	id := f.addDelivery(webhookDeliveryRow{})
	msg := f.message(id, 1)
	require.NoError(t, f.db.Close())

	err := f.deliver(webhookNow, msg)
	require.Error(t, err)
	require.Equal(t, job.ClassRetryable, job.Classify(err))
	require.Empty(t, rcv.calls())
}

func TestWebhookDeliverWithoutAClientIsPermanent(t *testing.T) {
	t.Parallel()
	rcv := newWebhookReceiver(t)
	f := newWebhookFixture(t, rcv.URL)
	id := f.addDelivery(webhookDeliveryRow{})
	d := f.deps(webhookNow)
	d.Webhooks = nil

	err := NewWebhookDeliver(d).Handle(context.Background(), f.message(id, 1))
	require.Equal(t, job.ClassPermanent, job.Classify(err))
	require.Empty(t, rcv.calls())
	f.requireNothingWritten()
}
