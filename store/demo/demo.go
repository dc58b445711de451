// Package demo loads a small letting agency into the database, so that a
// newcomer's first events act on real rows. Loading is idempotent: the rows
// have fixed ids and are inserted only when missing.
package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/millrace/millrace/store"
)

// Fixed ids of the demo rows, used by the README's examples.
const (
	OrganisationID = "8a4c9a52-3f0e-4a43-9d0e-3c2b1f6e7a10"
	OwnerUserID    = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
	AgentUserID    = "2b3c4d5e-6f70-4b8c-9d0e-1f2a3b4c5d6e"
	InvitationID   = "3f2e1d0c-9b8a-4776-8554-433221100fed"
	EndpointID     = "5d9c1b2a-7e3f-4a1b-9c8d-2e4f6a8b0c1d"
	DeliveryID     = "0b8f7e1a-1c1d-4c55-8f57-5a0e3f1d2c3b"
	EventID        = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"
	Property1ID    = "6c5b4a39-2817-4f06-a5d4-c3b2a1908f7e"
	Property2ID    = "7d6c5b4a-3928-4a17-b6e5-d4c3b2a1909f"
	Tenancy1ID     = "4e5f6a7b-8c9d-4e0f-a1b2-c3d4e5f6a7b8"
	Tenancy2ID     = "5f6a7b8c-9d0e-4f1a-b2c3-d4e5f6a7b8c9"
)

// Row is one demo row, as printed by `millrace demo`.
type Row struct {
	Table string `json:"table"`
	ID    string `json:"id"`
	What  string `json:"what"`
	New   bool   `json:"new"`
}

type insert struct {
	row  Row
	sql  string
	args []any
}

// Load inserts the demo agency's rows that are missing and returns every demo
// row, marking those it created. sealedSecret is the webhook endpoint's
// signing secret as stored (sealed with the configured key).
func Load(ctx context.Context, db *store.DB, now time.Time, sealedSecret string) ([]Row, error) {
	var out []Row
	err := db.InTx(ctx, func(tx *store.Tx) error {
		for _, in := range inserts(store.Now(now), sealedSecret) {
			res, err := tx.ExecContext(ctx, in.sql+" ON CONFLICT DO NOTHING", in.args...)
			if err != nil {
				return fmt.Errorf("load demo %s: %w", in.row.Table, err)
			}
			n, _ := res.RowsAffected()
			in.row.New = n == 1
			out = append(out, in.row)
		}
		return nil
	})
	return out, err
}

