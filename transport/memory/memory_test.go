package memory

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	"github.com/stretchr/testify/require"
)

// TestPubSub runs Watermill's conformance suite. The suite builds several
// publishers and subscribers per test and expects them to meet on one
// broker, so every constructor uses one transport, as a process does; the
// tests use topics of their own. Subscriptions of one group compete for its
// messages, so the suite runs with consumer groups on.
func TestPubSub(t *testing.T) {
	tests.TestPubSub(t,
		tests.Features{
			ConsumerGroups:      true,
			ExactlyOnceDelivery: false,
			GuaranteedOrder:     true,
			// Messages outlive a publisher and subscriber pair, since the
			// pairs share the transport; not a restart of the process.
			Persistent:            true,
			RequireSingleInstance: true,
		},
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			sub, _ := suiteTransport.Subscriber("default")
			return suiteTransport.Publisher(), sub
		},
		func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
			sub, _ := suiteTransport.Subscriber(group)
			return suiteTransport.Publisher(), sub
		},
	)
}

var suiteTransport = New(Config{})

func TestPublishWaitsForRoomThenGivesUp(t *testing.T) {
	t.Parallel()
	tr := New(Config{QueueLimit: 2, PublishTimeout: 50 * time.Millisecond})
	sub, _ := tr.Subscriber("g")
	require.NoError(t, sub.(*Subscriber).SubscribeInitialize("t"))
	for range 2 {
		require.NoError(t, tr.Publish("t", message.NewMessage("x", nil)))
	}
	require.Error(t, tr.Publish("t", message.NewMessage("y", nil)), "a full queue refuses")
	require.Equal(t, 2, tr.Backlog("t", "g"))
}

func TestEachGroupGetsEveryMessageAndNackRedeliversInPlace(t *testing.T) {
	t.Parallel()
	tr := New(Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, _ := tr.Subscriber("a")
	b, _ := tr.Subscriber("b")
	ca, err := a.Subscribe(ctx, "t")
	require.NoError(t, err)
	cb, err := b.Subscribe(ctx, "t")
	require.NoError(t, err)
	require.NoError(t, tr.Publish("t", message.NewMessage("1", nil), message.NewMessage("2", nil)))

	m := <-ca
	require.Equal(t, "1", m.UUID)
	m.Nack()
	m = <-ca
	require.Equal(t, "1", m.UUID, "a nacked message comes back before the next")
	m.Ack()
	require.Equal(t, "2", (<-ca).UUID)
	for _, want := range []string{"1", "2"} {
		m := <-cb
		require.Equal(t, want, m.UUID)
		m.Ack()
	}
	require.NoError(t, tr.Close())
	require.ErrorIs(t, tr.Publish("t", message.NewMessage("3", nil)), ErrClosed)
}
