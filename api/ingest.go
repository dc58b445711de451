package api

import (
	"errors"
	"io"
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/schemas"
	"github.com/millrace/millrace/transport"
)

// maxIdempotencyKey bounds the Idempotency-Key header.
const maxIdempotencyKey = 255

// ingest serves POST /v1/events/{topic}: validate, publish, and answer 202
// only once the transport has taken the message.
type ingest struct{ cfg Config }

func (h *ingest) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	topic := chi.URLParam(r, "topic")
	if !h.cfg.Catalogue.Ingestible(topic) {
		writeProblem(w, http.StatusNotFound, Problem{
			Error: "unknown topic " + topic, Topics: h.ingestible()})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeProblem(w, http.StatusRequestEntityTooLarge,
				Problem{Error: "body over 1 MiB"})
			return
		}
		writeProblem(w, http.StatusBadRequest, Problem{Error: "cannot read body"})
		return
	}
	if err := h.cfg.Registry.Validate(topic, body); err != nil {
		h.badPayload(w, err)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if len(key) > maxIdempotencyKey {
		writeProblem(w, http.StatusBadRequest, Problem{Error: "Idempotency-Key over 255 bytes"})
		return
	}
	id := ""
	if key != "" {
		id = job.StableID("ingest", topic, key)
	}
	ev := job.NewEvent(r.Context(), id, topic, body, "api", h.cfg.Now())
	if key != "" {
		ev.Metadata[job.MetaIdempotencyKey] = key
	}
	if err := h.cfg.Publisher.Publish(topic, transport.ToMessage(r.Context(), ev)); err != nil {
		h.cfg.Logger.WarnContext(r.Context(), "ingest publish refused",
			slog.String("topic", topic), slog.String("error", err.Error()))
		w.Header().Set("Retry-After", "5")
		writeProblem(w, http.StatusServiceUnavailable,
			Problem{Error: "the transport did not take the event; retry later"})
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"id": ev.ID, "topic": topic})
}

func (h *ingest) badPayload(w http.ResponseWriter, err error) {
	var verr *schemas.ValidationError
	switch {
	case errors.As(err, &verr):
		writeProblem(w, http.StatusBadRequest, Problem{
			Error: "payload does not match the topic's schema", Problems: verr.Problems})
	case errors.Is(err, schemas.ErrMalformedJSON):
		writeProblem(w, http.StatusBadRequest, Problem{Error: "body is not valid JSON"})
	default:
		writeProblem(w, http.StatusBadRequest, Problem{Error: err.Error()})
	}
}

func (h *ingest) ingestible() []string {
	var out []string
	for _, t := range h.cfg.Registry.Topics() {
		if h.cfg.Catalogue.Ingestible(t) {
			out = append(out, t)
		}
	}
	return out
}
