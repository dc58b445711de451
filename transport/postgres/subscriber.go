package postgres

import (
	"context"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
)

// SubscriberConfig configures a subscriber.
type SubscriberConfig struct {
	// Concurrency is how many messages one Subscribe call has in flight:
	// handed out and not yet acked or nacked. Default 1.
	Concurrency int
	// Prefetch is how many more messages a subscription claims ahead of
	// its handlers, to save a round trip per message. Their leases are
	// renewed with the others; closing hands them back at once. Zero means
	// the default, Concurrency; a negative value turns prefetching off.
	Prefetch int
	// MaxPrefetch is how far Prefetch may grow while a backlog keeps the
	// handlers waiting for claims: when a claim comes back full and finds
	// handlers idle, the subscription doubles what it claims ahead, up to
	// MaxPrefetch, and falls back to Prefetch once a claim comes back short
	// (the backlog is gone). Slow handlers never wait for a claim, so their
	// messages stay shared between replicas. Zero means the default, 512;
	// a negative value keeps Prefetch fixed.
	MaxPrefetch int
	// Unordered hands out messages of one partition key in parallel. By
	// default a group holds back a message while an earlier one with the
	// same partition key is pending or in flight.
	Unordered bool
}

// defaultMaxPrefetch bounds the adaptive prefetch: claims of up to half of
// it at a time, enough to drain a backlog at tens of thousands of messages
// a second, a few hundred kilobytes of buffered messages at most.
const defaultMaxPrefetch = 512

func (c SubscriberConfig) withDefaults() SubscriberConfig {
	if c.Concurrency <= 0 {
		c.Concurrency = 1
	}
	switch {
	case c.Prefetch == 0:
		c.Prefetch = c.Concurrency
	case c.Prefetch < 0:
		c.Prefetch = 0
		c.MaxPrefetch = -1
	}
	switch {
	case c.MaxPrefetch == 0:
		c.MaxPrefetch = max(defaultMaxPrefetch, c.Prefetch)
	case c.MaxPrefetch < c.Prefetch:
		c.MaxPrefetch = c.Prefetch
	}
	return c
}

// Subscriber consumes topics in one consumer group. Every group registered
// for a topic gets each message once; the subscriptions of a group, in this
// process or any other, share its messages.
type Subscriber struct {
	t     *Transport
	group string
	cfg   SubscriberConfig

	mu     sync.Mutex
	closed bool
	subs   map[*subscription]struct{}
}

// SubscribeInitialize registers the group for topic, so that messages
// published from now on are kept for it even before it subscribes. The
// registration is stored, so it outlives the process.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.t.cfg.PublishTimeout)
	defer cancel()
	_, err := register(ctx, s.t.pool, topic, s.group)
	return err
}

// Subscribe registers the group for topic and delivers its messages until
// ctx ends or the subscriber or transport closes. Then it stops handing out
// messages, waits up to CloseTimeout for those in flight, hands back the
// rest and closes the channel. A delivered message's context ends when it
// is acked or nacked, or when that wait runs out.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if s.isClosed() || s.t.isClosed() {
		return nil, ErrClosed
	}
	id, err := register(ctx, s.t.pool, topic, s.group)
	if err != nil {
		return nil, err
	}
	sub := newSubscription(ctx, s, topic, id)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	s.t.watch(topic, sub)
	go func() {
		sub.run()
		s.mu.Lock()
		delete(s.subs, sub)
		s.mu.Unlock()
	}()
	return sub.out, nil
}

// Close ends every subscription of this subscriber and waits for them, each
// up to CloseTimeout for its messages in flight.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	s.closed = true
	subs := make([]*subscription, 0, len(s.subs))
	for sub := range s.subs {
		subs = append(subs, sub)
	}
	s.mu.Unlock()
	for _, sub := range subs {
		sub.stopOnce.Do(func() { close(sub.stop) })
	}
	for _, sub := range subs {
		<-sub.done
	}
	s.t.forget(s)
	return nil
}

func (s *Subscriber) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// newSubscription prepares the state of one Subscribe call.
func newSubscription(ctx context.Context, s *Subscriber, topic string, id int32) *subscription {
	room := s.cfg.Concurrency + s.cfg.MaxPrefetch
	msgCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	return &subscription{
		s: s, t: s.t, topic: topic, id: id, token: uuid.NewString(),
		ctx: ctx, msgCtx: msgCtx, msgCancel: cancel,
		out:       make(chan *message.Message),
		wakeC:     make(chan struct{}, 1),
		results:   make(chan result, s.cfg.Concurrency),
		acks:      make(chan int64, room+16),
		stop:      make(chan struct{}),
		abandon:   make(chan struct{}),
		ackerDone: make(chan struct{}),
		done:      make(chan struct{}),
		inflight:  map[int64]bool{},
		claimReq:  make(chan claimAsk),
		claimRes:  make(chan claimResult),
	}
}
