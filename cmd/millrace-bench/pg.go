package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/millrace/millrace/internal/bench"
	"github.com/millrace/millrace/transport/postgres"
)

// pgPrefix starts the keys of the rows on the Postgres transport.
const pgPrefix = "svc/pg/"

// pgN is the size of the Postgres max rows and pgBacklogN of the backlog
// rows, the peers' 40,000 and 150,000. pgIdemN, the backlog of the row
// whose handler commits a transaction per message, is smaller so that the
// row takes under a minute on a loaded 2-core machine.
const (
	pgN        = 40000
	pgBacklogN = 150000
	pgIdemN    = 30000
)

// pgRows are the full chain on the Postgres transport, each in a schema of
// its own. Their sizes are fixed (-n does not apply) so that the set runs in
// a few minutes on 2 cores.
func pgRows() []row {
	maxRow := func(n int64, pubs int, o bench.PGOpts) runFunc {
		return func(ctx context.Context, _ int64) (bench.Result, error) {
			return bench.PGMax(ctx, n, pubs, o)
		}
	}
	ms10 := 10 * time.Millisecond
	return []row{
		{pgPrefix + "max/single-p4", "Millrace full chain on Postgres, 1 message per publish, " +
			"4 publishers, Concurrency 1", maxRow(pgN, 4, bench.PGOpts{})},
		{pgPrefix + "max/batch100-backlog", "Millrace full chain on Postgres, backlog published " +
			"100 per PublishTx with the consumer stopped, then drained, Concurrency 4 ordered",
			func(ctx context.Context, _ int64) (bench.Result, error) {
				return bench.PGBacklog(ctx, pgBacklogN, 100, bench.PGOpts{Concurrency: 4})
			}},
		{pgPrefix + "max/backlog-transport", "Millrace Postgres transport alone (no router), " +
			"backlog published 100 per PublishTx with the consumer stopped, then drained by one " +
			"subscription, Concurrency 4 ordered, no-op handler",
			func(ctx context.Context, _ int64) (bench.Result, error) {
				return bench.PGBacklogTransport(ctx, pgBacklogN, 100,
					postgres.SubscriberConfig{Concurrency: 4})
			}},
		{pgPrefix + "max/batch100-backlog-idem", "Millrace full chain on Postgres with the " +
			"idempotency read and the handler's claim transaction in a Postgres store, 30k " +
			"backlog published 100 per PublishTx with the consumer stopped, then drained, " +
			"Concurrency 16",
			func(ctx context.Context, _ int64) (bench.Result, error) {
				return bench.PGBacklog(ctx, pgIdemN, 100,
					bench.PGOpts{Concurrency: 16, Idempotent: true})
			}},
		{pgPrefix + "max/full-noop-c4", "Millrace full chain on Postgres, Concurrency 4 ordered " +
			"(no partition key), 4 publishers", maxRow(pgN, 4, bench.PGOpts{Concurrency: 4})},
		{pgPrefix + "max/handler10ms-c1", "Millrace full chain on Postgres, 10 ms handler, " +
			"Concurrency 1, 4 publishers", maxRow(500, 4, bench.PGOpts{Concurrency: 1, Delay: ms10})},
		{pgPrefix + "max/handler10ms-c4", "Millrace full chain on Postgres, 10 ms handler, " +
			"Concurrency 4 ordered (no partition key), 4 publishers",
			maxRow(500, 4, bench.PGOpts{Concurrency: 4, Delay: ms10})},
		{pgPrefix + "rate200", "Millrace full chain on Postgres, 200 msg/s, Concurrency 1; " +
			"then 5 s idle, statements counted by a pgx tracer on the transport's pool",
			func(ctx context.Context, _ int64) (bench.Result, error) {
				return bench.PGRateIdle(ctx, 200, 5*time.Second, 5*time.Second, bench.PGOpts{})
			}},
	}
}

// pgReachable reports whether the benchmark database answers, saying why
// not on stderr.
func pgReachable() bool {
	pg, err := bench.OpenPG(context.Background(), bench.PGDSN)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: skipping the %s rows: %v\n", pgPrefix, err)
		return false
	}
	pg.Close()
	return true
}

// skipped reports whether err means a Postgres row could not run for want of
// a database, which is not a failure.
func skipped(key string, err error) bool {
	if strings.HasPrefix(key, pgPrefix) && errors.Is(err, bench.ErrNoPostgres) {
		fmt.Fprintf(os.Stderr, "bench: skipping %s: %v\n", key, err)
		return true
	}
	return false
}
