package memory

import (
	"context"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
)

// queue is the backlog of one consumer group on one topic: first in, first
// out, bounded, shared by the group's subscribers.
type queue struct {
	mu    sync.Mutex
	items []*message.Message
	limit int
	// ready and space are signalled (without blocking) when an item is
	// added or removed; a waiter that wakes to find nothing waits again.
	ready chan struct{}
	space chan struct{}
}

func newQueue(limit int) *queue {
	return &queue{limit: limit, ready: make(chan struct{}, 1), space: make(chan struct{}, 1)}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// push appends m, waiting while the queue is full until ctx ends.
func (q *queue) push(ctx context.Context, m *message.Message) error {
	for {
		q.mu.Lock()
		if len(q.items) < q.limit {
			q.items = append(q.items, m)
			q.mu.Unlock()
			signal(q.ready)
			return nil
		}
		q.mu.Unlock()
		select {
		case <-q.space:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// pushFront puts a message that was taken but not acked back at the head,
// ignoring the limit: it was counted when it first came in.
func (q *queue) pushFront(m *message.Message) {
	q.mu.Lock()
	q.items = append([]*message.Message{m}, q.items...)
	q.mu.Unlock()
	signal(q.ready)
}

// pop removes the head, waiting until there is one or ctx ends.
func (q *queue) pop(ctx context.Context) (*message.Message, error) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			m := q.items[0]
			q.items[0] = nil
			q.items = q.items[1:]
			more := len(q.items) > 0
			q.mu.Unlock()
			signal(q.space)
			if more {
				signal(q.ready) // another subscriber of the group may be waiting
			}
			return m, nil
		}
		q.mu.Unlock()
		select {
		case <-q.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// len returns the backlog.
func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}
