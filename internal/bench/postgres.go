package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx" for PublishTx
	"github.com/prometheus/client_golang/prometheus"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/middleware"
	"github.com/millrace/millrace/router"
	"github.com/millrace/millrace/schemas"
	"github.com/millrace/millrace/store"
	"github.com/millrace/millrace/telemetry"
	"github.com/millrace/millrace/transport"
	"github.com/millrace/millrace/transport/postgres"
)

// PGDSN is the database of the Postgres rows.
const PGDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// ErrNoPostgres is returned when the benchmark database does not answer.
var ErrNoPostgres = errors.New("postgres unreachable")

// PG is a schema of its own on the benchmark database, with two small pools
// whose statements are counted (publishing, and the transport's consumers,
// as the transport opens them from a DSN) and a database/sql handle for
// PublishTx.
type PG struct {
	base, schema string
	URL          string // base with the schema as search path
	Pool         *pgxpool.Pool
	ConsumePool  *pgxpool.Pool
	DB           *sql.DB
	stmts, begin atomic.Int64
	timed        *timedCounter
}

// OpenPG creates a fresh schema bench_<random> on base and opens two pools
// of 4 connections and a database/sql handle whose search path is that
// schema.
func OpenPG(ctx context.Context, base string) (*PG, error) {
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, base)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoPostgres, err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	p := &PG{base: base, schema: "bench_" + strings.ReplaceAll(uuid.NewString()[:13], "-", "")}
	if _, err := conn.Exec(cctx, "CREATE SCHEMA "+p.schema); err != nil {
		return nil, fmt.Errorf("create schema: %w", err)
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("parse dsn: %w", err)
	}
	q := u.Query()
	q.Set("search_path", p.schema)
	q.Set("application_name", p.schema)
	u.RawQuery = q.Encode()
	pc, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		return nil, fmt.Errorf("parse dsn: %w", err)
	}
	pc.MaxConns = 4
	pc.ConnConfig.Tracer = counter{p}
	if os.Getenv("MILLRACE_BENCH_SQL") != "" {
		p.timed = &timedCounter{counter: counter{p}, stats: map[string]*sqlStat{}}
		pc.ConnConfig.Tracer = p.timed
	}
	if p.Pool, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
		p.drop()
		return nil, fmt.Errorf("open pool: %w", err)
	}
	if p.ConsumePool, err = pgxpool.NewWithConfig(ctx, pc.Copy()); err != nil {
		p.Pool.Close()
		p.drop()
		return nil, fmt.Errorf("open pool: %w", err)
	}
	p.URL = u.String()
	if p.DB, err = sql.Open("pgx", u.String()); err != nil {
		p.Pool.Close()
		p.ConsumePool.Close()
		p.drop()
		return nil, fmt.Errorf("open database: %w", err)
	}
	p.DB.SetMaxOpenConns(2)
	return p, nil
}

// Statements returns how many statements the pools have sent, and how many
// of them began a transaction.
func (p *PG) Statements() (stmts, begins int64) { return p.stmts.Load(), p.begin.Load() }

// Close closes the pool and drops the schema.
func (p *PG) Close() {
	if p.timed != nil {
		p.timed.report()
	}
	_ = p.DB.Close()
	p.Pool.Close()
	p.ConsumePool.Close()
	p.drop()
}

func (p *PG) drop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.base)
	if err != nil {
		return
	}
	defer func() { _ = conn.Close(context.Background()) }()
	_, _ = conn.Exec(ctx, "DROP SCHEMA "+p.schema+" CASCADE")
}

// counter is a pgx tracer counting the statements of a pool.
type counter struct{ p *PG }

func (c counter) TraceQueryStart(ctx context.Context, _ *pgx.Conn,
	d pgx.TraceQueryStartData) context.Context {
	c.p.stmts.Add(1)
	if strings.HasPrefix(strings.ToLower(strings.TrimSpace(d.SQL)), "begin") {
		c.p.begin.Add(1)
	}
	return ctx
}

func (counter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// timedCounter is counter that also sums, per statement (its first 60
// bytes), the count, time and rows, for MILLRACE_BENCH_SQL=1: where a row's
// database time goes.
type timedCounter struct {
	counter
	mu    sync.Mutex
	stats map[string]*sqlStat
}

type sqlStat struct {
	n, rows int64
	d       time.Duration
}

type startKey struct{}

type started struct {
	sql string
	at  time.Time
}

func (c *timedCounter) TraceQueryStart(ctx context.Context, conn *pgx.Conn,
	d pgx.TraceQueryStartData) context.Context {
	ctx = c.counter.TraceQueryStart(ctx, conn, d)
	q := strings.Join(strings.Fields(d.SQL), " ")
	return context.WithValue(ctx, startKey{}, started{q[:min(60, len(q))], time.Now()})
}

func (c *timedCounter) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryEndData) {
	st, ok := ctx.Value(startKey{}).(started)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats[st.sql]
	if s == nil {
		s = &sqlStat{}
		c.stats[st.sql] = s
	}
	s.n++
	s.rows += d.CommandTag.RowsAffected()
	s.d += time.Since(st.at)
}

// report prints the sums to stderr.
func (c *timedCounter) report() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, s := range c.stats {
		fmt.Fprintf(os.Stderr, "sql: %6d calls %8d rows %8.1f ms total %7.3f ms/call  %s\n",
			s.n, s.rows, float64(s.d.Microseconds())/1000,
			float64(s.d.Microseconds())/1000/float64(s.n), q)
	}
}

// pgTransport gives the catalogue's concurrency and ordering to the
// subscribers, as serve does.
type pgTransport struct{ *postgres.Transport }

