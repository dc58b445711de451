package demo_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/store/demo"
	"github.com/millrace/millrace/store/storetest"
)

func TestLoadIsIdempotent(t *testing.T) {
	t.Parallel()
	db, ctx := storetest.New(t), context.Background()
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

	empty, err := demo.IsEmpty(ctx, db)
	require.NoError(t, err)
	require.True(t, empty)

	first, err := demo.Load(ctx, db, now, "sealed")
	require.NoError(t, err)
	require.NotEmpty(t, first)
	for _, r := range first {
		require.True(t, r.New, "%s %s is created by the first load", r.Table, r.ID)
	}

	again, err := demo.Load(ctx, db, now.Add(time.Hour), "sealed")
	require.NoError(t, err)
	require.Len(t, again, len(first))
	for _, r := range again {
		require.False(t, r.New, "%s %s is left alone by the second load", r.Table, r.ID)
	}
	empty, err = demo.IsEmpty(ctx, db)
	require.NoError(t, err)
	require.False(t, empty)
}
