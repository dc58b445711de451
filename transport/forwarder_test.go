package transport_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/store"
	"github.com/millrace/millrace/store/storetest"
	"github.com/millrace/millrace/transport"
)

// recordingPublisher stands for a broker outside the database. It takes
// up to failAfter messages (all when negative), then fails as a relay
// killed mid-batch would; it records every message id it took.
type recordingPublisher struct {
	mu        sync.Mutex
	got       []string
	failAfter int
}

var errKilled = errors.New("relay killed mid-batch")

func (p *recordingPublisher) Publish(_ string, msgs ...*message.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range msgs {
		if p.failAfter == 0 {
			return errKilled
		}
		p.failAfter--
		p.got = append(p.got, m.UUID)
	}
	return nil
}

func (p *recordingPublisher) Close() error { return nil }

func (p *recordingPublisher) ids() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.got...)
}

// emitUsage commits n usage events to the outbox and returns their ids.
func emitUsage(t *testing.T, db *store.DB, n int) []string {
	t.Helper()
	var ids []string
	require.NoError(t, db.InTx(context.Background(), func(tx *store.Tx) error {
		for i := range n {
			id, err := tx.Emit(context.Background(), usageTopic,
				usagePayload("fwd-"+string(rune('a'+i))), store.EmitOpts{})
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	}))
	return ids
}

func TestForwarderKilledMidRelayLosesNothing(t *testing.T) {
	db := storetest.Postgres(t)
	ctx := context.Background()
	ids := emitUsage(t, db, 10)

	dying := &recordingPublisher{failAfter: 4}
	relay := &transport.Relay{DB: db, Publisher: dying, Logger: slog.Default(), Batch: 100}
	_, err := relay.Flush(ctx)
	require.ErrorIs(t, err, errKilled)
	pending, err := db.PendingOutbox(ctx, 100)
	require.NoError(t, err)
	require.Len(t, pending, 10, "a batch that was not confirmed stays pending, all of it")

	healthy := &recordingPublisher{failAfter: -1}
	relay.Publisher = healthy
	n, err := relay.Flush(ctx)
	require.NoError(t, err)
	require.Equal(t, 10, n)
	require.Equal(t, ids, healthy.ids(), "every row sent again, in order, with its own id")
	require.Equal(t, ids[:4], dying.ids(), "the first relay's sends repeat the same ids, "+
		"which consumers deduplicate")
	pending, err = db.PendingOutbox(ctx, 100)
	require.NoError(t, err)
	require.Empty(t, pending)
}

func TestForwardersRacingSendEachRowOnce(t *testing.T) {
	db := storetest.Postgres(t)
	ctx := context.Background()
	ids := emitUsage(t, db, 20)
	pub := &recordingPublisher{failAfter: -1}
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &transport.Relay{DB: db, Publisher: pub, Logger: slog.Default(), Batch: 3}
			_, err := r.Flush(ctx)
			require.NoError(t, err)
		}()
	}
	wg.Wait()
	require.ElementsMatch(t, ids, pub.ids())
}

func TestForwarderSendsNothingFromARolledBackTransaction(t *testing.T) {
	db := storetest.Postgres(t)
	ctx := context.Background()
	err := db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Emit(ctx, usageTopic, usagePayload("rolled-back"),
			store.EmitOpts{}); err != nil {
			return err
		}
		return errKilled
	})
	require.ErrorIs(t, err, errKilled)
	pub := &recordingPublisher{failAfter: -1}
	n, err := (&transport.Relay{DB: db, Publisher: pub, Logger: slog.Default()}).Flush(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Empty(t, pub.ids())
}
