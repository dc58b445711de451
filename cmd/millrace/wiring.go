package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/millrace/millrace/config"
	"github.com/millrace/millrace/cron"
	"github.com/millrace/millrace/handlers/billing"
	"github.com/millrace/millrace/handlers/platform"
	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/providers/calmonypay"
	"github.com/millrace/millrace/providers/mail"
	"github.com/millrace/millrace/providers/webhooks"
	"github.com/millrace/millrace/router"
	"github.com/millrace/millrace/store"
	"github.com/millrace/millrace/telemetry"
)

func registerConfigFlags(cmd *cobra.Command) {
	config.RegisterFlags(cmd.PersistentFlags())
}

// env bundles what every subcommand starts from.
type env struct {
	cfg    config.Config
	logger *slog.Logger
}

func loadEnv(cmd *cobra.Command) (env, error) {
	cfg, err := config.Load(cmd.Flags(), os.LookupEnv)
	if err != nil {
		return env{}, err
	}
	return env{cfg: cfg, logger: telemetry.NewLogger(os.Stderr, cfg.LogLevel, cfg.LogFormat)}, nil
}

// openStore opens the database and, when asked, migrates it.
func (e env) openStore(ctx context.Context, migrate bool) (*store.DB, error) {
	db, err := store.Open(ctx, e.cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	if migrate {
		n, err := db.Migrate(ctx)
		if err != nil {
			db.Close()
			return nil, err
		}
		if n > 0 {
			e.logger.InfoContext(ctx, "database migrated", slog.Int("applied", n))
		}
	}
	return db, nil
}

// deps builds the handlers' dependencies.
func (e env) deps(db *store.DB) (*router.Deps, error) {
	var sender mail.Sender
	if e.cfg.SMTPURL != "" {
		s, err := mail.NewSMTP(e.cfg.SMTPURL)
		if err != nil {
			return nil, fmt.Errorf("configure mail: %w", err)
		}
		sender = s
	} else {
		sender = mail.NewDir(e.cfg.MailDir, e.logger)
	}
	return &router.Deps{Platform: platform.Deps{
		DB:         db,
		Clock:      job.SystemClock{},
		Location:   e.cfg.Timezone,
		Logger:     e.logger,
		Mail:       sender,
		MailFrom:   e.cfg.MailFrom,
		AppBaseURL: e.cfg.AppBaseURL,
		Webhooks:   webhooks.NewClient(webhooks.Config{AllowPrivate: e.cfg.WebhookAllowPrivate}),
		SecretKey:  e.cfg.SecretKey,
	}, Billing: billing.Deps{
		DB:       db,
		Clock:    job.SystemClock{},
		Location: e.cfg.Timezone,
		Logger:   e.logger,
		Calmony: calmonypay.NewClient(calmonypay.Config{BaseURL: e.cfg.CalmonyAPIURL,
			APIKey: e.cfg.CalmonyAPIKey, Logger: e.logger}),
		Mail:       sender,
		MailFrom:   e.cfg.MailFrom,
		AppBaseURL: e.cfg.AppBaseURL,
		LiveMode:   e.cfg.CalmonyLiveMode,
	}}, nil
}

// ticker builds the cron ticker of the catalogue's schedules; m may be nil.
func (e env) ticker(db *store.DB, cat router.Catalogue, m *telemetry.CronMetrics) (*cron.Ticker,
	error) {
	cfg := cron.Config{
		DB:        db,
		Schedules: cat.Schedules,
		Location:  e.cfg.Timezone,
		Clock:     job.SystemClock{},
		Instance:  e.cfg.Instance,
		Logger:    e.logger,
		Interval:  time.Second,
	}
	if m != nil {
		cfg.OnFireFunc, cfg.OnMissFunc = m.OnFire, m.OnMiss
		for _, s := range cat.Schedules {
			m.Init(s.Name)
		}
	}
	return cron.NewTicker(cfg)
}
