package config

import (
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

var settings = []setting{
	{"transport", "MILLRACE_TRANSPORT", TransportMemory,
		"message transport: memory, postgres or kafka",
		func(c *Config, v string) error {
			switch v {
			case TransportMemory, TransportPostgres, TransportKafka:
				c.Transport = v
				return nil
			}
			return fmt.Errorf("%q: want memory, postgres or kafka", v)
		}},
	{"database-url", "MILLRACE_DATABASE_URL", "sqlite:./data/millrace.db",
		"database: sqlite:PATH or postgres://...",
		func(c *Config, v string) error {
			switch {
			case v == "":
				return fmt.Errorf("empty")
			case strings.HasPrefix(v, "postgres://"), strings.HasPrefix(v, "postgresql://"):
				if err := validURL(v, "postgres", "postgresql"); err != nil {
					return err
				}
			case !strings.HasPrefix(v, "sqlite:"):
				return fmt.Errorf("%q: want sqlite:PATH or postgres://", v)
			}
			c.DatabaseURL = v
			return nil
		}},
	{"kafka-brokers", "MILLRACE_KAFKA_BROKERS", "",
		"Kafka bootstrap brokers, host:port comma-separated; needed by the kafka transport",
		func(c *Config, v string) error {
			c.KafkaBrokers = nil
			for _, b := range strings.Split(v, ",") {
				if b = strings.TrimSpace(b); b == "" {
					continue
				}
				if _, _, err := net.SplitHostPort(b); err != nil {
					return fmt.Errorf("%q: want host:port: %w", b, err)
				}
				c.KafkaBrokers = append(c.KafkaBrokers, b)
			}
			return nil
		}},
	{"kafka-partitions", "MILLRACE_KAFKA_PARTITIONS", "8",
		"partitions of each topic Millrace creates on Kafka",
		positiveIntSetter(func(c *Config) *int { return &c.KafkaPartitions })},
	{"kafka-replication-factor", "MILLRACE_KAFKA_REPLICATION_FACTOR", "1",
		"replication factor of each topic Millrace creates on Kafka (3 in production)",
		positiveIntSetter(func(c *Config) *int { return &c.KafkaReplicationFactor })},
	{"kafka-version", "MILLRACE_KAFKA_VERSION", "3.6.0",
		"Kafka protocol version spoken to the brokers, never above theirs (3.x or 4.x)",
		func(c *Config, v string) error {
			parts := strings.Split(v, ".")
			if len(parts) < 2 || len(parts) > 4 {
				return fmt.Errorf("%q: want a version such as 3.6.0", v)
			}
			for _, p := range parts {
				if _, err := strconv.ParseUint(p, 10, 16); err != nil {
					return fmt.Errorf("%q: want a version such as 3.6.0", v)
				}
			}
			if parts[0] == "0" {
				return fmt.Errorf("%q: below 1.0", v)
			}
			c.KafkaVersion = v
			return nil
		}},
	{"http-addr", "MILLRACE_HTTP_ADDR", "127.0.0.1:8080", "HTTP listen address",
		func(c *Config, v string) error {
			if _, _, err := net.SplitHostPort(v); err != nil {
				return fmt.Errorf("%q: want host:port: %w", v, err)
			}
			c.HTTPAddr = v
			return nil
		}},
	{"api-token", "MILLRACE_API_TOKEN", "",
		"bearer token for the ingest API; empty serves loopback callers only",
		tokenSetter(func(c *Config) *string { return &c.APIToken })},
	{"admin-token", "MILLRACE_ADMIN_TOKEN", "", "bearer token for /admin; empty turns it off",
		tokenSetter(func(c *Config) *string { return &c.AdminToken })},
	{"smtp-url", "MILLRACE_SMTP_URL", "",
		"smtp://[user:pass@]host:port; empty writes mail as .eml files",
		func(c *Config, v string) error {
			if v != "" {
				if err := validURL(v, "smtp", "smtps"); err != nil {
					return err
				}
			}
			c.SMTPURL = v
			return nil
		}},
	{"mail-dir", "MILLRACE_MAIL_DIR", "./data/mail", "where .eml files go without SMTP",
		nonEmpty(func(c *Config) *string { return &c.MailDir })},
	{"mail-from", "MILLRACE_MAIL_FROM", "Millrace <no-reply@millrace.local>",
		"sender address of every email", nonEmpty(func(c *Config) *string { return &c.MailFrom })},
	{"app-base-url", "MILLRACE_APP_BASE_URL", "http://localhost:3000",
		"the platform's web address, for links in email",
		func(c *Config, v string) error {
			if err := validURL(v, "http", "https"); err != nil {
				return err
			}
			c.AppBaseURL = strings.TrimRight(v, "/")
			return nil
		}},
	{"timezone", "MILLRACE_TIMEZONE", "Europe/London", "business timezone for dates and cron",
		func(c *Config, v string) error {
			loc, err := time.LoadLocation(v)
			if err != nil {
				return fmt.Errorf("%q: unknown timezone", v)
			}
			c.Timezone = loc
			return nil
		}},
	{"secret-key", "MILLRACE_SECRET_KEY", "",
		"64 hex digits sealing webhook secrets at rest; empty stores them in the clear",
		func(c *Config, v string) error {
			if v == "" {
				return nil
			}
			k, err := hex.DecodeString(v)
			if err != nil || len(k) != 32 {
				return fmt.Errorf("want 64 hex digits (32 bytes)")
			}
			c.SecretKey = k
			return nil
		}},
	{"webhook-allow-private", "MILLRACE_WEBHOOK_ALLOW_PRIVATE", "false",
		"let outbound webhooks reach private addresses over HTTP (tests, demos)",
		boolSetter(func(c *Config) *bool { return &c.WebhookAllowPrivate })},
	{"calmony-webhook-secrets", "MILLRACE_CALMONY_WEBHOOK_SECRETS", "",
		"Calmony Pay webhook signing secrets, comma-separated (two during a rotation); " +
			"empty refuses every Calmony webhook",
		func(c *Config, v string) error {
			c.CalmonyWebhookSecrets = nil
			for _, s := range strings.Split(v, ",") {
				if s = strings.TrimSpace(s); s != "" {
					c.CalmonyWebhookSecrets = append(c.CalmonyWebhookSecrets, s)
				}
			}
			if len(c.CalmonyWebhookSecrets) > 2 {
				return fmt.Errorf("%d secrets: want at most two", len(c.CalmonyWebhookSecrets))
			}
			return nil
		}},
	{"calmony-api-key", "MILLRACE_CALMONY_API_KEY", "",
		"Calmony Pay secret API key; empty makes billing calls fail as not configured",
		func(c *Config, v string) error { c.CalmonyAPIKey = v; return nil }},
	{"calmony-livemode", "MILLRACE_CALMONY_LIVEMODE", "",
		"true for Calmony Pay live mode, false for test mode; checkout events of the other " +
			"mode are refused; empty does not check",
		func(c *Config, v string) error {
			if v == "" {
				c.CalmonyLiveMode = nil
				return nil
			}
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%q: want true, false or empty", v)
			}
			c.CalmonyLiveMode = &b
			return nil
		}},
	{"calmony-api-url", "MILLRACE_CALMONY_API_URL", "https://api.calmony.example",
		"Calmony Pay API base URL",
		func(c *Config, v string) error {
			if err := validURL(v, "http", "https"); err != nil {
				return err
			}
			c.CalmonyAPIURL = strings.TrimRight(v, "/")
			return nil
		}},
	{"shutdown-timeout", "MILLRACE_SHUTDOWN_TIMEOUT", "30s",
		"how long in-flight work may finish on SIGTERM",
		durationSetter(func(c *Config) *time.Duration { return &c.ShutdownTimeout })},
	{"log-level", "MILLRACE_LOG_LEVEL", "info", "debug, info, warn or error",
		func(c *Config, v string) error {
			switch v {
			case "debug", "info", "warn", "error":
				c.LogLevel = v
				return nil
			}
			return fmt.Errorf("%q: want debug, info, warn or error", v)
		}},
	{"log-format", "MILLRACE_LOG_FORMAT", "auto", "json, text, or auto (text on a terminal)",
		func(c *Config, v string) error {
			switch v {
			case "json", "text", "auto":
				c.LogFormat = v
				return nil
			}
			return fmt.Errorf("%q: want json, text or auto", v)
		}},
	{"migrate", "MILLRACE_MIGRATE", "true", "apply database migrations when serve starts",
		boolSetter(func(c *Config) *bool { return &c.Migrate })},
	{"relay-interval", "MILLRACE_RELAY_INTERVAL", "1s",
		"how often the outbox relay polls for events written by other processes",
		durationSetter(func(c *Config) *time.Duration { return &c.RelayInterval })},
	{"cron", "MILLRACE_CRON", "true", "run the cron ticker in this process",
		boolSetter(func(c *Config) *bool { return &c.CronEnabled })},
	{"instance", "MILLRACE_INSTANCE", "", "replica name in cron claims; default the host name",
		func(c *Config, v string) error {
			if v == "" {
				v, _ = os.Hostname()
				v = fmt.Sprintf("%s-%d", v, os.Getpid())
			}
			c.Instance = v
			return nil
		}},
}

func tokenSetter(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if v != "" && len(v) < 16 {
			return fmt.Errorf("too short: use at least 16 characters")
		}
		*field(c) = v
		return nil
	}
}

func nonEmpty(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if v == "" {
			return fmt.Errorf("empty")
		}
		*field(c) = v
		return nil
	}
}

func boolSetter(field func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q: want true or false", v)
		}
		*field(c) = b
		return nil
	}
}

func positiveIntSetter(field func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("%q: want a whole number of at least 1", v)
		}
		*field(c) = n
		return nil
	}
}

func durationSetter(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("%q: want a positive duration such as 30s", v)
		}
		*field(c) = d
		return nil
	}
}
