-- Webhooks routed per tenant: a tenant may have its own endpoint (/webhooks/stripe/<tenant>) signed
-- with its own secret, and every stored event records the tenant it belongs to.
ALTER TABLE tenants ADD COLUMN webhook_secret text;
ALTER TABLE webhook_events ADD COLUMN tenant_id text REFERENCES tenants (id);
