package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
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
	"github.com/millrace/millrace/telemetry"
	"github.com/millrace/millrace/transport"
	"github.com/millrace/millrace/transport/postgres"
)

// PGDSN is the database of the Postgres rows.
const PGDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// ErrNoPostgres is returned when the benchmark database does not answer.
var ErrNoPostgres = errors.New("postgres unreachable")

// PG is a schema of its own on the benchmark database, with a small pool
// whose statements are counted and a database/sql handle for PublishTx.
type PG struct {
	base, schema string
	Pool         *pgxpool.Pool
	DB           *sql.DB
	stmts, begin atomic.Int64
}

// OpenPG creates a fresh schema bench_<random> on base and opens a pool of 4
// connections and a database/sql handle whose search path is that schema.
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
	if p.Pool, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
		p.drop()
		return nil, fmt.Errorf("open pool: %w", err)
	}
	if p.DB, err = sql.Open("pgx", u.String()); err != nil {
		p.Pool.Close()
		p.drop()
		return nil, fmt.Errorf("open database: %w", err)
	}
	p.DB.SetMaxOpenConns(2)
	return p, nil
}

// Statements returns how many statements the pool has sent, and how many of
// them began a transaction.
func (p *PG) Statements() (stmts, begins int64) { return p.stmts.Load(), p.begin.Load() }

// Close closes the pool and drops the schema.
func (p *PG) Close() {
	_ = p.DB.Close()
	p.Pool.Close()
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
	tr, err := postgres.New(ctx, postgres.Config{Pool: pg.Pool, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("postgres transport: %w", err)
	}
	c := &PGChain{tr: tr, reg: reg}
	_, c.stopTracing = telemetry.SetupTracing()
	h := job.HandlerFunc(func(_ context.Context, m job.Message) error {
		if o.Delay > 0 {
			time.Sleep(o.Delay)
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
		Ledger: &memLedger{}, Logger: logger,
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
}
