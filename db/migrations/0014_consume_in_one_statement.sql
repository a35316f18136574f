-- consume_credits in one statement: the account row is locked for the time PostgreSQL takes to do the
-- work, not for several round trips to the application, so a busy customer's credits move at nearly
-- the speed of a plain guarded UPDATE. server/credits.py is the only caller; the triggers of 0012
-- (running totals, account equals ledger at commit) and the CHECKs still judge every write.

-- A consume's result is its ledger entry: the balance after it is the entry's running totals. An operation
-- is written only beside the ledger entry or reservation it records, in the same statement, and those
-- carry the foreign keys: checking the tenant again here would lock the tenant's row for every credit
-- operation of every customer.
ALTER TABLE credit_operations ADD COLUMN ledger_id bigint;
ALTER TABLE credit_operations DROP CONSTRAINT credit_operations_tenant_id_fkey;

-- A ledger entry belongs to its account (which names the tenant): one foreign key checked against the
-- row every credit operation already holds locked, in place of one to the tenant (a shared row every
-- writer would lock) and of single-column keys the (id, tenant_id) ones already imply.
ALTER TABLE credit_ledger
    DROP CONSTRAINT credit_ledger_tenant_id_fkey,
    DROP CONSTRAINT credit_ledger_api_key_id_fkey,
    DROP CONSTRAINT credit_ledger_payment_id_fkey,
    ADD CONSTRAINT credit_ledger_account_fkey FOREIGN KEY (tenant_id, customer_id, feature)
        REFERENCES credit_accounts (tenant_id, customer_id, feature) NOT VALID;
ALTER TABLE credit_ledger VALIDATE CONSTRAINT credit_ledger_account_fkey;

-- Take `quantity` from the account's open lots, the one that expires first first: used, or held for a
-- reservation. Returns what was taken from which lot; the caller holds the account's lock and checks
-- the total (less than asked means the lots and the account disagree).
CREATE FUNCTION draw_credits(p_tenant text, p_customer text, p_feature text, p_quantity bigint, p_hold boolean)
RETURNS TABLE (lot_id bigint, taken bigint) LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
    WITH open_lots AS (
        SELECT l.id, l.quantity - l.used - l.held - l.written_off AS free,
               (sum(l.quantity - l.used - l.held - l.written_off)
                    OVER (ORDER BY l.expires_at NULLS LAST, l.id))::bigint AS free_through
          FROM credit_lots l
         WHERE l.tenant_id = p_tenant AND l.customer_id = p_customer AND l.feature = p_feature
           AND l.closed_at IS NULL AND l.quantity - l.used - l.held - l.written_off > 0
    ), taking AS (
        SELECT o.id, least(o.free, p_quantity - (o.free_through - o.free)) AS take
          FROM open_lots o
         WHERE o.free_through - o.free < p_quantity  -- the lots before it did not cover the quantity
    )
    UPDATE credit_lots l
       SET used = l.used + CASE WHEN p_hold THEN 0 ELSE t.take END,
           held = l.held + CASE WHEN p_hold THEN t.take ELSE 0 END
      FROM taking t
     WHERE l.id = t.id
    RETURNING l.id, t.take;
END;
$$;

