package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/store"
	"github.com/millrace/millrace/store/storetest"
)

func poison(id, payload string) store.PoisonRecord {
	r := store.PoisonRecord{ID: id, MessageID: "m-" + id, Topic: "test.thing.happened",
		Handler: "h", ErrorClass: "permanent", Reason: "bad", Attempts: 1,
		FirstFailedAt: t0, Metadata: map[string]string{job.MetaTraceparent: "tp-" + id}}
	if json.Valid([]byte(payload)) {
		r.Payload = json.RawMessage(payload)
	} else {
		r.RawPayload = payload
	}
	return r
}

func TestPoisonSaveAndRead(t *testing.T) {
	t.Parallel()
	db, ctx := storetest.New(t), context.Background()
	require.NoError(t, db.SavePoison(ctx, poison("p1", `{"a":1}`), t0))
	require.NoError(t, db.SavePoison(ctx, poison("p2", `not json`), t0.Add(time.Minute)))

	got, err := db.GetPoison(ctx, "p2")
	require.NoError(t, err)
	require.Equal(t, "not json", got.RawPayload, "a payload that is not JSON is kept as is")
	sameInstant(t, store.Now(t0), got.FirstFailedAt)
	sameInstant(t, store.Now(t0.Add(time.Minute)), got.PoisonedAt)
	require.Equal(t, 1, got.TimesPoisoned)
	require.Equal(t, "tp-p2", got.Metadata[job.MetaTraceparent])

	_, err = db.GetPoison(ctx, "nope")
	require.ErrorIs(t, err, store.ErrPoisonNotFound)

	again := poison("p1", `{"a":1}`)
	again.Reason, again.Attempts = "worse", 6
	require.NoError(t, db.SavePoison(ctx, again, t0.Add(2*time.Minute)))
	got, err = db.GetPoison(ctx, "p1")
	require.NoError(t, err)
	require.Equal(t, 2, got.TimesPoisoned, "poisoned again counts the time")
	require.Equal(t, "worse", got.Reason)
	require.Equal(t, 6, got.Attempts)
	require.JSONEq(t, `{"a":1}`, string(got.Payload))
}

func TestPoisonListFilters(t *testing.T) {
	t.Parallel()
	db, ctx := storetest.New(t), context.Background()
	for i, id := range []string{"p1", "p2", "p3"} {
		require.NoError(t, db.SavePoison(ctx, poison(id, `{}`), t0.Add(time.Duration(i)*time.Hour)))
	}
	require.NoError(t, db.DiscardPoison(ctx, "p2", t0))

	for _, tc := range []struct {
		status string
		limit  int
		want   []string
	}{
		{"", 10, []string{"p3", "p2", "p1"}},
		{"", 2, []string{"p3", "p2"}},
		{store.PoisonOpen, 10, []string{"p3", "p1"}},
		{store.PoisonDiscarded, 10, []string{"p2"}},
		{store.PoisonReplayed, 10, nil},
	} {
		t.Run(fmt.Sprintf("status=%q,limit=%d", tc.status, tc.limit), func(t *testing.T) {
			recs, err := db.ListPoison(ctx, tc.status, tc.limit)
			require.NoError(t, err)
			var ids []string
			for _, r := range recs {
				ids = append(ids, r.ID)
			}
			require.Equal(t, tc.want, ids)
		})
	}
	n, err := db.CountPoison(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)
}

func TestPoisonDiscardUnknown(t *testing.T) {
	t.Parallel()
	db, ctx := storetest.New(t), context.Background()
	require.ErrorIs(t, db.DiscardPoison(ctx, "nope", t0), store.ErrPoisonNotFound)
}

func TestPoisonReplay(t *testing.T) {
	t.Parallel()
	db, ctx := storetest.New(t), context.Background()
	require.NoError(t, db.SavePoison(ctx, poison("p1", `{"a":1}`), t0))

	rec, err := db.ReplayPoison(ctx, "p1", t0.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, store.PoisonReplayed, rec.Status)
	rows, err := db.PendingOutbox(ctx, 10)
	require.NoError(t, err)
	require.Len(t, rows, 1)
	ev := rows[0].Event
	require.Equal(t, "m-p1", ev.ID, "the message keeps its id")
	require.JSONEq(t, `{"a":1}`, string(ev.Payload))
	require.Equal(t, "p1", ev.Metadata[job.MetaReplayedFrom])
	require.Empty(t, ev.Metadata[job.MetaTraceparent])

	// A second replay at another time is a second message on the wire.
	_, err = db.ReplayPoison(ctx, "p1", t0.Add(2*time.Hour))
	require.NoError(t, err)
	rows, err = db.PendingOutbox(ctx, 10)
	require.NoError(t, err)
	require.Len(t, rows, 2)

	require.NoError(t, db.DiscardPoison(ctx, "p1", t0))
	_, err = db.ReplayPoison(ctx, "p1", t0.Add(3*time.Hour))
	require.ErrorContains(t, err, "discarded")
	rows, err = db.PendingOutbox(ctx, 10)
	require.NoError(t, err)
	require.Len(t, rows, 2, "a discarded record is not replayed")
}
