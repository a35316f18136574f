-- A receipt is a row of its own: (tenant, number) unique, its page's token unique, one per payment. The
-- payment keeps its number and token (every read of a payment shows them) but no longer indexes them, so the
-- update that numbers it at commit writes no index of payments' 20-odd and can be a HOT update: that update
-- happens while the tenant's receipt counter is locked, so its cost is paid by every success of the tenant
-- in turn. The database still refuses a number twice, a token twice, and a payment whose number is not its
-- own receipt's (the foreign key names the payment as well as the number).
CREATE TABLE receipts (
    tenant_id  text NOT NULL,
    number     bigint NOT NULL CHECK (number > 0),
    payment_id text NOT NULL,
    token      text NOT NULL,
    PRIMARY KEY (tenant_id, number),
    CONSTRAINT receipts_one_per_payment UNIQUE (tenant_id, payment_id),
    CONSTRAINT receipts_token_once UNIQUE (tenant_id, token),
    CONSTRAINT receipts_number_payment UNIQUE (tenant_id, number, payment_id),
    FOREIGN KEY (tenant_id, payment_id) REFERENCES payments (tenant_id, id)
);
-- The receipt page is found by its token alone (the URL names no tenant; 244 random bits do not repeat).
CREATE INDEX receipts_by_token ON receipts (token);

-- A record: written once, as the success commits, never rewritten.
REVOKE UPDATE, DELETE, TRUNCATE ON receipts FROM paywarden_app;

INSERT INTO receipts (tenant_id, number, payment_id, token)
SELECT tenant_id, receipt_number, id, receipt_token FROM payments WHERE receipt_number IS NOT NULL;

ALTER TABLE payments ADD CONSTRAINT payments_receipt_fkey FOREIGN KEY (tenant_id, receipt_number, id)
    REFERENCES receipts (tenant_id, number, payment_id);
DROP INDEX payments_receipt_number_once, payments_receipt_token_once, payments_by_receipt_token;

CREATE OR REPLACE FUNCTION number_receipt_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH next AS (
        INSERT INTO receipt_counters AS c (tenant_id, last_number)
        SELECT NEW.tenant_id, 1 WHERE NOT EXISTS (
            SELECT 1 FROM payments WHERE tenant_id = NEW.tenant_id AND id = NEW.id AND receipt_number IS NOT NULL)
        ON CONFLICT (tenant_id) DO UPDATE SET last_number = c.last_number + 1
        RETURNING last_number
    ), receipt AS (
        -- 256 bits from two random UUIDs (244 of them random), URL-safe: the receipt page's unguessable address.
        INSERT INTO receipts (tenant_id, number, payment_id, token)
        SELECT NEW.tenant_id, next.last_number, NEW.id,
               translate(encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()), 'base64'), '+/=', '-_')
          FROM next
        RETURNING number, token
    )
    UPDATE payments
       SET receipt_number = receipt.number, receipt_token = receipt.token,
           succeeded_at = coalesce(succeeded_at, now())
      FROM receipt
     WHERE tenant_id = NEW.tenant_id AND id = NEW.id AND receipt_number IS NULL;
    RETURN NULL;
END;
$$;