-- An outbox event and one delivery per endpoint of the tenant that wants its type (db/outbox.py).
CREATE FUNCTION record_outbox_event(
    p_id text, p_tenant text, p_type text, p_payload jsonb, p_retry_for_seconds double precision
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    queued bigint;
BEGIN
    INSERT INTO outbox_events (id, tenant_id, type, payload) VALUES (p_id, p_tenant, p_type, p_payload);
    INSERT INTO webhook_deliveries (event_id, endpoint_id, tenant_id, give_up_after)
    SELECT p_id, e.id, e.tenant_id, now() + make_interval(secs => p_retry_for_seconds) FROM webhook_endpoints e
     WHERE e.tenant_id = p_tenant AND e.removed_at IS NULL
       AND (cardinality(e.event_types) = 0 OR p_type = ANY (e.event_types));
    GET DIAGNOSTICS queued = ROW_COUNT;
    RETURN queued;
END;
$$;

-- Consume `quantity` credits once per idempotency key. The outcome says what happened:
--   consumed     done; granted/used/reserved are the account after it
--   replay       the key was used before (for any operation): its kind, request and result (a consume's
--                result is its ledger entry, whose running totals are returned as granted/used/reserved)
--   insufficient nothing done; the account as it is
--   time_to_act  nothing done: a reservation or lot is due to expire, which the caller lets happen first
--                (server/ledger/credit_moves.py) in a transaction that then calls this again
-- p_low_event is the credits.low_balance event to record, its data.balance filled in here, when the
-- balance goes from at or above p_low_threshold to below it.
CREATE FUNCTION consume_credits(
    p_tenant text, p_customer text, p_feature text, p_quantity bigint, p_key text, p_request jsonb,
    p_note text, p_api_key text, p_low_threshold bigint, p_low_event jsonb, p_retry_for_seconds double precision
) RETURNS TABLE (
    outcome text, granted bigint, used bigint, reserved bigint,
    earlier_kind text, earlier_request jsonb, earlier_result jsonb
) LANGUAGE plpgsql AS $$
DECLARE
    account credit_accounts%ROWTYPE;
    before bigint;
    drawn bigint;
    entry bigint;
BEGIN
    -- A key used before is answered without waiting for the account; one taken while this waits is
    -- caught by the insert at the end.
    RETURN QUERY SELECT 'replay', e.granted_after, e.used_after, e.reserved_after, o.kind, o.request, o.result
                   FROM credit_operations o
                   LEFT JOIN credit_ledger e ON e.tenant_id = o.tenant_id AND e.id = o.ledger_id
                  WHERE o.tenant_id = p_tenant AND o.customer_id = p_customer AND o.idempotency_key = p_key;
    IF FOUND THEN
        RETURN;
    END IF;

    SELECT * INTO account FROM credit_accounts a
     WHERE a.tenant_id = p_tenant AND a.customer_id = p_customer AND a.feature = p_feature FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO credit_accounts (tenant_id, customer_id, feature) VALUES (p_tenant, p_customer, p_feature)
            ON CONFLICT DO NOTHING;
        SELECT * INTO account FROM credit_accounts a
         WHERE a.tenant_id = p_tenant AND a.customer_id = p_customer AND a.feature = p_feature FOR UPDATE;
    END IF;

    IF EXISTS (SELECT 1 FROM credit_reservations r
                WHERE r.tenant_id = p_tenant AND r.customer_id = p_customer AND r.feature = p_feature
                  AND r.status = 'held' AND r.expires_at <= now())
       OR EXISTS (SELECT 1 FROM credit_lots l
                   WHERE l.tenant_id = p_tenant AND l.customer_id = p_customer AND l.feature = p_feature
                     AND l.closed_at IS NULL AND l.expires_at <= now()) THEN
        RETURN QUERY SELECT 'time_to_act', account.granted, account.used, account.reserved,
                            NULL::text, NULL::jsonb, NULL::jsonb;
        RETURN;
    END IF;

    before := account.granted - account.used - account.reserved;
    IF before < p_quantity THEN
        RETURN QUERY SELECT 'insufficient', account.granted, account.used, account.reserved,
                            NULL::text, NULL::jsonb, NULL::jsonb;
        RETURN;
    END IF;

    SELECT coalesce(sum(d.taken), 0) INTO drawn FROM draw_credits(p_tenant, p_customer, p_feature, p_quantity, false) d;
    IF drawn <> p_quantity THEN
        RAISE EXCEPTION 'the open lots of credit account (%, %, %) hold % free credits, the account says %',
            p_tenant, p_customer, p_feature, drawn, before USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    UPDATE credit_accounts a SET used = a.used + p_quantity, updated_at = now()
     WHERE a.tenant_id = p_tenant AND a.customer_id = p_customer AND a.feature = p_feature
    RETURNING * INTO account;
    INSERT INTO credit_ledger (tenant_id, customer_id, feature, kind, used_delta, note, api_key_id)
    VALUES (p_tenant, p_customer, p_feature, 'consume', p_quantity, p_note, p_api_key) RETURNING id INTO entry;
    INSERT INTO credit_operations (tenant_id, customer_id, idempotency_key, kind, request, result, ledger_id)
    VALUES (p_tenant, p_customer, p_key, 'consume', p_request, '{}'::jsonb, entry) ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN  -- the key was taken meanwhile for another feature's account: retried, it is a replay
        RAISE EXCEPTION 'idempotency key % was taken by a concurrent credit operation', p_key
            USING ERRCODE = 'serialization_failure';
    END IF;

    IF p_low_threshold IS NOT NULL AND before >= p_low_threshold
       AND p_low_threshold > account.granted - account.used - account.reserved THEN
        PERFORM record_outbox_event(
            p_low_event ->> 'id', p_tenant, 'credits.low_balance',
            jsonb_set(p_low_event, '{data,balance}', jsonb_build_object(
                'granted', account.granted, 'used', account.used, 'reserved', account.reserved,
                'remaining', account.granted - account.used - account.reserved)),
            p_retry_for_seconds);
    END IF;
    RETURN QUERY SELECT 'consumed', account.granted, account.used, account.reserved,
                        NULL::text, NULL::jsonb, NULL::jsonb;
END;
$$;
