package platform

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/providers/mail"
	"github.com/millrace/millrace/store"
)

// InviteTTL is how long an invitation link works after it is sent.
const InviteTTL = 7 * 24 * time.Hour

// inviteRecordTimeout bounds recording a send once the email has gone: the
// record must be attempted even when the message's context ended meanwhile.
const inviteRecordTimeout = 10 * time.Second

// Invitation statuses this job reads or writes.
const (
	invitePending        = "pending"
	inviteSent           = "sent"
	inviteDeliveryFailed = "delivery_failed"
)

// errInvitationMissing reports a message naming an invitation that its
// organisation does not have.
var errInvitationMissing = errors.New("invitation not found in organisation")

// userInvited is the platform.user.invited payload. Email and role are
// carried for consumers that have no database; this job reads both from the
// invitation row, which is authoritative.
type userInvited struct {
	InvitationID    string `json:"invitation_id"`
	OrganisationID  string `json:"organisation_id"`
	Email           string `json:"email"`
	Role            string `json:"role"`
	InvitedByUserID string `json:"invited_by_user_id"`
	Resend          bool   `json:"resend"`
	SendCount       *int   `json:"send_count"`
}

// invitation is an invitation row with the names its email shows.
type invitation struct {
	ID, OrganisationID, Email, Role, InvitedBy, Status string
	SendCount                                          int
	ExpiresAt, AcceptedAt                              sql.NullTime
	OrganisationName, InviterName                      string
}

type inviteEmailer struct {
	d     Deps
	clock job.Clock
	log   *slog.Logger
}

// NewInviteEmail returns the inviteEmail handler. It consumes
// platform.user.invited: it emails the invitee a link carrying a fresh
// random token, then records the send (status sent, the token's hash, the
// new expiry, an audit entry and the mail_log row) in one transaction keyed
// by <invitation_id>:<expected send_count>. The expected count is the
// payload's send_count, or 1 for a first send that does not carry one.
//
// Outcomes: a revoked, accepted, expired or failed invitation, an invitee
// who is already a member and a stale or duplicate message are acked without
// effects. A permanently rejected address sets status delivery_failed and
// is permanent. A malformed payload, an invitation that its organisation
// does not have (a producer bug or a cross-tenant reference: a person must
// look, so it is poisoned) and missing mail configuration are permanent.
// Other send failures are retried and write nothing.
//
// Redelivery after the email went but before the record committed (a crash,
// a failed commit) sends again: the same dedupe key gives the same
// Message-ID, but with a new token, because the first token was never
// stored anywhere and cannot be recovered. The second email's link wins and
// the first link is dead. A receiving system that drops the second email as
// a duplicate Message-ID leaves the invitee with a dead link, who then asks
// for a resend; the window is one failed commit wide, and the alternative,
// keeping the raw token to send it again, would put a live credential in the
// database. Two deliveries of the same message running at once end the same
// way: both send, the first to commit stores its hash and the other acks.
//
// d.DB, d.Mail, d.MailFrom and d.AppBaseURL are required; d.Clock defaults
// to the system clock, d.Location (for the expiry date in the email) to
// Europe/London and d.Logger to slog.Default().
func NewInviteEmail(d Deps) job.Handler {
	d = d.withDefaults()
	return &inviteEmailer{d: d, clock: d.Clock, log: d.Logger}
}

// Handle implements job.Handler.
func (h *inviteEmailer) Handle(ctx context.Context, msg job.Message) error {
	ev, expected, err := decodeUserInvited(msg)
	if err != nil {
		return job.Permanent(err)
	}
	if err := h.configured(); err != nil {
		return job.Permanent(err)
	}
	key := fmt.Sprintf("%s:%d", ev.InvitationID, expected)
	now := store.Now(h.clock.Now())
	inv, ok, err := h.sendable(ctx, ev, key, expected, now)
	if !ok || err != nil {
		return err
	}

	token, err := newInviteToken()
	if err != nil {
		return err
	}
	m, err := h.compose(inv, token, expected, now)
	if err != nil {
		return err
	}
	id, err := h.d.Mail.Send(ctx, m)
	var rejected *mail.RejectedError
	switch {
	case errors.As(err, &rejected):
		return h.recordRejected(ctx, key, inv, rejected, now)
	case err != nil:
		return fmt.Errorf("send invitation: %w", err)
	}
	return h.recordSent(ctx, key, inv, ev.Resend, expected, InviteTokenHash(token), id, now)
}

