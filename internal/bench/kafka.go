package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/middleware"
	"github.com/millrace/millrace/router"
	"github.com/millrace/millrace/schemas"
	"github.com/millrace/millrace/store"
	"github.com/millrace/millrace/telemetry"
	"github.com/millrace/millrace/transport"
	"github.com/millrace/millrace/transport/kafka"
)

// KafkaGroup is the table section of the peers benchmark the Kafka rows
// belong to, so that they print beside watermill-kafka and raw franz-go.
const KafkaGroup = "4. Kafka protocol (kfake broker)"

// Ledgers of the full chain on Kafka.
const (
	// LedgerMemory answers the idempotency check from memory: the chain's
	// own cost, no database.
	LedgerMemory = "memory"
	// LedgerPG reads processed_messages in a Postgres store before every
	// handler call, as serve does on Kafka (the ledger is the store).
	LedgerPG = "pg"
	// LedgerPGClaim also claims every message in the store in a
	// transaction of its own (store.DB.Handle), as a handler with domain
	// writes does: one Postgres commit per message.
	LedgerPGClaim = "pg-claim"
)

// KafkaOpts is one Kafka row. N > 0 measures N messages as fast as
// Publishers goroutines publish them; otherwise Rate messages per second
// are published for Duration by one goroutine.
type KafkaOpts struct {
	Brokers    []string
	Partitions int32
	N          int64
	Publishers int
	Rate       float64
	Duration   time.Duration
	// Linger is franz-go's ProducerLinger for the raw rows; negative keeps
	// the library default (10ms).
	Linger time.Duration
	// Ledger is the full chain's idempotency ledger: LedgerMemory, LedgerPG
	// or LedgerPGClaim.
	Ledger string
	// Durable gives the bare router's sarama publisher the durability
	// Millrace's producer has (all in-sync replicas, idempotent, which
	// sarama allows with one request in flight per broker only): what those
	// settings cost on sarama, and why Millrace produces with franz-go.
	Durable bool
}

func (o KafkaOpts) count() int64 {
	if o.N > 0 {
		return o.N
	}
	return int64(o.Rate * o.Duration.Seconds())
}

// KafkaVersion is the protocol version the full chain's sarama clients
// speak to kfake, as a deployment against Kafka 3.6 would configure.
const KafkaVersion = "3.6.0"

// kafkaRun is what the three systems share: a fresh broker state, a
// tracker whose handler signals the first warm-up delivery, and the drive.
type kafkaRun struct {
	o    KafkaOpts
	t    *Tracker
	warm chan struct{}
	once sync.Once
}

func newKafkaRun(ctx context.Context, o KafkaOpts) (*kafkaRun, error) {
	if err := ResetKafka(ctx, o.Brokers); err != nil {
		return nil, err
	}
	return &kafkaRun{o: o, t: NewTracker(o.count()), warm: make(chan struct{})}, nil
}

// observe records a delivered payload. It reads the id and the timestamp
// without encoding/json, as the peers benchmark does: at the raw client's
// millions of messages per second a JSON decode per message would measure
// the tracker rather than the broker. Ids at or past n are warm-up
// messages and open the warm gate.
func (k *kafkaRun) observe(payload []byte) error {
	id, ts, err := parseIDTS(payload)
	if err != nil {
		return fmt.Errorf("observe: %w", err)
	}
	t := k.t
	if id < 0 || id >= t.n {
		k.once.Do(func() { close(k.warm) })
		return nil
	}
	now := time.Now()
	if t.seen[id].Swap(true) {
		t.dups.Add(1)
		return nil
	}
	t.mu.Lock()
	t.lat = append(t.lat, now.Sub(time.Unix(0, ts)))
	t.mu.Unlock()
	t.last.Store(now.UnixNano())
	if t.count.Add(1) == t.n {
		t.once.Do(func() { close(t.complete) })
	}
	return nil
}

