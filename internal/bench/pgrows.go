package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"time"

	"github.com/millrace/millrace/transport/postgres"
)

// PGMax runs a max row on Postgres: publishers goroutines publish n
// messages, one per statement, while the full chain consumes.
func PGMax(ctx context.Context, n int64, publishers int, o PGOpts) (Result, error) {
	pg, err := OpenPG(ctx, PGDSN)
	if err != nil {
		return Result{}, err
	}
	defer pg.Close()
	t := NewTracker(n)
	c, err := NewPGChain(ctx, t, pg, o)
	if err != nil {
		return Result{}, err
	}
	defer c.Close()
	c.Start()
	defer profile()()
	res, err := Max(ctx, t, c.Publish, n, publishers)
	res.Note = fmt.Sprintf("publishers and subscriber share the transport's pool of %d "+
		"connections; latency includes the wait behind the publishing backlog",
		pg.Pool.Config().MaxConns)
	return res, err
}

// PGBacklog publishes n messages in transactions of batch with the
// consumer stopped, then starts the router and measures the drain: from
// Start to the last delivery. The publishing rate goes in Note.
func PGBacklog(ctx context.Context, n, batch int64, o PGOpts) (Result, error) {
	pg, err := OpenPG(ctx, PGDSN)
	if err != nil {
		return Result{}, err
	}
	defer pg.Close()
	t := NewTracker(n)
	c, err := NewPGChain(ctx, t, pg, o)
	if err != nil {
		return Result{}, err
	}
	defer c.Close()
	pubStart := time.Now()
	for from := int64(0); from < n; from += batch {
		if err := c.PublishTx(ctx, pg.DB, from, min(from+batch, n)); err != nil {
			return Result{}, fmt.Errorf("publish: %w", err)
		}
	}
	pubRate := float64(n) / time.Since(pubStart).Seconds()
	_, cpu0 := usage()
	start := time.Now()
	c.Start()
	if err := wait(ctx, t, 5*time.Minute); err != nil {
		return Result{}, err
	}
	rss, cpu1 := usage()
	secs := time.Unix(0, t.last.Load()).Sub(start).Seconds()
	return Result{Mode: "max", N: n, Seconds: secs, MsgPerS: float64(n) / secs, RSSMiB: rss,
		Dups: t.dups.Load(), CPUMsPer1k: float64((cpu1 - cpu0).Microseconds()) / float64(n),
		Note: fmt.Sprintf("drain rate from router start; publish side %.0f msg/s "+
			"(PublishTx, %d per transaction, consumer stopped)", pubRate, batch)}, nil
}

// PGRateIdle runs the rate row on Postgres, then counts the statements the
// pool sends during idle of the process: no publishes, router running.
func PGRateIdle(ctx context.Context, rate float64, d, idle time.Duration, o PGOpts) (Result, error) {
	pg, err := OpenPG(ctx, PGDSN)
	if err != nil {
		return Result{}, err
	}
	defer pg.Close()
	t := NewTracker(int64(rate * d.Seconds()))
	c, err := NewPGChain(ctx, t, pg, o)
	if err != nil {
		return Result{}, err
	}
	defer c.Close()
	c.Start()
	res, err := Rate(ctx, t, c.Publish, rate, d)
	if err != nil {
		return Result{}, err
	}
	time.Sleep(time.Second) // let the last acks settle
	s0, b0 := pg.Statements()
	time.Sleep(idle)
	s1, b1 := pg.Statements()
	res.IdleStmtPerS = float64(s1-s0) / idle.Seconds()
	res.IdleTxPerS = float64(b1-b0) / idle.Seconds()
	res.HasIdle = true
	res.Note = fmt.Sprintf("idle: statements the transport's pool sent (pgx tracer) in %s "+
		"with the router running and nothing published; tx = BEGINs among them", idle)
	return res, nil
}

// PGBacklogTransport measures the transport alone, without the router: n
// messages published in transactions of batch while no subscriber runs,
// then drained by one Subscribe call with cfg, whose messages are recorded
// and acked by cfg.Concurrency goroutines (a no-op handler).
func PGBacklogTransport(ctx context.Context, n, batch int64,
	cfg postgres.SubscriberConfig) (Result, error) {
	pg, err := OpenPG(ctx, PGDSN)
	if err != nil {
		return Result{}, err
	}
	defer pg.Close()
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	tr, err := postgres.New(ctx, postgres.Config{Pool: pg.Pool, ConsumePool: pg.ConsumePool,
		Logger: logger})
	if err != nil {
		return Result{}, fmt.Errorf("postgres transport: %w", err)
	}
	defer func() { _ = tr.Close() }()
	sub, err := tr.NewSubscriber("bench", cfg)
	if err != nil {
		return Result{}, err
	}
	if err := sub.SubscribeInitialize(Topic); err != nil {
		return Result{}, err
	}
	t := NewTracker(n)
	pubStart := time.Now()
	for from := int64(0); from < n; from += batch {
		if err := publishTx(ctx, pg.DB, from, min(from+batch, n)); err != nil {
			return Result{}, fmt.Errorf("publish: %w", err)
		}
	}
	pubRate := float64(n) / time.Since(pubStart).Seconds()
	_, cpu0 := usage()
	start := time.Now()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := sub.Subscribe(sctx, Topic)
	if err != nil {
		return Result{}, err
	}
	for range max(cfg.Concurrency, 1) {
		go func() {
			for m := range ch {
				_ = t.Observe(m.Payload)
				m.Ack()
			}
		}()
	}
	if err := wait(ctx, t, 5*time.Minute); err != nil {
		return Result{}, err
	}
	rss, cpu1 := usage()
	secs := time.Unix(0, t.last.Load()).Sub(start).Seconds()
	return Result{Mode: "max", N: n, Seconds: secs, MsgPerS: float64(n) / secs, RSSMiB: rss,
		Dups: t.dups.Load(), CPUMsPer1k: float64((cpu1 - cpu0).Microseconds()) / float64(n),
		Note: fmt.Sprintf("transport only, no router; drain rate from Subscribe; publish "+
			"side %.0f msg/s (PublishTx, %d per transaction, consumer stopped)", pubRate, batch)}, nil
}

// profile writes a CPU profile of the measured part of a row to the file
// MILLRACE_BENCH_CPUPROFILE names, if it does; the returned func stops it.
func profile() func() {
	path := os.Getenv("MILLRACE_BENCH_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: cpu profile: %v\n", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "bench: cpu profile: %v\n", err)
		_ = f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }
}
