package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/store"
	"github.com/millrace/millrace/store/demo"
)

// binary is the millrace binary built once for the end-to-end tests, which
// run it as a user would: as a separate process.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "millrace-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "millrace")
	build := exec.Command("go", "build", "-race", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build millrace:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// instance is one millrace configuration in a temporary directory.
type instance struct {
	dir, addr string
	env       []string
}

func newInstance(t *testing.T) *instance {
	t.Helper()
	dir := t.TempDir()
	addr := freeAddr(t)
	return &instance{dir: dir, addr: addr, env: append(os.Environ(),
		"MILLRACE_DATABASE_URL=sqlite:"+filepath.Join(dir, "millrace.db"),
		"MILLRACE_MAIL_DIR="+filepath.Join(dir, "mail"),
		"MILLRACE_HTTP_ADDR="+addr,
		"MILLRACE_LOG_FORMAT=json",
		"MILLRACE_RELAY_INTERVAL=100ms",
		"MILLRACE_SHUTDOWN_TIMEOUT=10s",
	)}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// run runs a millrace subcommand to completion and returns its stdout.
func (in *instance) run(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env, cmd.Dir = in.env, in.dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	require.NoError(t, cmd.Run(), "millrace %v: %s", args, errb.String())
	return out.String()
}

// serve starts `millrace serve` and waits until it is ready.
func (in *instance) serve(t *testing.T) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(binary, "serve")
	cmd.Env, cmd.Dir = in.env, in.dir
	logs := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + in.addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond, "serve never became ready: %s", logs)
	return cmd, logs
}

