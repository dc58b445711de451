package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/schemas"
)

const invitedTopic = "platform.user.invited"

const validInvite = `{"invitation_id":"3f2e1d0c-9b8a-4776-8554-433221100fed",
	"organisation_id":"8a4c9a52-3f0e-4a43-9d0e-3c2b1f6e7a10","email":"a@example.com",
	"role":"agent","invited_by_user_id":"1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"}`

// recorder is a publisher that keeps what it was given, or refuses.
type recorder struct {
	mu     sync.Mutex
	msgs   []*message.Message
	topics []string
	fail   bool
}

func (r *recorder) Publish(topic string, msgs ...*message.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return errors.New("broker unavailable")
	}
	for _, m := range msgs {
		r.msgs = append(r.msgs, m)
		r.topics = append(r.topics, topic)
	}
	return nil
}

func (r *recorder) Close() error { return nil }

type ingestible struct{}

func (ingestible) Ingestible(topic string) bool {
	return topic == invitedTopic || topic == "platform.usage.recorded"
}

func newTestAPI(t *testing.T, token string) (http.Handler, *recorder) {
	t.Helper()
	rec := &recorder{}
	h := NewHandler(Config{
		Publisher: rec, Registry: schemas.Default(), Catalogue: ingestible{},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), APIToken: token,
	})
	return h, rec
}

func post(h http.Handler, topic, body string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/v1/events/"+topic, strings.NewReader(body))
	req.RemoteAddr = "127.0.0.1:5555"
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if v, ok := hdr["RemoteAddr"]; ok {
		req.RemoteAddr = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func decode(t *testing.T, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &v), w.Body.String())
	return v
}

const token = "test-token-0123456789abcdef"

func TestIngestAccepts(t *testing.T) {
	t.Parallel()
	h, rec := newTestAPI(t, token)
	w := post(h, invitedTopic, validInvite, map[string]string{"Authorization": "Bearer " + token})
	require.Equal(t, http.StatusAccepted, w.Code, w.Body.String())
	body := decode(t, w)
	require.Equal(t, invitedTopic, body["topic"])
	require.Len(t, rec.msgs, 1)
	m := rec.msgs[0]
	require.Equal(t, body["id"], m.UUID)
	require.Equal(t, "8a4c9a52-3f0e-4a43-9d0e-3c2b1f6e7a10", m.Metadata.Get(job.MetaOrganisationID))
	require.Equal(t, "api", m.Metadata.Get(job.MetaSource))
	require.Equal(t, invitedTopic, m.Metadata.Get(job.MetaEventType))
	require.NotEmpty(t, m.Metadata.Get(job.MetaOccurredAt))
	require.Equal(t, m.UUID, m.Metadata.Get(job.MetaCorrelationID))
}

func TestIngestIdempotencyKeyGivesStableID(t *testing.T) {
	t.Parallel()
	h, rec := newTestAPI(t, token)
	hdr := map[string]string{"Authorization": "Bearer " + token, "Idempotency-Key": "req-42"}
	first := decode(t, post(h, invitedTopic, validInvite, hdr))
	second := decode(t, post(h, invitedTopic, validInvite, hdr))
	require.Equal(t, first["id"], second["id"])
	other := decode(t, post(h, invitedTopic, validInvite, map[string]string{
		"Authorization": "Bearer " + token, "Idempotency-Key": "req-43"}))
	require.NotEqual(t, first["id"], other["id"])
	require.Len(t, rec.msgs, 3)
	require.Equal(t, "req-42", rec.msgs[0].Metadata.Get(job.MetaIdempotencyKey))
}

func TestIngestRejects(t *testing.T) {
	t.Parallel()
	auth := map[string]string{"Authorization": "Bearer " + token}
	cases := []struct {
		name    string
		token   string
		topic   string
		body    string
		hdr     map[string]string
		status  int
		errHas  string
		problem string
	}{
		{"malformed JSON", token, invitedTopic, `{"invitation_id":`, auth, 400, "not valid JSON", ""},
		{"schema violation names the path", token, invitedTopic,
			strings.Replace(validInvite, `"a@example.com"`, `"not-an-email"`, 1), auth, 400,
			"schema", "/email"},
		{"missing field names the path", token, invitedTopic, `{"role":"agent"}`, auth, 400,
			"schema", "/"},
		{"no token", token, invitedTopic, validInvite, nil, 401, "bearer", ""},
		{"wrong token", token, invitedTopic, validInvite,
			map[string]string{"Authorization": "Bearer wrong-token-0123456789"}, 401, "bearer", ""},
		{"no token configured and a remote caller", "", invitedTopic, validInvite,
			map[string]string{"RemoteAddr": "203.0.113.9:4000"}, 401, "loopback", ""},
		{"unknown topic", token, "platform.nothing.here", validInvite, auth, 404,
			"unknown topic", ""},
		{"poison topic is not ingestible", token, "platform.poison", validInvite, auth, 404,
			"unknown topic", ""},
		{"body over 1 MiB", token, invitedTopic,
			`{"pad":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, auth, 413, "1 MiB", ""},
		{"idempotency key too long", token, invitedTopic, validInvite,
			map[string]string{"Authorization": "Bearer " + token,
				"Idempotency-Key": strings.Repeat("k", 256)}, 400, "Idempotency-Key", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, rec := newTestAPI(t, tc.token)
			w := post(h, tc.topic, tc.body, tc.hdr)
			require.Equal(t, tc.status, w.Code, w.Body.String())
			body := decode(t, w)
			require.Contains(t, body["error"], tc.errHas)
			if tc.problem != "" {
				require.Contains(t, w.Body.String(), `"path":"`+tc.problem)
			}
			if tc.status == 404 {
				require.Contains(t, body["known_topics"], invitedTopic)
			}
			require.Empty(t, rec.msgs, "nothing may be published")
		})
	}
}

func TestIngestAnswers503WhenTransportRefuses(t *testing.T) {
	t.Parallel()
	h, rec := newTestAPI(t, token)
	rec.fail = true
	w := post(h, invitedTopic, validInvite, map[string]string{"Authorization": "Bearer " + token})
	require.Equal(t, http.StatusServiceUnavailable, w.Code)
	require.NotEmpty(t, w.Header().Get("Retry-After"))
	require.Empty(t, rec.msgs)
}

func TestLoopbackWithoutTokenIsServed(t *testing.T) {
	t.Parallel()
	h, rec := newTestAPI(t, "")
	w := post(h, invitedTopic, validInvite, nil)
	require.Equal(t, http.StatusAccepted, w.Code, w.Body.String())
	require.Len(t, rec.msgs, 1)
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	ready := errors.New("database: connection refused")
	h := NewHandler(Config{Registry: schemas.Default(), Catalogue: ingestible{},
		Logger: slog.Default(), Ready: func(context.Context) error { return ready }})
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 503} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		require.Equal(t, want, w.Code, path)
	}
}
