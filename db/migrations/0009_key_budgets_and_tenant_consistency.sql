-- A key's budget is one amount in one currency: a budget per currency would be multiplied by every
-- currency the key may charge. Keys given a budget before this migration keep it, in USD.
ALTER TABLE api_keys ADD COLUMN budget_currency char(3);
UPDATE api_keys SET budget_currency = 'USD' WHERE budget_minor IS NOT NULL;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_budget_has_a_currency
    CHECK ((budget_minor IS NULL) = (budget_currency IS NULL));

-- The credit ledger records which key acted, like the payment audit.
ALTER TABLE credit_ledger ADD COLUMN api_key_id text REFERENCES api_keys (id);

-- A second line of defence under the code's tenant scoping: a row derived from a payment belongs to
-- the payment's tenant, and a payment's key to that tenant too (MATCH SIMPLE: a NULL key is not checked).
ALTER TABLE payments ADD CONSTRAINT payments_id_tenant UNIQUE (id, tenant_id);
ALTER TABLE api_keys ADD CONSTRAINT api_keys_id_tenant UNIQUE (id, tenant_id);
ALTER TABLE payments ADD FOREIGN KEY (api_key_id, tenant_id) REFERENCES api_keys (id, tenant_id);
ALTER TABLE payment_audit ADD FOREIGN KEY (api_key_id, tenant_id) REFERENCES api_keys (id, tenant_id);
ALTER TABLE payment_audit ADD FOREIGN KEY (payment_id, tenant_id) REFERENCES payments (id, tenant_id);
ALTER TABLE refunds ADD FOREIGN KEY (payment_id, tenant_id) REFERENCES payments (id, tenant_id);
ALTER TABLE entitlements ADD FOREIGN KEY (payment_id, tenant_id) REFERENCES payments (id, tenant_id);
ALTER TABLE credit_lots ADD FOREIGN KEY (payment_id, tenant_id) REFERENCES payments (id, tenant_id);
ALTER TABLE credit_ledger ADD FOREIGN KEY (payment_id, tenant_id) REFERENCES payments (id, tenant_id);
ALTER TABLE credit_ledger ADD FOREIGN KEY (api_key_id, tenant_id) REFERENCES api_keys (id, tenant_id);
ALTER TABLE idempotency_keys ADD FOREIGN KEY (payment_id, tenant_id) REFERENCES payments (id, tenant_id)
    DEFERRABLE INITIALLY DEFERRED;
