// Package kafkatest starts an in-process Kafka cluster (franz-go's kfake)
// listening on TCP, for the Kafka transport's tests and benchmarks: no Kafka
// server can be installed where Millrace is built.
//
// # Outages
//
// kfake cannot stop and restart one of its brokers in place: RemoveNode and
// AddNode change the cluster's membership and move partition leaders, which
// is a different event from a broker going away and coming back. So each
// broker listens through a Listener of ours, handed to kfake with
// kfake.ListenFn. Down closes the real listening socket, so new connections
// are refused by the kernel exactly as with a stopped broker, and closes
// every connection accepted so far; Up listens on the same address again.
// kfake keeps its state (topics, records, committed offsets, groups)
// throughout, like a broker restarted with its disk. A TCP proxy in front of
// kfake would have worked too, but kfake advertises its listeners' own
// addresses in metadata responses, so clients would have bypassed the proxy
// after bootstrapping; owning the listener avoids both the extra hop and
// the address rewriting.
package kafkatest

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Cluster is a running kfake cluster whose brokers can be taken down.
type Cluster struct {
	kf  *kfake.Cluster
	lns []*Listener
}

// Start starts a cluster of brokers brokers and stops it when the test ends.
func Start(t testing.TB, brokers int, opts ...kfake.Opt) *Cluster {
	t.Helper()
	c, err := StartCluster(brokers, opts...)
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// StartCluster starts a cluster of brokers brokers; the caller closes it.
// Groups may use session timeouts down to 100ms (a real broker's minimum is
// 6s), so that tests of members that vanish do not wait for long.
func StartCluster(brokers int, opts ...kfake.Opt) (*Cluster, error) {
	if brokers <= 0 {
		return nil, errors.New("kafkatest: need at least one broker")
	}
	c := &Cluster{}
	var mu sync.Mutex
	listen := func(network, address string) (net.Listener, error) {
		l, err := newListener(network, address)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		c.lns = append(c.lns, l)
		mu.Unlock()
		return l, nil
	}
	all := append([]kfake.Opt{
		kfake.NumBrokers(brokers),
		kfake.ListenFn(listen),
		kfake.GroupMinSessionTimeout(100 * time.Millisecond),
	}, opts...)
	kf, err := kfake.NewCluster(all...)
	if err != nil {
		return nil, fmt.Errorf("kafkatest: new kfake cluster: %w", err)
	}
	c.kf = kf
	return c, nil
}

// Addrs returns the brokers' addresses, host:port.
func (c *Cluster) Addrs() []string { return c.kf.ListenAddrs() }

// Kfake returns the underlying cluster, for its fault injection.
func (c *Cluster) Kfake() *kfake.Cluster { return c.kf }

// Listeners returns the brokers' listeners, in the order kfake opened them.
func (c *Cluster) Listeners() []*Listener { return c.lns }

// Down takes every broker off the network: open connections are closed and
// new ones refused.
func (c *Cluster) Down() {
	for _, l := range c.lns {
		l.Down()
	}
}

// Up puts every broker back on the network at its old address.
func (c *Cluster) Up() error {
	var errs []error
	for _, l := range c.lns {
		errs = append(errs, l.Up())
	}
	return errors.Join(errs...)
}

// Close stops the cluster.
func (c *Cluster) Close() { c.kf.Close() }

// Listener is a broker's listening socket that can be taken down and put
// back at the same address. Accept blocks while the listener is down rather
// than failing, since kfake stops a broker for good on an Accept error.
type Listener struct {
	addr net.Addr

	mu     sync.Mutex
	inner  net.Listener // nil while down
	up     chan struct{}
	conns  map[*conn]struct{}
	closed bool
	done   chan struct{}
}

func newListener(network, address string) (*Listener, error) {
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, fmt.Errorf("kafkatest: listen %s: %w", address, err)
	}
	up := make(chan struct{})
	close(up)
	return &Listener{addr: ln.Addr(), inner: ln, up: up,
		conns: map[*conn]struct{}{}, done: make(chan struct{})}, nil
}

// Accept waits for the next connection, across outages.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return nil, net.ErrClosed
		}
		inner, up := l.inner, l.up
		l.mu.Unlock()
		if inner == nil {
			select {
			case <-up:
			case <-l.done:
			}
			continue
		}
		nc, err := inner.Accept()
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			if nc != nil {
				_ = nc.Close()
			}
			return nil, net.ErrClosed
		}
		if err != nil || l.inner != inner {
			// Taken down meanwhile, or a transient accept failure:
			// either way the broker must keep accepting.
			l.mu.Unlock()
			if nc != nil {
				_ = nc.Close()
			}
			if err != nil && l.isUp(inner) {
				time.Sleep(10 * time.Millisecond)
			}
			continue
		}
		c := &conn{Conn: nc, l: l}
		l.conns[c] = struct{}{}
		l.mu.Unlock()
		return c, nil
	}
}

func (l *Listener) isUp(inner net.Listener) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inner == inner
}

// Down closes the listening socket and every accepted connection.
func (l *Listener) Down() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inner == nil || l.closed {
		return
	}
	_ = l.inner.Close()
	l.inner = nil
	l.up = make(chan struct{})
	for c := range l.conns {
		_ = c.Conn.Close()
		delete(l.conns, c)
	}
}

// Up listens again at the listener's address.
func (l *Listener) Up() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inner != nil || l.closed {
		return nil
	}
	ln, err := net.Listen(l.addr.Network(), l.addr.String())
	if err != nil {
		return fmt.Errorf("kafkatest: listen again on %s: %w", l.addr, err)
	}
	l.inner = ln
	close(l.up)
	return nil
}

// Close stops the listener for good.
func (l *Listener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	close(l.done)
	if l.inner != nil {
		_ = l.inner.Close()
		l.inner = nil
	}
	return nil
}

// Addr returns the address the listener keeps across outages.
func (l *Listener) Addr() net.Addr { return l.addr }

type conn struct {
	net.Conn
	l *Listener
}

func (c *conn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}
