package platform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/providers/webhooks"
	"github.com/millrace/millrace/store"
)

// webhookDeliveryRequest is the payload of
// platform.webhook.delivery.requested.
type webhookDeliveryRequest struct {
	DeliveryID     string `json:"delivery_id"`
	EndpointID     string `json:"endpoint_id"`
	EventID        string `json:"event_id"`
	EventType      string `json:"event_type"`
	OrganisationID string `json:"organisation_id"`
	Attempt        int    `json:"attempt"`
}

// webhookBody is what a customer endpoint receives.
type webhookBody struct {
	ID             string          `json:"id"`
	Type           string          `json:"type"`
	Created        int64           `json:"created"`
	OrganisationID string          `json:"organisation_id"`
	Data           json.RawMessage `json:"data"`
}

// webhookRecordTimeout bounds writing an attempt's outcome once the
// attempt was made.
const webhookRecordTimeout = 10 * time.Second

type webhookDeliver struct {
	d     Deps
	clock job.Clock
	log   *slog.Logger
}

// NewWebhookDeliver returns the webhookDeliver handler: it sends one
// attempt of one delivery to its customer endpoint and records the outcome
// in the delivery row. A failed endpoint is handled in the data (the retry
// sweeper picks up next_attempt_at), not by failing the message; only a
// malformed message, or a delivery this process cannot sign, is permanent.
func NewWebhookDeliver(d Deps) job.Handler {
	return &webhookDeliver{d: d, clock: webhookClock(d), log: webhookLogger(d)}
}

// Handle implements job.Handler.
func (h *webhookDeliver) Handle(ctx context.Context, msg job.Message) error {
	req, err := decodeWebhookDeliveryRequest(msg)
	if err != nil {
		return job.Permanent(err)
	}
	ctx = webhookMessageContext(ctx, msg)
	name := webhookHandlerName(msg, WebhookDeliver)
	key := webhookAttemptKey(req.DeliveryID, req.Attempt)
	log := h.log.With(slog.String("handler", name), slog.String("delivery_id", req.DeliveryID),
		slog.String("organisation_id", req.OrganisationID), slog.Int("attempt", req.Attempt))

	// A redelivered message must not reach the customer twice; the claim
	// in the transaction below stays the authority.
	done, err := h.d.DB.IsProcessed(ctx, name, key)
	if err != nil {
		return err
	}
	if done {
		log.DebugContext(ctx, "webhook delivery skipped", slog.String("outcome", "duplicate"))
		return nil
	}
	dl, ep, skip, err := h.load(ctx, req)
	if err != nil {
		return err
	}
	if skip != "" {
		log.DebugContext(ctx, "webhook delivery skipped", slog.String("outcome", skip))
		return nil
	}
	reason, err := h.unsendable(dl, ep)
	if err != nil {
		return err
	}
	if reason != "" {
		return h.abandon(ctx, name, key, dl, reason, log)
	}

	out, err := h.send(ctx, req, dl, ep)
	if err != nil {
		return err
	}
	// The attempt has happened: record it even if the handler's time ran
	// out meanwhile, so that the endpoint is not sent it again for nothing.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), webhookRecordTimeout)
	defer cancel()
	err = webhookHandleOnce(rctx, h.d.DB, name, key, func(tx *store.Tx) error {
		return h.record(rctx, tx, req, dl, ep, out)
	})
	if err != nil {
		return err
	}
	log.DebugContext(ctx, "webhook delivery attempted", slog.String("outcome", out.Status),
		slog.Int("status_code", out.StatusCode))

	return nil
}

func decodeWebhookDeliveryRequest(msg job.Message) (webhookDeliveryRequest, error) {
	var req webhookDeliveryRequest
	if err := json.Unmarshal(msg.Payload, &req); err != nil {
		return req, fmt.Errorf("decode webhook delivery request: %w", err)
	}
	if req.DeliveryID == "" || req.EndpointID == "" || req.EventID == "" ||
		req.EventType == "" || req.OrganisationID == "" || req.Attempt < 1 {
		return req, errors.New("decode webhook delivery request: missing field or attempt < 1")
	}
	if org := msg.OrganisationID(); org != "" && org != req.OrganisationID {
		return req, errors.New(
			"decode webhook delivery request: organisation differs from metadata")
	}
	return req, nil
}

