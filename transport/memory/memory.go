// Package memory is the in-process transport: Watermill's GoChannel. Nothing
// survives a restart, so Millrace says so at start-up; it is for trying
// Millrace, demos and tests.
package memory

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
)

// Transport is the in-memory transport.
type Transport struct {
	gc     *gochannel.GoChannel
	closed atomic.Bool
}

// New returns an in-memory transport. Every subscription receives every
// message of its topic, which makes each subscription a consumer group of
// one; the router subscribes once per handler, so each handler sees each
// message once. A subscription handles one message at a time.
func New(logger watermill.LoggerAdapter) *Transport {
	return &Transport{gc: gochannel.NewGoChannel(gochannel.Config{}, logger)}
}

// Name returns "memory".
func (t *Transport) Name() string { return "memory" }

// Durable returns false.
func (t *Transport) Durable() bool { return false }

// Publisher returns the GoChannel.
func (t *Transport) Publisher() message.Publisher { return t.gc }

// Subscriber returns the GoChannel; see New for what groups mean here.
func (t *Transport) Subscriber(string) (message.Subscriber, error) { return t.gc, nil }

// Ready fails once the transport is closed.
func (t *Transport) Ready(context.Context) error {
	if t.closed.Load() {
		return errors.New("memory transport closed")
	}
	return nil
}

// Close closes the GoChannel.
func (t *Transport) Close() error {
	t.closed.Store(true)
	return t.gc.Close()
}
