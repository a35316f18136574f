-- Receipts numbered at commit. The tenant's counter row must stay locked from the moment a number is taken
-- until the transaction ends (a rollback gives the number back: no gaps), so every success of one tenant
-- waits for the one before it. Taken mid-transaction, that wait covered everything the transaction did
-- afterwards, round trips to the application included; taken by a deferred trigger, it covers only the
-- commit itself. Still in the transaction that moves the payment to succeeded, and by the database: no path
-- that moves a payment to succeeded can leave it without a number.
CREATE FUNCTION number_receipt_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH next AS (
        INSERT INTO receipt_counters AS c (tenant_id, last_number)
        SELECT NEW.tenant_id, 1 WHERE NOT EXISTS (
            SELECT 1 FROM payments WHERE tenant_id = NEW.tenant_id AND id = NEW.id AND receipt_number IS NOT NULL)
        ON CONFLICT (tenant_id) DO UPDATE SET last_number = c.last_number + 1
        RETURNING last_number
    )
    -- 256 bits from two random UUIDs (244 of them random), URL-safe: the receipt page's unguessable address.
    UPDATE payments
       SET receipt_number = next.last_number,
           receipt_token = translate(encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()),
                                            'base64'), '+/=', '-_'),
           succeeded_at = coalesce(succeeded_at, now())
      FROM next
     WHERE tenant_id = NEW.tenant_id AND id = NEW.id AND receipt_number IS NULL;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER payments_number_receipt
    AFTER UPDATE OF status ON payments
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.status = 'succeeded' AND OLD.status <> 'succeeded' AND NEW.receipt_number IS NULL)
    EXECUTE FUNCTION number_receipt_at_commit();

-- An event about a payment written in the transaction that numbered it (payment.succeeded; payment.refunded
-- when a refund was reported before the success) was built before the number existed: it says the number
-- as committed. Fires after the numbering (deferred triggers fire in the order their rows were written).
-- Events stay a record the server cannot rewrite (0030 revokes UPDATE): this trigger completes an event in
-- the transaction that wrote it, before anyone else can see it, as the owner of the table (a trigger
-- function cannot be called on its own).
CREATE FUNCTION outbox_event_with_receipt() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    UPDATE outbox_events e
       SET payload = jsonb_set(e.payload, '{data,receipt_number}', to_jsonb(p.receipt_number))
      FROM payments p
     WHERE e.id = NEW.id AND p.tenant_id = NEW.tenant_id AND p.id = NEW.payload -> 'data' ->> 'payment_id'
       AND p.receipt_number IS NOT NULL;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER outbox_events_receipt_number
    AFTER INSERT ON outbox_events
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.type IN ('payment.succeeded', 'payment.refunded')
                       AND NEW.payload -> 'data' -> 'receipt_number' = 'null'::jsonb)
    EXECUTE FUNCTION outbox_event_with_receipt();
