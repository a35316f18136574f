-- Outbound webhooks to the merchant: a transactional outbox (events written in the same transaction as
-- the change they report), the tenant's endpoints, and one delivery per (event, endpoint) with every
-- attempt recorded.

CREATE TABLE webhook_endpoints (
    id                    text PRIMARY KEY CHECK (id LIKE 'we\_%'),
    tenant_id             text NOT NULL REFERENCES tenants (id),
    url                   text NOT NULL,
    event_types           text[] NOT NULL DEFAULT '{}',  -- empty: every type
    status                text NOT NULL DEFAULT 'enabled' CHECK (status IN ('enabled', 'failing', 'disabled')),
    secret                text NOT NULL CHECK (secret LIKE 'whsec\_%'),
    previous_secret       text CHECK (previous_secret LIKE 'whsec\_%'),
    previous_secret_until timestamptz,
    failures_in_a_row     int NOT NULL DEFAULT 0,
    failing_since         timestamptz,  -- the first failure of the current streak
    created_at            timestamptz NOT NULL DEFAULT now(),
    removed_at            timestamptz,
    CONSTRAINT webhook_endpoints_id_tenant UNIQUE (id, tenant_id)
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id, created_at) WHERE removed_at IS NULL;

CREATE TABLE outbox_events (
    id         text PRIMARY KEY CHECK (id LIKE 'evt\_%'),
    seq        bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    tenant_id  text NOT NULL REFERENCES tenants (id),
    type       text NOT NULL,
    payload    jsonb NOT NULL,  -- exactly what is sent: {id, type, created_at, tenant, data}
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT outbox_events_id_tenant UNIQUE (id, tenant_id)
);
CREATE INDEX outbox_events_tenant ON outbox_events (tenant_id, seq);

CREATE TABLE webhook_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        text NOT NULL,
    endpoint_id     text NOT NULL,
    tenant_id       text NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'gave_up')),
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    give_up_after   timestamptz NOT NULL,
    last_attempt_at timestamptz,
    last_status     int,
    last_error      text,
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_id, endpoint_id),
    FOREIGN KEY (event_id, tenant_id) REFERENCES outbox_events (id, tenant_id),
    FOREIGN KEY (endpoint_id, tenant_id) REFERENCES webhook_endpoints (id, tenant_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id DESC);

CREATE TABLE webhook_delivery_attempts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id     bigint NOT NULL REFERENCES webhook_deliveries (id),
    attempted_at    timestamptz NOT NULL DEFAULT now(),
    status_code     int,
    latency_ms      int NOT NULL,
    error           text,
    response_prefix text  -- never more than a short prefix of what the receiver answered
);
CREATE INDEX webhook_delivery_attempts_delivery ON webhook_delivery_attempts (delivery_id, id);

-- A key may be allowed to manage its tenant's webhook endpoints.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_scopes_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scopes_check
    CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['read', 'charge', 'refund', 'webhooks']);

-- Events and attempts are a record: the server appends to them, never rewrites them.
REVOKE UPDATE, DELETE, TRUNCATE ON outbox_events, webhook_delivery_attempts FROM paywarden_app;
