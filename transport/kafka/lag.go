package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// backlogTimeout bounds the requests behind one lag sample: a scrape must
// not hang on a cluster that does not answer.
const backlogTimeout = 2 * time.Second

// backlogPause is how long Backlog answers -1 without asking once a
// sample failed for want of an answer (no broker reachable, or none in
// time), as opposed to a broker answering with an error code. A scrape
// samples every subscription in turn, a dozen of them in serve, and with
// every broker down the client keeps redialling for most of backlogTimeout
// on each: without the pause a scrape during an outage takes 10 to 25
// seconds, beyond Prometheus's default scrape timeout, and every other
// metric would be lost with it.
const backlogPause = 5 * time.Second

// backlogPaused holds, per transport, the time until which Backlog does not
// ask (an *atomic.Int64 of Unix nanoseconds). It lives here rather than in
// Transport so that the lag stays in this file; the entry of a transport is
// dropped when Backlog finds it closed.
var backlogPaused sync.Map

// Backlog implements telemetry.Backlogger with the group's consumer lag on
// topic: over every partition, the high watermark less the group's
// committed offset. It answers -1 when no broker answers in time (and
// then, for backlogPause, without asking), when the topic does not exist and
// when the transport is closed.
//
// Offsets are committed once a second, so the lag includes the messages
// acked within the last second as well as those in flight; it is a depth,
// not a count of unhandled work.
func (t *Transport) Backlog(topic, group string) int {
	t.mu.RLock()
	closed := t.closed
	t.mu.RUnlock()
	if closed {
		backlogPaused.Delete(t)
		return -1
	}
	v, _ := backlogPaused.LoadOrStore(t, new(atomic.Int64))
	pausedUntil := v.(*atomic.Int64)
	if time.Now().UnixNano() < pausedUntil.Load() {
		return -1
	}
	ctx, cancel := context.WithTimeout(context.Background(), backlogTimeout)
	defer cancel()
	n, err := t.lag(ctx, topic, group)
	if err != nil {
		if errors.Is(err, errUnanswered) {
			pausedUntil.Store(time.Now().Add(backlogPause).UnixNano())
		}
		t.log.Debug("kafka: consumer lag unknown", "topic", topic, "group", group,
			"error", err.Error())
		return -1
	}
	return int(n)
}

// errUnanswered marks a lag sample that failed for want of an answer, as
// opposed to a broker answering with an error code.
var errUnanswered = errors.New("no answer from the kafka cluster")

// lag asks for the partitions' start and end offsets and the group's
// commits, and sums them up with topicLag.
func (t *Transport) lag(ctx context.Context, topic, group string) (int64, error) {
	end, err := t.admin.ListEndOffsets(ctx, topic)
	if err == nil {
		err = end.Error()
	}
	if err != nil {
		return 0, requestError("list end offsets of "+topic, err)
	}
	start, err := t.admin.ListStartOffsets(ctx, topic)
	if err == nil {
		err = start.Error()
	}
	if err != nil {
		return 0, requestError("list start offsets of "+topic, err)
	}
	// Partitions the group never committed on come back at -1. A group
	// that has never existed has no commits either, though some brokers
	// (kfake, and Kafka's new group coordinator) answer that with an error.
	committed, err := t.admin.FetchOffsetsForTopics(ctx, group, topic)
	if err == nil {
		err = committed.Error()
	}
	if errors.Is(err, kerr.GroupIDNotFound) {
		committed, err = kadm.OffsetResponses{}, nil
	}
	if err != nil {
		return 0, requestError("fetch offsets of group "+group, err)
	}
	return topicLag(topic, start, end, committed)
}

// requestError wraps the failure of the request what, marking it
// errUnanswered unless a broker answered it with an error code.
func requestError(what string, err error) error {
	var answered *kerr.Error
	if errors.As(err, &answered) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s: %w: %w", what, errUnanswered, err)
}

// topicLag sums the lag of topic's partitions. A partition the group has
// not committed on counts from its start offset, since a new group starts
// at the oldest record (see consumerConfig); so does one whose commit is
// below the start, whose older records were deleted by retention.
func topicLag(topic string, start, end kadm.ListedOffsets,
	committed kadm.OffsetResponses) (int64, error) {
	parts := end[topic]
	if len(parts) == 0 {
		return 0, fmt.Errorf("topic %s lists no partition", topic)
	}
	var sum int64
	for p, e := range parts {
		s, ok := start.Lookup(topic, p)
		if !ok {
			return 0, fmt.Errorf("topic %s partition %d has no start offset", topic, p)
		}
		if e.Offset < 0 || s.Offset < 0 {
			return 0, fmt.Errorf("topic %s partition %d has no offsets", topic, p)
		}
		from := s.Offset
		if c, ok := committed.Lookup(topic, p); ok && c.At > from {
			from = c.At
		}
		if e.Offset > from {
			sum += e.Offset - from
		}
	}
	return sum, nil
}
