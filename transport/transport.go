// Package transport abstracts the broker behind Millrace's router: memory
// (Watermill's GoChannel) now, Postgres and Kafka beside it. It also holds
// what every transport shares: the publisher guard that refuses unknown
// topics, and the outbox relay.
package transport

import (
	"context"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/millrace/millrace/job"
)

// Transport is a broker Millrace can run on.
type Transport interface {
	// Name is memory, postgres or kafka.
	Name() string
	// Durable reports whether published messages survive a restart.
	Durable() bool
	// Publisher publishes to any topic.
	Publisher() message.Publisher
	// Subscriber returns a subscriber in the consumer group: each message
	// of a topic goes to one subscriber of each group.
	Subscriber(group string) (message.Subscriber, error)
	// Ready reports whether the broker can take messages.
	Ready(ctx context.Context) error
	// Close stops the transport.
	Close() error
}

// ErrUnknownTopic is returned when publishing to a topic outside the
// catalogue.
var ErrUnknownTopic = errors.New("unknown topic")

// ErrUnavailable wraps a publish the transport refused; callers answer 503.
var ErrUnavailable = errors.New("transport unavailable")

// Guard wraps a publisher so that a topic outside known is an error, never a
// message into the void, and so that every publish is a producer span whose
// context the message carries in its metadata: Watermill does not carry trace
// context across a broker, so this is what lets a consumer continue the
// trace on every transport.
func Guard(pub message.Publisher, known func(topic string) bool) message.Publisher {
	return guard{pub: pub, known: known}
}

type guard struct {
	pub   message.Publisher
	known func(string) bool
}

func (g guard) Publish(topic string, msgs ...*message.Message) error {
	if !g.known(topic) {
		return fmt.Errorf("publish: %w: %q", ErrUnknownTopic, topic)
	}
	spans := make([]trace.Span, len(msgs))
	for i, m := range msgs {
		spans[i] = startPublish(topic, m)
	}
	err := g.pub.Publish(topic, msgs...)
	for _, s := range spans {
		if err != nil {
			s.SetStatus(codes.Error, err.Error())
		}
		s.End()
	}
	if err != nil {
		return fmt.Errorf("publish %s: %w: %w", topic, ErrUnavailable, err)
	}
	return nil
}

func (g guard) Close() error { return g.pub.Close() }

// ToMessage turns an event into a Watermill message.
func ToMessage(ctx context.Context, ev job.Event) *message.Message {
	m := message.NewMessage(ev.ID, ev.Payload)
	for k, v := range ev.Metadata {
		m.Metadata.Set(k, v)
	}
	m.SetContext(ctx)
	return m
}
