package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"
)

// BenchmarkPublishConsume measures delivery with a no-op handler: b.N
// messages are published in batches of 100, without a partition key or
// spread over 20 keys, then consumed by the subscribers of one group;
// msg/s is the consuming rate.
func BenchmarkPublishConsume(b *testing.B) {
	for _, tc := range []struct {
		subs int
		cfg  SubscriberConfig
		key  string
	}{
		{1, SubscriberConfig{}, ""},
		{4, SubscriberConfig{}, ""},
		{1, SubscriberConfig{Prefetch: 16}, ""},
		{1, SubscriberConfig{Concurrency: 4}, ""},
		{1, SubscriberConfig{Concurrency: 4}, "org"},
		{1, SubscriberConfig{Concurrency: 4, Unordered: true}, "org"},
	} {
		name := fmt.Sprintf("subscribers=%d/concurrency=%d/prefetch=%d/key=%q/unordered=%t",
			tc.subs, tc.cfg.Concurrency, tc.cfg.Prefetch, tc.key, tc.cfg.Unordered)
		b.Run(name, func(b *testing.B) {
			tr := newTransport(b, testSchema(b), Config{})
			topic := "bench"
			subscribers := make([]*Subscriber, tc.subs)
			for i := range subscribers {
				s, err := tr.NewSubscriber("g", tc.cfg)
				require.NoError(b, err)
				subscribers[i] = s
			}
			require.NoError(b, subscribers[0].SubscribeInitialize(topic))
			pub := tr.Publisher()
			for i := 0; i < b.N; i += 100 {
				batch := keyed("", min(100, b.N-i))
				for j, m := range batch {
					if tc.key != "" {
						m.Metadata.Set("partition_key", fmt.Sprintf("%s-%d", tc.key, j%20))
					}
				}
				require.NoError(b, pub.Publish(topic, batch...))
			}
			b.ResetTimer()
			start := time.Now()
			done := make(chan struct{}, b.N)
			for _, s := range subscribers {
				ch := subscribe(b, s, topic)
				go func() {
					for m := range ch {
						m.Ack()
						done <- struct{}{}
					}
				}()
			}
			for range b.N {
				<-done
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
		})
	}
}

// BenchmarkPublish measures publishing: one message per statement on the
// pool, and 100 messages per PublishTx in a database/sql transaction.
func BenchmarkPublish(b *testing.B) {
	b.Run("single", func(b *testing.B) {
		tr := newTransport(b, testSchema(b), Config{})
		require.NoError(b, mustSub(b, tr).SubscribeInitialize("bench"))
		pub := tr.Publisher()
		b.ResetTimer()
		start := time.Now()
		for range b.N {
			require.NoError(b, pub.Publish("bench", message.NewMessage("x", []byte(`{}`))))
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
	})
	b.Run("tx_of_100", func(b *testing.B) {
		dsn := testSchema(b)
		tr := newTransport(b, dsn, Config{})
		require.NoError(b, mustSub(b, tr).SubscribeInitialize("bench"))
		db, err := sql.Open("pgx", dsn)
		require.NoError(b, err)
		defer db.Close()
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i += 100 {
			tx, err := db.BeginTx(context.Background(), nil)
			require.NoError(b, err)
			require.NoError(b, PublishTx(context.Background(), tx, "bench",
				keyed("", min(100, b.N-i))...))
			require.NoError(b, tx.Commit())
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
	})
}

func mustSub(tb testing.TB, tr *Transport) *Subscriber {
	s, err := tr.NewSubscriber("g", SubscriberConfig{})
	require.NoError(tb, err)
	return s
}