// SubscriberWith implements router.SubscriberTuner.
func (t pgTransport) SubscriberWith(group string, concurrency int, unordered bool) (
	message.Subscriber, error) {
	return t.NewSubscriber(group, postgres.SubscriberConfig{Concurrency: concurrency,
		Unordered: unordered})
}

// PGOpts configures the full chain on Postgres.
type PGOpts struct {
	Concurrency int
	Unordered   bool
	// Delay is how long the handler sleeps before recording the delivery.
	Delay time.Duration
	// Idempotent makes the chain do what a handler with domain writes does:
	// the idempotency check reads processed_messages in a Postgres store on
	// the benchmark's schema, and the handler claims the message there in a
	// transaction of its own (store.DB.Handle) before recording it.
	Idempotent bool
}

// PGChain is Millrace's router with its whole chain on the Postgres
// transport, built but not running until Start.
type PGChain struct {
	tr          *postgres.Transport
	rt          *router.Router
	reg         *schemas.Registry
	pub         message.Publisher
	stopTracing func(context.Context) error
	cancel      context.CancelFunc
	db          *store.DB
}

// NewPGChain builds the chain of Full on the Postgres transport of pg and
// registers the benchmark handler's group, so messages published before
// Start wait for it.
func NewPGChain(ctx context.Context, t *Tracker, pg *PG, o PGOpts) (*PGChain, error) {
	reg, err := schemas.LoadFS(topicsFS, "testdata/topics")
	if err != nil {
		return nil, err
	}
	logger := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	tr, err := postgres.New(ctx, postgres.Config{Pool: pg.Pool, ConsumePool: pg.ConsumePool,
		Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("postgres transport: %w", err)
	}
	c := &PGChain{tr: tr, reg: reg}
	_, c.stopTracing = telemetry.SetupTracing()
	var ledger middleware.Ledger = &memLedger{}
	if o.Idempotent {
		if c.db, err = openStore(ctx, pg.URL); err != nil {
			c.Close()
			return nil, err
		}
		ledger = c.db
	}
	h := job.HandlerFunc(func(ctx context.Context, m job.Message) error {
		if o.Delay > 0 {
			time.Sleep(o.Delay)
		}
		if c.db != nil {
			err := c.db.Handle(ctx, "bench", store.MessageKey(m.ID),
				func(*store.Tx) error { return nil })
			if err != nil && !errors.Is(err, store.ErrAlreadyProcessed) {
				return err
			}
		}
		return t.Observe(m.Payload)
	})
	sub := router.Subscription{Topic: Topic, Handler: "bench",
		New: func(*router.Deps) job.Handler { return h }}
	cat := router.Catalogue{Jobs: []router.Job{
		{Name: "bench", Kind: router.KindEvent, Subscriptions: []router.Subscription{sub},
			Concurrency: o.Concurrency, Unordered: o.Unordered},
		{Name: "poison", Kind: router.KindSystem, Subscriptions: []router.Subscription{{
			Topic: job.PoisonTopic, Handler: "poison", New: func(*router.Deps) job.Handler {
				return job.HandlerFunc(func(context.Context, job.Message) error { return nil })
			}}}},
	}}
	c.rt, err = router.New(router.Config{
		Catalogue: cat, Deps: &router.Deps{}, Transport: pgTransport{tr}, Registry: reg,
		Ledger: ledger, Logger: logger,
		Metrics: middleware.NewMetrics(prometheus.NewRegistry()),
	})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("full chain: %w", err)
	}
	c.pub = c.rt.Publisher()
	init, err := tr.NewSubscriber(sub.Group(), postgres.SubscriberConfig{})
	if err == nil {
		err = init.SubscribeInitialize(Topic)
		_ = init.Close()
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("register group: %w", err)
	}
	return c, nil
}

// Start runs the router and returns once every handler is subscribed.
func (c *PGChain) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go func() { _ = c.rt.Run(ctx) }()
	<-c.rt.Running()
}

// Publish publishes one message as ingest does: validate, stamp, publish
// through the guard, one statement per call.
func (c *PGChain) Publish(id int64) error {
	ctx := context.Background()
	payload := Payload(id)
	if err := c.reg.Validate(Topic, payload); err != nil {
		return err
	}
	return c.pub.Publish(Topic, transport.ToMessage(ctx, job.NewEvent(ctx, "", Topic, payload,
		"bench", nowFunc())))
}

// PublishTx publishes messages from..to-1 in one database/sql transaction.
func (c *PGChain) PublishTx(ctx context.Context, db *sql.DB, from, to int64) error {
	return publishTx(ctx, db, from, to)
}

// publishTx publishes messages from..to-1 in one database/sql transaction,
// as ingest stamps them.
func publishTx(ctx context.Context, db *sql.DB, from, to int64) error {
	msgs := make([]*message.Message, 0, to-from)
	for id := from; id < to; id++ {
		payload := Payload(id)
		msgs = append(msgs, transport.ToMessage(ctx, job.NewEvent(ctx, "", Topic, payload,
			"bench", nowFunc())))
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := postgres.PublishTx(ctx, tx, Topic, msgs...); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Close stops the router and the transport.
func (c *PGChain) Close() {
	if c.rt != nil {
		_ = c.rt.Close()
	}
	if c.cancel != nil {
		c.cancel()
	}
	_ = c.tr.Close()
	_ = c.stopTracing(context.Background())
	if c.db != nil {
		_ = c.db.Close()
	}
}

// openStore opens a Postgres store on url and creates its tables.
func openStore(ctx context.Context, url string) (*store.DB, error) {
	db, err := store.Open(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if _, err := db.Migrate(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("migrate store: %w", err)
	}
	return db, nil
}
