-- Tenants (merchant accounts) and their API keys. Every table of customer data carries its tenant,
-- and every key that was unique per customer is now unique per (tenant, customer): two tenants may
-- have a customer of the same id, and the same idempotency key, without ever meeting.

CREATE TABLE tenants (
    id         text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO tenants (id, name) VALUES ('default', 'Default tenant');

-- Only a SHA-256 of each key is kept (the keys are 256 random bits, so a slow hash adds nothing).
CREATE TABLE api_keys (
    id              text PRIMARY KEY CHECK (id LIKE 'key\_%'),
    tenant_id       text NOT NULL REFERENCES tenants (id),
    name            text NOT NULL,
    secret_sha256   bytea NOT NULL UNIQUE,
    shown_prefix    text NOT NULL,
    scopes          text[] NOT NULL CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['read', 'charge', 'refund']),
    budget_minor    bigint CHECK (budget_minor > 0),
    rate_per_minute int NOT NULL CHECK (rate_per_minute > 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at);

-- Existing rows belong to the default tenant; new rows must say whose they are (no default).
ALTER TABLE payments ADD COLUMN tenant_id text NOT NULL DEFAULT 'default' REFERENCES tenants (id);
ALTER TABLE payments ALTER COLUMN tenant_id DROP DEFAULT;
ALTER TABLE payments ADD COLUMN api_key_id text REFERENCES api_keys (id);
DROP INDEX payments_customer_created;
CREATE INDEX payments_customer_created ON payments (tenant_id, customer_id, created_at DESC);
DROP INDEX payments_customer_currency_charged;
CREATE INDEX payments_customer_currency_charged ON payments (tenant_id, customer_id, currency, charged_at);
CREATE INDEX payments_key_currency_charged ON payments (api_key_id, currency, charged_at) WHERE api_key_id IS NOT NULL;

ALTER TABLE idempotency_keys ADD COLUMN tenant_id text NOT NULL DEFAULT 'default' REFERENCES tenants (id);
ALTER TABLE idempotency_keys ALTER COLUMN tenant_id DROP DEFAULT;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (tenant_id, customer_id, idempotency_key);

ALTER TABLE entitlements ADD COLUMN tenant_id text NOT NULL DEFAULT 'default' REFERENCES tenants (id);
ALTER TABLE entitlements ALTER COLUMN tenant_id DROP DEFAULT;
DROP INDEX entitlements_customer_feature;
CREATE INDEX entitlements_customer_feature ON entitlements (tenant_id, customer_id, feature, expires_at DESC);

-- Which key acted, for every audit row written on an agent's behalf.
ALTER TABLE payment_audit ADD COLUMN tenant_id text NOT NULL DEFAULT 'default' REFERENCES tenants (id);
ALTER TABLE payment_audit ALTER COLUMN tenant_id DROP DEFAULT;
ALTER TABLE payment_audit ADD COLUMN api_key_id text REFERENCES api_keys (id);

ALTER TABLE refunds ADD COLUMN tenant_id text NOT NULL DEFAULT 'default' REFERENCES tenants (id);
ALTER TABLE refunds ALTER COLUMN tenant_id DROP DEFAULT;
ALTER TABLE refunds DROP CONSTRAINT refunds_customer_id_idempotency_key_key;
ALTER TABLE refunds ADD UNIQUE (tenant_id, customer_id, idempotency_key);

-- Credits: the account's key becomes (tenant, customer, feature), and so do the keys pointing at it.
ALTER TABLE credit_lots DROP CONSTRAINT credit_lots_customer_id_feature_fkey;
ALTER TABLE credit_reservations DROP CONSTRAINT credit_reservations_customer_id_feature_fkey;
ALTER TABLE credit_accounts ADD COLUMN tenant_id text NOT NULL DEFAULT 'default' REFERENCES tenants (id);
ALTER TABLE credit_accounts ALTER COLUMN tenant_id DROP DEFAULT;
ALTER TABLE credit_accounts DROP CONSTRAINT credit_accounts_pkey;
ALTER TABLE credit_accounts ADD PRIMARY KEY (tenant_id, customer_id, feature);

ALTER TABLE credit_lots ADD COLUMN tenant_id text NOT NULL DEFAULT 'default';
ALTER TABLE credit_lots ALTER COLUMN tenant_id DROP DEFAULT;
ALTER TABLE credit_lots ADD FOREIGN KEY (tenant_id, customer_id, feature)
    REFERENCES credit_accounts (tenant_id, customer_id, feature);
DROP INDEX credit_lots_drawable;
CREATE INDEX credit_lots_drawable ON credit_lots (tenant_id, customer_id, feature, expires_at NULLS LAST, id)
    WHERE closed_at IS NULL;

ALTER TABLE credit_reservations ADD COLUMN tenant_id text NOT NULL DEFAULT 'default';
ALTER TABLE credit_reservations ALTER COLUMN tenant_id DROP DEFAULT;
ALTER TABLE credit_reservations ADD FOREIGN KEY (tenant_id, customer_id, feature)
    REFERENCES credit_accounts (tenant_id, customer_id, feature);
DROP INDEX credit_reservations_due;
CREATE INDEX credit_reservations_due ON credit_reservations (tenant_id, customer_id, feature, expires_at)
    WHERE status = 'held';

ALTER TABLE credit_operations ADD COLUMN tenant_id text NOT NULL DEFAULT 'default' REFERENCES tenants (id);
ALTER TABLE credit_operations ALTER COLUMN tenant_id DROP DEFAULT;
ALTER TABLE credit_operations DROP CONSTRAINT credit_operations_pkey;
ALTER TABLE credit_operations ADD PRIMARY KEY (tenant_id, customer_id, idempotency_key);

ALTER TABLE credit_ledger ADD COLUMN tenant_id text NOT NULL DEFAULT 'default' REFERENCES tenants (id);
ALTER TABLE credit_ledger ALTER COLUMN tenant_id DROP DEFAULT;
DROP INDEX credit_ledger_account;
CREATE INDEX credit_ledger_account ON credit_ledger (tenant_id, customer_id, feature, id);

-- Calls per key per minute, for the rate limit (counted in the database, so it holds across processes).
CREATE TABLE api_key_usage (
    api_key_id text NOT NULL REFERENCES api_keys (id),
    minute     timestamptz NOT NULL,
    calls      int NOT NULL,
    PRIMARY KEY (api_key_id, minute)
);
