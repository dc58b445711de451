package platform

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"log/slog"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/providers/mail"
	"github.com/millrace/millrace/store"
	"github.com/millrace/millrace/store/storetest"
)

// inviteNow is the fixed "now" of the invitation tests.
var inviteNow = time.Date(2026, 3, 29, 0, 30, 0, 0, time.UTC)

const (
	inviteBaseURL = "https://app.example.com/"
	inviteFrom    = "Millrace <no-reply@millrace.local>"
	inviteeEmail  = "new.agent@example.com"
)

// inviteSender is a mail.Sender that records what it is given and answers
// err. onSend, when set, runs before the answer, as if during the send.
type inviteSender struct {
	mu     sync.Mutex
	sent   []mail.Message
	err    error
	onSend func()
}

func (s *inviteSender) Send(_ context.Context, m mail.Message) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.onSend != nil {
		s.onSend()
	}
	if s.err != nil {
		return "", s.err
	}
	s.sent = append(s.sent, m)
	return mail.MessageID(m.DedupeKey), nil
}

func (s *inviteSender) messages() []mail.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]mail.Message(nil), s.sent...)
}

// inviteFixture is a database holding two organisations, an inviter and a
// member of the first, and an inviteEmail handler over a recording sender.
type inviteFixture struct {
	t        *testing.T
	db       *store.DB
	sender   *inviteSender
	h        job.Handler
	org      string // "Acme Lettings"
	otherOrg string
	inviter  string // "Jane Agent", a member of org
	member   string // "Sam Member", member@example.com, a member of org
}

func newInviteFixture(t *testing.T) *inviteFixture {
	t.Helper()
	f := &inviteFixture{t: t, db: storetest.New(t), sender: &inviteSender{}}
	f.org = f.addOrg("Acme Lettings")
	f.otherOrg = f.addOrg("Other Homes")
	f.inviter = f.addMember(f.org, "Jane Agent", "jane@acme.example", "admin")
	f.member = f.addMember(f.org, "Sam Member", "member@example.com", "agent")
	f.h = NewInviteEmail(f.deps(f.sender))
	return f
}

// deps returns the handler's Deps with sender as its mail provider.
func (f *inviteFixture) deps(sender mail.Sender) Deps {
	return Deps{
		DB:         f.db,
		Clock:      job.FixedClock(inviteNow),
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Mail:       sender,
		MailFrom:   inviteFrom,
		AppBaseURL: inviteBaseURL,
	}
}

func (f *inviteFixture) exec(query string, args ...any) {
	f.t.Helper()
	_, err := f.db.ExecContext(context.Background(), query, args...)
	require.NoError(f.t, err)
}

func (f *inviteFixture) addOrg(name string) string {
	id := uuid.NewString()
	f.exec(`INSERT INTO organisations (id, name, created_at) VALUES ($1, $2, $3)`,
		id, name, store.Now(inviteNow.AddDate(-1, 0, 0)))
	return id
}

func (f *inviteFixture) addMember(org, name, email, role string) string {
	id := uuid.NewString()
	f.exec(`INSERT INTO users (id, email, name, created_at) VALUES ($1, $2, $3, $4)`,
		id, email, name, store.Now(inviteNow.AddDate(-1, 0, 0)))
	f.exec(`INSERT INTO memberships (organisation_id, user_id, role, created_at)
		VALUES ($1, $2, $3, $4)`, org, id, role, store.Now(inviteNow.AddDate(-1, 0, 0)))
	return id
}

// inviteRow is how a test sets up and reads an invitation.
type inviteRow struct {
	Email      string
	Status     string
	SendCount  int
	TokenHash  sql.NullString
	LastSentAt sql.NullTime
	ExpiresAt  sql.NullTime
	AcceptedAt sql.NullTime
	LastError  sql.NullString
}

