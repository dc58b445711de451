package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/millrace/millrace/internal/bench"
	"github.com/millrace/millrace/transport/kafka/kafkatest"
)

// kafkaPrefix starts the keys of the rows on Kafka.
const kafkaPrefix = "svc/kafka/"

// kafkaEnv carries the shared broker's address from the bench process to
// the rows' child processes, which inherit the environment.
const kafkaEnv = "MILLRACE_BENCH_KAFKA"

var (
	withKafka = flag.Bool("kafka", true, "include the rows on Kafka (kfake, started by the bench)")
	kafkaOnly = flag.Bool("kafka-only", false,
		"run only the Kafka rows, for run.sh -add (implies -tracing-rounds 1)")
	kfakeChild = flag.Bool("kfake", false, "serve a kfake broker for the Kafka rows until stdin closes")
)

// Sizes of the Kafka rows: the peers' (watermill-kafka 120,000 messages from
// 4 sync publishers, raw kgo 10,000,000 from one async producer, 200 msg/s
// for 5 s). The chain claiming every message in Postgres commits once per
// message on one connection per partition; its rows are smaller so that
// they end within the minute Max waits for deliveries.
const (
	kafkaN       = 120000
	kafkaRawN    = 10000000
	kafkaClaimN1 = 10000
	kafkaClaimN8 = 40000
	kafkaPubs    = 4
)

// kafkaRows are raw franz-go, a bare watermill-kafka router and Millrace's
// full chain on one kfake broker the bench process starts.
func kafkaRows() []row {
	var rows []row
	add := func(key, variant string, run func(ctx context.Context, o bench.KafkaOpts) (
		bench.Result, error), o bench.KafkaOpts) {
		rows = append(rows, row{kafkaPrefix + key, variant,
			func(ctx context.Context, _ int64) (bench.Result, error) {
				brokers, stop, err := kafkaBrokers()
				if err != nil {
					return bench.Result{}, err
				}
				defer stop()
				o.Brokers = brokers
				return run(ctx, o)
			}})
	}
	full := func(ctx context.Context, o bench.KafkaOpts) (bench.Result, error) {
		return bench.KafkaFull(ctx, o, bench.PGDSN)
	}
	rate := func(p int32) bench.KafkaOpts {
		return bench.KafkaOpts{Partitions: p, Rate: 200, Duration: 5 * time.Second, Linger: -1}
	}
	for _, p := range []int32{1, 8} {
		add(fmt.Sprintf("raw-kgo/max-p%d", p), fmt.Sprintf("raw franz-go kgo, async produce, "+
			"linger 10ms (default), 1 producer, poll loop no router, %d partition(s)", p),
			bench.KafkaRaw, bench.KafkaOpts{Partitions: p, N: kafkaRawN, Publishers: 1, Linger: -1})
	}
	r := rate(8)
	r.Linger = 0
	add("raw-kgo/rate200-p8", "raw franz-go kgo, async produce, linger 0s, 8 partition(s)",
		bench.KafkaRaw, r)
	for _, p := range []int32{1, 8} {
		add(fmt.Sprintf("bare-wmkafka/max-p%d", p), fmt.Sprintf("bare watermill-kafka v3.1.2 "+
			"router (default sync publisher x %d publishers, no middleware), %d partition(s)",
			kafkaPubs, p), bench.KafkaBare,
			bench.KafkaOpts{Partitions: p, N: kafkaN, Publishers: kafkaPubs})
	}
	for _, p := range []int32{1, 8} {
		add(fmt.Sprintf("bare-wmkafka-durable/max-p%d", p), fmt.Sprintf("bare watermill-kafka "+
			"v3.1.2 router, sync sarama publisher with acks all and idempotence (1 request "+
			"in flight) x %d publishers, no middleware, %d partition(s)",
			kafkaPubs, p), bench.KafkaBare,
			bench.KafkaOpts{Partitions: p, N: kafkaN, Publishers: kafkaPubs, Durable: true})
	}
	for _, p := range []int32{1, 8} {
		add(fmt.Sprintf("bare-wmkafka/rate200-p%d", p), fmt.Sprintf("bare watermill-kafka "+
			"v3.1.2 router (default sync publisher), %d partition(s)", p), bench.KafkaBare, rate(p))
	}
	ledgers := []struct{ key, ledger, what string }{
		{"full", bench.LedgerMemory, "idempotency ledger in memory (no database)"},
		{"full-pg", bench.LedgerPG, "idempotency read in a Postgres store"},
		{"full-pg-claim", bench.LedgerPGClaim,
			"idempotency read + handler's claim transaction in a Postgres store"},
	}
	for _, l := range ledgers {
		for _, p := range []int32{1, 8} {
			n := int64(kafkaN)
			if l.ledger == bench.LedgerPGClaim {
				n = map[int32]int64{1: kafkaClaimN1, 8: kafkaClaimN8}[p]
			}
			add(fmt.Sprintf("%s/max-p%d", l.key, p), fmt.Sprintf("Millrace full chain on its "+
				"Kafka transport, %s, sync publish x %d publishers, %d partition(s)",
				l.what, kafkaPubs, p), full,
				bench.KafkaOpts{Partitions: p, N: n, Publishers: kafkaPubs, Ledger: l.ledger})
		}
	}
	for _, l := range ledgers {
		ps := []int32{8}
		if l.ledger == bench.LedgerMemory {
			ps = []int32{1, 8}
		}
		for _, p := range ps {
			o := rate(p)
			o.Ledger = l.ledger
			add(fmt.Sprintf("%s/rate200-p%d", l.key, p), fmt.Sprintf("Millrace full chain on "+
				"its Kafka transport, %s, %d partition(s)", l.what, p), full, o)
		}
	}
	return rows
}

