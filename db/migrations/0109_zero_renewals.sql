-- A renewal invoice the customer's credit at the provider paid in full (amount 0, after a downgrade) still
-- pays for its period: it is a succeeded payment of its subscription that grants the period. Only such an
-- invoice may be zero; every other payment stays positive.
ALTER TABLE payments DROP CONSTRAINT payments_amount_minor_check;
ALTER TABLE payments ADD CONSTRAINT payments_amount_minor_check CHECK (
    amount_minor > 0 OR (amount_minor = 0 AND subscription_id IS NOT NULL AND provider_invoice_id IS NOT NULL));