// warmUp publishes warm-up messages (ids from n up) until one is handled,
// so that the measurement starts with the consumer group joined and its
// partitions assigned: joining takes seconds that are not throughput.
func (k *kafkaRun) warmUp(ctx context.Context, publish PublishFunc) error {
	deadline := time.Now().Add(90 * time.Second)
	for id := k.t.n; ; id++ {
		if err := publish(id); err != nil {
			return fmt.Errorf("warm-up publish: %w", err)
		}
		select {
		case <-k.warm:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
		if time.Now().After(deadline) {
			return errors.New("warm-up: no message was handled within 90s")
		}
	}
}

// drive warms up, then runs the max or the rate measurement.
func (k *kafkaRun) drive(ctx context.Context, publish PublishFunc) (Result, error) {
	if err := k.warmUp(ctx, publish); err != nil {
		return Result{}, err
	}
	if k.o.N > 0 {
		return Max(ctx, k.t, publish, k.o.N, max(k.o.Publishers, 1))
	}
	return Rate(ctx, k.t, publish, k.o.Rate, k.o.Duration)
}

// parseIDTS reads "id" and "ts" from a Payload.
func parseIDTS(b []byte) (id, ts int64, err error) {
	if id, err = intAfter(b, `"id":`); err != nil {
		return 0, 0, err
	}
	ts, err = intAfter(b, `"ts":`)
	return id, ts, err
}

func intAfter(b []byte, key string) (int64, error) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return 0, fmt.Errorf("payload has no %s", key)
	}
	b = b[i+len(key):]
	j := 0
	if j < len(b) && b[j] == '-' {
		j++
	}
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	v, err := strconv.ParseInt(string(b[:j]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("payload %s: %w", key, err)
	}
	return v, nil
}

// ResetKafka deletes every topic and consumer group on the brokers, so that
// each row starts on an empty broker although all rows share one: kfake
// keeps every record in memory, and a group's committed offsets would
// otherwise carry over to the next row's topic of the same name.
func ResetKafka(ctx context.Context, brokers []string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return fmt.Errorf("kafka admin client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		return fmt.Errorf("list kafka groups: %w", err)
	}
	if names := groups.Groups(); len(names) > 0 {
		if _, err := adm.DeleteGroups(ctx, names...); err != nil {
			return fmt.Errorf("delete kafka groups: %w", err)
		}
	}
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return fmt.Errorf("list kafka topics: %w", err)
	}
	if names := topics.Names(); len(names) > 0 {
		if _, err := adm.DeleteTopics(ctx, names...); err != nil {
			return fmt.Errorf("delete kafka topics: %w", err)
		}
	}
	return nil
}

// createTopic creates topic with partitions partitions.
func createTopic(ctx context.Context, brokers []string, topic string, partitions int32) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return fmt.Errorf("kafka admin client: %w", err)
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("create kafka topic %s: %w", topic, err)
	}
	return nil
}

