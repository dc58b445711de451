package platform

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	netmail "net/mail"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/providers/mail"
	"github.com/millrace/millrace/providers/mail/mailtest"
	"github.com/millrace/millrace/store"
)

func TestInviteEmailSends(t *testing.T) {
	t.Parallel()
	f := newInviteFixture(t)
	id := f.addInvitation(f.org, inviteRow{})

	require.NoError(t, f.deliver(f.org, invitedPayload(id, f.org, f.inviter, false, 0)))

	sent := f.sender.messages()
	require.Len(t, sent, 1)
	m := sent[0]
	require.Equal(t, inviteFrom, m.From)
	require.Equal(t, []string{inviteeEmail}, m.To)
	require.Equal(t, "invite:"+id+":1", m.DedupeKey)
	require.Equal(t, "Jane Agent invited you to join Acme Lettings on Millrace", m.Subject)
	for _, body := range []string{m.Text, m.HTML} {
		require.Contains(t, body, "Jane Agent")
		require.Contains(t, body, "Acme Lettings")
		require.Contains(t, body, "as an agent")
		require.Contains(t, body, "5 April 2026 at 01:30 BST") // 7 days on, in London
		require.NotContains(t, body, "jane@acme.example", "only names, no other personal data")
	}
	token := tokenIn(t, m.Text)
	require.Equal(t, token, tokenIn(t, m.HTML))
	require.Len(t, token, 43) // 32 bytes, base64url without padding

	row := f.invitation(id)
	require.Equal(t, inviteSent, row.Status)
	require.Equal(t, 1, row.SendCount)
	require.Equal(t, InviteTokenHash(token), row.TokenHash.String)
	require.True(t, row.LastSentAt.Time.Equal(inviteNow))
	require.True(t, row.ExpiresAt.Time.Equal(inviteNow.Add(InviteTTL)))
	require.False(t, row.LastError.Valid)

	stored := f.dump()
	require.NotContains(t, stored, token, "the raw token lives only in the email")
	require.NotContains(t, stored, inviteeEmail)
	require.Equal(t, 1, f.count(`SELECT COUNT(*) FROM mail_log WHERE dedupe_key = $1
		AND provider_message_id = $2`, m.DedupeKey, mail.MessageID(m.DedupeKey)))
	require.Equal(t, 1, f.count(`SELECT COUNT(*) FROM processed_messages
		WHERE handler = $1 AND idempotency_key = $2`, InviteEmail, id+":1"))

	audits := f.audits(id)
	require.Len(t, audits, 1)
	a := audits[0]
	require.Equal(t, inviteAuditRow{Org: f.org, ActorType: "system", Action: "invitation.sent",
		EntityType: "invitation", EntityID: id, Category: store.AuditSecurity,
		Metadata: map[string]any{"send_count": float64(1), "resend": false, "role": "agent",
			"invited_by_user_id": f.inviter, "message_id": mail.MessageID(m.DedupeKey)},
	}, a)
}

func TestInviteEmailDuplicateDeliverySendsOnce(t *testing.T) {
	t.Parallel()
	f := newInviteFixture(t)
	id := f.addInvitation(f.org, inviteRow{})
	raw := invitedPayload(id, f.org, f.inviter, false, 1)

	require.NoError(t, f.deliver(f.org, raw))
	after := f.invitation(id)
	require.NoError(t, f.deliver(f.org, raw))

	// With the claim pruned, the send_count still marks the message stale.
	f.exec(`DELETE FROM processed_messages`)
	require.NoError(t, f.deliver(f.org, raw))

	require.Len(t, f.sender.messages(), 1)
	require.Equal(t, after, f.invitation(id))
	require.Len(t, f.audits(id), 1)
	require.Equal(t, 1, f.count(`SELECT COUNT(*) FROM mail_log`))
}

