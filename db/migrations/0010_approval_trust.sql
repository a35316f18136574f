-- Who may approve the charges of a key that need approval: the person through the key's MCP client
-- (`client`), or only an operator (`operator`). Keys that exist keep what they did; new keys default
-- to `operator`, because a client's "yes" is only as trustworthy as the client.
ALTER TABLE api_keys ADD COLUMN approval text NOT NULL DEFAULT 'client' CHECK (approval IN ('client', 'operator'));
ALTER TABLE api_keys ALTER COLUMN approval SET DEFAULT 'operator';

-- Charges waiting for an operator, oldest first: the approvals queue and their expiry read this.
CREATE INDEX payments_held ON payments (updated_at) WHERE status = 'requires_approval';
CREATE INDEX payments_customer_held ON payments (tenant_id, customer_id) WHERE status = 'requires_approval';
