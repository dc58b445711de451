package config

import (
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestDefaultsRunTheEmbeddedMode(t *testing.T) {
	t.Parallel()
	c, err := Load(nil, env(nil))
	require.NoError(t, err)
	require.Equal(t, TransportMemory, c.Transport)
	require.Equal(t, "sqlite:./data/millrace.db", c.DatabaseURL)
	require.Equal(t, "127.0.0.1:8080", c.HTTPAddr)
	require.Equal(t, "Europe/London", c.Timezone.String())
	require.Equal(t, 30*time.Second, c.ShutdownTimeout)
	require.True(t, c.LoopbackOnly())
	require.Empty(t, c.SMTPURL)
}

func TestEveryInvalidValueIsReportedAtOnce(t *testing.T) {
	t.Parallel()
	_, err := Load(nil, env(map[string]string{
		"MILLRACE_TRANSPORT":        "carrier-pigeon",
		"MILLRACE_HTTP_ADDR":        "8080",
		"MILLRACE_TIMEZONE":         "Europe/Atlantis",
		"MILLRACE_SMTP_URL":         "mailto:x",
		"MILLRACE_API_TOKEN":        "short",
		"MILLRACE_SHUTDOWN_TIMEOUT": "soon",
		"MILLRACE_DATABASE_URL":     "mysql://x",
		"MILLRACE_SECRET_KEY":       "abc",
	}))
	require.Error(t, err)
	for _, name := range []string{"MILLRACE_TRANSPORT", "MILLRACE_HTTP_ADDR",
		"MILLRACE_TIMEZONE", "MILLRACE_SMTP_URL", "MILLRACE_API_TOKEN",
		"MILLRACE_SHUTDOWN_TIMEOUT", "MILLRACE_DATABASE_URL", "MILLRACE_SECRET_KEY"} {
		require.Contains(t, err.Error(), name)
	}
}

func TestFlagWinsOverEnvironment(t *testing.T) {
	t.Parallel()
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{"--http-addr", "127.0.0.1:9999"}))
	c, err := Load(fs, env(map[string]string{"MILLRACE_HTTP_ADDR": "127.0.0.1:7777"}))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9999", c.HTTPAddr)

	_, err = func() (Config, error) {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		RegisterFlags(fs)
		require.NoError(t, fs.Parse([]string{"--transport", "smoke"}))
		return Load(fs, env(nil))
	}()
	require.ErrorContains(t, err, "--transport")
}

func TestPostgresTransportNeedsPostgresURL(t *testing.T) {
	t.Parallel()
	_, err := Load(nil, env(map[string]string{"MILLRACE_TRANSPORT": "postgres"}))
	require.ErrorContains(t, err, "MILLRACE_DATABASE_URL")
}