// load reads the delivery and its endpoint. skip names the reason when the
// message needs no work: the delivery is gone, finished, past this attempt
// or not yet due. A message that contradicts its delivery row is malformed.
func (h *webhookDeliver) load(ctx context.Context, req webhookDeliveryRequest) (
	dl *webhookDelivery, ep *webhookEndpoint, skip string, err error) {
	dl, err = loadWebhookDelivery(ctx, h.d.DB, req.OrganisationID, req.DeliveryID)
	switch {
	case err != nil:
		return nil, nil, "", err
	case dl == nil:
		return nil, nil, "delivery_not_found", nil
	case dl.EndpointID != req.EndpointID || dl.EventID != req.EventID ||
		dl.EventType != req.EventType:
		return nil, nil, "", job.Permanentf("webhook delivery %s: message does not match the row",
			req.DeliveryID)
	case dl.Status != deliveryPending:
		return nil, nil, "already_" + dl.Status, nil
	case req.Attempt != dl.Attempt+1:
		return nil, nil, "stale_attempt", nil
	case dl.NextAttemptAt.Valid && dl.NextAttemptAt.Time.After(h.clock.Now()):
		// Early: the sweeper requests it again when it is due.
		return nil, nil, "not_due", nil
	}
	ep, err = loadWebhookEndpoint(ctx, h.d.DB, req.OrganisationID, req.EndpointID)
	if err != nil {
		return nil, nil, "", err
	}
	return dl, ep, "", nil
}

// unsendable names why the delivery must be abandoned unsent, or "".
func (h *webhookDeliver) unsendable(dl *webhookDelivery, ep *webhookEndpoint) (string, error) {
	if ep == nil {
		return "endpoint deleted", nil
	}
	if !ep.Enabled {
		return "endpoint disabled", nil
	}
	ok, err := ep.subscribes(dl.EventType)
	if err != nil {
		// The endpoint row is damaged: a person has to look, and the
		// delivery stays pending so the message can be replayed.
		return "", job.Permanent(err)
	}
	if !ok {
		return "endpoint does not subscribe to " + dl.EventType, nil
	}
	return "", nil
}

func (h *webhookDeliver) abandon(ctx context.Context, name, key string, dl *webhookDelivery,
	reason string, log *slog.Logger) error {
	err := webhookHandleOnce(ctx, h.d.DB, name, key, func(tx *store.Tx) error {
		_, err := abandonWebhookDelivery(ctx, tx, dl, reason)
		return err
	})
	if err == nil {
		log.DebugContext(ctx, "webhook delivery abandoned", slog.String("outcome", "abandoned"))
	}
	return err
}

// send makes the attempt, outside any transaction, and classifies it.
func (h *webhookDeliver) send(ctx context.Context, req webhookDeliveryRequest,
	dl *webhookDelivery, ep *webhookEndpoint) (webhookOutcome, error) {
	if h.d.Webhooks == nil {
		return webhookOutcome{}, job.Permanentf("deliver webhook: no webhook client configured")
	}
	body, err := json.Marshal(webhookBody{
		ID: dl.EventID, Type: dl.EventType, Created: dl.CreatedAt.Unix(),
		OrganisationID: dl.OrganisationID, Data: json.RawMessage(dl.Payload),
	})
	if err != nil {
		return webhookOutcome{}, job.Permanentf("build webhook body of %s: %w", dl.ID, err)
	}
	secrets, err := h.openSecrets(ep)
	if err != nil {
		return webhookOutcome{}, job.Permanent(err)
	}

	now := h.clock.Now()
	resp, err := h.d.Webhooks.Deliver(ctx, webhooks.Request{
		URL: ep.URL, ID: dl.EventID, Timestamp: now, Body: body, Secrets: secrets,
	})
	if err != nil && errors.Is(ctx.Err(), context.Canceled) {
		// Shutting down: not the endpoint's fault, so nothing is recorded
		// and the message is tried again. The handler's own deadline
		// passing first is the endpoint being slow, a timeout like any
		// other.
		return webhookOutcome{}, err
	}

	return classifyWebhookAttempt(req.Attempt, resp, err, now), nil
}

