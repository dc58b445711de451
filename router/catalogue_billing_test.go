package router

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/cron"
	"github.com/millrace/millrace/handlers/billing"
	"github.com/millrace/millrace/schemas"
)

func TestBillingCatalogue(t *testing.T) {
	t.Parallel()
	cat := Default()
	require.NoError(t, cat.Check(schemas.Default()))
	for _, topic := range []string{"billing.calmony.checkout_session.completed",
		"billing.calmony.invoice.paid", "billing.calmony.invoice.payment_failed",
		"billing.calmony.payment_intent.succeeded", "billing.calmony.subscription.changed",
		"billing.payment.completed", "billing.autocharge.tick"} {
		require.True(t, cat.Consumed(topic), topic)
		require.False(t, cat.Ingestible(topic), "%s must not be forgeable through ingest", topic)
	}
	require.True(t, cat.Ingestible("platform.user.invited"))
	var found bool
	for _, s := range cat.Schedules {
		if s.Topic == billing.TopicAutochargeTick {
			found = true
			require.Equal(t, "0 9 * * *", s.Spec)
			require.Equal(t, cron.CatchUpFireOnce, s.CatchUp)
			require.Equal(t, billing.AutoChargeOverdue, s.Name)
		}
	}
	require.True(t, found, "autoChargeOverdue is scheduled")
}
