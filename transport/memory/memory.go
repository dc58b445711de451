// Package memory is the in-process transport. Nothing survives a restart, so
// Millrace says so at start-up; it is for trying Millrace, demos and tests.
//
// It keeps one bounded first-in-first-out queue per topic and consumer group.
// Every group subscribed to a topic gets each message once; the subscribers
// of one group share its queue. A subscriber holds one message at a time
// until it is acked; a nacked message is delivered again, in place, so a
// group with one subscriber keeps the publishing order. Publishing waits
// while a queue is full, which bounds memory under a burst, and fails once
// the message's context ends, so callers can answer "busy" instead of
// queueing without limit.
package memory

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Config configures the transport.
type Config struct {
	// QueueLimit bounds each group's backlog. Default 65,536 messages.
	QueueLimit int
	// PublishTimeout bounds how long a publish waits for room when the
	// message's context has no deadline. Default 5s.
	PublishTimeout time.Duration
}

// ErrClosed is returned by a closed transport.
var ErrClosed = errors.New("memory transport closed")

// Transport is the in-memory transport.
type Transport struct {
	cfg    Config
	mu     sync.Mutex
	groups map[string]map[string]*queue // topic → group → queue
	closed bool
	done   chan struct{}
}

// New returns an in-memory transport.
func New(cfg Config) *Transport {
	if cfg.QueueLimit <= 0 {
		cfg.QueueLimit = 1 << 16
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 5 * time.Second
	}
	return &Transport{cfg: cfg, groups: map[string]map[string]*queue{}, done: make(chan struct{})}
}

// Name returns "memory".
func (t *Transport) Name() string { return "memory" }

// Durable returns false.
func (t *Transport) Durable() bool { return false }

// Publisher returns a publisher on the transport. Closing it does not close
// the transport, which other publishers and subscribers share.
func (t *Transport) Publisher() message.Publisher { return publisher{t} }

type publisher struct{ *Transport }

func (publisher) Close() error { return nil }

// Subscriber returns a subscriber in group.
func (t *Transport) Subscriber(group string) (message.Subscriber, error) {
	return &Subscriber{t: t, group: group, stop: make(chan struct{})}, nil
}

// Ready fails once the transport is closed.
func (t *Transport) Ready(context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrClosed
	}
	return nil
}

// Backlog returns how many messages wait in group's queue of topic.
func (t *Transport) Backlog(topic, group string) int {
	t.mu.Lock()
	q := t.groups[topic][group]
	t.mu.Unlock()
	if q == nil {
		return 0
	}
	return q.len()
}

// Publish puts a copy of each message in the queue of every group subscribed
// to topic. A topic no group has subscribed to keeps nothing: the catalogue
// check makes sure every consumed topic has its groups before anything is
// published.
func (t *Transport) Publish(topic string, msgs ...*message.Message) error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return ErrClosed
	}
	queues := make([]*queue, 0, len(t.groups[topic]))
	for _, q := range t.groups[topic] {
		queues = append(queues, q)
	}
	t.mu.Unlock()
	for _, m := range msgs {
		ctx, cancel := t.publishContext(m)
		for _, q := range queues {
			if err := q.push(ctx, m.Copy()); err != nil {
				cancel()
				return fmt.Errorf("publish to %s: queue full: %w", topic, err)
			}
		}
		cancel()
	}
	return nil
}

func (t *Transport) publishContext(m *message.Message) (context.Context, context.CancelFunc) {
	ctx := m.Context()
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, t.cfg.PublishTimeout)
}

// queue returns the queue of group on topic, creating it.
func (t *Transport) queue(topic, group string) (*queue, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	if t.groups[topic] == nil {
		t.groups[topic] = map[string]*queue{}
	}
	q := t.groups[topic][group]
	if q == nil {
		q = newQueue(t.cfg.QueueLimit)
		t.groups[topic][group] = q
	}
	return q, nil
}

// Close stops every subscription; messages still queued are dropped.
func (t *Transport) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed {
		t.closed = true
		close(t.done)
	}
	return nil
}