// sendable loads the invitation and reports whether this message may email
// it now. A message that must not is logged and acked (false, nil); an
// invitation its organisation lacks is a permanent error.
func (h *inviteEmailer) sendable(ctx context.Context, ev userInvited, key string,
	expected int, now time.Time) (invitation, bool, error) {
	done, err := h.d.DB.IsProcessed(ctx, InviteEmail, key)
	if err != nil || done {
		if done {
			h.skipped(ctx, ev, "already processed")
		}
		return invitation{}, false, err
	}
	inv, err := h.load(ctx, ev)
	if errors.Is(err, errInvitationMissing) {
		return inv, false, job.Permanent(err)
	}
	if err != nil {
		return inv, false, err
	}
	reason, err := h.unsendable(ctx, inv, expected, now)
	if err != nil {
		return inv, false, err
	}
	if reason != "" {
		h.skipped(ctx, ev, reason)
		return inv, false, nil
	}
	return inv, true, nil
}

// decodeUserInvited reads and checks the payload and returns it with the
// send_count this delivery expects to write. Every error is permanent.
func decodeUserInvited(msg job.Message) (userInvited, int, error) {
	var ev userInvited
	if err := json.Unmarshal(msg.Payload, &ev); err != nil {
		return ev, 0, fmt.Errorf("decode invitation event: %w", err)
	}
	switch {
	case ev.InvitationID == "" || ev.OrganisationID == "":
		return ev, 0, errors.New("decode invitation event: missing required field")
	case msg.OrganisationID() != "" && msg.OrganisationID() != ev.OrganisationID:
		return ev, 0, errors.New("check invitation event: organisation differs from metadata")
	case ev.SendCount == nil && ev.Resend:
		// Without the count, a duplicate of this resend could not be told
		// from the next one.
		return ev, 0, errors.New("check invitation event: resend without send_count")
	case ev.SendCount == nil:
		return ev, 1, nil
	case *ev.SendCount < 1:
		return ev, 0, fmt.Errorf("check invitation event: send_count %d", *ev.SendCount)
	}
	return ev, *ev.SendCount, nil
}

