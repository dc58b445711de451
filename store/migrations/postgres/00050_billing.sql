-- +goose Up
-- (Postgres: timestamps are TIMESTAMPTZ, counts and pence BIGINT.)
-- Billing through Calmony Pay: customers, subscriptions, invoices, payments,
-- dunning cases and checkout sessions, the inbound webhook log, and the
-- minimal AML credit ledger and RGI policy rows that payment fulfilment
-- touches. Amounts are integer pence. Times are UTC timestamps written by Go;
-- dates are 'YYYY-MM-DD' London dates.

CREATE TABLE billing_customers (
    organisation_id           TEXT PRIMARY KEY REFERENCES organisations(id),
    provider_customer_id      TEXT NOT NULL UNIQUE,
    default_payment_method_id TEXT,
    billing_email             TEXT,
    created_at                TIMESTAMPTZ NOT NULL,
    updated_at                TIMESTAMPTZ NOT NULL
);

CREATE TABLE subscriptions (
    id                       TEXT PRIMARY KEY,
    organisation_id          TEXT NOT NULL REFERENCES organisations(id),
    provider_subscription_id TEXT NOT NULL UNIQUE,
    status                   TEXT NOT NULL,
    plan_code                TEXT,
    current_period_start     TIMESTAMPTZ,
    current_period_end       TIMESTAMPTZ,
    cancel_at_period_end     BOOLEAN NOT NULL DEFAULT FALSE,
    canceled_at              TIMESTAMPTZ,
    provider_updated_at      TIMESTAMPTZ NOT NULL,
    auto_charge_attempts     BIGINT  NOT NULL DEFAULT 0,
    last_auto_charge_on      TEXT,
    created_at               TIMESTAMPTZ NOT NULL,
    updated_at               TIMESTAMPTZ NOT NULL
);
CREATE INDEX subscriptions_org ON subscriptions (organisation_id, status);

CREATE TABLE invoices (
    id                  TEXT PRIMARY KEY,
    organisation_id     TEXT NOT NULL REFERENCES organisations(id),
    subscription_id     TEXT,
    provider_invoice_id TEXT NOT NULL UNIQUE,
    status              TEXT NOT NULL,
    amount_due_pence    BIGINT  NOT NULL,
    amount_paid_pence   BIGINT  NOT NULL DEFAULT 0,
    currency            TEXT NOT NULL,
    attempt_count       BIGINT  NOT NULL DEFAULT 0,
    last_failure_reason TEXT,
    hosted_invoice_url  TEXT,
    paid_at             TIMESTAMPTZ,
    provider_updated_at TIMESTAMPTZ NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX invoices_org_status ON invoices (organisation_id, status);
CREATE INDEX invoices_subscription ON invoices (subscription_id, status);

CREATE TABLE payments (
    id                         TEXT PRIMARY KEY,
    organisation_id            TEXT,
    provider_payment_intent_id TEXT UNIQUE,
    idempotency_key            TEXT UNIQUE,
    checkout_session_id        TEXT,
    invoice_id                 TEXT,
    purpose                    TEXT NOT NULL,
    payment_method_id          TEXT,
    amount_pence               BIGINT  NOT NULL,
    currency                   TEXT NOT NULL,
    status                     TEXT NOT NULL,
    failure_code               TEXT,
    paid_at                    TIMESTAMPTZ,
    created_at                 TIMESTAMPTZ NOT NULL,
    updated_at                 TIMESTAMPTZ NOT NULL
);
CREATE INDEX payments_invoice ON payments (invoice_id, created_at);

CREATE TABLE dunning_cases (
    id                     TEXT PRIMARY KEY,
    organisation_id        TEXT NOT NULL,
    invoice_id             TEXT NOT NULL UNIQUE,
    opened_at              TIMESTAMPTZ NOT NULL,
    status                 TEXT NOT NULL,
    resolved_by_payment_id TEXT,
    resolved_at            TIMESTAMPTZ,
    restricted_at          TIMESTAMPTZ,
    created_at             TIMESTAMPTZ NOT NULL,
    updated_at             TIMESTAMPTZ NOT NULL
);

CREATE TABLE checkout_sessions (
    id                  TEXT PRIMARY KEY,
    organisation_id     TEXT NOT NULL REFERENCES organisations(id),
    provider_session_id TEXT NOT NULL UNIQUE,
    purpose             TEXT NOT NULL,
    ref_type            TEXT,
    ref_id              TEXT,
    amount_pence        BIGINT,
    status              TEXT NOT NULL,
    completed_at        TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);

CREATE TABLE inbound_webhook_events (
    id                TEXT PRIMARY KEY,
    provider          TEXT NOT NULL,
    provider_event_id TEXT NOT NULL,
    event_type        TEXT NOT NULL,
    topic             TEXT,
    received_at       TIMESTAMPTZ NOT NULL,
    payload_enc       TEXT,
    processed_at      TIMESTAMPTZ,
    processing_status TEXT NOT NULL,
    UNIQUE (provider, provider_event_id)
);
CREATE INDEX inbound_webhook_events_received ON inbound_webhook_events (received_at);

CREATE TABLE notifications (
    id                  TEXT PRIMARY KEY,
    organisation_id     TEXT,
    user_id             TEXT,
    contact_id          TEXT,
    kind                TEXT NOT NULL,
    ref_type            TEXT,
    ref_id              TEXT,
    stage               TEXT,
    channel             TEXT NOT NULL,
    dedupe_key          TEXT NOT NULL UNIQUE,
    status              TEXT NOT NULL,
    provider_message_id TEXT,
    sent_at             TIMESTAMPTZ,
    read_at             TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL
);

CREATE TABLE aml_credit_ledger (
    id              TEXT PRIMARY KEY,
    organisation_id TEXT NOT NULL,
    type            TEXT NOT NULL,
    amount          BIGINT  NOT NULL,
    balance_after   BIGINT  NOT NULL,
    ref_type        TEXT NOT NULL,
    ref_id          TEXT NOT NULL,
    description     TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (type, ref_type, ref_id)
);
CREATE INDEX aml_credit_ledger_org ON aml_credit_ledger (organisation_id, created_at);

CREATE TABLE rgi_policies (
    id                  TEXT PRIMARY KEY,
    organisation_id     TEXT NOT NULL,
    property_id         TEXT,
    tenancy_id          TEXT,
    monthly_rent_pence  BIGINT,
    payment_plan        TEXT NOT NULL,
    cover_months        BIGINT  NOT NULL,
    status              TEXT NOT NULL,
    checkout_session_id TEXT,
    payment_id          TEXT,
    provider_policy_id  TEXT UNIQUE,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE rgi_policies;
DROP TABLE aml_credit_ledger;
DROP TABLE notifications;
DROP TABLE inbound_webhook_events;
DROP TABLE checkout_sessions;
DROP TABLE dunning_cases;
DROP TABLE payments;
DROP TABLE invoices;
DROP TABLE subscriptions;
DROP TABLE billing_customers;
