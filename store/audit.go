package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Audit categories. Each has its own retention; see the auditCleanup job.
const (
	AuditSecurity           = "security"
	AuditBusiness           = "business"
	AuditBilling            = "billing"
	AuditComplianceEvidence = "compliance_evidence"
	AuditAML                = "aml"
)

// AuditEntry is one row of the append-only audit log. Metadata holds ids and
// counts, never personal data.
type AuditEntry struct {
	OrganisationID string
	ActorUserID    string
	ActorType      string // "user", "system"
	Action         string
	EntityType     string
	EntityID       string
	TenancyID      string
	Category       string
	Metadata       map[string]any
	At             time.Time
}

// WriteAudit appends e to the audit log within tx.
func (tx *Tx) WriteAudit(ctx context.Context, e AuditEntry) error {
	md := "{}"
	if len(e.Metadata) > 0 {
		b, err := json.Marshal(e.Metadata)
		if err != nil {
			return fmt.Errorf("write audit: %w", err)
		}
		md = string(b)
	}
	if e.ActorType == "" {
		e.ActorType = "system"
	}
	if e.At.IsZero() {
		e.At = tx.now
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO audit_logs (id, organisation_id, actor_user_id,
		actor_type, action, entity_type, entity_id, tenancy_id, category, metadata, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		uuid.NewString(), nullable(e.OrganisationID), nullable(e.ActorUserID), e.ActorType,
		e.Action, nullable(e.EntityType), nullable(e.EntityID), nullable(e.TenancyID),
		e.Category, md, Now(e.At))
	if err != nil {
		return fmt.Errorf("write audit: %w", err)
	}
	return nil
}

// nullable maps "" to SQL NULL.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Nullable maps "" to SQL NULL, for handlers' optional columns.
func Nullable(s string) any { return nullable(s) }
