package memory

import (
	"context"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Subscriber consumes topics in one consumer group.
type Subscriber struct {
	t     *Transport
	group string
	once  sync.Once
	stop  chan struct{}
	wg    sync.WaitGroup
}

// SubscribeInitialize creates the group's queue of topic, so that messages
// published from now on wait for the group even before it subscribes.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	_, err := s.t.queue(topic, s.group)
	return err
}

// Subscribe delivers the group's messages of topic until ctx ends or the
// subscriber or transport closes; then the channel is closed.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	q, err := s.t.queue(topic, s.group)
	if err != nil {
		return nil, err
	}
	out := make(chan *message.Message)
	ctx, cancel := context.WithCancel(ctx)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(out)
		defer cancel()
		go func() {
			select {
			case <-s.stop:
			case <-s.t.done:
			case <-ctx.Done():
			}
			cancel()
		}()
		for {
			m, err := q.pop(ctx)
			if err != nil {
				return
			}
			if !deliver(ctx, m, out) {
				q.pushFront(m)
				return
			}
		}
	}()
	return out, nil
}

// deliver hands copies of m to out until one is acked. It returns false when
// ctx ended first, leaving m for the group's next subscriber. Each copy's
// context ends when it is acked or nacked, or when the subscription ends, as
// with Watermill's other transports.
func deliver(ctx context.Context, m *message.Message, out chan<- *message.Message) bool {
	for {
		c := m.Copy()
		mctx, cancel := context.WithCancel(ctx)
		c.SetContext(mctx)
		select {
		case out <- c:
		case <-ctx.Done():
			cancel()
			return false
		}
		select {
		case <-c.Acked():
			cancel()
			return true
		case <-c.Nacked():
			cancel()
		case <-ctx.Done():
			cancel()
			return false
		}
	}
}

// Close ends every subscription of this subscriber and waits for them.
func (s *Subscriber) Close() error {
	s.once.Do(func() { close(s.stop) })
	s.wg.Wait()
	return nil
}
