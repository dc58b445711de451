-- +goose Up
-- The platform tables: tenants, people, the plumbing every job shares, and the
-- rows the four platform jobs read and write. Times are UTC timestamps written
-- by Go; dates are 'YYYY-MM-DD' London dates.
-- Postgres twin of migrations/sqlite/00001_platform.sql: same tables, columns,
-- keys and indexes. Timestamps are TIMESTAMPTZ and integers BIGINT (SQLite's
-- INTEGER is 64-bit). JSON that is only read back as a whole value is JSONB;
-- JSON whose exact bytes matter (outbox and poison payloads, which may not
-- even be JSON, and webhook bodies, which are signed) is TEXT.

CREATE TABLE organisations (
    id                   TEXT PRIMARY KEY,
    name                 TEXT NOT NULL,
    default_jurisdiction TEXT NOT NULL DEFAULT 'ENG',
    plan_code            TEXT NOT NULL DEFAULT 'starter',
    billing_state        TEXT NOT NULL DEFAULT 'ok',
    branding_logo_url    TEXT,
    branding_primary_colour TEXT,
    churned_at           TIMESTAMPTZ,
    created_at           TIMESTAMPTZ NOT NULL
);

CREATE TABLE users (
    id         TEXT PRIMARY KEY,
    email      TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    status     TEXT NOT NULL DEFAULT 'active',
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE memberships (
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    user_id         TEXT NOT NULL REFERENCES users(id),
    role            TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (organisation_id, user_id)
);

CREATE TABLE invitations (
    id                 TEXT PRIMARY KEY,
    organisation_id    TEXT NOT NULL REFERENCES organisations(id),
    email              TEXT NOT NULL,
    role               TEXT NOT NULL,
    invited_by_user_id TEXT NOT NULL REFERENCES users(id),
    token_hash         TEXT,
    status             TEXT NOT NULL DEFAULT 'pending',
    send_count         BIGINT NOT NULL DEFAULT 0,
    last_sent_at       TIMESTAMPTZ,
    expires_at         TIMESTAMPTZ,
    accepted_at        TIMESTAMPTZ,
    last_error         TEXT,
    created_at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX invitations_org ON invitations (organisation_id, status);

CREATE TABLE properties (
    id                    TEXT PRIMARY KEY,
    organisation_id       TEXT NOT NULL REFERENCES organisations(id),
    address_line1         TEXT NOT NULL,
    town                  TEXT NOT NULL,
    postcode              TEXT NOT NULL,
    jurisdiction          TEXT NOT NULL DEFAULT 'ENG',
    advertised_rent_pence BIGINT,
    has_gas_supply        BOOLEAN NOT NULL DEFAULT TRUE,
    status                TEXT NOT NULL DEFAULT 'active',
    created_at            TIMESTAMPTZ NOT NULL
);

CREATE TABLE tenancies (
    id              TEXT PRIMARY KEY,
    organisation_id TEXT NOT NULL REFERENCES organisations(id),
    property_id     TEXT NOT NULL REFERENCES properties(id),
    status          TEXT NOT NULL,
    regime          TEXT NOT NULL DEFAULT 'eng_assured_periodic',
    start_date      TEXT NOT NULL,
    rent_pence      BIGINT NOT NULL,
    rent_period     TEXT NOT NULL DEFAULT 'month',
    end_date        TEXT,
    ended_at        TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX tenancies_org ON tenancies (organisation_id, status);

CREATE TABLE audit_logs (
    id              TEXT PRIMARY KEY,
    organisation_id TEXT,
    actor_user_id   TEXT,
    actor_type      TEXT NOT NULL,
    action          TEXT NOT NULL,
    entity_type     TEXT,
    entity_id       TEXT,
    tenancy_id      TEXT,
    category        TEXT NOT NULL,
    metadata        JSONB,
    ip              TEXT,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX audit_logs_category_created ON audit_logs (category, created_at, id);
CREATE INDEX audit_logs_entity ON audit_logs (entity_type, entity_id);

CREATE TABLE legal_holds (
    id                 TEXT PRIMARY KEY,
    organisation_id    TEXT,
    table_name         TEXT NOT NULL,
    record_id          TEXT,
    subject_contact_id TEXT,
    reason             TEXT NOT NULL,
    placed_by          TEXT NOT NULL,
    placed_at          TIMESTAMPTZ NOT NULL,
    released_at        TIMESTAMPTZ
);
CREATE INDEX legal_holds_record ON legal_holds (table_name, record_id);

CREATE TABLE retention_policies (
    id                TEXT PRIMARY KEY,
    organisation_id   TEXT,
    table_name        TEXT NOT NULL,
    record_category   TEXT NOT NULL,
    anchor_table      TEXT,
    anchor_column     TEXT NOT NULL,
    join_column       TEXT,
    retention_days    BIGINT NOT NULL,
    statutory_minimum_days BIGINT NOT NULL DEFAULT 0,
    action            TEXT NOT NULL DEFAULT 'delete',
    legal_basis       TEXT,
    enabled           BOOLEAN NOT NULL DEFAULT TRUE
);

CREATE TABLE usage_events (
    id              TEXT PRIMARY KEY,
    organisation_id TEXT NOT NULL,
    metric          TEXT NOT NULL,
    quantity        BIGINT NOT NULL,
    occurred_at     TIMESTAMPTZ NOT NULL,
    source_event_id TEXT NOT NULL UNIQUE
);

CREATE TABLE usage_aggregates (
    organisation_id TEXT NOT NULL,
    metric          TEXT NOT NULL,
    period_month    TEXT NOT NULL,
    quantity        BIGINT NOT NULL,
    last_event_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (organisation_id, metric, period_month)
);

CREATE TABLE usage_thresholds (
    dedupe_key      TEXT PRIMARY KEY,
    organisation_id TEXT NOT NULL,
    crossed_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE webhook_endpoints (
    id                   TEXT PRIMARY KEY,
    organisation_id      TEXT NOT NULL REFERENCES organisations(id),
    url                  TEXT NOT NULL,
    secret_enc           TEXT NOT NULL,
    previous_secret_enc  TEXT,
    event_types          JSONB NOT NULL,
    enabled              BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason      TEXT,
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    failing_since        TIMESTAMPTZ,
    created_at           TIMESTAMPTZ NOT NULL
);

CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    organisation_id  TEXT NOT NULL,
    endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints(id),
    event_id         TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending',
    attempt          BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ,
    last_status_code BIGINT,
    last_error       TEXT,
    delivered_at     TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);

CREATE TABLE processed_messages (
    handler         TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    processed_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (handler, idempotency_key)
);

CREATE TABLE outbox (
    seq          BIGSERIAL PRIMARY KEY,
    -- dedupe_key is the message id, except for a replay, which re-sends an
    -- id already in the outbox.
    dedupe_key   TEXT NOT NULL UNIQUE,
    message_uuid TEXT NOT NULL,
    topic        TEXT NOT NULL,
    payload      TEXT NOT NULL,
    metadata     TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    published_at TIMESTAMPTZ
);
CREATE INDEX outbox_unpublished ON outbox (published_at, seq);

CREATE TABLE job_runs (
    job_name      TEXT NOT NULL,
    scheduled_for TIMESTAMPTZ NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ,
    status        TEXT NOT NULL,
    stats         JSONB,
    PRIMARY KEY (job_name, scheduled_for)
);

CREATE TABLE cron_slots (
    schedule      TEXT NOT NULL,
    scheduled_for TIMESTAMPTZ NOT NULL,
    claimed_at    TIMESTAMPTZ NOT NULL,
    claimed_by    TEXT NOT NULL,
    catch_up      BOOLEAN NOT NULL DEFAULT FALSE,
    manual        BOOLEAN NOT NULL DEFAULT FALSE,
    message_uuid  TEXT NOT NULL,
    PRIMARY KEY (schedule, scheduled_for)
);

CREATE TABLE poison_messages (
    id              TEXT PRIMARY KEY,
    message_uuid    TEXT NOT NULL,
    topic           TEXT NOT NULL,
    handler         TEXT NOT NULL,
    error_class     TEXT NOT NULL,
    reason          TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    first_failed_at TIMESTAMPTZ NOT NULL,
    poisoned_at     TIMESTAMPTZ NOT NULL,
    payload         TEXT NOT NULL,
    metadata        TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'open',
    times_poisoned  BIGINT NOT NULL DEFAULT 1,
    replayed_at     TIMESTAMPTZ,
    discarded_at    TIMESTAMPTZ
);
CREATE UNIQUE INDEX poison_messages_message ON poison_messages (message_uuid, handler);
CREATE INDEX poison_messages_status ON poison_messages (status, poisoned_at);

CREATE TABLE mail_log (
    dedupe_key          TEXT PRIMARY KEY,
    provider_message_id TEXT NOT NULL,
    sent_at             TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE mail_log;
DROP TABLE poison_messages;
DROP TABLE cron_slots;
DROP TABLE job_runs;
DROP TABLE outbox;
DROP TABLE processed_messages;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
DROP TABLE usage_thresholds;
DROP TABLE usage_aggregates;
DROP TABLE usage_events;
DROP TABLE retention_policies;
DROP TABLE legal_holds;
DROP TABLE audit_logs;
DROP TABLE tenancies;
DROP TABLE properties;
DROP TABLE invitations;
DROP TABLE memberships;
DROP TABLE users;
DROP TABLE organisations;