func (in *instance) post(t *testing.T, topic, body string) (int, string) {
	t.Helper()
	resp, err := http.Post("http://"+in.addr+"/v1/events/"+topic, "application/json",
		strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestInvitationEmailEndToEnd(t *testing.T) {
	in := newInstance(t)
	var loaded struct{ Rows []demo.Row }
	require.NoError(t, json.Unmarshal([]byte(in.run(t, "demo", "--json")), &loaded))
	require.NotEmpty(t, loaded.Rows)
	cmd, logs := in.serve(t)

	status, body := in.post(t, "platform.user.invited", `{"invitation_id":"`+demo.InvitationID+
		`","organisation_id":"`+demo.OrganisationID+`","email":"new.negotiator@example.com",`+
		`"role":"agent","invited_by_user_id":"`+demo.OwnerUserID+`"}`)
	require.Equal(t, http.StatusAccepted, status, body)

	var eml []byte
	require.Eventually(t, func() bool {
		files, _ := filepath.Glob(filepath.Join(in.dir, "mail", "*.eml"))
		if len(files) != 1 {
			return false
		}
		eml, _ = os.ReadFile(files[0])
		return len(eml) > 0
	}, 20*time.Second, 50*time.Millisecond, "no invitation email: %s", logs)
	require.Contains(t, string(eml), "new.negotiator@example.com")
	require.Contains(t, string(eml), "Oakridge Lettings")
	require.Contains(t, string(eml), "/invitations/accept?token=")

	status, body = in.post(t, "platform.user.invited", `{"invitation_id":"nope"}`)
	require.Equal(t, http.StatusBadRequest, status, body)
	status, _ = in.post(t, "platform.nothing.here", `{}`)
	require.Equal(t, http.StatusNotFound, status)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "serve did not exit cleanly: %s", logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not stop on SIGTERM: %s", logs)
	}
	require.NotContains(t, logs.String(), "new.negotiator@example.com", "no addresses in logs")
}

func TestTopicsListsTheCatalogue(t *testing.T) {
	in := newInstance(t)
	var out struct {
		Topics []topicRow `json:"topics"`
	}
	require.NoError(t, json.Unmarshal([]byte(in.run(t, "topics", "--json")), &out))
	handlers := map[string][]string{}
	for _, r := range out.Topics {
		handlers[r.Topic] = r.Handlers
	}
	require.Equal(t, []string{"usageAggregate"}, handlers["platform.usage.recorded"])
	require.Equal(t, []string{"webhookDeliver"}, handlers["platform.webhook.delivery.requested"])
	require.Equal(t, []string{"auditCleanup"}, handlers["platform.audit.cleanup.tick"])
	require.Equal(t, []string{"inviteEmail"}, handlers["platform.user.invited"])
	require.Equal(t, []string{"webhookRetrySweep"}, handlers["platform.webhook.retry.tick"])
	require.Equal(t, []string{"poisonStore"}, handlers["platform.poison"])
}

func TestCLIPublishIsHandledByTheRunningService(t *testing.T) {
	in := newInstance(t)
	in.run(t, "demo")
	_, logs := in.serve(t)
	out := in.run(t, "publish", "platform.usage.recorded", `{"organisation_id":"`+
		demo.OrganisationID+`","metric":"properties.active","quantity":2,"kind":"gauge",`+
		`"occurred_at":"2026-12-03T10:00:00Z","source_event_id":"cli-test-1"}`)
	require.Contains(t, out, "queued")

	db := in.db(t)
	require.Eventually(t, func() bool {
		var q int
		err := db.QueryRow(`SELECT quantity FROM usage_aggregates WHERE organisation_id = $1
			AND metric = 'properties.active'`, demo.OrganisationID).Scan(&q)
		return err == nil && q == 2
	}, 20*time.Second, 100*time.Millisecond, "usage not aggregated: %s", logs)
}

func TestPoisonAndCronOperations(t *testing.T) {
	in := newInstance(t)
	in.run(t, "demo")
	_, logs := in.serve(t)

	// An invitation that does not belong to the named organisation is a
	// permanent error: poisoned after one attempt, nothing sent.
	stranger := "0e0e0e0e-0e0e-4e0e-8e0e-0e0e0e0e0e0e"
	status, body := in.post(t, "platform.user.invited", `{"invitation_id":"`+demo.InvitationID+
		`","organisation_id":"`+stranger+`","email":"x@example.com","role":"agent",`+
		`"invited_by_user_id":"`+demo.OwnerUserID+`"}`)
	require.Equal(t, http.StatusAccepted, status, body)
	var accepted struct{ ID string }
	require.NoError(t, json.Unmarshal([]byte(body), &accepted))

	var listed struct {
		Poison []store.PoisonRecord `json:"poison"`
	}
	require.Eventually(t, func() bool {
		require.NoError(t, json.Unmarshal([]byte(in.run(t, "poison", "list", "--json")), &listed))
		return len(listed.Poison) == 1
	}, 20*time.Second, 100*time.Millisecond, "nothing poisoned: %s", logs)
	rec := listed.Poison[0]
	require.Equal(t, accepted.ID, rec.MessageID)
	require.Equal(t, "inviteEmail", rec.Handler)
	require.Equal(t, "permanent", rec.ErrorClass)
	require.Equal(t, 1, rec.Attempts)

	shown := in.run(t, "poison", "show", rec.ID)
	require.Contains(t, shown, stranger)
	require.Contains(t, in.run(t, "poison", "replay", rec.ID), accepted.ID)
	// The replayed message keeps its id, fails the same way and is poisoned
	// again, which reopens the record.
	require.Eventually(t, func() bool {
		r := in.poisonRecord(t, rec.ID)
		return r.TimesPoisoned == 2 && r.Status == store.PoisonOpen
	}, 20*time.Second, 100*time.Millisecond, "replay not re-poisoned: %s", logs)
	require.Contains(t, in.run(t, "poison", "discard", rec.ID), "discarded")
	require.Equal(t, store.PoisonDiscarded, in.poisonRecord(t, rec.ID).Status)
	files, _ := filepath.Glob(filepath.Join(in.dir, "mail", "*.eml"))
	require.Empty(t, files, "nothing may be sent for a poisoned invitation")

	// An operator's trigger runs the audit cleanup now.
	require.Contains(t, in.run(t, "cron", "trigger", "auditCleanup"), "triggered")
	db := in.db(t)
	require.Eventually(t, func() bool {
		var n int
		err := db.QueryRow(`SELECT COUNT(*) FROM job_runs WHERE job_name = 'auditCleanup'
			AND status = 'succeeded'`).Scan(&n)
		return err == nil && n == 1
	}, 20*time.Second, 100*time.Millisecond, "audit cleanup did not run: %s", logs)
	require.Contains(t, in.run(t, "cron", "list"), "auditCleanup")
}

func (in *instance) poisonRecord(t *testing.T, id string) store.PoisonRecord {
	t.Helper()
	var r store.PoisonRecord
	require.NoError(t, json.Unmarshal([]byte(in.run(t, "poison", "show", id)), &r))
	return r
}

func (in *instance) db(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), "sqlite:"+filepath.Join(in.dir, "millrace.db"))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}
