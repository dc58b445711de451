package kafka

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/transport/kafka/kafkatest"
)

// tally records what a group received, across its members.
type tally struct {
	mu       sync.Mutex
	count    map[string]int
	byMember map[string]int
	changed  chan struct{}
}

func newTally() *tally {
	return &tally{count: map[string]int{}, byMember: map[string]int{},
		changed: make(chan struct{}, 1)}
}

// consume acks everything from ch as member until ch closes.
func (tl *tally) consume(member string, ch <-chan *message.Message) {
	for m := range ch {
		tl.mu.Lock()
		tl.count[m.UUID]++
		tl.byMember[member]++
		tl.mu.Unlock()
		m.Ack()
		select {
		case tl.changed <- struct{}{}:
		default:
		}
	}
}

// wait blocks until cond holds, or fails the test after timeout.
func (tl *tally) wait(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		tl.mu.Lock()
		ok := cond()
		tl.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-tl.changed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			tl.mu.Lock()
			defer tl.mu.Unlock()
			t.Fatalf("timed out waiting for %s: %d distinct received, by member %v",
				what, len(tl.count), tl.byMember)
		}
	}
}

func (tl *tally) has(ids []string) bool {
	for _, id := range ids {
		if tl.count[id] == 0 {
			return false
		}
	}
	return true
}

func (tl *tally) duplicates() int {
	n := 0
	for _, c := range tl.count {
		n += c - 1
	}
	return n
}

func batch(n int) ([]*message.Message, []string) {
	var msgs []*message.Message
	var ids []string
	for i := 0; i < n; i++ {
		m := message.NewMessage(job.NewID(), []byte(`{}`))
		msgs = append(msgs, m)
		ids = append(ids, m.UUID)
	}
	return msgs, ids
}

// A second member joins the group mid-stream and the first then leaves:
// every message is delivered at least once. Duplicates are counted and
// logged, not forbidden.
func TestRebalanceLosesNothing(t *testing.T) {
	c := kafkatest.Start(t, 1)
	cfg := testConfig(c)
	cfg.Partitions = 8
	trA, trB := newTransport(t, cfg), newTransport(t, cfg)
	ensure(t, trA, "rebalance")
	tl := newTally()
	var all []string

	subA, err := trA.Subscriber("rb")
	if err != nil {
		t.Fatal(err)
	}
	go tl.consume("A", subscribe(t, subA, "rebalance"))
	msgs, ids := batch(100)
	all = append(all, ids...)
	publish(t, trA, "rebalance", msgs...)
	tl.wait(t, "A to receive the first batch", 20*time.Second, func() bool {
		return tl.has(ids)
	})

	// B joins while more is published, until B has received some: it owns
	// partitions only once the rebalance is through.
	go tl.consume("B", subscribe(t, newSub(t, trB, "rb"), "rebalance"))
	deadline := time.Now().Add(20 * time.Second)
	for {
		msgs, ids = batch(20)
		all = append(all, ids...)
		publish(t, trA, "rebalance", msgs...)
		tl.wait(t, "the batch", 20*time.Second, func() bool { return tl.has(ids) })
		tl.mu.Lock()
		joined := tl.byMember["B"] > 0
		tl.mu.Unlock()
		if joined {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("B received nothing")
		}
	}

	// A leaves mid-stream: its partitions go to B.
	msgs, ids = batch(100)
	all = append(all, ids...)
	done := make(chan error, 1)
	go func() { done <- trA.Publisher().Publish("rebalance", msgs...) }()
	if err := subA.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	msgs, ids = batch(100)
	all = append(all, ids...)
	publish(t, trB, "rebalance", msgs...)

	tl.wait(t, "every message", 30*time.Second, func() bool { return tl.has(all) })
	tl.mu.Lock()
	defer tl.mu.Unlock()
	t.Logf("%d messages, %d delivered twice or more (duplicates %d), by member %v",
		len(all), countDup(tl.count), tl.duplicates(), tl.byMember)
}

func countDup(c map[string]int) int {
	n := 0
	for _, v := range c {
		if v > 1 {
			n++
		}
	}
	return n
}

// Every broker goes off the network mid-stream and comes back: publishes
// fail (or time out) meanwhile, Ready reports the outage, the subscriber
// resumes afterwards, and every message whose publish succeeded is
// delivered.
func TestBrokerOutage(t *testing.T) {
	c := kafkatest.Start(t, 3)
	cfg := testConfig(c)
	tr := newTransport(t, cfg)
	ensure(t, tr, "outage")
	tl := newTally()
	go tl.consume("A", subscribe(t, newSub(t, tr, "outage-group"), "outage"))

	var acked []string
	var failed int
	pub := tr.Publisher()
	send := func() error {
		m := message.NewMessage(job.NewID(), []byte(`{}`))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		m.SetContext(ctx)
		err := pub.Publish("outage", m)
		if err == nil {
			acked = append(acked, m.UUID)
		} else {
			failed++
		}
		return err
	}
	for i := 0; i < 50; i++ {
		if err := send(); err != nil {
			t.Fatal(err)
		}
	}
	tl.wait(t, "delivery before the outage", 20*time.Second, func() bool {
		return tl.has(acked)
	})

	c.Down()
	start := time.Now()
	var firstErr error
	for firstErr == nil {
		firstErr = send()
		if time.Since(start) > 30*time.Second {
			t.Fatal("publishes kept succeeding with every broker down")
		}
	}
	t.Logf("first publish error %s into the outage: %v", time.Since(start), firstErr)
	rctx, cancel := context.WithTimeout(context.Background(), time.Second)
	err := tr.Ready(rctx)
	cancel()
	if err == nil {
		t.Fatal("Ready succeeded with every broker down")
	}
	if err := c.Up(); err != nil {
		t.Fatal(err)
	}

	// One partition taking writes does not mean all do: the client
	// reconnects to each broker on its own backoff, and a partition whose
	// records were in flight when the outage began holds new ones behind
	// them until they are answered. A caller retries a failed publish (a
	// webhook sender on a 503 does), so each publish from here on is retried
	// until it succeeds, within a bound on how long the partitions take.
	start = time.Now()
	sendUntilWritten := func(within time.Duration, what string) {
		for send() != nil {
			if time.Since(start) > within {
				t.Fatalf("%s %s after the brokers came back", what, within)
			}
		}
	}
	sendUntilWritten(30*time.Second, "publishes still failing")
	t.Logf("first publish success %s after recovery (%d publishes failed)",
		time.Since(start), failed)
	failedBefore := failed
	for i := 0; i < 50; i++ {
		sendUntilWritten(45*time.Second, "some partitions still refused writes")
	}
	t.Logf("50 more publishes, %d retried, all written %s after recovery",
		failed-failedBefore, time.Since(start))
	if err := tr.Ready(context.Background()); err != nil {
		t.Fatalf("Ready after recovery: %v", err)
	}
	tl.wait(t, "every acked message", 45*time.Second, func() bool { return tl.has(acked) })
	tl.mu.Lock()
	defer tl.mu.Unlock()
	t.Logf("%d acked publishes all delivered; %d received in all, duplicates %d",
		len(acked), len(tl.count), tl.duplicates())
}
