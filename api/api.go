// Package api serves Millrace's HTTP interface with chi: event ingest,
// health and readiness, metrics, and the admin JSON API.
package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/go-chi/chi/v5"
	chimw "github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/millrace/millrace/schemas"
	"github.com/millrace/millrace/store"
)

// MaxBodyBytes caps an ingest request body.
const MaxBodyBytes = 1 << 20

// Catalogue is what the API needs to know of the catalogue.
type Catalogue interface {
	Ingestible(topic string) bool
}

// Config configures the HTTP handler.
type Config struct {
	Publisher message.Publisher
	Registry  *schemas.Registry
	Catalogue Catalogue
	DB        *store.DB
	Logger    *slog.Logger
	// APIToken guards ingest; empty serves loopback callers only.
	APIToken string
	// AdminToken guards /admin; empty turns it off.
	AdminToken string
	// Ready reports whether the service can take work (database, transport,
	// router); nil means always.
	Ready func(ctx context.Context) error
	// Gatherer serves /metrics; nil leaves it out.
	Gatherer prometheus.Gatherer
	// Metrics counts requests by route and status; nil leaves them out.
	Metrics *HTTPMetrics
	// Now is the clock; default time.Now.
	Now func() time.Time
	// CalmonySecrets verify POST /webhooks/calmony-pay (two during a
	// rotation); with none, every Calmony webhook is refused. DB stores the
	// events and their outbox messages.
	CalmonySecrets []string
	// PayloadKey seals stored webhook payloads at rest (MILLRACE_SECRET_KEY);
	// empty stores them marked plain, for development.
	PayloadKey []byte
	// WebhookMetrics counts inbound webhooks by outcome; nil counts nothing.
	WebhookMetrics *prometheus.CounterVec
}

// NewHandler returns the HTTP handler of the whole API.
func NewHandler(cfg Config) http.Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := chi.NewRouter()
	r.Use(routeObserver(cfg.Metrics), chimw.Recoverer)
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", cfg.readyz)
	if cfg.Gatherer != nil {
		r.Handle("/metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	}
	if cfg.DB != nil {
		r.Post("/webhooks/calmony-pay", (&calmonyWebhook{cfg: cfg}).ServeHTTP)
	}
	ing := &ingest{cfg: cfg}
	r.With(cfg.requireAPIAuth).Post("/v1/events/{topic}", ing.ServeHTTP)
	if cfg.AdminToken != "" {
		r.Route("/admin", func(r chi.Router) {
			r.Use(cfg.requireAdminAuth)
			adminRoutes(r, cfg)
		})
	}
	return traced(r)
}

func (cfg Config) readyz(w http.ResponseWriter, r *http.Request) {
	if cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := cfg.Ready(ctx); err != nil {
			writeJSON(w, http.StatusServiceUnavailable,
				map[string]string{"status": "unready", "reason": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// Problem is the body of every error answer.
type Problem struct {
	Error    string            `json:"error"`
	Problems []schemas.Problem `json:"problems,omitempty"`
	Topics   []string          `json:"known_topics,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeProblem(w http.ResponseWriter, status int, p Problem) { writeJSON(w, status, p) }
