package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/store"
	"github.com/millrace/millrace/store/demo"
	"github.com/millrace/millrace/store/storetest"
)

// pgCluster is a Postgres schema that replicas of `millrace serve` share,
// with the Postgres transport.
type pgCluster struct {
	db  *store.DB
	url string
}

// newPGCluster creates the schema (skipped without Postgres, like every
// Postgres test) and loads the demo agency into it.
func newPGCluster(t *testing.T) *pgCluster {
	t.Helper()
	db := storetest.Postgres(t)
	var schema string
	require.NoError(t, db.QueryRowContext(context.Background(), "SELECT current_schema()").
		Scan(&schema))
	u, err := storetest.WithSearchPath(storetest.PostgresURL(), schema)
	require.NoError(t, err)
	c := &pgCluster{db: db, url: u}
	c.replica(t, "loader").run(t, "demo")
	return c
}

// replica returns an instance on the cluster's schema named name.
func (c *pgCluster) replica(t *testing.T, name string) *instance {
	t.Helper()
	in := newInstance(t)
	in.env = append(in.env, "MILLRACE_DATABASE_URL="+c.url, "MILLRACE_TRANSPORT=postgres",
		"MILLRACE_INSTANCE="+name)
	return in
}

func usageEvent(i int) string {
	return fmt.Sprintf(`{"organisation_id":"%s","metric":"esign.envelopes_sent","quantity":%d,`+
		`"kind":"counter","occurred_at":"2026-12-03T10:00:00Z","source_event_id":"stream-%d"}`,
		demo.OrganisationID, i%5+1, i)
}

// usageSum is the total the first n usage events add up to.
func usageSum(n int) int64 {
	var sum int64
	for i := range n {
		sum += int64(i%5 + 1)
	}
	return sum
}

// waitEffects waits until the usage of the first n events is recorded, then
// checks it is recorded exactly once and nothing is left in the queue.
func (c *pgCluster) waitEffects(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	ctx := context.Background()
	var rows int
	require.Eventually(t, func() bool {
		err := c.db.QueryRowContext(ctx, "SELECT count(*) FROM usage_events").Scan(&rows)
		return err == nil && rows >= n
	}, timeout, 100*time.Millisecond, "usage events recorded: %d of %d", rows, n)
	require.Equal(t, n, rows)
	var total int64
	require.NoError(t, c.db.QueryRowContext(ctx, `SELECT quantity FROM usage_aggregates
		WHERE organisation_id = $1 AND metric = 'esign.envelopes_sent'`, demo.OrganisationID).
		Scan(&total))
	require.Equal(t, usageSum(n), total, "every event counted exactly once")
}

// stop sends sig to cmd and waits for it to exit.
func stop(t *testing.T, cmd *exec.Cmd, sig syscall.Signal) error {
	t.Helper()
	require.NoError(t, cmd.Process.Signal(sig))
	return waitExit(t, cmd)
}

// waitExit waits for cmd to exit and returns how it ended.
func waitExit(t *testing.T, cmd *exec.Cmd) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not stop")
		return nil
	}
}