// KafkaRaw measures franz-go itself, the limit of the broker: one kgo
// producer (asynchronous, batched by linger) and one kgo consumer in a
// group polling fetches in a loop, no router.
func KafkaRaw(ctx context.Context, o KafkaOpts) (Result, error) {
	k, err := newKafkaRun(ctx, o)
	if err != nil {
		return Result{}, err
	}
	const topic = "bench.raw"
	if err := createTopic(ctx, o.Brokers, topic, o.Partitions); err != nil {
		return Result{}, err
	}
	popts := []kgo.Opt{kgo.SeedBrokers(o.Brokers...), kgo.DefaultProduceTopic(topic)}
	if o.Linger >= 0 {
		popts = append(popts, kgo.ProducerLinger(o.Linger))
	}
	prod, err := kgo.NewClient(popts...)
	if err != nil {
		return Result{}, fmt.Errorf("kgo producer: %w", err)
	}
	defer prod.Close()
	cons, err := kgo.NewClient(kgo.SeedBrokers(o.Brokers...), kgo.ConsumerGroup("bench-raw"),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return Result{}, fmt.Errorf("kgo consumer: %w", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for {
			fs := cons.PollFetches(cctx)
			if cctx.Err() != nil || fs.IsClientClosed() {
				return
			}
			fs.EachRecord(func(r *kgo.Record) { _ = k.observe(r.Value) })
		}
	}()
	defer func() { cancel(); cons.Close(); <-polled }()

	var produceErr atomic.Pointer[error]
	publish := func(id int64) error {
		if e := produceErr.Load(); e != nil {
			return *e
		}
		prod.Produce(ctx, &kgo.Record{Value: Payload(id)}, func(_ *kgo.Record, err error) {
			if err != nil {
				produceErr.CompareAndSwap(nil, &err)
			}
		})
		return nil
	}
	res, err := k.drive(ctx, publish)
	if err != nil {
		return Result{}, err
	}
	if e := produceErr.Load(); e != nil {
		return Result{}, fmt.Errorf("produce: %w", *e)
	}
	return res, nil
}

// wmLogger is a Watermill logger that keeps errors only, on stderr, until
// the measurement ends.
type wmLogger struct {
	quiet  *atomic.Bool
	fields watermill.LogFields
}

func (l wmLogger) Error(msg string, err error, fields watermill.LogFields) {
	if !l.quiet.Load() {
		slog.Error("watermill: "+msg, "err", err, "fields", l.fields.Add(fields))
	}
}
func (wmLogger) Info(string, watermill.LogFields)  {}
func (wmLogger) Debug(string, watermill.LogFields) {}
func (wmLogger) Trace(string, watermill.LogFields) {}
func (l wmLogger) With(f watermill.LogFields) watermill.LoggerAdapter {
	return wmLogger{quiet: l.quiet, fields: l.fields.Add(f)}
}

// KafkaBare measures watermill-kafka as its users get it: its default sync
// publisher, a subscriber in a consumer group starting at the oldest
// offset, and a Watermill router with no middleware whose handler only
// records the delivery.
func KafkaBare(ctx context.Context, o KafkaOpts) (Result, error) {
	k, err := newKafkaRun(ctx, o)
	if err != nil {
		return Result{}, err
	}
	const topic = "bench.bare"
	if err := createTopic(ctx, o.Brokers, topic, o.Partitions); err != nil {
		return Result{}, err
	}
	log := wmLogger{quiet: &atomic.Bool{}}
	defer log.quiet.Store(true)
	pc := wkafka.DefaultSaramaSyncPublisherConfig()
	if o.Durable {
		pc.Producer.RequiredAcks = sarama.WaitForAll
		pc.Producer.Idempotent = true
		pc.Net.MaxOpenRequests = 1
		if pc.Version, err = sarama.ParseKafkaVersion(KafkaVersion); err != nil {
			return Result{}, err
		}
	}
	pub, err := wkafka.NewPublisher(wkafka.PublisherConfig{Brokers: o.Brokers,
		Marshaler: wkafka.DefaultMarshaler{}, OverwriteSaramaConfig: pc}, log)
	if err != nil {
		return Result{}, fmt.Errorf("watermill-kafka publisher: %w", err)
	}
	defer func() { _ = pub.Close() }()
	sc := wkafka.DefaultSaramaSubscriberConfig()
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sub, err := wkafka.NewSubscriber(wkafka.SubscriberConfig{Brokers: o.Brokers,
		Unmarshaler: wkafka.DefaultMarshaler{}, ConsumerGroup: "bench-bare",
		OverwriteSaramaConfig: sc}, log)
	if err != nil {
		return Result{}, fmt.Errorf("watermill-kafka subscriber: %w", err)
	}
	r, err := message.NewRouter(message.RouterConfig{CloseTimeout: 5 * time.Second}, log)
	if err != nil {
		return Result{}, fmt.Errorf("router: %w", err)
	}
	r.AddConsumerHandler("bare", topic, sub, func(m *message.Message) error {
		return k.observe(m.Payload)
	})
	rctx, cancel := context.WithCancel(ctx)
	go func() { _ = r.Run(rctx) }()
	defer func() { log.quiet.Store(true); _ = r.Close(); cancel() }()
	<-r.Running()
	return k.drive(ctx, func(id int64) error {
		return pub.Publish(topic, message.NewMessage(watermill.NewUUID(), Payload(id)))
	})
}

// KafkaFull measures Millrace's router with its whole chain on the Kafka
// transport, publishing as ingest does (validate, stamp, publish through
// the guard), with the ledger o.Ledger names; the Postgres ledgers live in
// a fresh schema of pgDSN.
func KafkaFull(ctx context.Context, o KafkaOpts, pgDSN string) (Result, error) {
	k, err := newKafkaRun(ctx, o)
	if err != nil {
		return Result{}, err
	}
	reg, err := schemas.LoadFS(topicsFS, "testdata/topics")
	if err != nil {
		return Result{}, err
	}
	var ledger middleware.Ledger = &memLedger{}
	var db *store.DB
	switch o.Ledger {
	case LedgerMemory, "":
	case LedgerPG, LedgerPGClaim:
		pg, err := OpenPG(ctx, pgDSN)
		if err != nil {
			return Result{}, err
		}
		defer pg.Close()
		if db, err = openStore(ctx, pg.URL); err != nil {
			return Result{}, err
		}
		defer func() { _ = db.Close() }()
		ledger = db
	default:
		return Result{}, fmt.Errorf("unknown ledger %q", o.Ledger)
	}
	claim := o.Ledger == LedgerPGClaim
	logger := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	tr, err := kafka.New(ctx, kafka.Config{Brokers: o.Brokers, Partitions: o.Partitions,
		ReplicationFactor: 1, Version: KafkaVersion, Logger: logger})
	if err != nil {
		return Result{}, fmt.Errorf("kafka transport: %w", err)
	}
	defer func() { _ = tr.Close() }()
	if err := tr.EnsureTopics(ctx, Topic, job.PoisonTopic); err != nil {
		return Result{}, err
	}
	_, stopTracing := telemetry.SetupTracing()
	defer func() { _ = stopTracing(context.Background()) }()
	h := job.HandlerFunc(func(ctx context.Context, m job.Message) error {
		if claim {
			err := db.Handle(ctx, "bench", store.MessageKey(m.ID),
				func(*store.Tx) error { return nil })
			if err != nil && !errors.Is(err, store.ErrAlreadyProcessed) {
				return err
			}
		}
		return k.observe(m.Payload)
	})
	cat := router.Catalogue{Jobs: []router.Job{
		{Name: "bench", Kind: router.KindEvent, Subscriptions: []router.Subscription{{
			Topic: Topic, Handler: "bench", New: func(*router.Deps) job.Handler { return h }}}},
		{Name: "poison", Kind: router.KindSystem, Subscriptions: []router.Subscription{{
			Topic: job.PoisonTopic, Handler: "poison", New: func(*router.Deps) job.Handler {
				return job.HandlerFunc(func(context.Context, job.Message) error { return nil })
			}}}},
	}}
	rt, err := router.New(router.Config{
		Catalogue: cat, Deps: &router.Deps{}, Transport: tr, Registry: reg, Ledger: ledger,
		Logger: logger, Metrics: middleware.NewMetrics(prometheus.NewRegistry()),
	})
	if err != nil {
		return Result{}, fmt.Errorf("full chain: %w", err)
	}
	rctx, cancel := context.WithCancel(ctx)
	go func() { _ = rt.Run(rctx) }()
	defer func() { _ = rt.Close(); cancel() }()
	<-rt.Running()
	pub := rt.Publisher()
	return k.drive(ctx, func(id int64) error {
		ctx := context.Background()
		payload := Payload(id)
		if err := reg.Validate(Topic, payload); err != nil {
			return err
		}
		ev := job.NewEvent(ctx, "", Topic, payload, "bench", nowFunc())
		return pub.Publish(Topic, transport.ToMessage(ctx, ev))
	})
}
