// Package platform holds the four platform jobs: usageAggregate,
// webhookDeliver (with its retry sweeper), auditCleanup and inviteEmail.
// Each handler owns its SQL and its rules; they talk to other jobs only
// through the events they emit.
package platform

import (
	"log/slog"
	"time"

	"github.com/millrace/millrace/job"
	"github.com/millrace/millrace/providers/mail"
	"github.com/millrace/millrace/providers/webhooks"
	"github.com/millrace/millrace/store"
)

// Handler names, as they appear in the catalogue, consumer groups
// (millrace.<name>), processed_messages and poison records.
const (
	UsageAggregate    = "usageAggregate"
	WebhookDeliver    = "webhookDeliver"
	WebhookRetrySweep = "webhookRetrySweep"
	AuditCleanup      = "auditCleanup"
	InviteEmail       = "inviteEmail"
)

// Deps is what the platform handlers need from the process.
type Deps struct {
	DB       *store.DB
	Clock    job.Clock
	Location *time.Location // Europe/London unless configured otherwise
	Logger   *slog.Logger

	Mail       mail.Sender
	MailFrom   string // e.g. "Millrace <no-reply@millrace.local>"
	AppBaseURL string // where invitation links point, e.g. "https://app.example.com"

	Webhooks  *webhooks.Client
	SecretKey []byte // opens webhook_endpoints.secret_enc
}

// withDefaults returns d with the optional fields filled: the system clock,
// Europe/London and slog.Default().
func (d Deps) withDefaults() Deps {
	if d.Clock == nil {
		d.Clock = job.SystemClock{}
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	d.Location = londonOr(d.Location)
	return d
}
