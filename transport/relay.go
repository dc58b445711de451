package transport

import (
	"context"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/millrace/millrace/store"
)

// Relay moves events from the outbox to the transport: the events handlers
// emitted in their transactions, cron ticks, CLI publishes and poison
// replays. It publishes at once after a commit in this process and polls for
// rows written by other processes. Delivery is at least once: a crash between
// publish and mark sends the row again, with the same message id, which
// handlers deduplicate. On a store with a TxPublisher (the Postgres
// transport) a row is published and marked in one transaction, once.
type Relay struct {
	DB        *store.DB
	Publisher message.Publisher
	Logger    *slog.Logger
	// Interval is the poll for rows from other processes. Default 1s.
	Interval time.Duration
	// Retention is how long published rows are kept. Default 7 days.
	Retention time.Duration
	// Batch is how many rows one pass reads. Default 500.
	Batch int
}

// Run relays until ctx is done.
func (r *Relay) Run(ctx context.Context) error {
	interval := orDefault(r.Interval, time.Second)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	lastPrune := time.Time{}
	for {
		if _, err := r.Flush(ctx); err != nil && ctx.Err() == nil {
			r.Logger.WarnContext(ctx, "outbox relay failed, will retry",
				slog.String("error", err.Error()))
		}
		if time.Since(lastPrune) > time.Hour {
			lastPrune = time.Now()
			cutoff := time.Now().Add(-orDefault(r.Retention, 7*24*time.Hour))
			if _, err := r.DB.PruneOutbox(ctx, cutoff); err != nil && ctx.Err() == nil {
				r.Logger.WarnContext(ctx, "prune outbox", slog.String("error", err.Error()))
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-r.DB.Committed():
		}
	}
}

// Flush publishes every pending row and returns how many it published.
func (r *Relay) Flush(ctx context.Context) (int, error) {
	batch := r.Batch
	if batch <= 0 {
		batch = 500
	}
	if r.DB.HasTxPublisher() {
		return r.flushInTx(ctx, batch)
	}
	if r.DB.Dialect == store.Postgres {
		return r.flushLocked(ctx, batch)
	}
	total := 0
	for {
		rows, err := r.DB.PendingOutbox(ctx, batch)
		if err != nil || len(rows) == 0 {
			return total, err
		}
		for _, row := range rows {
			msg := ToMessage(context.WithoutCancel(ctx), row.Event)
			if err := r.Publisher.Publish(row.Event.Topic, msg); err != nil {
				return total, err
			}
			if err := r.DB.MarkPublished(ctx, row.Seq, time.Now()); err != nil {
				return total, err
			}
			total++
		}
		if len(rows) < batch {
			return total, nil
		}
	}
}

// flushInTx relays through the store's transactional publisher: each batch
// is published and marked in one transaction, exactly once even with
// several replicas relaying.
func (r *Relay) flushInTx(ctx context.Context, batch int) (int, error) {
	total := 0
	for {
		n, err := r.DB.RelayInTx(ctx, batch, time.Now())
		total += n
		if err != nil || n < batch {
			return total, err
		}
	}
}

// flushLocked relays to a transport outside the database, such as Kafka:
// each batch is published while its rows are locked and marked in the same
// transaction, so replicas never relay the same row at once and a relay that
// dies mid-batch leaves the rows to be sent again, with the same ids.
func (r *Relay) flushLocked(ctx context.Context, batch int) (int, error) {
	total := 0
	for {
		n, err := r.DB.RelayLocked(ctx, batch, time.Now(), r.publishRows)
		total += n
		if err != nil || n < batch {
			return total, err
		}
	}
}

// publishRows publishes rows in order, one Publish call per run of rows on
// the same topic.
func (r *Relay) publishRows(ctx context.Context, rows []store.OutboxRow) error {
	for i := 0; i < len(rows); {
		j := i
		var msgs []*message.Message
		for ; j < len(rows) && rows[j].Event.Topic == rows[i].Event.Topic; j++ {
			msgs = append(msgs, ToMessage(context.WithoutCancel(ctx), rows[j].Event))
		}
		if err := r.Publisher.Publish(rows[i].Event.Topic, msgs...); err != nil {
			return err
		}
		i = j
	}
	return nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
