package postgres

import (
	"context"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
)

func TestNewRequiresADatabase(t *testing.T) {
	t.Parallel()
	_, err := New(context.Background(), Config{})
	require.ErrorContains(t, err, "DSN or Pool is required")
}

// TestRefusals: each bad call answers an error and stores nothing.
func TestRefusals(t *testing.T) {
	t.Parallel()
	dsn := testSchema(t)
	tr := newTransport(t, dsn, Config{})
	sub, err := tr.NewSubscriber("g", SubscriberConfig{})
	require.NoError(t, err)
	require.NoError(t, sub.SubscribeInitialize("jobs"))

	t.Run("publish without a topic", func(t *testing.T) {
		err := tr.Publisher().Publish("", message.NewMessage("x", nil))
		require.ErrorIs(t, err, ErrNoTopic)
		require.Zero(t, queueRows(t, tr))
	})
	t.Run("publish to a topic no group consumes keeps nothing", func(t *testing.T) {
		require.NoError(t, tr.Publisher().Publish("nobody", message.NewMessage("x", nil)))
		require.Zero(t, queueRows(t, tr))
	})
	t.Run("closed subscriber", func(t *testing.T) {
		s, err := tr.NewSubscriber("g", SubscriberConfig{})
		require.NoError(t, err)
		require.NoError(t, s.Close())
		_, err = s.Subscribe(context.Background(), "jobs")
		require.ErrorIs(t, err, ErrClosed)
	})
	t.Run("closed transport", func(t *testing.T) {
		other := newTransport(t, dsn, Config{})
		require.NoError(t, other.Close())
		require.ErrorIs(t, other.Publisher().Publish("jobs", message.NewMessage("x", nil)),
			ErrClosed)
		require.ErrorIs(t, other.Ready(context.Background()), ErrClosed)
		_, err := other.Subscriber("g")
		require.ErrorIs(t, err, ErrClosed)
		require.Zero(t, queueRows(t, tr))
	})
}
