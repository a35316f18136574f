-- paywarden's server connects as a role that owns nothing: it reads and writes rows, and may only
-- append to the audit trail and the credit ledger. Migrations run as the owner (this file too). The
-- login role the server uses is a member of paywarden_app (`GRANT paywarden_app TO <login role>`);
-- the embedded PostgreSQL makes one, paywarden_server. Creating paywarden_app needs CREATEROLE, or a
-- DBA creates it (NOLOGIN) before the first migration.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'paywarden_app') THEN
        CREATE ROLE paywarden_app NOLOGIN;
    END IF;
END;
$$;

GRANT USAGE ON SCHEMA public, sandbox TO paywarden_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public, sandbox TO paywarden_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public, sandbox TO paywarden_app;
-- Tables later migrations create (as the same owner) get the same; append-only ones revoke it there.
ALTER DEFAULT PRIVILEGES IN SCHEMA public, sandbox GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO paywarden_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public, sandbox GRANT USAGE, SELECT ON SEQUENCES TO paywarden_app;

-- Append-only for the server, in the database itself (the triggers hold against the owner's code too).
REVOKE UPDATE, DELETE, TRUNCATE ON payment_audit, credit_ledger FROM paywarden_app;
-- What only migrations change.
REVOKE INSERT, UPDATE, DELETE ON schema_migrations, payment_status_moves FROM paywarden_app;
