package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

func connectListener(ctx context.Context, cfg *pgx.ConnConfig) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect listener: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{NotifyChannel}.Sanitize()); err != nil {
		_ = conn.Close(ctx)
		return nil, fmt.Errorf("listen: %w", err)
	}
	return conn, nil
}

// listen wakes the subscriptions of each notified topic until ctx ends. When
// the connection drops it reconnects with a growing pause and then wakes
// every subscription, since notifications sent meanwhile are lost.
func (t *Transport) listen(ctx context.Context, conn *pgx.Conn) {
	defer close(t.listenerDone)
	pause := 100 * time.Millisecond
	for {
		for conn != nil {
			n, err := conn.WaitForNotification(ctx)
			if err != nil {
				_ = conn.Close(context.Background())
				conn = nil
				if ctx.Err() != nil {
					return
				}
				t.log.WarnContext(ctx, "postgres listener lost its connection, reconnecting",
					slog.String("error", err.Error()))
				break
			}
			pause = 100 * time.Millisecond
			t.wake(n.Payload)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, 5*time.Second)
		c, err := connectListener(ctx, t.pool.Config().ConnConfig)
		if err != nil {
			t.log.WarnContext(ctx, "postgres listener cannot reconnect",
				slog.String("error", err.Error()))
			continue
		}
		conn = c
		t.wake("")
	}
}
