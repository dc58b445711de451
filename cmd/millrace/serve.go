package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/millrace/millrace/api"
	"github.com/millrace/millrace/config"
	"github.com/millrace/millrace/cron"
	"github.com/millrace/millrace/middleware"
	"github.com/millrace/millrace/router"
	"github.com/millrace/millrace/schemas"
	"github.com/millrace/millrace/store"
	"github.com/millrace/millrace/telemetry"
	"github.com/millrace/millrace/transport"
)

func serveCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the router, the HTTP API, the outbox relay and the cron ticker",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := loadEnv(cmd)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return e.serve(ctx)
		},
	}
}

// serve starts every part in dependency order and stops them in reverse when
// ctx ends: first the HTTP listener and the ticker stop taking new work, then
// the router drains in-flight handlers, then the relay flushes what they
// emitted.
func (e env) serve(ctx context.Context) error {
	shutdownTracing, err := telemetry.StartTracing(ctx, e.cfg.Tracing)
	if err != nil {
		return err
	}
	defer shutdownTracing(context.Background())

	db, err := e.openStore(ctx, e.cfg.Migrate)
	if err != nil {
		return err
	}
	defer db.Close()
	deps, err := e.deps(db)
	if err != nil {
		return err
	}
	e.warnings(ctx)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(
		collectors.ProcessCollectorOpts{}))
	tr, err := e.openTransport(ctx, db)
	if err != nil {
		return err
	}
	defer tr.Close()
	cat := router.Default()
	rt, err := router.New(router.Config{
		Catalogue: cat, Deps: deps, Transport: tr, Registry: schemas.Default(),
		Ledger: db, Logger: e.logger, Metrics: middleware.NewMetrics(reg),
		CloseTimeout: e.cfg.ShutdownTimeout, Deferrer: router.OutboxDeferrer{DB: db},
	})
	if err != nil {
		return err
	}
	telemetry.RegisterPoisonDepth(reg, db.CountPoison)
	registerQueueDepth(reg, tr, cat)
	ticker, err := e.ticker(db, cat, telemetry.NewCronMetrics(reg))
	if err != nil {
		return err
	}
	return e.run(ctx, runParts{db: db, tr: tr, rt: rt, ticker: ticker, reg: reg, cat: cat})
}

type runParts struct {
	db     *store.DB
	tr     transport.Transport
	rt     *router.Router
	ticker *cron.Ticker
	reg    *prometheus.Registry
	cat    router.Catalogue
}

func (e env) run(ctx context.Context, p runParts) error {
	routerDone := make(chan error, 1)
	go func() { routerDone <- p.rt.Run(context.Background()) }()
	select {
	case <-p.rt.Running():
	case err := <-routerDone:
		return fmt.Errorf("start router: %w", err)
	}

	work, stopWork := context.WithCancel(context.Background())
	defer stopWork()
	g, gctx := errgroup.WithContext(work)
	relay := &transport.Relay{DB: p.db, Publisher: p.rt.Publisher(), Logger: e.logger,
		Interval: e.cfg.RelayInterval}
	g.Go(func() error { return relay.Run(gctx) })
	if e.cfg.CronEnabled {
		g.Go(func() error { return p.ticker.Run(gctx) })
		g.Go(func() error { return e.housekeeping(gctx, p.ticker) })
	}

	srv, ln, err := e.httpServer(p)
	if err != nil {
		return err
	}
	httpDone := make(chan error, 1)
	go func() { httpDone <- srv.Serve(ln) }()
	e.logger.InfoContext(ctx, "millrace serving", slog.String("addr", ln.Addr().String()),
		slog.String("transport", p.tr.Name()))

	select {
	case <-ctx.Done():
	case err := <-httpDone:
		e.logger.ErrorContext(ctx, "http server stopped", slog.String("error", err.Error()))
	case err := <-routerDone:
		e.logger.ErrorContext(ctx, "router stopped", slog.Any("error", err))
	}
	return e.shutdown(srv, p, stopWork, g, relay)
}

