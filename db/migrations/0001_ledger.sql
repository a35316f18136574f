-- The payments ledger: payments, idempotency claims, the webhook inbox, entitlements, audit.

CREATE TABLE payments (
    id                  text PRIMARY KEY CHECK (id LIKE 'pay\_%'),
    customer_id         text NOT NULL,
    product_id          text,
    amount_minor        bigint NOT NULL CHECK (amount_minor > 0),
    currency            char(3) NOT NULL CHECK (currency = upper(currency)),
    description         text,
    payment_method      text,
    grants              jsonb NOT NULL DEFAULT '[]'::jsonb,
    status              text NOT NULL DEFAULT 'created' CHECK (status IN (
                            'created', 'pending', 'requires_action', 'processing',
                            'succeeded', 'failed', 'canceled', 'refunded')),
    provider            text NOT NULL,
    provider_payment_id text,
    next_action_url     text,
    failure_reason      text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, provider_payment_id)
);
CREATE INDEX payments_customer_created ON payments (customer_id, created_at DESC);

-- One row per (customer, key): the claim is inserted in the same transaction as the payment.
CREATE TABLE idempotency_keys (
    customer_id     text NOT NULL,
    idempotency_key text NOT NULL,
    request         jsonb NOT NULL,
    payment_id      text NOT NULL REFERENCES payments (id) DEFERRABLE INITIALLY DEFERRED,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, idempotency_key)
);

-- The webhook inbox: every verified event once, whatever became of it.
CREATE TABLE webhook_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider    text NOT NULL,
    event_id    text NOT NULL,
    event_type  text NOT NULL,
    payment_id  text REFERENCES payments (id),
    payload     jsonb NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('applied', 'ignored', 'unhandled', 'unmatched', 'rejected')),
    note        text,
    received_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, event_id)
);
CREATE INDEX webhook_events_payment ON webhook_events (payment_id);

CREATE TABLE entitlements (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id text NOT NULL,
    feature     text NOT NULL,
    payment_id  text NOT NULL REFERENCES payments (id),
    starts_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL CHECK (expires_at > starts_at),
    revoked_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (payment_id, feature)
);
CREATE INDEX entitlements_customer_feature ON entitlements (customer_id, feature, expires_at DESC);

-- Append-only: every status change of a payment, who made it and why.
CREATE TABLE payment_audit (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payment_id  text NOT NULL REFERENCES payments (id),
    actor       text NOT NULL,
    from_status text,
    to_status   text NOT NULL,
    reason      text,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX payment_audit_payment ON payment_audit (payment_id, id);

CREATE FUNCTION refuse_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'payment_audit is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER payment_audit_no_update_delete
    BEFORE UPDATE OR DELETE ON payment_audit
    FOR EACH ROW EXECUTE FUNCTION refuse_audit_change();

CREATE TRIGGER payment_audit_no_truncate
    BEFORE TRUNCATE ON payment_audit
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit_change();
