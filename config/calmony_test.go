package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCalmonySettings(t *testing.T) {
	t.Parallel()
	c, err := Load(nil, env(map[string]string{
		"MILLRACE_CALMONY_WEBHOOK_SECRETS": " whsec_new , whsec_old ,",
		"MILLRACE_CALMONY_API_KEY":         "sk_test_1",
		"MILLRACE_CALMONY_API_URL":         "https://pay.example/",
		"MILLRACE_CALMONY_LIVEMODE":        "true",
	}))
	require.NoError(t, err)
	require.Equal(t, []string{"whsec_new", "whsec_old"}, c.CalmonyWebhookSecrets)
	require.Equal(t, "sk_test_1", c.CalmonyAPIKey)
	require.Equal(t, "https://pay.example", c.CalmonyAPIURL)
	require.NotNil(t, c.CalmonyLiveMode)
	require.True(t, *c.CalmonyLiveMode)

	d, err := Load(nil, env(nil))
	require.NoError(t, err)
	require.Empty(t, d.CalmonyWebhookSecrets)
	require.Nil(t, d.CalmonyLiveMode)
}

func TestCalmonySettingsRefused(t *testing.T) {
	t.Parallel()
	_, err := Load(nil, env(map[string]string{
		"MILLRACE_CALMONY_WEBHOOK_SECRETS": "a,b,c",
		"MILLRACE_CALMONY_API_URL":         "ftp://pay.example",
		"MILLRACE_CALMONY_LIVEMODE":        "maybe",
	}))
	require.ErrorContains(t, err, "MILLRACE_CALMONY_WEBHOOK_SECRETS")
	require.ErrorContains(t, err, "MILLRACE_CALMONY_API_URL")
	require.ErrorContains(t, err, "MILLRACE_CALMONY_LIVEMODE")
}
