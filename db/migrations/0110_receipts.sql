-- Receipts: a succeeded payment gets the next number of its tenant's receipts, without gaps, in the
-- transaction that moves it to succeeded (a counter row per tenant, locked by the upsert until commit:
-- a sequence would leave gaps on rollback), and an unguessable token for its printable page.

CREATE TABLE receipt_counters (
    tenant_id   text PRIMARY KEY REFERENCES tenants (id),
    last_number bigint NOT NULL CHECK (last_number > 0)
);

ALTER TABLE payments ADD COLUMN receipt_number bigint;
ALTER TABLE payments ADD COLUMN receipt_token text;
ALTER TABLE payments ADD COLUMN succeeded_at timestamptz;
-- Partial unique indexes, not constraints: PostgreSQL counts columns of a full unique index as key columns,
-- and an UPDATE of a key column locks the row FOR UPDATE, which rows referring to the payment (their foreign
-- key checks) would then wait for; numbering a receipt stays a FOR NO KEY UPDATE.
CREATE UNIQUE INDEX payments_receipt_number_once ON payments (tenant_id, receipt_number)
    WHERE receipt_number IS NOT NULL;
CREATE UNIQUE INDEX payments_receipt_token_once ON payments (tenant_id, receipt_token)
    WHERE receipt_token IS NOT NULL;
-- The receipt page is found by its token alone (the URL names no tenant; 192 random bits do not repeat).
CREATE INDEX payments_by_receipt_token ON payments (receipt_token) WHERE receipt_token IS NOT NULL;
ALTER TABLE payments ADD CONSTRAINT payments_receipt_with_token
    CHECK ((receipt_number IS NULL) = (receipt_token IS NULL));
-- Finance reads (reconciliation, exports) range over when payments succeeded.
CREATE INDEX payments_succeeded_at ON payments (succeeded_at) WHERE succeeded_at IS NOT NULL;