// configured reports missing mail settings, which no retry can fix.
func (h *inviteEmailer) configured() error {
	var errs []error
	if h.d.Mail == nil {
		errs = append(errs, errors.New("no mail sender"))
	}
	if strings.TrimSpace(h.d.MailFrom) == "" {
		errs = append(errs, errors.New("no mail from address"))
	}
	u, err := url.Parse(h.d.AppBaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		errs = append(errs, errors.New("app base url is not an absolute http(s) url"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invite email not configured: %w", err)
	}
	return nil
}

// load reads the invitation by id within its organisation, with the
// organisation's and the inviter's names.
func (h *inviteEmailer) load(ctx context.Context, ev userInvited) (invitation, error) {
	inv := invitation{ID: ev.InvitationID, OrganisationID: ev.OrganisationID}
	err := h.d.DB.QueryRowContext(ctx, `SELECT i.email, i.role, i.invited_by_user_id,
		i.status, i.send_count, i.expires_at, i.accepted_at, o.name, COALESCE(u.name, '')
		FROM invitations i
		JOIN organisations o ON o.id = i.organisation_id
		LEFT JOIN users u ON u.id = i.invited_by_user_id
		WHERE i.id = $1 AND i.organisation_id = $2`, inv.ID, inv.OrganisationID).Scan(
		&inv.Email, &inv.Role, &inv.InvitedBy, &inv.Status, &inv.SendCount,
		&inv.ExpiresAt, &inv.AcceptedAt, &inv.OrganisationName, &inv.InviterName)
	if errors.Is(err, sql.ErrNoRows) {
		return inv, errInvitationMissing
	}
	if err != nil {
		return inv, fmt.Errorf("read invitation: %w", err)
	}
	return inv, nil
}

// unsendable returns why inv must not be emailed now, or "" when it may.
func (h *inviteEmailer) unsendable(ctx context.Context, inv invitation, expected int,
	now time.Time) (string, error) {
	switch {
	case inv.Status != invitePending && inv.Status != inviteSent:
		return "status " + inv.Status, nil
	case inv.AcceptedAt.Valid:
		return "accepted", nil
	case inv.ExpiresAt.Valid && inv.ExpiresAt.Time.Before(now):
		return "expired", nil
	case inv.SendCount >= expected:
		return "stale send_count", nil
	}

	var members int
	err := h.d.DB.QueryRowContext(ctx, `SELECT COUNT(*) FROM memberships m
		JOIN users u ON u.id = m.user_id
		WHERE m.organisation_id = $1 AND LOWER(u.email) = LOWER($2)`,
		inv.OrganisationID, inv.Email).Scan(&members)
	if err != nil {
		return "", fmt.Errorf("check membership: %w", err)
	}
	if members > 0 {
		return "already a member", nil
	}
	return "", nil
}

func (h *inviteEmailer) skipped(ctx context.Context, ev userInvited, reason string) {
	h.log.DebugContext(ctx, "invitation not sent",
		slog.String("invitation_id", ev.InvitationID),
		slog.String("organisation_id", ev.OrganisationID),
		slog.String("reason", reason))
}

// newInviteToken returns 32 random bytes, base64url-encoded without padding.
func newInviteToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate invitation token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// InviteTokenHash returns what invitations.token_hash holds for token: the
// lower-case hex SHA-256 of the token exactly as the link carries it. The
// accept endpoint hashes the token it receives the same way and looks the
// invitation up by the result.
func InviteTokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// recordSent stores the send in one transaction. The UPDATE repeats the
// rules it relies on: when the invitation changed while the email was on
// its way (revoked, say), the row is left alone, so the link just sent never
// works, and the message is still marked handled.
func (h *inviteEmailer) recordSent(ctx context.Context, key string, inv invitation,
	resend bool, count int, tokenHash, messageID string, now time.Time) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), inviteRecordTimeout)
	defer cancel()

	err := h.d.DB.Handle(ctx, InviteEmail, key, func(tx *store.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO mail_log (dedupe_key,
			provider_message_id, sent_at) VALUES ($1, $2, $3) ON CONFLICT (dedupe_key) DO NOTHING`,
			inviteDedupeKey(inv.ID, count), messageID, now); err != nil {
			return fmt.Errorf("record mail: %w", err)
		}
		res, err := tx.ExecContext(ctx, `UPDATE invitations SET status = $1, send_count = $2,
			last_sent_at = $3, expires_at = $4, token_hash = $5, last_error = NULL
			WHERE id = $6 AND organisation_id = $7 AND status IN ($8, $1) AND send_count < $2
			AND accepted_at IS NULL`,
			inviteSent, count, now, now.Add(InviteTTL), tokenHash, inv.ID, inv.OrganisationID,
			invitePending)
		if err != nil {
			return fmt.Errorf("record invitation sent: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("record invitation sent: %w", err)
		}
		if n == 0 {
			h.log.WarnContext(ctx, "invitation changed while its email was sent",
				slog.String("invitation_id", inv.ID),
				slog.String("organisation_id", inv.OrganisationID))
			return nil
		}
		return tx.WriteAudit(ctx, inviteAudit(inv, "invitation.sent", now, map[string]any{
			"send_count": count, "resend": resend, "role": inv.Role,
			"invited_by_user_id": inv.InvitedBy, "message_id": messageID,
		}))
	})
	if errors.Is(err, store.ErrAlreadyProcessed) {
		return nil
	}
	return err
}

// recordRejected marks the invitation delivery_failed and returns the
// permanent error. last_error keeps the SMTP codes only: the server's text
// may name the address.
func (h *inviteEmailer) recordRejected(ctx context.Context, key string, inv invitation,
	rej *mail.RejectedError, now time.Time) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), inviteRecordTimeout)
	defer cancel()

	reason := strings.TrimSpace(fmt.Sprintf("recipient rejected: %d %s", rej.Code,
		rej.EnhancedCode))
	err := h.d.DB.Handle(ctx, InviteEmail, key, func(tx *store.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE invitations SET status = $1, last_error = $2
			WHERE id = $3 AND organisation_id = $4 AND status IN ($5, $6)`,
			inviteDeliveryFailed, reason, inv.ID, inv.OrganisationID, invitePending, inviteSent)
		if err != nil {
			return fmt.Errorf("record invitation rejected: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("record invitation rejected: %w", err)
		}
		if n == 0 {
			return nil
		}
		return tx.WriteAudit(ctx, inviteAudit(inv, "invitation.delivery_failed", now,
			map[string]any{"smtp_code": rej.Code, "enhanced_code": rej.EnhancedCode}))
	})
	switch {
	case errors.Is(err, store.ErrAlreadyProcessed):
		return nil
	case err != nil:
		return err
	}
	return job.Permanent(fmt.Errorf("send invitation: %w", rej))
}