func (e env) shutdown(srv *http.Server, p runParts, stopWork func(), g *errgroup.Group,
	relay *transport.Relay) error {
	e.logger.Info("shutting down", slog.Duration("timeout", e.cfg.ShutdownTimeout))
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.ShutdownTimeout)
	defer cancel()
	errs := []error{srv.Shutdown(ctx)}
	errs = append(errs, p.rt.Close())
	stopWork()
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		errs = append(errs, err)
	}
	if _, err := relay.Flush(ctx); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, p.tr.Close())
	e.logger.Info("stopped")
	return errors.Join(errs...)
}

func (e env) httpServer(p runParts) (*http.Server, net.Listener, error) {
	h := api.NewHandler(api.Config{
		Publisher: p.rt.Publisher(), Registry: schemas.Default(), Catalogue: p.cat,
		DB: p.db, Logger: e.logger, APIToken: e.cfg.APIToken, AdminToken: e.cfg.AdminToken,
		Gatherer: p.reg, Metrics: api.NewHTTPMetrics(p.reg),
		CalmonySecrets: e.cfg.CalmonyWebhookSecrets,
		Ready: func(ctx context.Context) error {
			if err := p.db.Ping(ctx); err != nil {
				return fmt.Errorf("database: %w", err)
			}
			if err := p.tr.Ready(ctx); err != nil {
				return fmt.Errorf("transport: %w", err)
			}
			if !p.rt.IsRunning() {
				return errors.New("router not running")
			}
			return nil
		},
	})
	ln, err := net.Listen("tcp", e.cfg.HTTPAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen on %s: %w", e.cfg.HTTPAddr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	return srv, ln, nil
}

// registerQueueDepth exposes the backlog of every subscription when the
// transport can tell it.
func registerQueueDepth(reg prometheus.Registerer, tr transport.Transport, cat router.Catalogue) {
	b, ok := tr.(telemetry.Backlogger)
	if !ok {
		return
	}
	var subs []telemetry.TopicGroup
	for _, j := range cat.Jobs {
		for _, s := range j.Subscriptions {
			subs = append(subs, telemetry.TopicGroup{Topic: s.Topic, Group: s.Group()})
		}
	}
	telemetry.RegisterQueueDepth(reg, b, subs)
}

// warnings says at start-up what an operator must know about this mode.
func (e env) warnings(ctx context.Context) {
	if e.cfg.Transport == config.TransportMemory {
		e.logger.WarnContext(ctx, "memory transport: messages in flight are lost on restart; "+
			"use the postgres or kafka transport in production")
	}
	if e.cfg.APIToken == "" {
		e.logger.WarnContext(ctx, "no MILLRACE_API_TOKEN: the ingest API serves loopback callers only")
	}
	if len(e.cfg.SecretKey) == 0 {
		e.logger.WarnContext(ctx, "no MILLRACE_SECRET_KEY: webhook secrets are stored in the clear")
	}
	if len(e.cfg.CalmonyWebhookSecrets) == 0 {
		e.logger.WarnContext(ctx, "no MILLRACE_CALMONY_WEBHOOK_SECRETS: "+
			"every Calmony Pay webhook is refused")
	}
	if e.cfg.CalmonyAPIKey == "" {
		e.logger.WarnContext(ctx, "no MILLRACE_CALMONY_API_KEY: billing calls fail as not configured")
	}
	if t := e.cfg.Tracing; t.Enabled() {
		e.logger.InfoContext(ctx, "exporting traces", slog.String("exporter", t.Exporter),
			slog.String("protocol", t.Protocol), slog.String("service", t.ServiceName))
	}
	if e.cfg.SMTPURL == "" {
		e.logger.InfoContext(ctx, "no MILLRACE_SMTP_URL: mail is written as .eml files",
			slog.String("dir", e.cfg.MailDir))
	}
}

// housekeeping prunes cron slot rows older than a week, hourly; each
// schedule's latest row is kept, since it marks where the schedule stands.
func (e env) housekeeping(ctx context.Context, t *cron.Ticker) error {
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	for {
		if _, err := t.Prune(ctx, time.Now().Add(-7*24*time.Hour)); err != nil && ctx.Err() == nil {
			e.logger.WarnContext(ctx, "prune cron slots", slog.String("error", err.Error()))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
