-- The operator console: people who sign in (operators), their sessions, failed sign-ins (the rate
-- limit), an append-only log of what operators did, the reconciler's runs, and server secrets.

CREATE TABLE operators (
    id                    text PRIMARY KEY CHECK (id LIKE 'op\_%'),
    name                  text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    role                  text NOT NULL CHECK (role IN ('viewer', 'support', 'admin')),
    tenant_id             text REFERENCES tenants (id),  -- NULL: a platform operator, who sees every tenant
    password_hash         text NOT NULL,                 -- argon2id
    password_is_temporary boolean NOT NULL DEFAULT true, -- a one-time password: must be replaced at sign-in
    password_set_at       timestamptz NOT NULL DEFAULT now(),
    created_at            timestamptz NOT NULL DEFAULT now(),
    disabled_at           timestamptz
);

-- Only a SHA-256 of each session token is kept, like API keys: reading the table gives no session.
CREATE TABLE operator_sessions (
    token_sha256   bytea PRIMARY KEY,
    operator_id    text NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    csrf_token     text NOT NULL,
    viewing_tenant text REFERENCES tenants (id) ON DELETE SET NULL,  -- a platform operator's tenant switcher
    address        text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX operator_sessions_operator ON operator_sessions (operator_id);

-- Failed sign-ins per minute, per name and per address ('name:alice', 'address:10.0.0.7'): counted in the
-- database so the limit holds across processes, like the API keys' rate limit.
CREATE TABLE operator_signin_failures (
    subject  text NOT NULL,
    minute   timestamptz NOT NULL,
    failures int NOT NULL,
    PRIMARY KEY (subject, minute)
);

-- Append-only: every action an operator took (console or CLI), by name.
CREATE TABLE operator_audit (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    operator  text NOT NULL,
    via       text NOT NULL CHECK (via IN ('console', 'cli')),
    action    text NOT NULL,
    subject   text,
    tenant_id text REFERENCES tenants (id),
    detail    text
);
CREATE INDEX operator_audit_tenant ON operator_audit (tenant_id, id);
CREATE TRIGGER operator_audit_no_update_delete
    BEFORE UPDATE OR DELETE ON operator_audit
    FOR EACH ROW EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER operator_audit_no_truncate
    BEFORE TRUNCATE ON operator_audit
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit_change();
-- The server's role may only append to it (the other tables get 0013's default privileges).
REVOKE UPDATE, DELETE, TRUNCATE ON operator_audit FROM paywarden_app;

-- What each reconciler pass did, so the console can show the last one.
CREATE TABLE reconciler_runs (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz NOT NULL DEFAULT now(),
    resubmitted    text[] NOT NULL,
    updated        text[] NOT NULL,
    unchanged      int NOT NULL,
    needs_operator text[] NOT NULL,
    errors         text[] NOT NULL,
    events_read    int NOT NULL,
    events_applied int NOT NULL,
    events_retried int NOT NULL,
    expired        text[] NOT NULL,  -- held charges canceled after waiting too long
    attention      text[] NOT NULL   -- successes the provider does not show as paid
);

-- Secrets paywarden generates for itself, per database (the console's cookie signing key).
CREATE TABLE server_secrets (
    name       text PRIMARY KEY,
    value      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The console lists payments newest first, across a tenant or all of them, and the approval queue oldest first.
CREATE INDEX payments_tenant_created ON payments (tenant_id, created_at DESC, id DESC);
CREATE INDEX payments_created ON payments (created_at DESC, id DESC);
CREATE INDEX payments_waiting_for_approval ON payments (created_at, id) WHERE status = 'requires_approval';
CREATE INDEX webhook_events_received ON webhook_events (received_at DESC, id DESC);
