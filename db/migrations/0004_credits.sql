-- Prepaid credits: lots granted by payments, an account per (customer, feature) that can never be
-- overdrawn, reservations, and an append-only ledger whose sum is always the account.

CREATE TABLE credit_accounts (
    customer_id text NOT NULL,
    feature     text NOT NULL,
    granted     bigint NOT NULL DEFAULT 0,
    used        bigint NOT NULL DEFAULT 0,
    reserved    bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, feature),
    CONSTRAINT credit_accounts_never_overdrawn
        CHECK (granted >= 0 AND used >= 0 AND reserved >= 0 AND granted - used - reserved >= 0)
);

-- What one payment granted; consumption is drawn from the lot that expires first.
CREATE TABLE credit_lots (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id text NOT NULL,
    feature     text NOT NULL,
    payment_id  text NOT NULL REFERENCES payments (id),
    quantity    bigint NOT NULL CHECK (quantity > 0),
    used        bigint NOT NULL DEFAULT 0,
    held        bigint NOT NULL DEFAULT 0,
    written_off bigint NOT NULL DEFAULT 0,  -- expired or revoked before it was spent
    expires_at  timestamptz,
    closed_at   timestamptz,                -- expired or revoked: nothing more is drawn from it
    revoked_at  timestamptz,                -- refunded: not even its held credits may be used
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (payment_id, feature),
    CHECK (used >= 0 AND held >= 0 AND written_off >= 0 AND used + held + written_off <= quantity),
    FOREIGN KEY (customer_id, feature) REFERENCES credit_accounts (customer_id, feature)
);
CREATE INDEX credit_lots_drawable ON credit_lots (customer_id, feature, expires_at NULLS LAST, id)
    WHERE closed_at IS NULL;

CREATE TABLE credit_reservations (
    id              text PRIMARY KEY CHECK (id LIKE 'rsv\_%'),
    customer_id     text NOT NULL,
    feature         text NOT NULL,
    quantity        bigint NOT NULL CHECK (quantity > 0),
    status          text NOT NULL DEFAULT 'held' CHECK (status IN ('held', 'settled', 'released', 'expired')),
    used_quantity   bigint,
    expires_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    FOREIGN KEY (customer_id, feature) REFERENCES credit_accounts (customer_id, feature)
);
CREATE INDEX credit_reservations_due ON credit_reservations (customer_id, feature, expires_at) WHERE status = 'held';

-- Which lots a reservation holds, so settling or releasing it touches exactly those.
CREATE TABLE credit_holds (
    reservation_id text NOT NULL REFERENCES credit_reservations (id),
    lot_id         bigint NOT NULL REFERENCES credit_lots (id),
    quantity       bigint NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (reservation_id, lot_id)
);

-- reserve_credits and consume_credits: one result per (customer, idempotency key).
CREATE TABLE credit_operations (
    customer_id     text NOT NULL,
    idempotency_key text NOT NULL,
    kind            text NOT NULL,
    request         jsonb NOT NULL,
    result          jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, idempotency_key)
);

CREATE TABLE credit_ledger (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id    text NOT NULL,
    feature        text NOT NULL,
    kind           text NOT NULL CHECK (kind IN (
                       'grant', 'reserve', 'settle', 'release', 'expire', 'consume', 'revoke')),
    granted_delta  bigint NOT NULL DEFAULT 0,
    used_delta     bigint NOT NULL DEFAULT 0,
    reserved_delta bigint NOT NULL DEFAULT 0,
    lot_id         bigint REFERENCES credit_lots (id),
    reservation_id text REFERENCES credit_reservations (id),
    payment_id     text REFERENCES payments (id),
    note           text,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX credit_ledger_account ON credit_ledger (customer_id, feature, id);

CREATE TRIGGER credit_ledger_no_update_delete
    BEFORE UPDATE OR DELETE ON credit_ledger
    FOR EACH ROW EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER credit_ledger_no_truncate
    BEFORE TRUNCATE ON credit_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit_change();

CREATE OR REPLACE FUNCTION refuse_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
