package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Config configures the transport.
type Config struct {
	// DSN is the database to connect to, used when Pool is nil. The pool
	// it opens is closed with the transport.
	DSN string
	// Pool is a pool the caller owns; the transport does not close it.
	Pool *pgxpool.Pool
	// ConsumePool, when set with Pool, is the caller's pool for claims,
	// acks and lease renewals; by default they share Pool.
	ConsumePool *pgxpool.Pool
	// MaxConns bounds each of the two pools opened from DSN: one for
	// publishing, one for claims, acks and lease renewals, so that
	// publishers saturating their connections never starve the consumers
	// (whose falling behind would only grow the backlog). Default 4.
	MaxConns int32
	// PollInterval is the fallback poll of every subscription, for leases
	// that expired and notifications missed while the listener reconnected.
	// Default 1s.
	PollInterval time.Duration
	// Lease is how long a claimed message stays invisible to other
	// subscribers. A live subscriber renews it every third of it, so it only
	// bounds how long a crashed subscriber's messages wait. Default 30s.
	Lease time.Duration
	// CloseTimeout bounds how long closing a subscription waits for the
	// messages in flight to be acked before it cancels their contexts and
	// hands them back. Default 10s.
	CloseTimeout time.Duration
	// PublishTimeout bounds one publish. Default 5s.
	PublishTimeout time.Duration
	// Subscriber holds the defaults of Subscriber(group).
	Subscriber SubscriberConfig
	// Logger logs lifecycle and degraded states. Default slog.Default().
	Logger *slog.Logger
}

// ErrClosed is returned by a closed transport or subscriber.
var ErrClosed = errors.New("postgres transport closed")

// Transport is the Postgres transport.
type Transport struct {
	cfg      Config
	pool     *pgxpool.Pool // publishing, and everything else of the caller
	cpool    *pgxpool.Pool // claims, acks, renewals, hand-backs
	ownsPool bool
	log      *slog.Logger
	notes    *notifier

	mu     sync.Mutex
	closed bool
	subs   map[*Subscriber]struct{}
	wakers map[string]map[*subscription]struct{} // topic → live subscriptions

	stopListener context.CancelFunc
	listenerDone chan struct{}
}

func (c Config) withDefaults() Config {
	if c.MaxConns <= 0 {
		c.MaxConns = 4
	}
	if c.PollInterval <= 0 {
		c.PollInterval = time.Second
	}
	if c.Lease <= 0 {
		c.Lease = 30 * time.Second
	}
	if c.CloseTimeout <= 0 {
		c.CloseTimeout = 10 * time.Second
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Subscriber = c.Subscriber.withDefaults()
	return c
}

// New connects, creates the queue tables if needed and starts listening for
// publishes. It returns once the listener listens, so that a publish made
// after New returns always wakes this process's subscribers.
func New(ctx context.Context, cfg Config) (*Transport, error) {
	cfg = cfg.withDefaults()
	t := &Transport{cfg: cfg, pool: cfg.Pool, log: cfg.Logger,
		subs: map[*Subscriber]struct{}{}, wakers: map[string]map[*subscription]struct{}{}}
	if t.pool == nil {
		if cfg.DSN == "" {
			return nil, errors.New("invalid config: DSN or Pool is required")
		}
		pc, err := pgxpool.ParseConfig(cfg.DSN)
		if err != nil {
			return nil, fmt.Errorf("parse postgres DSN: %w", err)
		}
		pc.MaxConns = cfg.MaxConns
		if t.pool, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
			return nil, fmt.Errorf("open postgres pool: %w", err)
		}
		if t.cpool, err = pgxpool.NewWithConfig(ctx, pc.Copy()); err != nil {
			t.pool.Close()
			return nil, fmt.Errorf("open postgres pool: %w", err)
		}
		t.ownsPool = true
	} else {
		t.cpool = cfg.ConsumePool
		if t.cpool == nil {
			t.cpool = t.pool
		}
	}
	if err := Init(ctx, t.pool); err != nil {
		t.closePool()
		return nil, err
	}
	l, err := connectListener(ctx, t.pool.Config().ConnConfig)
	if err != nil {
		t.closePool()
		return nil, err
	}
	lctx, cancel := context.WithCancel(context.Background())
	t.stopListener, t.listenerDone = cancel, make(chan struct{})
	go t.listen(lctx, l)
	t.notes = newNotifier(t)
	return t, nil
}

// Name returns "postgres".
func (t *Transport) Name() string { return "postgres" }

// Durable returns true.
func (t *Transport) Durable() bool { return true }

// Pool returns the transport's connection pool.
func (t *Transport) Pool() *pgxpool.Pool { return t.pool }

// Publisher returns a publisher on the transport's pool. Closing it does not
// close the transport.
func (t *Transport) Publisher() message.Publisher { return publisher{t} }

// Subscriber returns a subscriber in group with the configured defaults.
func (t *Transport) Subscriber(group string) (message.Subscriber, error) {
	return t.NewSubscriber(group, t.cfg.Subscriber)
}

// NewSubscriber returns a subscriber in group with its own settings, such
// as the concurrency the catalogue gives a handler.
func (t *Transport) NewSubscriber(group string, cfg SubscriberConfig) (*Subscriber, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	s := &Subscriber{t: t, group: group, cfg: cfg.withDefaults(),
		subs: map[*subscription]struct{}{}}
	t.subs[s] = struct{}{}
	return s, nil
}

// Ready pings the database.
func (t *Transport) Ready(ctx context.Context) error {
	if t.isClosed() {
		return ErrClosed
	}
	if err := t.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", err)
	}
	return nil
}

// Close closes every subscriber (each waits for its messages in flight, up
// to CloseTimeout), stops the listener and closes the pool it opened.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	subs := make([]*Subscriber, 0, len(t.subs))
	for s := range t.subs {
		subs = append(subs, s)
	}
	t.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Add(1)
		go func() { defer wg.Done(); _ = s.Close() }()
	}
	wg.Wait()
	t.notes.close()
	t.stopListener()
	<-t.listenerDone
	t.closePool()
	return nil
}

func (t *Transport) closePool() {
	if t.ownsPool {
		t.pool.Close()
		t.cpool.Close()
	}
}

func (t *Transport) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

func (t *Transport) forget(s *Subscriber) {
	t.mu.Lock()
	delete(t.subs, s)
	t.mu.Unlock()
}

// watch makes notifications of topic wake sub until unwatch.
func (t *Transport) watch(topic string, sub *subscription) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.wakers[topic] == nil {
		t.wakers[topic] = map[*subscription]struct{}{}
	}
	t.wakers[topic][sub] = struct{}{}
}

func (t *Transport) unwatch(topic string, sub *subscription) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.wakers[topic], sub)
	if len(t.wakers[topic]) == 0 {
		delete(t.wakers, topic)
	}
}

// wake wakes the subscriptions of topic, or all of them when topic is "",
// and makes their next claim scan from their first row: what woke them may
// be a row below where they got to (a hand-back, a transaction that took an
// id early and committed late).
func (t *Transport) wake(topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for tp, subs := range t.wakers {
		if topic != "" && tp != topic {
			continue
		}
		for s := range subs {
			s.rescan.Store(true)
			s.poke()
		}
	}
}
