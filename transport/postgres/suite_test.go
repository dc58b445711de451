package postgres

import (
	"os"
	"sync/atomic"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
)

// TestPubSub runs Watermill's conformance suite. Two transports share one
// schema, like two replicas on one database, and the constructors alternate
// between them, so a message published by one is often consumed through
// the other and the suite's many subscribers of a group compete across
// both. Two transports, not one per constructor call: the suite builds
// dozens of pairs and the test server has a hundred connections.
//
// Features, honestly: consumer groups; persistent; order guaranteed for a
// lone subscriber (Concurrency 1, lowest id first, a nack hands back the
// prefetched messages too), while competing subscribers only keep the order
// of each partition key, which the suite's messages do not carry; delivery
// at least once.
//
// The suite runs short (hundreds of messages per test, about 10s) unless
// MILLRACE_FULL_SUITE is set: the full one (10,000 messages through one
// subscriber, 50 competing subscribers) took 41-48s with -race on a loaded
// 2-core machine.
func TestPubSub(t *testing.T) {
	dsn := testSchema(t)
	trs := []*Transport{newTransport(t, dsn, Config{}), newTransport(t, dsn, Config{})}
	var next atomic.Int64
	pick := func() *Transport { return trs[next.Add(1)%2] }
	tests.TestPubSub(t,
		tests.Features{
			ConsumerGroups:                      true,
			ExactlyOnceDelivery:                 false,
			GuaranteedOrder:                     true,
			GuaranteedOrderWithSingleSubscriber: true,
			Persistent:                          true,
			ForceShort:                          os.Getenv("MILLRACE_FULL_SUITE") == "",
		},
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			pub, sub := pick(), pick()
			s, err := sub.Subscriber("default")
			if err != nil {
				t.Fatal(err)
			}
			return pub.Publisher(), s
		},
		func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
			pub, sub := pick(), pick()
			s, err := sub.Subscriber(group)
			if err != nil {
				t.Fatal(err)
			}
			return pub.Publisher(), s
		},
	)
}
