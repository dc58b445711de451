package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/providers/calmonypay"
	"github.com/millrace/millrace/providers/webhooks"
	"github.com/millrace/millrace/store"
)

// calmonyProvider names Calmony Pay in inbound_webhook_events and sources.
const calmonyProvider = "calmony_pay"

// Outcomes of a Calmony webhook, as counted.
const (
	webhookQueued    = "queued"
	webhookIgnored   = "ignored"
	webhookDuplicate = "duplicate"
	webhookRejected  = "rejected"
	webhookMalformed = "malformed"
	webhookFailed    = "failed"
)

// errWebhookDuplicate ends the transaction of an event stored before.
var errWebhookDuplicate = errors.New("webhook event already stored")

// NewWebhookMetrics registers millrace_webhooks_received_total{provider,
// outcome} with reg and returns it for Config.WebhookMetrics.
func NewWebhookMetrics(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "millrace_webhooks_received_total",
		Help: "Inbound provider webhooks by provider and outcome.",
	}, []string{"provider", "outcome"})
	reg.MustRegister(c)
	return c
}

// calmonyWebhook serves POST /webhooks/calmony-pay: verify the signature over
// the raw body, decode the event, then store it and queue its message in one
// transaction. The message leaves through the outbox, so it is published if
// and only if the event row committed.
type calmonyWebhook struct{ cfg Config }

func (h *calmonyWebhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	now := h.cfg.Now()
	sig := r.Header.Get(calmonypay.SignatureHeader)
	if err := calmonypay.Verify(sig, body, h.cfg.CalmonySecrets, now); err != nil {
		h.count(webhookRejected)
		h.cfg.Logger.WarnContext(ctx, "calmony webhook refused",
			slog.String("reason", err.Error()))
		writeProblem(w, http.StatusUnauthorized, Problem{Error: "invalid signature"})
		return
	}
	ev, err := calmonypay.ParseEvent(body)
	if err != nil {
		h.count(webhookMalformed)
		writeProblem(w, http.StatusBadRequest, Problem{Error: "body is not a Calmony event"})
		return
	}
	topic, handled := calmonypay.TopicFor(ev.Type)
	if handled {
		if err := h.cfg.Registry.Validate(topic, body); err != nil {
			h.count(webhookMalformed)
			writeProblem(w, http.StatusBadRequest,
				Problem{Error: "event does not match its topic's schema"})
			return
		}
	}
	outcome, err := h.store(ctx, ev, topic, body)
	if err != nil {
		h.count(webhookFailed)
		h.cfg.Logger.ErrorContext(ctx, "calmony webhook not stored",
			slog.String("event_type", ev.Type), slog.String("error", err.Error()))
		w.Header().Set("Retry-After", "5")
		writeProblem(w, http.StatusServiceUnavailable, Problem{Error: "try again"})
		return
	}
	h.count(outcome)
	h.cfg.Logger.InfoContext(ctx, "calmony webhook received",
		slog.String("event_type", ev.Type), slog.String("outcome", outcome))
	writeJSON(w, http.StatusOK, map[string]any{"received": true, "outcome": outcome})
}

// readBody reads the raw body once, capped at MaxBodyBytes, and answers
// the error itself when it cannot.
func (h *calmonyWebhook) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err == nil {
		return body, true
	}
	h.count(webhookMalformed)
	status := http.StatusBadRequest
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		status = http.StatusRequestEntityTooLarge
	}
	writeProblem(w, status, Problem{Error: "cannot read body"})
	return nil, false
}

// store records the event and, for a type some job handles, queues its
// message, in one transaction. It returns the outcome.
func (h *calmonyWebhook) store(ctx context.Context, ev calmonypay.Event, topic string,
	body []byte) (string, error) {
	now := store.Now(h.cfg.Now())
	outcome := webhookIgnored
	if topic != "" {
		outcome = webhookQueued
	}
	sealed, err := webhooks.SealSecret(h.cfg.PayloadKey, string(body))
	if err != nil {
		return "", fmt.Errorf("seal webhook payload: %w", err)
	}
	err = h.cfg.DB.InTx(ctx, func(tx *store.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO inbound_webhook_events (id, provider,
			provider_event_id, event_type, topic, received_at, payload_enc, processing_status)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (provider, provider_event_id) DO NOTHING`,
			job.NewID(), calmonyProvider, ev.ID, ev.Type, store.Nullable(topic), now,
			sealed, outcome)
		if err != nil {
			return fmt.Errorf("store webhook event: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store webhook event: %w", err)
		} else if n == 0 {
			return errWebhookDuplicate
		}
		if topic == "" {
			return nil
		}
		msg := job.NewEvent(ctx, job.StableID("calmony", ev.ID), topic, body,
			"webhook:"+calmonyProvider, now)
		msg.Metadata[job.MetaIdempotencyKey] = ev.ID
		return tx.Enqueue(ctx, msg)
	})
	if errors.Is(err, errWebhookDuplicate) {
		return webhookDuplicate, nil
	}
	return outcome, err
}

func (h *calmonyWebhook) count(outcome string) {
	if h.cfg.WebhookMetrics != nil {
		h.cfg.WebhookMetrics.WithLabelValues(calmonyProvider, outcome).Inc()
	}
}