// IsEmpty reports whether the database has no organisation yet.
func IsEmpty(ctx context.Context, db *store.DB) (bool, error) {
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM organisations`).Scan(&n); err != nil {
		return false, fmt.Errorf("count organisations: %w", err)
	}
	return n == 0, nil
}

func inserts(now time.Time, sealedSecret string) []insert {
	old := now.AddDate(-3, 0, 0)
	return []insert{
		{Row{"organisations", OrganisationID, "Oakridge Lettings (plan starter)", false},
			`INSERT INTO organisations (id, name, plan_code, created_at) VALUES ($1, $2, $3, $4)`,
			[]any{OrganisationID, "Oakridge Lettings", "starter", now}},
		{Row{"users", OwnerUserID, "owner Olivia Owner", false},
			`INSERT INTO users (id, email, name, created_at) VALUES ($1, $2, $3, $4)`,
			[]any{OwnerUserID, "olivia.owner@oakridge.example", "Olivia Owner", now}},
		{Row{"users", AgentUserID, "agent Arjun Agent", false},
			`INSERT INTO users (id, email, name, created_at) VALUES ($1, $2, $3, $4)`,
			[]any{AgentUserID, "arjun.agent@oakridge.example", "Arjun Agent", now}},
		{Row{"memberships", OwnerUserID, "Olivia is owner", false},
			`INSERT INTO memberships (organisation_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)`,
			[]any{OrganisationID, OwnerUserID, "owner", now}},
		{Row{"memberships", AgentUserID, "Arjun is agent", false},
			`INSERT INTO memberships (organisation_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)`,
			[]any{OrganisationID, AgentUserID, "agent", now}},
		{Row{"invitations", InvitationID, "pending invitation for new.negotiator@example.com", false},
			`INSERT INTO invitations (id, organisation_id, email, role, invited_by_user_id, status,
				created_at) VALUES ($1, $2, $3, $4, $5, 'pending', $6)`,
			[]any{InvitationID, OrganisationID, "new.negotiator@example.com", "agent", OwnerUserID, now}},
		{Row{"properties", Property1ID, "14 Mill Lane, Bristol BS1 4QA", false},
			`INSERT INTO properties (id, organisation_id, address_line1, town, postcode,
				advertised_rent_pence, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			[]any{Property1ID, OrganisationID, "14 Mill Lane", "Bristol", "BS1 4QA", 145000, now}},
		{Row{"properties", Property2ID, "Flat 2, 7 Weir Road, Bath BA2 3DN", false},
			`INSERT INTO properties (id, organisation_id, address_line1, town, postcode,
				advertised_rent_pence, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			[]any{Property2ID, OrganisationID, "Flat 2, 7 Weir Road", "Bath", "BA2 3DN", 98000, now}},
		{Row{"tenancies", Tenancy1ID, "active periodic tenancy at 14 Mill Lane", false},
			`INSERT INTO tenancies (id, organisation_id, property_id, status, start_date, rent_pence,
				created_at) VALUES ($1, $2, $3, 'active', $4, $5, $6)`,
			[]any{Tenancy1ID, OrganisationID, Property1ID, "2025-09-01", 145000, now}},
		{Row{"tenancies", Tenancy2ID, "tenancy at Weir Road that ended in 2018", false},
			`INSERT INTO tenancies (id, organisation_id, property_id, status, start_date, rent_pence,
				end_date, ended_at, created_at) VALUES ($1, $2, $3, 'ended', $4, $5, $6, $7, $8)`,
			[]any{Tenancy2ID, OrganisationID, Property2ID, "2016-03-01", 90000, "2018-02-28",
				time.Date(2018, 2, 28, 12, 0, 0, 0, time.UTC), now}},
		{Row{"webhook_endpoints", EndpointID, "endpoint https://hooks.oakridge.example/millrace", false},
			`INSERT INTO webhook_endpoints (id, organisation_id, url, secret_enc, event_types,
				created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			[]any{EndpointID, OrganisationID, "https://hooks.oakridge.example/millrace", sealedSecret,
				`["tenancy.created","tenancy.ended"]`, now}},
		{Row{"webhook_deliveries", DeliveryID, "pending delivery of tenancy.created", false},
			`INSERT INTO webhook_deliveries (id, organisation_id, endpoint_id, event_id, event_type,
				payload, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			[]any{DeliveryID, OrganisationID, EndpointID, EventID, "tenancy.created",
				`{"tenancy_id":"` + Tenancy1ID + `","status":"active"}`, now}},
		{Row{"audit_logs", "demo-audit-old", "a security audit row from three years ago", false},
			`INSERT INTO audit_logs (id, organisation_id, actor_type, action, category, metadata,
				created_at) VALUES ($1, $2, 'user', 'user.login', 'security', '{}', $3)`,
			[]any{"demo-audit-old", OrganisationID, old}},
		{Row{"audit_logs", "demo-audit-evidence", "gas record served (evidence, live tenancy)", false},
			`INSERT INTO audit_logs (id, organisation_id, actor_type, action, entity_type, entity_id,
				tenancy_id, category, metadata, created_at)
				VALUES ($1, $2, 'system', 'compliance.gas_record.served', 'tenancy', $3, $3,
				'compliance_evidence', '{}', $4)`,
			[]any{"demo-audit-evidence", OrganisationID, Tenancy1ID, old}},
	}
}
