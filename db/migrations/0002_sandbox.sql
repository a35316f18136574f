-- The sandbox provider's own state: a local stand-in for Stripe, in its own schema.

CREATE SCHEMA sandbox;

CREATE TABLE sandbox.settings (
    name  text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE sandbox.payment_intents (
    id         text PRIMARY KEY,
    object     jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Stripe's idempotency: the same key returns the first response; other parameters are an error.
CREATE TABLE sandbox.idempotency_keys (
    api_key         text NOT NULL,
    idempotency_key text NOT NULL,
    request_hash    text NOT NULL,
    status_code     int,
    response        jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (api_key, idempotency_key)
);

CREATE TABLE sandbox.events (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         text NOT NULL UNIQUE,
    type       text NOT NULL,
    payload    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One delivery per event, retried with backoff until the webhook endpoint answers 2xx.
CREATE TABLE sandbox.deliveries (
    event_id        text PRIMARY KEY REFERENCES sandbox.events (id),
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    last_error      text
);
CREATE INDEX sandbox_deliveries_due ON sandbox.deliveries (next_attempt_at) WHERE delivered_at IS NULL;
