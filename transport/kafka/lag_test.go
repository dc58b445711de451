package kafka

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/transport/kafka/kafkatest"
)

// waitBacklog polls Backlog until it answers want, or fails after timeout.
func waitBacklog(t *testing.T, tr *Transport, topic, group string, want int,
	timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	got := tr.Backlog(topic, group)
	for got != want {
		if time.Now().After(deadline) {
			t.Fatalf("backlog of %s on %s: got %d, want %d", group, topic, got, want)
		}
		time.Sleep(100 * time.Millisecond)
		got = tr.Backlog(topic, group)
	}
}

// A new group's lag is everything on the topic, since it starts at the
// oldest record; acked messages leave it once their offsets are committed.
func TestBacklogIsConsumerLag(t *testing.T) {
	c := kafkatest.Start(t, 1)
	tr := newTransport(t, testConfig(c))
	const topic, group, n, k = "lagging", "lag-group", 24, 9
	ensure(t, tr, topic)
	if got := tr.Backlog(topic, group); got != 0 {
		t.Fatalf("backlog of an empty topic: got %d, want 0", got)
	}
	var msgs []*message.Message
	for i := range n {
		m := message.NewMessage(job.NewID(), []byte(`{}`))
		// Several keys, so that the records spread over the partitions.
		m.Metadata.Set(job.MetaOrganisationID, fmt.Sprintf("org-%d", i%7))
		msgs = append(msgs, m)
	}
	publish(t, tr, topic, msgs...)
	if got := tr.Backlog(topic, group); got != n {
		t.Fatalf("backlog of a group that never joined: got %d, want %d", got, n)
	}

	// Ack k messages and leave the next ones unread: watermill-kafka hands
	// a partition's next message over only after the previous one is
	// acked, so exactly k offsets are marked.
	ch := subscribe(t, newSub(t, tr, group), topic)
	receive(t, ch, k, 20*time.Second)
	waitBacklog(t, tr, topic, group, n-k, 15*time.Second)
	if got := tr.Backlog(topic, "another-group"); got != n {
		t.Fatalf("backlog of another group: got %d, want %d", got, n)
	}

	receive(t, ch, n-k, 20*time.Second)
	waitBacklog(t, tr, topic, group, 0, 15*time.Second)
}

// Backlog answers -1, within its timeout, when it cannot know: an unknown
// topic, brokers off the network, a closed transport. It answers again once
// the brokers are back.
func TestBacklogUnknown(t *testing.T) {
	c := kafkatest.Start(t, 1)
	tr := newTransport(t, testConfig(c))
	ensure(t, tr, "known")
	publish(t, tr, "known", message.NewMessage(job.NewID(), []byte(`{}`)))
	if got := tr.Backlog("no-such-topic", "g"); got != -1 {
		t.Fatalf("backlog of a missing topic: got %d, want -1", got)
	}
	// The broker answered: the next sample asks again.
	if got := tr.Backlog("known", "g"); got != 1 {
		t.Fatalf("backlog after a missing topic: got %d, want 1", got)
	}

	c.Down()
	start := time.Now()
	if got := tr.Backlog("known", "g"); got != -1 {
		t.Fatalf("backlog with the brokers down: got %d, want -1", got)
	}
	t.Logf("backlog answered -1 after %s with the brokers down", time.Since(start))
	if err := c.Up(); err != nil {
		t.Fatal(err)
	}
	waitBacklog(t, tr, "known", "g", 1, 20*time.Second)

	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if got := tr.Backlog("known", "g"); got != -1 {
		t.Fatalf("backlog on a closed transport: got %d, want -1", got)
	}
}

// Once the cluster leaves a sample unanswered for the whole timeout, the
// samples that follow answer -1 without asking, for a while, so that a
// scrape of a dozen subscriptions does not wait a dozen timeouts.
func TestBacklogPausesAfterATimeout(t *testing.T) {
	c := kafkatest.Start(t, 1)
	tr := newTransport(t, testConfig(c))
	ensure(t, tr, "slow")
	var asked atomic.Int32
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the cluster closes
	kf := c.Kfake()
	kf.ControlKey(int16(kmsg.ListOffsets), func(kmsg.Request) (kmsg.Response, error, bool) {
		asked.Add(1)
		select {
		case <-release:
			kf.DropControl()
		default:
			kf.KeepControl()
			kf.SleepControl(func() { <-release })
		}
		return nil, nil, false
	})
	if got := tr.Backlog("slow", "g"); got != -1 {
		t.Fatalf("backlog with offsets unanswered: got %d, want -1", got)
	}
	before := asked.Load()
	if before == 0 {
		t.Fatal("the sample never asked for offsets")
	}
	if got := tr.Backlog("slow", "g"); got != -1 {
		t.Fatalf("backlog right after a timeout: got %d, want -1", got)
	}
	if after := asked.Load(); after != before {
		t.Fatalf("the sample after a timeout asked again (%d requests, then %d)", before, after)
	}
	unblock()
	waitBacklog(t, tr, "slow", "g", 0, 20*time.Second)
}

// topicLag counts a partition without a commit, or with a commit below the
// log start, from the start offset, and never counts a partition below 0.
func TestTopicLagArithmetic(t *testing.T) {
	const topic = "t"
	listed := func(offsets ...int64) kadm.ListedOffsets {
		l := kadm.ListedOffsets{topic: {}}
		for p, o := range offsets {
			l[topic][int32(p)] = kadm.ListedOffset{Topic: topic, Partition: int32(p), Offset: o}
		}
		return l
	}
	committed := kadm.OffsetResponses{topic: {}}
	for p, at := range []int64{-1, 3, 40, 100} {
		committed[topic][int32(p)] = kadm.OffsetResponse{
			Offset: kadm.Offset{Topic: topic, Partition: int32(p), At: at}}
	}
	start := listed(5, 0, 50, 10)
	end := listed(12, 8, 60, 100)
	// (12-5) + (8-3) + (60-50) + 0
	got, err := topicLag(topic, start, end, committed)
	if err != nil || got != 22 {
		t.Fatalf("topicLag: got %d, %v; want 22", got, err)
	}
	got, err = topicLag(topic, start, end, kadm.OffsetResponses{})
	if err != nil || got != 7+8+10+90 {
		t.Fatalf("topicLag without commits: got %d, %v; want %d", got, err, 7+8+10+90)
	}
	if _, err := topicLag("other", start, end, committed); err == nil {
		t.Fatal("topicLag of a topic without partitions: want an error")
	}
	if _, err := topicLag(topic, listed(0), end, committed); err == nil {
		t.Fatal("topicLag with a partition missing its start offset: want an error")
	}
}
