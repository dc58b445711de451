// Package config reads Millrace's configuration once, from flags and MILLRACE_*
// environment variables, with defaults that run the embedded mode: the
// in-memory transport, a SQLite file under ./data and mail written to
// ./data/mail.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/millrace/millrace/telemetry"
)

// Transports Millrace can run on.
const (
	TransportMemory   = "memory"
	TransportPostgres = "postgres"
	TransportKafka    = "kafka"
)

// Config is the whole configuration of a Millrace process.
type Config struct {
	// Transport is memory, postgres or kafka. Default memory.
	Transport string
	// DatabaseURL is "sqlite:PATH" or "postgres://...". Default sqlite:./data/millrace.db.
	DatabaseURL string
	// KafkaBrokers are the bootstrap brokers of the kafka transport.
	KafkaBrokers []string
	// KafkaPartitions is the partition count of topics Millrace creates. Default 8.
	KafkaPartitions int
	// KafkaReplicationFactor is the replication factor of topics Millrace
	// creates. Default 1; 3 on a production cluster.
	KafkaReplicationFactor int
	// KafkaVersion is the protocol version spoken to the brokers, as
	// major.minor.patch. Default 3.6.0.
	KafkaVersion string
	// HTTPAddr is where the HTTP API listens. Default 127.0.0.1:8080.
	HTTPAddr string
	// APIToken guards the ingest API. Empty: loopback callers only.
	APIToken string
	// AdminToken guards /admin. Empty: admin routes are off.
	AdminToken string
	// SMTPURL is smtp://[user:pass@]host:port. Empty: mail is written to MailDir.
	SMTPURL string
	// MailDir receives .eml files when SMTPURL is empty. Default ./data/mail.
	MailDir string
	// MailFrom is the sender of every email. Default "Millrace <no-reply@millrace.local>".
	MailFrom string
	// AppBaseURL is the platform's web address, for links in email.
	// Default http://localhost:3000.
	AppBaseURL string
	// Timezone is the business timezone of dates and cron. Default Europe/London.
	Timezone *time.Location
	// SecretKey seals webhook signing secrets at rest (32 bytes, hex).
	// Empty: secrets are stored in the clear, which is for development only.
	SecretKey []byte
	// WebhookAllowPrivate lets outbound webhooks reach private and loopback
	// addresses over plain HTTP. For tests and local demos. Default false.
	WebhookAllowPrivate bool
	// CalmonyWebhookSecrets verify Calmony Pay webhooks; two during a
	// rotation. Empty: every Calmony webhook is refused.
	CalmonyWebhookSecrets []string
	// CalmonyAPIKey is Calmony Pay's secret API key (not a webhook secret).
	CalmonyAPIKey string
	// CalmonyLiveMode is the Calmony Pay mode served; nil does not check.
	CalmonyLiveMode *bool
	// CalmonyAPIURL is the Calmony Pay API base URL.
	CalmonyAPIURL string
	// ShutdownTimeout bounds the drain on SIGTERM. Default 30s.
	ShutdownTimeout time.Duration
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string
	// LogFormat is json or text; auto picks text on a terminal. Default auto.
	LogFormat string
	// Migrate applies database migrations at serve start-up. Default true.
	Migrate bool
	// RelayInterval is how often the outbox relay looks for events written by
	// other processes (the CLI, another replica). Default 1s.
	RelayInterval time.Duration
	// CronEnabled runs the cron ticker in this process. Default true.
	CronEnabled bool
	// Instance names this replica in cron slot claims. Default the host name.
	Instance string
	// Tracing is read from the standard OTEL_* variables, not MILLRACE_*
	// ones, so that the usual OpenTelemetry deployment tooling applies.
	Tracing telemetry.TraceSettings
}

// setting is one configuration entry: its flag, its variable, its default and
// how to store a value.
type setting struct {
	flag, env, def, usage string
	set                   func(c *Config, v string) error
}

// Settings lists every setting, in the order of the README's table.
func Settings() []Setting {
	out := make([]Setting, len(settings))
	for i, s := range settings {
		out[i] = Setting{Flag: s.flag, Env: s.env, Default: s.def, Usage: s.usage}
	}
	return out
}

// Setting describes one configuration entry for help and documentation.
type Setting struct{ Flag, Env, Default, Usage string }

// RegisterFlags adds every setting's flag to fs.
func RegisterFlags(fs *pflag.FlagSet) {
	for _, s := range settings {
		fs.String(s.flag, s.def, s.usage+" (env "+s.env+")")
	}
}

// Load builds the configuration: a flag that was set wins over its variable,
// which wins over the default. lookupEnv is usually os.LookupEnv. Every invalid
// value is reported, each naming its variable, in one joined error.
func Load(fs *pflag.FlagSet, lookupEnv func(string) (string, bool)) (Config, error) {
	var c Config
	var errs []error
	for _, s := range settings {
		v, src := s.def, "default of "+s.env
		if ev, ok := lookupEnv(s.env); ok {
			v, src = ev, s.env
		}
		if fs != nil {
			if f := fs.Lookup(s.flag); f != nil && f.Changed {
				v, src = f.Value.String(), "--"+s.flag
			}
		}
		if err := s.set(&c, strings.TrimSpace(v)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", src, err))
		}
	}
	tracing, err := telemetry.TraceSettingsFromEnv(lookupEnv)
	if err != nil {
		errs = append(errs, err)
	}
	c.Tracing = tracing
	errs = append(errs, c.check()...)
	if len(errs) > 0 {
		return c, fmt.Errorf("invalid config: %w", errors.Join(errs...))
	}
	return c, nil
}

// check validates combinations of settings.
func (c *Config) check() []error {
	var errs []error
	if c.Transport == TransportPostgres && !strings.HasPrefix(c.DatabaseURL, "postgres") {
		errs = append(errs, errors.New("MILLRACE_DATABASE_URL: the postgres transport "+
			"needs a postgres:// database URL"))
	}
	if c.Transport == TransportKafka {
		if len(c.KafkaBrokers) == 0 {
			errs = append(errs, errors.New("MILLRACE_KAFKA_BROKERS: the kafka transport "+
				"needs at least one broker"))
		}
		if !strings.HasPrefix(c.DatabaseURL, "postgres") {
			errs = append(errs, errors.New("MILLRACE_DATABASE_URL: the kafka transport "+
				"keeps its outbox and domain data in Postgres and needs a postgres:// URL"))
		}
	}
	return errs
}

// LoopbackOnly reports whether the ingest API must refuse non-loopback callers
// because no API token is set.
func (c Config) LoopbackOnly() bool { return c.APIToken == "" }

func validURL(v string, schemes ...string) error {
	u, err := url.Parse(v)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	for _, s := range schemes {
		if u.Scheme == s && u.Host != "" {
			return nil
		}
	}
	return fmt.Errorf("%q: want a %s URL with a host", v, strings.Join(schemes, " or "))
}