func TestInviteEmailNoOps(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		row    inviteRow
		resend bool
		count  int
	}{
		{name: "revoked", row: inviteRow{Status: "revoked"}},
		{name: "accepted", row: inviteRow{Status: "accepted", SendCount: 1,
			AcceptedAt: nullTime(inviteNow.Add(-time.Minute))}},
		{name: "accepted_at set on a sent row", row: inviteRow{Status: inviteSent, SendCount: 1,
			AcceptedAt: nullTime(inviteNow.Add(-time.Minute))}, resend: true, count: 2},
		{name: "status expired", row: inviteRow{Status: "expired", SendCount: 1},
			resend: true, count: 2},
		{name: "expires_at passed", row: inviteRow{Status: inviteSent, SendCount: 1,
			ExpiresAt: nullTime(inviteNow.Add(-time.Second))}, resend: true, count: 2},
		{name: "delivery failed before", row: inviteRow{Status: inviteDeliveryFailed}},
		{name: "invitee is a member", row: inviteRow{Email: "Member@Example.com"}},
		{name: "stale resend", row: inviteRow{Status: inviteSent, SendCount: 2},
			resend: true, count: 2},
		{name: "older resend", row: inviteRow{Status: inviteSent, SendCount: 3},
			resend: true, count: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newInviteFixture(t)
			id := f.addInvitation(f.org, tt.row)
			before := f.invitation(id)

			err := f.deliver(f.org, invitedPayload(id, f.org, f.inviter, tt.resend, tt.count))
			require.NoError(t, err)
			require.Empty(t, f.sender.messages())
			f.requireNothingWritten(id, before)
		})
	}
}

func TestInviteEmailBadMessagesArePermanent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		msg  func(f *inviteFixture, id string) (org string, raw []byte)
		want string
	}{
		{"not JSON", func(f *inviteFixture, id string) (string, []byte) {
			return f.org, []byte(`{"invitation_id":`)
		}, "decode invitation event"},
		{"no invitation id", func(f *inviteFixture, id string) (string, []byte) {
			return f.org, invitedPayload("", f.org, f.inviter, false, 1)
		}, "missing required field"},
		{"resend without send_count", func(f *inviteFixture, id string) (string, []byte) {
			return f.org, invitedPayload(id, f.org, f.inviter, true, 0)
		}, "resend without send_count"},
		{"send_count below 1", func(f *inviteFixture, id string) (string, []byte) {
			raw := strings.Replace(string(invitedPayload(id, f.org, f.inviter, true, 1)),
				`"send_count":1`, `"send_count":0`, 1)
			return f.org, []byte(raw)
		}, "send_count 0"},
		{"metadata names another organisation", func(f *inviteFixture, id string) (string, []byte) {
			return f.otherOrg, invitedPayload(id, f.org, f.inviter, false, 1)
		}, "organisation differs"},
		// Tenant isolation: the invitation is looked up within the
		// payload's organisation only, so another organisation's message
		// finds nothing. That is a producer bug or an attempt to reach
		// across tenants; it is poisoned for a person to see.
		{"invitation of another organisation", func(f *inviteFixture, id string) (string, []byte) {
			return f.otherOrg, invitedPayload(id, f.otherOrg, f.inviter, false, 1)
		}, "invitation not found in organisation"},
		{"unknown invitation", func(f *inviteFixture, id string) (string, []byte) {
			return f.org, invitedPayload("0b0b0b0b-0000-4000-8000-000000000000", f.org,
				f.inviter, false, 1)
		}, "invitation not found in organisation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newInviteFixture(t)
			id := f.addInvitation(f.org, inviteRow{})
			before := f.invitation(id)

			org, raw := tt.msg(f, id)
			err := f.deliver(org, raw)
			require.ErrorContains(t, err, tt.want)
			require.Equal(t, job.ClassPermanent, job.Classify(err))
			require.Empty(t, f.sender.messages())
			f.requireNothingWritten(id, before)
		})
	}
}

func TestInviteEmailNotConfiguredIsPermanent(t *testing.T) {
	t.Parallel()
	tests := map[string]func(d *Deps){
		"no mail sender": func(d *Deps) { d.Mail = nil },
		"no mail from":   func(d *Deps) { d.MailFrom = "" },
		"app base url":   func(d *Deps) { d.AppBaseURL = "app.example.com" },
	}
	for name, change := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newInviteFixture(t)
			id := f.addInvitation(f.org, inviteRow{})
			before := f.invitation(id)
			d := f.deps(f.sender)
			change(&d)

			err := f.deliverTo(NewInviteEmail(d), f.org,
				invitedPayload(id, f.org, f.inviter, false, 1))
			require.ErrorContains(t, err, name)
			require.Equal(t, job.ClassPermanent, job.Classify(err))
			require.Empty(t, f.sender.messages())
			f.requireNothingWritten(id, before)
		})
	}
}

