package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/store"
	"github.com/millrace/millrace/store/demo"
)

const (
	obsAPIToken   = "api-token-5e1f0c2b9d7a4e6f"
	obsAdminToken = "admin-token-8c3b1a0f6e2d4c9b"
	obsSecretKey  = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0"
)

// call makes an authenticated request to the instance and returns the status
// and body.
func (in *instance) call(t *testing.T, method, path, token, idemKey, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+in.addr+path, strings.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// observedRun drives a running instance through the paths an operator
// watches: an invitation sent, one poisoned and replayed, usage recorded
// twice under one key. It returns the invitation token from the email.
func observedRun(t *testing.T, in *instance) string {
	t.Helper()
	stranger := "0e0e0e0e-0e0e-4e0e-8e0e-0e0e0e0e0e0e"
	status, body := in.call(t, http.MethodPost, "/v1/events/platform.user.invited", obsAPIToken,
		"", `{"invitation_id":"`+demo.InvitationID+`","organisation_id":"`+stranger+
			`","email":"poisoned.person@example.com","role":"agent","invited_by_user_id":"`+
			demo.OwnerUserID+`"}`)
	require.Equal(t, http.StatusAccepted, status, body)
	var listed struct{ Poison []store.PoisonRecord }
	require.Eventually(t, func() bool {
		_, b := in.call(t, http.MethodGet, "/admin/poison", obsAdminToken, "", "")
		return json.Unmarshal([]byte(b), &listed) == nil && len(listed.Poison) == 1
	}, 20*time.Second, 50*time.Millisecond, "nothing poisoned")
	status, body = in.call(t, http.MethodPost, "/admin/poison/"+listed.Poison[0].ID+"/replay",
		obsAdminToken, "", "")
	require.Equal(t, http.StatusOK, status, body)
	require.Eventually(t, func() bool {
		_, b := in.call(t, http.MethodGet, "/admin/poison/"+listed.Poison[0].ID, obsAdminToken,
			"", "")
		var r store.PoisonRecord
		return json.Unmarshal([]byte(b), &r) == nil && r.TimesPoisoned == 2
	}, 20*time.Second, 50*time.Millisecond, "replay not poisoned again")

	status, body = in.call(t, http.MethodPost, "/v1/events/platform.user.invited", obsAPIToken,
		"", `{"invitation_id":"`+demo.InvitationID+`","organisation_id":"`+demo.OrganisationID+
			`","email":"new.negotiator@example.com","role":"agent","invited_by_user_id":"`+
			demo.OwnerUserID+`"}`)
	require.Equal(t, http.StatusAccepted, status, body)
	var eml []byte
	require.Eventually(t, func() bool {
		files, _ := filepath.Glob(filepath.Join(in.dir, "mail", "*.eml"))
		if len(files) == 1 {
			eml, _ = os.ReadFile(files[0])
		}
		return len(eml) > 0
	}, 20*time.Second, 50*time.Millisecond, "no invitation email")
	m := regexp.MustCompile(`token=([A-Za-z0-9_\-]+)`).FindSubmatch(eml)
	require.NotNil(t, m, "the email carries a token")

	usage := `{"organisation_id":"` + demo.OrganisationID + `","metric":"seats.active",` +
		`"quantity":3,"kind":"gauge","occurred_at":"2026-12-03T10:00:00Z",` +
		`"source_event_id":"obs-usage-1"}`
	for range 2 {
		status, body = in.call(t, http.MethodPost, "/v1/events/platform.usage.recorded",
			obsAPIToken, "obs-usage-key", usage)
		require.Equal(t, http.StatusAccepted, status, body)
	}
	return string(m[1])
}

// The series an operator needs are all on /metrics after a run, the
// dashboard uses none that are not, and the logs of the run carry trace ids
// while handling and never a payload, an address, a token or a secret.
func TestMetricsDashboardAndLogsEndToEnd(t *testing.T) {
	in := newInstance(t)
	in.env = append(in.env, "MILLRACE_API_TOKEN="+obsAPIToken,
		"MILLRACE_ADMIN_TOKEN="+obsAdminToken, "MILLRACE_SECRET_KEY="+obsSecretKey,
		"MILLRACE_LOG_LEVEL=debug")
	in.run(t, "demo")
	cmd, logs := in.serve(t)
	invitationToken := observedRun(t, in)

	var scrape string
	require.Eventually(t, func() bool {
		_, scrape = in.call(t, http.MethodGet, "/metrics", "", "", "")
		return strings.Contains(scrape, `handler="usageAggregate",outcome="duplicate",`+
			`topic="platform.usage.recorded"} 1`)
	}, 20*time.Second, 50*time.Millisecond, "the second usage delivery is not a duplicate")
	checkSeries(t, scrape)
	checkDashboard(t, scrape)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), "serve did not exit cleanly")
	checkLogs(t, logs.String(), []string{
		"new.negotiator@example.com", "poisoned.person@example.com", invitationToken,
		obsAPIToken, obsAdminToken, obsSecretKey, "invited_by_user_id", "obs-usage-1",
	})
}

