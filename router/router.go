package router

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/millrace/millrace/middleware"
	"github.com/millrace/millrace/schemas"
	"github.com/millrace/millrace/telemetry"
	"github.com/millrace/millrace/transport"
)

// Config assembles a Router.
type Config struct {
	Catalogue Catalogue
	Deps      *Deps
	Transport transport.Transport
	Registry  *schemas.Registry
	// Ledger answers the idempotency check; nil turns the check off.
	Ledger  middleware.Ledger
	Logger  *slog.Logger
	Metrics *middleware.Metrics
	// Tracer defaults to the global provider's.
	Tracer trace.Tracer
	// DefaultRetry is the policy of jobs that name none. Default
	// middleware.DefaultRetryPolicy.
	DefaultRetry middleware.RetryPolicy
	// Deferrer takes retries whose backoff is longer than the policy's
	// DeferAfter (usually an OutboxDeferrer); nil sleeps every backoff in
	// the process.
	Deferrer middleware.Deferrer
	// CloseTimeout bounds how long Close waits for in-flight handlers.
	// Default 30s.
	CloseTimeout time.Duration
}

// Router runs every handler of the catalogue on a transport.
type Router struct {
	cfg       Config
	wm        *message.Router
	publisher message.Publisher
	tracer    trace.Tracer
	stopping  atomic.Bool
}

// New checks the catalogue against the schemas and builds the router. It
// refuses a catalogue with any mismatch, naming each.
func New(cfg Config) (*Router, error) {
	if cfg.Registry == nil {
		cfg.Registry = schemas.Default()
	}
	if err := cfg.Catalogue.Check(cfg.Registry); err != nil {
		return nil, fmt.Errorf("catalogue does not match schemas: %w", err)
	}
	if cfg.DefaultRetry == (middleware.RetryPolicy{}) {
		cfg.DefaultRetry = middleware.DefaultRetryPolicy
	}
	if cfg.CloseTimeout == 0 {
		cfg.CloseTimeout = 30 * time.Second
	}
	r := &Router{cfg: cfg, tracer: cfg.Tracer}
	if r.tracer == nil {
		r.tracer = otel.Tracer(telemetry.TracerName)
	}
	r.publisher = transport.Guard(cfg.Transport.Publisher(), cfg.Registry.Has)
	wm, err := message.NewRouter(message.RouterConfig{CloseTimeout: cfg.CloseTimeout},
		telemetry.WatermillLogger(cfg.Logger, map[slog.Level]slog.Level{
			slog.LevelInfo: slog.LevelDebug,
		}))
	if err != nil {
		return nil, fmt.Errorf("new router: %w", err)
	}
	r.wm = wm
	if err := r.addHandlers(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Router) addHandlers() error {
	for _, j := range r.cfg.Catalogue.Jobs {
		for _, s := range j.Subscriptions {
			sub, err := r.subscriber(j, s)
			if err != nil {
				return fmt.Errorf("subscribe %s to %s: %w", s.Handler, s.Topic, err)
			}
			h := s.New(r.cfg.Deps)
			fn := wrap(noPublish(adapt(h, s)), r.chain(j, s))
			r.wm.AddConsumerHandler(s.Handler, s.Topic, sub, func(msg *message.Message) error {
				_, err := fn(msg)
				return err
			})
		}
	}
	return nil
}

// SubscriberTuner is a transport whose subscribers take a job's concurrency
// and ordering. Other transports get Subscriber(group) and ignore both.
type SubscriberTuner interface {
	SubscriberWith(group string, concurrency int, unordered bool) (message.Subscriber, error)
}

func (r *Router) subscriber(j Job, s Subscription) (message.Subscriber, error) {
	if t, ok := r.cfg.Transport.(SubscriberTuner); ok {
		return t.SubscriberWith(s.Group(), max(j.Concurrency, 1), j.Unordered)
	}
	return r.cfg.Transport.Subscriber(s.Group())
}

// Publisher returns the guarded publisher: unknown topics are errors, and
// trace context travels in metadata.
func (r *Router) Publisher() message.Publisher { return r.publisher }

// Run runs the handlers until ctx is done or Close is called.
func (r *Router) Run(ctx context.Context) error { return r.wm.Run(ctx) }

// Running is closed once every handler is subscribed.
func (r *Router) Running() chan struct{} { return r.wm.Running() }

// IsRunning reports whether the router is running and not closed.
func (r *Router) IsRunning() bool { return r.wm.IsRunning() && !r.wm.IsClosed() }

// Close stops taking messages and waits for in-flight handlers. Deliveries
// cancelled by the shutdown are nacked, not poisoned.
func (r *Router) Close() error {
	r.stopping.Store(true)
	return r.wm.Close()
}
