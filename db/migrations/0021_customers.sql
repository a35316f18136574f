-- Customers at the provider, the cards they saved (what they look like, never card data), the setups that
-- saved them, and an append-only trail of every change to them. Payments learn how they were charged:
-- a saved card off-session (the provider's customer and method), or a Checkout Session.

CREATE TABLE customers (
    tenant_id            text NOT NULL REFERENCES tenants (id),
    provider             text NOT NULL,
    customer_id          text NOT NULL,
    provider_customer_id text NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, provider, customer_id),
    UNIQUE (provider, provider_customer_id)
);

CREATE TABLE saved_payment_methods (
    provider                   text NOT NULL,
    provider_payment_method_id text NOT NULL,
    tenant_id                  text NOT NULL,
    customer_id                text NOT NULL,
    brand                      text NOT NULL,
    last4                      text NOT NULL CHECK (last4 ~ '^[0-9]{4}$'),
    exp_month                  int NOT NULL CHECK (exp_month BETWEEN 1 AND 12),
    exp_year                   int NOT NULL CHECK (exp_year BETWEEN 2000 AND 2200),
    is_default                 boolean NOT NULL DEFAULT false,
    saved_at                   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, provider_payment_method_id),
    FOREIGN KEY (tenant_id, provider, customer_id) REFERENCES customers (tenant_id, provider, customer_id)
);
CREATE UNIQUE INDEX saved_payment_methods_one_default ON saved_payment_methods (tenant_id, provider, customer_id)
    WHERE is_default;

-- A person saving a card: one per (tenant, customer, idempotency key), recorded before the provider is asked.
CREATE TABLE payment_setups (
    id                         text PRIMARY KEY CHECK (id LIKE 'set\_%'),
    tenant_id                  text NOT NULL REFERENCES tenants (id),
    customer_id                text NOT NULL,
    idempotency_key            text NOT NULL,
    provider                   text NOT NULL,
    api_key_id                 text,
    status                     text NOT NULL DEFAULT 'created'
                               CHECK (status IN ('created', 'requires_action', 'succeeded', 'canceled', 'failed')),
    provider_setup_id          text,
    setup_url                  text,
    provider_payment_method_id text,
    failure_reason             text,
    submit_lease_until         timestamptz,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, customer_id, idempotency_key),
    UNIQUE (provider, provider_setup_id),
    FOREIGN KEY (api_key_id, tenant_id) REFERENCES api_keys (id, tenant_id)
);

-- Append-only, like payment_audit: customers linked, created at the provider, cards saved and removed.
CREATE TABLE customer_audit (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id),
    customer_id text NOT NULL,
    actor       text NOT NULL,
    action      text NOT NULL,
    detail      text,
    api_key_id  text,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    FOREIGN KEY (api_key_id, tenant_id) REFERENCES api_keys (id, tenant_id)
);
CREATE INDEX customer_audit_customer ON customer_audit (tenant_id, customer_id, id);

CREATE FUNCTION refuse_customer_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'customer_audit is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER customer_audit_no_update_delete
    BEFORE UPDATE OR DELETE ON customer_audit
    FOR EACH ROW EXECUTE FUNCTION refuse_customer_audit_change();
CREATE TRIGGER customer_audit_no_truncate
    BEFORE TRUNCATE ON customer_audit
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_customer_audit_change();

ALTER TABLE payments ADD COLUMN provider_customer_id text;
ALTER TABLE payments ADD COLUMN off_session boolean NOT NULL DEFAULT false;
ALTER TABLE payments ADD COLUMN provider_checkout_id text;
ALTER TABLE payments ADD CONSTRAINT payments_provider_checkout_unique UNIQUE (provider, provider_checkout_id);
ALTER TABLE payments ADD CONSTRAINT payments_off_session_has_a_customer
    CHECK (NOT off_session OR (provider_customer_id IS NOT NULL AND payment_method IS NOT NULL));

-- Inbox rows about a setup (a card saved or abandoned) record it, as payment events record their payment.
ALTER TABLE webhook_events ADD COLUMN setup_id text REFERENCES payment_setups (id);

-- The customer trail is append-only for the server, as payment_audit is (0013_least_privilege.sql).
REVOKE UPDATE, DELETE, TRUNCATE ON customer_audit FROM paywarden_app;