func checkSeries(t *testing.T, scrape string) {
	t.Helper()
	for _, want := range []string{
		`millrace_messages_handled_total{handler="inviteEmail",outcome="acked"`,
		`millrace_messages_handled_total{handler="inviteEmail",outcome="retried"`,
		`millrace_messages_handled_total{handler="inviteEmail",outcome="poisoned"`,
		`millrace_messages_handled_total{handler="usageAggregate",outcome="duplicate"`,
		`millrace_handler_duration_seconds_bucket{handler="inviteEmail"`,
		`millrace_publish_to_handle_seconds_bucket{handler="inviteEmail"`,
		`millrace_queue_depth{group="millrace.inviteEmail",topic="platform.user.invited"}`,
		`millrace_poison_open 1`,
		`millrace_cron_slots_fired_total{catch_up="true",schedule="auditCleanup"}`,
		`millrace_cron_slots_missed_total{schedule="auditCleanup"}`,
		`millrace_http_requests_total{method="POST",route="/v1/events/{topic}",status="202"}`,
		`millrace_http_requests_total{method="GET",route="/admin/poison",status="200"}`,
	} {
		require.Contains(t, scrape, want)
	}
}

// checkDashboard finds every series the Grafana dashboard queries in the
// scrape.
func checkDashboard(t *testing.T, scrape string) {
	t.Helper()
	raw, err := os.ReadFile("../../deploy/grafana/millrace.json")
	require.NoError(t, err)
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	require.NoError(t, json.Unmarshal(raw, &dash))
	require.NotEmpty(t, dash.Panels)
	names := regexp.MustCompile(`\b(millrace|go|process)_[a-z_]+\b`)
	for _, p := range dash.Panels {
		require.NotEmpty(t, p.Targets, p.Title)
		for _, tg := range p.Targets {
			found := names.FindAllString(tg.Expr, -1)
			require.NotEmpty(t, found, "panel %q queries no series", p.Title)
			for _, n := range found {
				require.Regexp(t, `(?m)^`+n+`[{ ]`, scrape,
					"panel %q queries %s, which /metrics does not serve", p.Title, n)
			}
		}
	}
}

var emailAddress = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}`)

// checkLogs parses every line and fails on any forbidden text, any address,
// or a line written while handling without its trace and span ids.
func checkLogs(t *testing.T, logs string, forbidden []string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	handling := 0
	for _, line := range lines {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), "not a JSON line: %s", line)
		for _, f := range forbidden {
			require.NotContains(t, line, f)
		}
		require.False(t, emailAddress.MatchString(line), "an address in the logs: %s", line)
		if _, ok := rec["handler"]; ok {
			handling++
			for _, k := range []string{"trace_id", "span_id", "topic", "message_id"} {
				require.NotEmpty(t, rec[k], "%s missing while handling: %s", k, line)
			}
		}
	}
	require.NotZero(t, handling, "no line was written while handling")
}
