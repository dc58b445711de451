// Command millrace-bench measures Millrace's full middleware chain against a
// bare Watermill router on the same in-memory transport, in one run, then
// the full chain on the Postgres transport (-pg), and
// prints RESULT lines for ../shared/peers-bench/run.sh -add. Each row runs in
// a child process of its own, so peak memory is the row's own.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/millrace/millrace/internal/bench"
	"github.com/millrace/millrace/store"
)

// row is one configuration.
type row struct {
	key, variant string
	run          runFunc
}

func rows() []row {
	maxRow := func(sys string, pubs int, ledger string) runFunc {
		return func(ctx context.Context, n int64) (bench.Result, error) {
			t := bench.NewTracker(n)
			sys, err := system(sys, ledger, t)
			if err != nil {
				return bench.Result{}, err
			}
			defer sys.Close()
			return bench.Max(ctx, t, sys.Publish, n, pubs)
		}
	}
	rateRow := func(sys string) runFunc {
		return func(ctx context.Context, _ int64) (bench.Result, error) {
			t := bench.NewTracker(1000)
			sys, err := system(sys, "memory", t)
			if err != nil {
				return bench.Result{}, err
			}
			defer sys.Close()
			return bench.Rate(ctx, t, sys.Publish, 200, 5*time.Second)
		}
	}
	return append([]row{
		{"svc/memory/bare-gochannel/max-p1", "bare Watermill router on GoChannel (default config), 1 publisher",
			maxRow("bare", 1, "")},
		{"svc/memory/bare-memory/max-p1", "bare Watermill router on Millrace's memory transport, 1 publisher",
			maxRow("bare-memory", 1, "")},
		{"svc/memory/full/max-p1", "Millrace full chain on its memory transport, 1 publisher",
			maxRow("full", 1, "memory")},
		{"svc/memory/bare-gochannel/max-p4", "bare Watermill router on GoChannel (default config), 4 publishers",
			maxRow("bare", 4, "")},
		{"svc/memory/bare-memory/max-p4", "bare Watermill router on Millrace's memory transport, 4 publishers",
			maxRow("bare-memory", 4, "")},
		{"svc/memory/full/max-p4", "Millrace full chain on its memory transport, 4 publishers",
			maxRow("full", 4, "memory")},
		{"svc/memory/full-sqlite-ledger/max-p4",
			"Millrace full chain + SQLite idempotency read, 4 publishers", maxRow("full", 4, "sqlite")},
		{"svc/memory/bare-gochannel/rate200", "bare Watermill router on GoChannel, 200 msg/s",
			rateRow("bare")},
		{"svc/memory/full/rate200", "Millrace full chain on its memory transport, 200 msg/s",
			rateRow("full")},
	}, tracingRows(maxRow)...)
}

// allRows are the memory rows and the Postgres ones.
func allRows() []row { return append(append(rows(), pgRows()...), kafkaRows()...) }

type runFunc func(ctx context.Context, n int64) (bench.Result, error)

func system(kind, ledger string, t *bench.Tracker) (bench.System, error) {
	switch kind {
	case "bare":
		return bench.Bare(t)
	case "bare-memory":
		return bench.BareMemory(t)
	}
	if sys, ok, err := tracingSystem(kind, t); ok {
		return sys, err
	}
	o := bench.FullOpts{}
	if ledger == "sqlite" {
		dir, err := os.MkdirTemp("", "millrace-bench")
		if err != nil {
			return bench.System{}, err
		}
		db, err := store.Open(context.Background(), "sqlite:"+filepath.Join(dir, "bench.db"))
		if err != nil {
			return bench.System{}, err
		}
		if _, err := db.Migrate(context.Background()); err != nil {
			return bench.System{}, err
		}
		o.Ledger = db
	}
	return bench.Full(t, o)
}

func main() {
	only := flag.String("only", "", "run the row with this key in this process")
	n := flag.Int64("n", 200000, "messages per max row")
	rounds := flag.Int("tracing-rounds", 3, "runs of each side of the tracing cost ratio")
	withPG := flag.Bool("pg", true, "include the rows on the Postgres transport ("+bench.PGDSN+")")
	pick := flag.String("rows", "", "run only the rows whose key matches this regexp "+
		"(for run.sh -add: '^svc/pg/' for the Postgres rows)")
	flag.Parse()
	keep, err := regexp.Compile(*pick)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: -rows: %v\n", err)
		os.Exit(2)
	}
	if *collectorChild {
		if err := bench.ServeCollector(os.Stdin, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if *kfakeChild {
		os.Exit(serveKfake())
	}
	if *only != "" {
		os.Exit(runOne(*only, *n))
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	failed := false
	runRow := func(key string, show io.Writer) (bench.Result, bool) {
		fmt.Fprintf(os.Stderr, "bench: %s\n", key)
		var out bytes.Buffer
		cmd := exec.Command(self, "-only", key, "-n", fmt.Sprint(*n),
			fmt.Sprintf("-collector-in-process=%t", *collectorInProc))
		cmd.Stdout, cmd.Stderr = io.MultiWriter(show, &out), os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", key, err)
			failed = true
		}
		return parseResult(out.String())
	}
	samples := map[string][]bench.Result{}
	runPG := *withPG && pgReachable()
	for _, r := range allRows() {
		if !keep.MatchString(r.key) {
			continue
		}
		if strings.HasPrefix(r.key, pgPrefix) && !runPG {
			continue
		}
		if !kafkaRowWanted(r.key) {
			continue
		}
		if res, ok := runRow(r.key, os.Stdout); ok {
			samples[r.key] = append(samples[r.key], res)
		}
	}
	// The tracing cost is a ratio of two noisy numbers: more rounds, run
	// alternately, give each side a median.
	for range *rounds - 1 {
		for _, key := range tracingRoundKeys() {
			if !keep.MatchString(key) {
				continue
			}
			if res, ok := runRow(key, io.Discard); ok {
				samples[key] = append(samples[key], res)
			}
		}
	}
	printTracingRatio(samples)
	if failed {
		os.Exit(1)
	}
}

func runOne(key string, n int64) int {
	for _, r := range allRows() {
		if r.key != key {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		res, err := r.run(ctx, n)
		if skipped(key, err) {
			return 0
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", key, err)
			return 1
		}
		res.Key, res.Variant, res.Group = key, r.variant, "6. Service"
		res.System = "millrace"
		res.Note = spansNote(key, n)
		if strings.Contains(key, "/bare-") {
			res.System = "watermill router (same run)"
		}
		relabelKafka(key, &res)
		fmt.Println(res.Line())
		return 0
	}
	fmt.Fprintf(os.Stderr, "bench: no row %q\n", key)
	return 2
}
