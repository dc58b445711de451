package kafka

import (
	"os"
	"sync/atomic"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/millrace/millrace/transport/kafka/kafkatest"
)

// TestPubSub runs Watermill's conformance suite against kfake over TCP.
// Two transports on one cluster, like two replicas, and the constructors
// alternate between them. The suite's topics are created by
// SubscribeInitialize with one partition, since Kafka orders records only
// within a partition and the suite checks the order of all of a topic's
// messages.
//
// Features, honestly: consumer groups; persistent; order guaranteed with
// one partition, even with competing members of a group, since one member
// owns the partition at a time and a new owner resumes from the committed
// offset (a redelivered message comes again before its successors);
// delivery at least once. NewSubscriberReceivesOldMessages is off: the
// suite expects every new subscriber of its default group to see the whole
// topic, which holds only without a group; TestNewGroupReadsOldMessages
// covers a new group. Reconnect is not run by the suite (it needs a shell
// command restarting the broker); TestBrokerOutage covers it.
//
// The "default" group of the suite's plain constructor is one per test
// (the constructor's subscribers within a test still share it): with one
// group for all, every test's members would be in one group, and as
// rebalances are eager, a member that holds a message (TestNoAck does, and
// so does a test that stopped reading) holds up every test's rebalance for
// up to RebalanceTimeout. That is Kafka's behaviour, covered by
// WATERMILL.md §5.6, not something the suite sets out to test.
//
// Short mode (hundreds of messages per test) unless MILLRACE_FULL_SUITE is
// set.
func TestPubSub(t *testing.T) {
	runSuite(t, 1, true)
}

// TestPubSubPartitioned runs the suite on topics of 4 partitions, the
// shape Millrace runs in: the suite's messages have no organisation, so
// their keys are their UUIDs and they spread over the partitions, whose
// members then hand them out in parallel; the order of a topic as a whole
// is not kept, so GuaranteedOrder is off.
func TestPubSubPartitioned(t *testing.T) {
	runSuite(t, 4, false)
}

func runSuite(t *testing.T, partitions int32, ordered bool) {
	c := kafkatest.Start(t, 1)
	cfg := testConfig(c)
	cfg.Partitions = partitions
	trs := []*Transport{newTransport(t, cfg), newTransport(t, cfg)}
	var next atomic.Int64
	pick := func() *Transport { return trs[next.Add(1)%2] }
	pubsub := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		s, err := pick().Subscriber(group)
		if err != nil {
			t.Fatal(err)
		}
		return pick().Publisher(), s
	}
	tests.TestPubSub(t,
		tests.Features{
			ConsumerGroups:      true,
			ExactlyOnceDelivery: false,
			GuaranteedOrder:     ordered,
			Persistent:          true,
			ForceShort:          os.Getenv("MILLRACE_FULL_SUITE") == "",
		},
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			return pubsub(t, "default-"+t.Name())
		},
		pubsub,
	)
}