func TestInviteEmailRejectedAddress(t *testing.T) {
	t.Parallel()
	f := newInviteFixture(t)
	id := f.addInvitation(f.org, inviteRow{})
	f.sender.err = &mail.RejectedError{Code: 550, EnhancedCode: "5.1.1",
		Reply: "<[recipient]> user unknown"}
	raw := invitedPayload(id, f.org, f.inviter, false, 1)

	err := f.deliver(f.org, raw)
	require.Equal(t, job.ClassPermanent, job.Classify(err))
	var rej *mail.RejectedError
	require.ErrorAs(t, err, &rej)

	row := f.invitation(id)
	require.Equal(t, inviteDeliveryFailed, row.Status)
	require.Equal(t, "recipient rejected: 550 5.1.1", row.LastError.String)
	require.Zero(t, row.SendCount)
	require.False(t, row.TokenHash.Valid)
	require.Zero(t, f.count(`SELECT COUNT(*) FROM mail_log`))
	audits := f.audits(id)
	require.Len(t, audits, 1)
	require.Equal(t, "invitation.delivery_failed", audits[0].Action)
	require.Equal(t, store.AuditSecurity, audits[0].Category)
	require.NotContains(t, f.dump(), inviteeEmail)

	// A replay from the poison queue is a duplicate.
	f.sender.err = nil
	require.NoError(t, f.deliver(f.org, raw))
	require.Empty(t, f.sender.messages())
}

func TestInviteEmailSendFailureIsRetryable(t *testing.T) {
	t.Parallel()
	f := newInviteFixture(t)
	id := f.addInvitation(f.org, inviteRow{})
	before := f.invitation(id)
	f.sender.err = errors.New(`send mail: 451 "4.7.1 try again later"`)

	err := f.deliver(f.org, invitedPayload(id, f.org, f.inviter, false, 1))
	require.ErrorContains(t, err, "451")
	require.Equal(t, job.ClassRetryable, job.Classify(err))
	f.requireNothingWritten(id, before)

	f.sender.err = nil
	require.NoError(t, f.deliver(f.org, invitedPayload(id, f.org, f.inviter, false, 1)))
	require.Len(t, f.sender.messages(), 1)
	require.Equal(t, inviteSent, f.invitation(id).Status)
}

func TestInviteEmailResendRotatesToken(t *testing.T) {
	t.Parallel()
	f := newInviteFixture(t)
	id := f.addInvitation(f.org, inviteRow{})

	require.NoError(t, f.deliver(f.org, invitedPayload(id, f.org, f.inviter, false, 1)))
	first := f.invitation(id)
	require.NoError(t, f.deliver(f.org, invitedPayload(id, f.org, f.inviter, true, 2)))

	sent := f.sender.messages()
	require.Len(t, sent, 2)
	require.Equal(t, "invite:"+id+":2", sent[1].DedupeKey)
	oldToken, newToken := tokenIn(t, sent[0].Text), tokenIn(t, sent[1].Text)
	require.NotEqual(t, oldToken, newToken)

	row := f.invitation(id)
	require.Equal(t, 2, row.SendCount)
	require.Equal(t, inviteSent, row.Status)
	require.Equal(t, InviteTokenHash(newToken), row.TokenHash.String)
	require.NotEqual(t, first.TokenHash, row.TokenHash, "the old link no longer matches")
	require.Equal(t, 2, f.count(`SELECT COUNT(*) FROM audit_logs WHERE entity_id = $1
		AND action = 'invitation.sent'`, id))

	// The first send's message arriving again is stale.
	f.exec(`DELETE FROM processed_messages`)
	require.NoError(t, f.deliver(f.org, invitedPayload(id, f.org, f.inviter, false, 1)))
	require.Len(t, f.sender.messages(), 2)
	require.Equal(t, row, f.invitation(id))
}

func TestInviteEmailOutOfOrderResend(t *testing.T) {
	t.Parallel()
	f := newInviteFixture(t)
	id := f.addInvitation(f.org, inviteRow{Status: inviteSent, SendCount: 1,
		ExpiresAt: nullTime(inviteNow.AddDate(0, 0, 3))})

	// The third send overtook the second: it writes its own count, so the
	// second, when it comes, is stale instead of sending a third email.
	require.NoError(t, f.deliver(f.org, invitedPayload(id, f.org, f.inviter, true, 3)))
	require.NoError(t, f.deliver(f.org, invitedPayload(id, f.org, f.inviter, true, 2)))
	require.Len(t, f.sender.messages(), 1)
	require.Equal(t, 3, f.invitation(id).SendCount)
}