// openSecrets returns the endpoint's signing secrets, current first.
func (h *webhookDeliver) openSecrets(ep *webhookEndpoint) ([]string, error) {
	current, err := webhooks.OpenSecret(h.d.SecretKey, ep.SecretEnc)
	if err != nil {
		return nil, fmt.Errorf("open secret of endpoint %s: %w", ep.ID, err)
	}
	secrets := []string{current}
	if ep.PreviousSecretEnc.Valid && ep.PreviousSecretEnc.String != "" {
		prev, err := webhooks.OpenSecret(h.d.SecretKey, ep.PreviousSecretEnc.String)
		if err != nil {
			return nil, fmt.Errorf("open previous secret of endpoint %s: %w", ep.ID, err)
		}
		secrets = append(secrets, prev)
	}
	return secrets, nil
}

// record writes the attempt's outcome: the delivery row, the endpoint's
// failure streak, and, when the endpoint has to be disabled, the disable
// and its event.
func (h *webhookDeliver) record(ctx context.Context, tx *store.Tx, req webhookDeliveryRequest,
	dl *webhookDelivery, ep *webhookEndpoint, out webhookOutcome) error {
	now := h.clock.Now()
	if ok, err := recordWebhookAttempt(ctx, tx, dl, req.Attempt, out, now); !ok || err != nil {
		return err
	}
	if !out.Failed {
		return resetWebhookFailures(ctx, tx, ep)
	}
	failures, since, err := countWebhookFailure(ctx, tx, ep, now)
	if err != nil {
		return err
	}
	reason := webhookDisableReason(out.Gone, failures, since, now)
	if reason == "" {
		return nil
	}
	disabled, err := disableWebhookEndpoint(ctx, tx, ep, reason,
		webhookAttemptKey(dl.ID, req.Attempt), now)
	if err != nil || !disabled {
		return err
	}
	h.log.InfoContext(ctx, "webhook endpoint disabled", slog.String("endpoint_id", ep.ID),
		slog.String("organisation_id", ep.OrganisationID), slog.String("reason", reason))
	if out.Status != deliveryPending {
		return nil
	}
	// No retry can reach a disabled endpoint.
	pending := *dl
	pending.Attempt = req.Attempt
	_, err = abandonWebhookDelivery(ctx, tx, &pending, out.Error+"; endpoint disabled")

	return err
}

// webhookHandleOnce runs fn in db.Handle and treats a message handled
// before as done.
func webhookHandleOnce(ctx context.Context, db *store.DB, name, key string,
	fn func(tx *store.Tx) error) error {
	err := db.Handle(ctx, name, key, fn)
	if errors.Is(err, store.ErrAlreadyProcessed) {
		return nil
	}
	return err
}

// webhookClock, webhookLogger, webhookHandlerName and webhookMessageContext
// fill in what a test or a partial wiring leaves out.
func webhookClock(d Deps) job.Clock {
	if d.Clock == nil {
		return job.SystemClock{}
	}
	return d.Clock
}

func webhookLogger(d Deps) *slog.Logger {
	if d.Logger == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return d.Logger
}

func webhookHandlerName(msg job.Message, fallback string) string {
	if msg.Handler == "" {
		return fallback
	}
	return msg.Handler
}

// webhookMessageContext makes msg the cause of the events emitted while
// handling it, when the router has not done so already.
func webhookMessageContext(ctx context.Context, msg job.Message) context.Context {
	if _, ok := job.MessageFrom(ctx); ok {
		return ctx
	}
	return job.WithMessage(ctx, msg)
}