func inviteAudit(inv invitation, action string, now time.Time, md map[string]any) store.AuditEntry {
	return store.AuditEntry{
		OrganisationID: inv.OrganisationID,
		ActorType:      "system",
		Action:         action,
		EntityType:     "invitation",
		EntityID:       inv.ID,
		Category:       store.AuditSecurity,
		Metadata:       md,
		At:             now,
	}
}

// inviteHTML is the HTML part of the invitation email. html/template
// escapes the names, which the inviter's organisation chose.
var inviteHTML = template.Must(template.New("invite").Parse(`<!doctype html>
<html><body>
<p>Hello,</p>
<p>{{.Inviter}} has invited you to join <strong>{{.Organisation}}</strong> on Millrace
as {{.Role}}.</p>
<p><a href="{{.Link}}">Accept the invitation</a></p>
<p>The link expires on {{.Expires}}. If you were not expecting this invitation,
you can ignore this email.</p>
</body></html>
`))

// inviteRoles names each role with its article, as the email says it.
var inviteRoles = map[string]string{
	"owner": "an owner", "admin": "an admin", "agent": "an agent", "viewer": "a viewer",
}

// compose writes the invitation email. It names the organisation and the
// inviter and nothing else about anyone; the link is the only place the
// token appears.
func (h *inviteEmailer) compose(inv invitation, token string, count int,
	now time.Time) (mail.Message, error) {
	v := struct{ Inviter, Organisation, Role, Link, Expires string }{
		Inviter:      oneLine(inv.InviterName, "A colleague"),
		Organisation: oneLine(inv.OrganisationName, "an organisation"),
		Role:         inviteRoles[inv.Role],
		Link: strings.TrimRight(h.d.AppBaseURL, "/") + "/invitations/accept?token=" +
			url.QueryEscape(token),
		Expires: now.Add(InviteTTL).In(h.d.Location).Format("2 January 2006 at 15:04 MST"),
	}
	if v.Role == "" {
		v.Role = "a member"
	}
	var html strings.Builder
	if err := inviteHTML.Execute(&html, v); err != nil {
		return mail.Message{}, fmt.Errorf("render invitation email: %w", err)
	}
	text := fmt.Sprintf("Hello,\n\n%s has invited you to join %s on Millrace as %s.\n\n"+
		"Accept the invitation:\n%s\n\nThe link expires on %s. If you were not expecting "+
		"this invitation, you can ignore this email.\n",
		v.Inviter, v.Organisation, v.Role, v.Link, v.Expires)

	return mail.Message{
		From:      h.d.MailFrom,
		To:        []string{inv.Email},
		Subject:   fmt.Sprintf("%s invited you to join %s on Millrace", v.Inviter, v.Organisation),
		Text:      text,
		HTML:      html.String(),
		DedupeKey: inviteDedupeKey(inv.ID, count),
	}, nil
}

// oneLine collapses s to one line of single spaces, or returns fallback
// when nothing is left.
func oneLine(s, fallback string) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return fallback
	}
	return s
}

// inviteDedupeKey is the email's dedupe key for send number count.
func inviteDedupeKey(invitationID string, count int) string {
	return fmt.Sprintf("invite:%s:%d", invitationID, count)
}
