-- consume_credits with less done while the account row is locked (issue 16). A busy customer's consumes
-- queue on that row, so the work between taking it and committing is what limits their rate:
--   * the row is taken by the guarded UPDATE that moves its balance, as a plain guarded UPDATE would,
--     instead of by a SELECT … FOR UPDATE and an UPDATE after it (the guard is re-checked on the row as it
--     is once the lock is ours);
--   * the credits.low_balance event is passed only by a caller told that its consume takes the balance
--     below the threshold (outcome needs_low_balance_event, nothing done), so the application builds and
--     sends it only then, not for every consume;
--   * draw_credits (consume's and reserve's draw) takes from the lot that expires first alone when that lot
--     covers the quantity, as it most often does, without summing every open lot first. It never takes from
--     a lot past its expiry (every caller lets time act first, so there is none; should there be one, the
--     draw comes up short and says so).
-- Whether a reservation or a lot is due to expire is asked once the row is held, as in 0014: both can be
-- committed while a consume waits for the row already due (a reservation whose transaction began before the
-- consume's, with a short time to live; a subscription period paid late). When one is, the balance moved by
-- the guarded UPDATE is put back and the answer is time_to_act (server/credits.py lets time act under the
-- lock, then runs this again). When the guarded UPDATE matches nothing (it reads the row as committed), the
-- row is locked and the outcome decided on it as it then is: time to act, a replay (the same key, committed
-- while this waited), too few credits, the event needed, or enough after all (credits given back while
-- this waited), in which case the consume goes on under the lock.
-- The replay, the idempotency key, the ledger entry and its triggers (running totals, account equals
-- ledger at commit) and the CHECKs are as in 0014.

-- Take `quantity` from the account's open lots, the one that expires first first (as in 0014).
CREATE OR REPLACE FUNCTION draw_credits(p_tenant text, p_customer text, p_feature text, p_quantity bigint, p_hold boolean)
RETURNS TABLE (lot_id bigint, taken bigint) LANGUAGE plpgsql AS $$
BEGIN
    -- Most often the lot that expires first covers the quantity alone.
    RETURN QUERY
    UPDATE credit_lots l
       SET used = l.used + CASE WHEN p_hold THEN 0 ELSE p_quantity END,
           held = l.held + CASE WHEN p_hold THEN p_quantity ELSE 0 END
     WHERE l.tenant_id = p_tenant AND l.id = (
            SELECT f.id FROM credit_lots f
             WHERE f.tenant_id = p_tenant AND f.customer_id = p_customer AND f.feature = p_feature
               AND f.closed_at IS NULL AND f.quantity - f.used - f.held - f.written_off > 0
               AND (f.expires_at IS NULL OR f.expires_at > now())
             ORDER BY f.expires_at NULLS LAST, f.id LIMIT 1)
       AND l.closed_at IS NULL AND l.quantity - l.used - l.held - l.written_off >= p_quantity
    RETURNING l.id, p_quantity;
    IF FOUND THEN
        RETURN;
    END IF;
    -- Otherwise as many lots as it takes, the one that expires first first (0014).
    RETURN QUERY
    WITH open_lots AS (
        SELECT l.id, l.quantity - l.used - l.held - l.written_off AS free,
               (sum(l.quantity - l.used - l.held - l.written_off)
                    OVER (ORDER BY l.expires_at NULLS LAST, l.id))::bigint AS free_through
          FROM credit_lots l
         WHERE l.tenant_id = p_tenant AND l.customer_id = p_customer AND l.feature = p_feature
           AND l.closed_at IS NULL AND l.quantity - l.used - l.held - l.written_off > 0
           AND (l.expires_at IS NULL OR l.expires_at > now())
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

-- Whether time must act on the account before credits move: a held reservation or an open lot is due to
-- expire (the questions of 0014, asked by the caller holding the account's row).
CREATE FUNCTION credit_time_to_act(p_tenant text, p_customer text, p_feature text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM credit_reservations r
                    WHERE r.tenant_id = p_tenant AND r.customer_id = p_customer AND r.feature = p_feature
                      AND r.status = 'held' AND r.expires_at <= now())
        OR EXISTS (SELECT 1 FROM credit_lots l
                    WHERE l.tenant_id = p_tenant AND l.customer_id = p_customer AND l.feature = p_feature
                      AND l.closed_at IS NULL AND l.expires_at <= now())
$$;

-- A key used before (for any operation), as consume_credits answers it: its kind, request and result, and
-- for a consume the balance after it (its ledger entry's running totals).
CREATE FUNCTION credit_replay(p_tenant text, p_customer text, p_key text) RETURNS TABLE (
    outcome text, granted bigint, used bigint, reserved bigint,
    earlier_kind text, earlier_request jsonb, earlier_result jsonb
) LANGUAGE sql STABLE AS $$
    SELECT 'replay', e.granted_after, e.used_after, e.reserved_after, o.kind, o.request, o.result
      FROM credit_operations o
      LEFT JOIN credit_ledger e ON e.tenant_id = o.tenant_id AND e.id = o.ledger_id
     WHERE o.tenant_id = p_tenant AND o.customer_id = p_customer AND o.idempotency_key = p_key
$$;

CREATE OR REPLACE FUNCTION consume_credits(
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
    RETURN QUERY SELECT * FROM credit_replay(p_tenant, p_customer, p_key);
    IF FOUND THEN
        RETURN;
    END IF;

    UPDATE credit_accounts a SET used = a.used + p_quantity, updated_at = now()
     WHERE a.tenant_id = p_tenant AND a.customer_id = p_customer AND a.feature = p_feature
       AND a.granted - a.used - a.reserved >= p_quantity
       AND (p_low_event IS NOT NULL OR p_low_threshold IS NULL  -- not below the threshold by this consume
            OR a.granted - a.used - a.reserved < p_low_threshold
            OR a.granted - a.used - a.reserved - p_quantity >= p_low_threshold)
    RETURNING * INTO account;
    IF FOUND THEN
        IF credit_time_to_act(p_tenant, p_customer, p_feature) THEN
            UPDATE credit_accounts a SET used = a.used - p_quantity  -- put back: time acts first
             WHERE a.tenant_id = p_tenant AND a.customer_id = p_customer AND a.feature = p_feature
            RETURNING * INTO account;
            RETURN QUERY SELECT 'time_to_act', account.granted, account.used, account.reserved,
                                NULL::text, NULL::jsonb, NULL::jsonb;
            RETURN;
        END IF;
    ELSE  -- decided on the locked row, as it is now
        SELECT * INTO account FROM credit_accounts a
         WHERE a.tenant_id = p_tenant AND a.customer_id = p_customer AND a.feature = p_feature FOR UPDATE;
        IF NOT FOUND THEN
            INSERT INTO credit_accounts (tenant_id, customer_id, feature) VALUES (p_tenant, p_customer, p_feature)
                ON CONFLICT DO NOTHING;
            SELECT * INTO account FROM credit_accounts a
             WHERE a.tenant_id = p_tenant AND a.customer_id = p_customer AND a.feature = p_feature FOR UPDATE;
        END IF;
        IF credit_time_to_act(p_tenant, p_customer, p_feature) THEN
            RETURN QUERY SELECT 'time_to_act', account.granted, account.used, account.reserved,
                                NULL::text, NULL::jsonb, NULL::jsonb;
            RETURN;
        END IF;
        -- the same key, committed while this waited (a client's retry of this very request): a replay
        RETURN QUERY SELECT * FROM credit_replay(p_tenant, p_customer, p_key);
        IF FOUND THEN
            RETURN;
        END IF;
        before := account.granted - account.used - account.reserved;
        IF before < p_quantity THEN
            RETURN QUERY SELECT 'insufficient', account.granted, account.used, account.reserved,
                                NULL::text, NULL::jsonb, NULL::jsonb;
            RETURN;
        END IF;
        IF p_low_event IS NULL AND p_low_threshold IS NOT NULL
           AND before >= p_low_threshold AND before - p_quantity < p_low_threshold THEN
            RETURN QUERY SELECT 'needs_low_balance_event', account.granted, account.used, account.reserved,
                                NULL::text, NULL::jsonb, NULL::jsonb;
            RETURN;
        END IF;
        -- enough after all: credits came back (a release, a grant) while the guarded UPDATE waited
        UPDATE credit_accounts a SET used = a.used + p_quantity, updated_at = now()
         WHERE a.tenant_id = p_tenant AND a.customer_id = p_customer AND a.feature = p_feature
        RETURNING * INTO account;
    END IF;
    before := account.granted - account.used - account.reserved + p_quantity;

    SELECT coalesce(sum(d.taken), 0) INTO drawn FROM draw_credits(p_tenant, p_customer, p_feature, p_quantity, false) d;
    IF drawn <> p_quantity THEN
        RAISE EXCEPTION 'the open lots of credit account (%, %, %) hold % free credits, the account says %',
            p_tenant, p_customer, p_feature, drawn, before USING ERRCODE = 'integrity_constraint_violation';
    END IF;
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