func TestInviteEmailRevokedWhileSending(t *testing.T) {
	t.Parallel()
	f := newInviteFixture(t)
	id := f.addInvitation(f.org, inviteRow{})
	f.sender.onSend = func() {
		f.exec(`UPDATE invitations SET status = 'revoked' WHERE id = $1`, id)
	}

	require.NoError(t, f.deliver(f.org, invitedPayload(id, f.org, f.inviter, false, 1)))
	row := f.invitation(id)
	require.Equal(t, "revoked", row.Status)
	require.False(t, row.TokenHash.Valid, "the link just sent must not work")
	require.Zero(t, row.SendCount)
	require.Empty(t, f.audits(id))
	require.Equal(t, 1, f.count(`SELECT COUNT(*) FROM mail_log`), "the send is still recorded")
	require.Equal(t, 1, f.count(`SELECT COUNT(*) FROM processed_messages
		WHERE idempotency_key = $1`, id+":1"))
}

// TestInviteEmailOverSMTP runs the handler against a real SMTP server.
func TestInviteEmailOverSMTP(t *testing.T) {
	t.Parallel()
	f := newInviteFixture(t)
	srv := mailtest.NewServer(t)
	sender, err := mail.NewSMTP(srv.URL())
	require.NoError(t, err)
	h := NewInviteEmail(f.deps(sender))

	id := f.addInvitation(f.org, inviteRow{})
	require.NoError(t, f.deliverTo(h, f.org, invitedPayload(id, f.org, f.inviter, false, 1)))

	got := srv.Received()
	require.Len(t, got, 1)
	require.Equal(t, "no-reply@millrace.local", got[0].From)
	require.Equal(t, []string{inviteeEmail}, got[0].To)
	hdr, text, html := readMIME(t, got[0].Data)
	require.Equal(t, "<"+mail.MessageID("invite:"+id+":1")+">", hdr.Get("Message-ID"))
	require.Equal(t, "Jane Agent invited you to join Acme Lettings on Millrace",
		hdr.Get("Subject"))
	token := tokenIn(t, text)
	require.Equal(t, token, tokenIn(t, html))
	require.Equal(t, InviteTokenHash(token), f.invitation(id).TokenHash.String)

	t.Run("4xx is retryable and writes nothing", func(t *testing.T) {
		id := f.addInvitation(f.otherOrg, inviteRow{})
		before := f.invitation(id)
		srv.RejectRecipients(451, [3]int{4, 7, 1}, "try again later")

		err := f.deliverTo(h, f.otherOrg, invitedPayload(id, f.otherOrg, f.inviter, false, 1))
		require.Error(t, err)
		require.Equal(t, job.ClassRetryable, job.Classify(err))
		require.NotContains(t, err.Error(), inviteeEmail)
		require.Equal(t, before, f.invitation(id))
		require.Len(t, srv.Received(), 1)
	})
	t.Run("5xx rejection fails the invitation", func(t *testing.T) {
		id := f.addInvitation(f.otherOrg, inviteRow{Email: "gone@example.com"})
		srv.RejectRecipients(550, [3]int{5, 1, 1}, "<gone@example.com> no such user")

		err := f.deliverTo(h, f.otherOrg, invitedPayload(id, f.otherOrg, f.inviter, false, 1))
		require.Equal(t, job.ClassPermanent, job.Classify(err))
		require.NotContains(t, err.Error(), "gone@example.com")
		row := f.invitation(id)
		require.Equal(t, inviteDeliveryFailed, row.Status)
		require.Equal(t, "recipient rejected: 550 5.1.1", row.LastError.String)
	})
}

// readMIME parses a multipart/alternative message into its header and its
// text and HTML parts.
func readMIME(t *testing.T, raw []byte) (netmail.Header, string, string) {
	t.Helper()
	m, err := netmail.ReadMessage(bytes.NewReader(raw))
	require.NoError(t, err)
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, "multipart/alternative", mt)

	var text, html string
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		b, err := io.ReadAll(p)
		require.NoError(t, err)
		if strings.HasPrefix(p.Header.Get("Content-Type"), "text/html") {
			html = string(b)
		} else {
			text = string(b)
		}
	}
	return m.Header, text, html
}