func TestReplicasShareTheStreamOnPostgres(t *testing.T) {
	c := newPGCluster(t)
	const n = 300
	// A sweep last fired three minutes ago: every replica starts by catching
	// up the latest missed slot, and only one may fire it.
	last := time.Now().UTC().Truncate(time.Minute).Add(-3 * time.Minute)
	_, err := c.db.ExecContext(context.Background(), `INSERT INTO cron_slots (schedule,
		scheduled_for, claimed_at, claimed_by, catch_up, manual, message_uuid, kind)
		VALUES ('webhookRetrySweep', $1, $1, 'seed', false, false, 'seed', 'fired')`, last)
	require.NoError(t, err)
	var reps []*instance
	var cmds []*exec.Cmd
	for i := range 3 {
		in := c.replica(t, fmt.Sprintf("replica-%d", i))
		cmd, _ := in.serve(t)
		reps, cmds = append(reps, in), append(cmds, cmd)
	}
	live := []int{0, 1, 2}
	for i := range n {
		if i == n/3 {
			require.NoError(t, stop(t, cmds[1], syscall.SIGTERM), "replica-1 did not drain cleanly")
			live = []int{0, 2}
		}
		in := reps[live[i%len(live)]]
		status, body := in.post(t, "platform.usage.recorded", usageEvent(i))
		require.Equal(t, http.StatusAccepted, status, body)
	}
	// An event written to the outbox by another process: one replica relays it.
	reps[0].run(t, "publish", "platform.usage.recorded", usageEvent(n))
	c.waitEffects(t, n+1, 45*time.Second)

	ctx := context.Background()
	var slots, ticks, dupSlots int
	require.NoError(t, c.db.QueryRowContext(ctx, `SELECT count(*) FROM cron_slots
		WHERE schedule = 'webhookRetrySweep' AND kind = 'fired' AND claimed_by <> 'seed'`).
		Scan(&slots))
	require.Positive(t, slots, "the missed slot was caught up")
	require.NoError(t, c.db.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT message_uuid
		FROM cron_slots WHERE kind = 'fired' GROUP BY message_uuid HAVING count(*) > 1) d`).
		Scan(&dupSlots))
	require.Zero(t, dupSlots, "each slot's tick is its own message")
	require.Eventually(t, func() bool {
		err := c.db.QueryRowContext(ctx, `SELECT count(*) FROM processed_messages
			WHERE handler = 'webhookRetrySweep' AND idempotency_key IN
			(SELECT 'msg:' || message_uuid FROM cron_slots
			 WHERE schedule = 'webhookRetrySweep' AND kind = 'fired'
			 AND claimed_by <> 'seed')`).Scan(&ticks)
		return err == nil && ticks == slots
	}, 20*time.Second, 100*time.Millisecond, "ticks handled %d of %d slots", ticks, slots)
	t.Logf("webhookRetrySweep slots fired: %d", slots)
	resp, err := http.Get("http://" + reps[0].addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	metrics, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Contains(t, string(metrics), `millrace_queue_depth{group="millrace.usageAggregate",`+
		`topic="platform.usage.recorded"} 0`)
	var outbox, relayed int
	require.NoError(t, c.db.QueryRowContext(ctx, `SELECT count(*),
		count(published_at) FROM outbox`).Scan(&outbox, &relayed))
	require.Equal(t, 1, outbox, "only the CLI's event goes through the outbox on this transport")
	require.Equal(t, 1, relayed)
}

func TestKilledReplicaLosesNothingOnPostgres(t *testing.T) {
	c := newPGCluster(t)
	const n = 200
	in := c.replica(t, "crashing")
	cmd, _ := in.serve(t)
	for i := range n / 2 {
		status, body := in.post(t, "platform.usage.recorded", usageEvent(i))
		require.Equal(t, http.StatusAccepted, status, body)
	}
	ctx := context.Background()
	var rows int
	require.Eventually(t, func() bool {
		err := c.db.QueryRowContext(ctx, "SELECT count(*) FROM usage_events").Scan(&rows)
		return err == nil && rows > 0
	}, 20*time.Second, 10*time.Millisecond)
	_ = stop(t, cmd, syscall.SIGKILL)
	var backlog int
	require.NoError(t, c.db.QueryRowContext(ctx, "SELECT count(*) FROM millrace_queue").
		Scan(&backlog))
	t.Logf("killed with %d events recorded and %d queued or in flight", rows, backlog)

	in.serve(t)
	for i := n / 2; i < n; i++ {
		status, body := in.post(t, "platform.usage.recorded", usageEvent(i))
		require.Equal(t, http.StatusAccepted, status, body)
	}
	c.waitEffects(t, n, 45*time.Second)
}