// addInvitation inserts row into org (defaults: the invitee's address,
// pending, never sent) and returns its id.
func (f *inviteFixture) addInvitation(org string, row inviteRow) string {
	f.t.Helper()
	if row.Email == "" {
		row.Email = inviteeEmail
	}
	if row.Status == "" {
		row.Status = invitePending
	}
	id := uuid.NewString()
	f.exec(`INSERT INTO invitations (id, organisation_id, email, role, invited_by_user_id,
		token_hash, status, send_count, last_sent_at, expires_at, accepted_at, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		id, org, row.Email, "agent", f.inviter, row.TokenHash, row.Status, row.SendCount,
		row.LastSentAt, row.ExpiresAt, row.AcceptedAt, store.Now(inviteNow.Add(-time.Hour)))
	return id
}

func (f *inviteFixture) invitation(id string) inviteRow {
	f.t.Helper()
	var r inviteRow
	err := f.db.QueryRowContext(context.Background(), `SELECT email, status, send_count,
		token_hash, last_sent_at, expires_at, accepted_at, last_error
		FROM invitations WHERE id = $1`, id).Scan(&r.Email, &r.Status, &r.SendCount,
		&r.TokenHash, &r.LastSentAt, &r.ExpiresAt, &r.AcceptedAt, &r.LastError)
	require.NoError(f.t, err)
	return r
}

// invitedPayload builds a platform.user.invited payload; sendCount 0 leaves
// send_count out.
func invitedPayload(id, org, inviter string, resend bool, sendCount int) []byte {
	p := map[string]any{
		"invitation_id":      id,
		"organisation_id":    org,
		"email":              inviteeEmail,
		"role":               "agent",
		"invited_by_user_id": inviter,
		"resend":             resend,
	}
	if sendCount > 0 {
		p["send_count"] = sendCount
	}
	b, _ := json.Marshal(p)
	return b
}

// deliver hands raw to the handler as one message of org.
func (f *inviteFixture) deliver(org string, raw []byte) error {
	return f.deliverTo(f.h, org, raw)
}

func (f *inviteFixture) deliverTo(h job.Handler, org string, raw []byte) error {
	msg := job.Message{
		ID:       uuid.NewString(),
		Topic:    "platform.user.invited",
		Payload:  raw,
		Metadata: map[string]string{job.MetaOrganisationID: org},
		Handler:  InviteEmail,
		Attempt:  1,
	}
	return h.Handle(job.WithMessage(context.Background(), msg), msg)
}

func (f *inviteFixture) count(query string, args ...any) int {
	f.t.Helper()
	var n int
	require.NoError(f.t, f.db.QueryRowContext(context.Background(), query, args...).Scan(&n))
	return n
}

// requireNothingWritten asserts that no message was claimed and no audit or
// mail_log row written, and that invitation id still reads as before.
func (f *inviteFixture) requireNothingWritten(id string, before inviteRow) {
	f.t.Helper()
	require.Zero(f.t, f.count(`SELECT COUNT(*) FROM processed_messages`))
	require.Zero(f.t, f.count(`SELECT COUNT(*) FROM audit_logs`))
	require.Zero(f.t, f.count(`SELECT COUNT(*) FROM mail_log`))
	require.Zero(f.t, f.count(`SELECT COUNT(*) FROM outbox`))
	if id != "" {
		require.Equal(f.t, before, f.invitation(id))
	}
}

// inviteAuditRow is an audit entry as the tests read it.
type inviteAuditRow struct {
	Org, ActorType, Action, EntityType, EntityID, Category string
	Metadata                                               map[string]any
}

func (f *inviteFixture) audits(id string) []inviteAuditRow {
	f.t.Helper()
	rows, err := f.db.QueryContext(context.Background(), `SELECT organisation_id, actor_type,
		action, entity_type, entity_id, category, metadata FROM audit_logs
		WHERE entity_id = $1 ORDER BY created_at`, id)
	require.NoError(f.t, err)
	defer rows.Close()
	var out []inviteAuditRow
	for rows.Next() {
		var r inviteAuditRow
		var md string
		require.NoError(f.t, rows.Scan(&r.Org, &r.ActorType, &r.Action, &r.EntityType,
			&r.EntityID, &r.Category, &md))
		require.NoError(f.t, json.Unmarshal([]byte(md), &r.Metadata))
		out = append(out, r)
	}
	require.NoError(f.t, rows.Err())
	return out
}

// dump returns every text value in the tables this job writes, to search
// for what must not be stored.
func (f *inviteFixture) dump() string {
	f.t.Helper()
	var out string
	for _, q := range []string{
		`SELECT COALESCE(token_hash, '') || ' ' || COALESCE(last_error, '') FROM invitations`,
		`SELECT action || ' ' || COALESCE(metadata, '{}') FROM audit_logs`,
		`SELECT dedupe_key || ' ' || provider_message_id FROM mail_log`,
		`SELECT idempotency_key FROM processed_messages`,
		`SELECT payload || ' ' || metadata FROM outbox`,
	} {
		rows, err := f.db.QueryContext(context.Background(), q)
		require.NoError(f.t, err)
		for rows.Next() {
			var s string
			require.NoError(f.t, rows.Scan(&s))
			out += s + "\n"
		}
		require.NoError(f.t, rows.Err())
		rows.Close()
	}
	return out
}

var inviteLink = regexp.MustCompile(
	`https://app\.example\.com/invitations/accept\?token=([A-Za-z0-9_-]+)`)

// tokenIn returns the token in the link of the email body s.
func tokenIn(t *testing.T, s string) string {
	t.Helper()
	m := inviteLink.FindStringSubmatch(s)
	require.NotNil(t, m, "no invitation link in %q", s)
	return m[1]
}

func nullTime(t time.Time) sql.NullTime { return sql.NullTime{Time: store.Now(t), Valid: true} }
