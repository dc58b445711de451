package store_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/store"
	"github.com/millrace/millrace/store/storetest"
)

func TestTxPublisherReplacesTheOutbox(t *testing.T) {
	t.Parallel()
	ev := job.Event{ID: "ev-1", Topic: "platform.user.invited", Payload: []byte(`{}`),
		Metadata: map[string]string{"source": "test"}}
	errHook := errors.New("publish refused")
	tests := []struct {
		name    string
		hookErr error
		wantErr error
		claimed int // processed_messages rows the transaction leaves
	}{
		{name: "published in the transaction", claimed: 1},
		{name: "a refused publish rolls the transaction back", hookErr: errHook,
			wantErr: errHook},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, ctx := storetest.New(t), context.Background()
			var got []job.Event
			db.SetTxPublisher(func(_ context.Context, tx *sql.Tx, e job.Event) error {
				require.NotNil(t, tx)
				got = append(got, e)
				return tc.hookErr
			})
			err := db.InTx(ctx, func(tx *store.Tx) error {
				if _, err := tx.ExecContext(ctx, `INSERT INTO processed_messages
					(handler, idempotency_key, processed_at) VALUES ('h', 'k', $1)`,
					store.Now(t0)); err != nil {
					return err
				}
				return tx.Enqueue(ctx, ev)
			})
			require.ErrorIs(t, err, tc.wantErr)
			require.Equal(t, []job.Event{ev}, got)
			pending, err := db.PendingOutbox(ctx, 10)
			require.NoError(t, err)
			require.Empty(t, pending, "nothing is written to the outbox")
			var claimed int
			require.NoError(t, db.QueryRowContext(ctx,
				"SELECT count(*) FROM processed_messages").Scan(&claimed))
			require.Equal(t, tc.claimed, claimed)
		})
	}
}
