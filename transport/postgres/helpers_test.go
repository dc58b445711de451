package postgres

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// baseDSN is the test server: MILLRACE_TEST_POSTGRES or the local one.
func baseDSN() string {
	if dsn := os.Getenv("MILLRACE_TEST_POSTGRES"); dsn != "" {
		return dsn
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// testSchema creates a schema of its own for tb and returns a DSN whose
// search path is that schema. Without a server it skips, or fails under CI.
func testSchema(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, baseDSN())
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("postgres unreachable: %v", err)
		}
		tb.Skipf("postgres unreachable at %s: %v", baseDSN(), err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	schema := "tp_" + strings.ReplaceAll(uuid.NewString()[:13], "-", "")
	_, err = conn.Exec(ctx, "CREATE SCHEMA "+schema)
	require.NoError(tb, err)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, baseDSN())
		if err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer func() { _ = c.Close(context.Background()) }()
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(baseDSN())
	require.NoError(tb, err)
	q := u.Query()
	q.Set("search_path", schema)
	q.Set("application_name", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// newTransport opens a transport on dsn and closes it when tb ends.
func newTransport(tb testing.TB, dsn string, cfg Config) *Transport {
	tb.Helper()
	cfg.DSN = dsn
	if cfg.CloseTimeout == 0 {
		cfg.CloseTimeout = 2 * time.Second
	}
	tr, err := New(context.Background(), cfg)
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, tr.Close()) })
	return tr
}

// subscribe subscribes sub to topic and ends the subscription with tb.
func subscribe(tb testing.TB, sub message.Subscriber, topic string) <-chan *message.Message {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	ch, err := sub.Subscribe(ctx, topic)
	require.NoError(tb, err)
	return ch
}

// keyed returns n messages of partition key k, with ids k-0, k-1...
func keyed(k string, n int) []*message.Message {
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = message.NewMessage(fmt.Sprintf("%s-%d", k, i), []byte(k))
		if k != "" {
			msgs[i].Metadata.Set("partition_key", k)
		}
	}
	return msgs
}

// receive returns the next message of ch or fails after timeout.
func receive(tb testing.TB, ch <-chan *message.Message, timeout time.Duration) *message.Message {
	tb.Helper()
	select {
	case m, ok := <-ch:
		require.True(tb, ok, "channel closed")
		return m
	case <-time.After(timeout):
		tb.Fatalf("no message within %s", timeout)
		return nil
	}
}

// queueRows counts the rows of the queue table of dsn's schema.
func queueRows(tb testing.TB, tr *Transport) int {
	tb.Helper()
	var n int
	require.NoError(tb, tr.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM millrace_queue`).Scan(&n))
	return n
}