// kafkaRowWanted reports whether the bench process runs the row with key,
// given -kafka and -kafka-only, and starts the shared broker before the
// first Kafka row.
func kafkaRowWanted(key string) bool {
	isKafka := strings.HasPrefix(key, kafkaPrefix)
	if *kafkaOnly {
		_ = flag.Set("tracing-rounds", "1")
	}
	if !isKafka {
		return !*kafkaOnly
	}
	if !*withKafka && !*kafkaOnly {
		return false
	}
	if strings.Contains(key, "/full-pg") && !pgReachable() {
		return false
	}
	if os.Getenv(kafkaEnv) != "" {
		return true
	}
	b, err := startBroker()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: skipping the %s rows: %v\n", kafkaPrefix, err)
		*withKafka, *kafkaOnly = false, false
		return false
	}
	// The broker lives as long as this process: it exits when its stdin
	// closes, and the kernel kills it if this process dies first. Keeping
	// it referenced keeps the stdin pipe from being closed by a finalizer.
	sharedBroker = b
	_ = os.Setenv(kafkaEnv, b.addr)
	return true
}

// sharedBroker is the broker of every Kafka row of this bench process.
var sharedBroker *broker

// kafkaBrokers returns the shared broker's address, or starts a broker of
// the row's own when the row runs alone (-only without the bench process).
func kafkaBrokers() ([]string, func(), error) {
	if addr := os.Getenv(kafkaEnv); addr != "" {
		return []string{addr}, func() {}, nil
	}
	b, err := startBroker()
	if err != nil {
		return nil, nil, err
	}
	return []string{b.addr}, func() { _ = b.stdin.Close(); _ = b.cmd.Wait() }, nil
}

// broker is a kfake broker in a child process ("millrace-bench -kfake"),
// as the peers benchmark runs it: its CPU and memory are not the rows'.
type broker struct {
	addr  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

func startBroker() (*broker, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start kfake: %w", err)
	}
	cmd := exec.Command(self, "-kfake")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("start kfake: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start kfake: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start kfake: %w", err)
	}
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, errors.New("start kfake: no address from the broker process")
	}
	addr, ok := strings.CutPrefix(sc.Text(), "READY ")
	if !ok {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("start kfake: unexpected %q", sc.Text())
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return &broker{addr: addr, cmd: cmd, stdin: stdin}, nil
}

// serveKfake runs one kfake broker on 127.0.0.1, prints its address and
// serves until stdin closes.
func serveKfake() int {
	c, err := kafkatest.StartCluster(1)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("READY %s\n", c.Addrs()[0])
	_, _ = io.Copy(io.Discard, os.Stdin)
	c.Close()
	return 0
}

// relabelKafka names a Kafka row as the peers' table expects: the Kafka
// section, system millrace-kafka, whatever part of it was measured being
// in the variant.
func relabelKafka(key string, res *bench.Result) {
	if !strings.HasPrefix(key, kafkaPrefix) {
		return
	}
	res.Group = bench.KafkaGroup
	res.System = "millrace-kafka"
	res.Note = "kfake shared by the run's rows, emptied before each"
}
