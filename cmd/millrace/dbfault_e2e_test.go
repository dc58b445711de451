package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/store"
)

// pgBin is where Debian puts PostgreSQL 15's server programs.
const pgBin = "/usr/lib/postgresql/15/bin"

// privatePG is a PostgreSQL server of the test's own, which it may stop and
// start at will; the shared server at 5432 is never touched.
type privatePG struct {
	dir, data, port string
	runAs           []string // runuser prefix when the test runs as root
}

// newPrivatePG initialises and starts a server on a free port. Without the
// server programs the test is skipped, or fails in CI.
func newPrivatePG(t *testing.T) *privatePG {
	t.Helper()
	if _, err := os.Stat(filepath.Join(pgBin, "initdb")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("postgres tests are required in CI, but %s is missing", pgBin)
		}
		t.Skipf("database-fault test skipped: no PostgreSQL 15 server programs (%v)", err)
	}
	dir, err := os.MkdirTemp("", "millrace-pg-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	pg := &privatePG{dir: dir, data: filepath.Join(dir, "data"),
		port: strings.TrimPrefix(freeAddr(t), "127.0.0.1:")}
	if os.Geteuid() == 0 { // initdb refuses to run as root
		u, err := user.Lookup("postgres")
		require.NoError(t, err, "running as root needs the postgres user")
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		require.NoError(t, os.Chown(dir, uid, gid))
		pg.runAs = []string{"runuser", "-u", "postgres", "--"}
	}
	pg.exec(t, "initdb", "-D", pg.data, "-U", "postgres", "--auth=trust", "--no-sync",
		"-E", "UTF8")
	pg.start(t)
	t.Cleanup(func() {
		_ = pg.command("pg_ctl", "-D", pg.data, "-m", "immediate", "-w", "stop").Run()
	})
	return pg
}

func (pg *privatePG) url() string {
	return "postgres://postgres@127.0.0.1:" + pg.port + "/postgres?sslmode=disable"
}

func (pg *privatePG) command(name string, args ...string) *exec.Cmd {
	argv := append(append([]string{}, pg.runAs...), filepath.Join(pgBin, name))
	argv = append(argv, args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = pg.dir
	return cmd
}

func (pg *privatePG) exec(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := pg.command(name, args...).CombinedOutput()
	require.NoError(t, err, "%s: %s", name, out)
}

func (pg *privatePG) start(t *testing.T) {
	t.Helper()
	pg.exec(t, "pg_ctl", "-D", pg.data, "-l", filepath.Join(pg.dir, "server.log"), "-w",
		"-o", "-p "+pg.port+" -k "+pg.dir+" -c listen_addresses=127.0.0.1 -c fsync=off",
		"start")
}

func (pg *privatePG) stop(t *testing.T) {
	t.Helper()
	pg.exec(t, "pg_ctl", "-D", pg.data, "-m", "fast", "-w", "stop")
}

// readyz returns the status of /readyz, or 0 when the request fails.
func (in *instance) readyz() int {
	resp, err := http.Get("http://" + in.addr + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestDatabaseRestartUnderLoadOnPostgres(t *testing.T) {
	pg := newPrivatePG(t)
	in := newInstance(t)
	in.env = append(in.env, "MILLRACE_DATABASE_URL="+pg.url(), "MILLRACE_TRANSPORT=postgres",
		"MILLRACE_INSTANCE=fault")
	in.run(t, "demo")
	_, logs := in.serve(t)

	var accepted []int
	send := func(i int) int {
		status, body := in.post(t, "platform.usage.recorded", usageEvent(i))
		require.Contains(t, []int{http.StatusAccepted, http.StatusServiceUnavailable}, status,
			body)
		if status == http.StatusAccepted {
			accepted = append(accepted, i)
		}
		return status
	}
	next := 0
	for ; next < 100; next++ {
		require.Equal(t, http.StatusAccepted, send(next))
	}

	db, err := store.Open(context.Background(), pg.url())
	require.NoError(t, err)
	defer db.Close()
	var before int
	require.NoError(t, db.QueryRowContext(context.Background(),
		"SELECT count(*) FROM millrace_queue").Scan(&before))
	t.Logf("messages queued or in flight when the database stops: %d", before)
	pg.stop(t)
	require.Eventually(t, func() bool { return in.readyz() == http.StatusServiceUnavailable },
		10*time.Second, 50*time.Millisecond, "/readyz stayed up with the database down")
	refused := 0
	for ; refused < 5; next++ {
		if send(next) == http.StatusServiceUnavailable {
			refused++
		}
	}

	pg.start(t)
	require.Eventually(t, func() bool { return in.readyz() == http.StatusOK },
		20*time.Second, 50*time.Millisecond, "/readyz never came back: %s", logs)
	for end := next + 60; next < end; next++ {
		require.Equal(t, http.StatusAccepted, send(next))
	}

	waitAccepted(t, db, accepted)
}

// waitAccepted waits until every accepted usage event, and nothing else, is
// recorded once.
func waitAccepted(t *testing.T, db *store.DB, accepted []int) {
	t.Helper()
	ctx := context.Background()
	var rows int
	require.Eventually(t, func() bool {
		err := db.QueryRowContext(ctx, "SELECT count(*) FROM usage_events").Scan(&rows)
		return err == nil && rows >= len(accepted)
	}, 45*time.Second, 100*time.Millisecond, "recorded %d of %d", rows, len(accepted))
	require.Equal(t, len(accepted), rows)
	var want int64
	ids := make([]string, len(accepted))
	for k, i := range accepted {
		want += int64(i%5 + 1)
		ids[k] = fmt.Sprintf("stream-%d", i)
	}
	var total, found int64
	require.NoError(t, db.QueryRowContext(ctx, `SELECT quantity FROM usage_aggregates
		WHERE metric = 'esign.envelopes_sent'`).Scan(&total))
	require.Equal(t, want, total, "every accepted event counted exactly once")
	for _, id := range ids {
		var n int64
		require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM usage_events
			WHERE source_event_id = $1`, id).Scan(&n))
		found += n
	}
	require.Equal(t, int64(len(ids)), found, "the recorded events are the accepted ones")
}
