-- consume_credits with nothing asked of other tables under the account row's lock in the common case (issue 16):
--   * the account row carries next_expiry_at, a time before which none of its held reservations and open
--     lots expires (NULL: none of them has an expiry). Writers of a lot or reservation lower it in their own
--     transaction (a trigger), and they hold the account row already, so a consume's guarded UPDATE, which
--     re-reads the row as committed once the lock is its, sees every reservation or lot committed while it
--     waited. The guarded UPDATE requires next_expiry_at to lie ahead, so it no longer needs to ask the two
--     tables whether time must act (credit_time_to_act, 0118) once it holds the row.
--   * When next_expiry_at has passed, the consume takes the slow path of 0118: the row locked, the two
--     tables asked; when nothing is in fact due (the lot was used up, the reservation settled), the consume
--     sets next_expiry_at exactly again, so one consume pays for that, not every one after it.
--   * The draw from the one lot that covers the quantity (draw_credits' first step) is written out in
--     consume_credits: the function call cost about as much as the UPDATE itself.
-- The invariant (next_expiry_at is never later than the expiry of a held reservation or an open lot of the
-- account) is kept by the triggers below and checked in tests/test_credits.py.

ALTER TABLE credit_accounts ADD COLUMN next_expiry_at timestamptz;

-- The earliest expiry among the account's held reservations and open lots, the sets credit_time_to_act asks
-- about (NULL: none).
CREATE FUNCTION credit_next_expiry(p_tenant text, p_customer text, p_feature text) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN least(
        (SELECT min(r.expires_at) FROM credit_reservations r
          WHERE r.tenant_id = p_tenant AND r.customer_id = p_customer AND r.feature = p_feature
            AND r.status = 'held'),
        (SELECT min(l.expires_at) FROM credit_lots l
          WHERE l.tenant_id = p_tenant AND l.customer_id = p_customer AND l.feature = p_feature
            AND l.closed_at IS NULL));
END;
$$;

UPDATE credit_accounts a SET next_expiry_at = due.next_expiry_at
  FROM (SELECT tenant_id, customer_id, feature, min(expires_at) AS next_expiry_at
          FROM (SELECT tenant_id, customer_id, feature, expires_at FROM credit_lots
                 WHERE closed_at IS NULL AND expires_at IS NOT NULL
                UNION ALL
                SELECT tenant_id, customer_id, feature, expires_at FROM credit_reservations WHERE status = 'held') e
         GROUP BY tenant_id, customer_id, feature) due
 WHERE a.tenant_id = due.tenant_id AND a.customer_id = due.customer_id AND a.feature = due.feature;

-- A lot opened or a reservation held with an expiry brings its account's next_expiry_at forward when it is
-- sooner. The application's writers hold the account row already (server/ledger/credit_moves.py,
-- server/credits.py). The UPDATE takes the row whatever its value, so a writer that did not (a hand-written
-- UPDATE of a lot's end) waits for a consume that holds it, and then lowers what that consume set from what
-- it could see: never a time later than this row's end (least() passes over NULL).
CREATE FUNCTION bring_account_next_expiry_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE credit_accounts a SET next_expiry_at = least(a.next_expiry_at, NEW.expires_at)
     WHERE a.tenant_id = NEW.tenant_id AND a.customer_id = NEW.customer_id AND a.feature = NEW.feature;
    RETURN NULL;
END;
$$;

CREATE TRIGGER credit_lots_opened_with_expiry
    AFTER INSERT ON credit_lots
    FOR EACH ROW WHEN (NEW.closed_at IS NULL AND NEW.expires_at IS NOT NULL)
    EXECUTE FUNCTION bring_account_next_expiry_forward();
CREATE TRIGGER credit_lots_expiry_changed
    AFTER UPDATE OF expires_at, closed_at ON credit_lots
    FOR EACH ROW WHEN (NEW.closed_at IS NULL AND NEW.expires_at IS NOT NULL
                       AND (OLD.closed_at IS NOT NULL OR OLD.expires_at IS DISTINCT FROM NEW.expires_at))
    EXECUTE FUNCTION bring_account_next_expiry_forward();
CREATE TRIGGER credit_reservations_held_with_expiry
    AFTER INSERT ON credit_reservations
    FOR EACH ROW WHEN (NEW.status = 'held')
    EXECUTE FUNCTION bring_account_next_expiry_forward();
CREATE TRIGGER credit_reservations_expiry_changed
    AFTER UPDATE OF expires_at, status ON credit_reservations
    FOR EACH ROW WHEN (NEW.status = 'held'
                       AND (OLD.status <> 'held' OR OLD.expires_at IS DISTINCT FROM NEW.expires_at))
    EXECUTE FUNCTION bring_account_next_expiry_forward();

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
    next_expiry timestamptz;
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
       AND (a.next_expiry_at IS NULL OR a.next_expiry_at > now())  -- nothing can be due to expire
    RETURNING * INTO account;
    IF NOT FOUND THEN  -- decided on the locked row, as it is now
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
        next_expiry := credit_next_expiry(p_tenant, p_customer, p_feature);  -- nothing is due: exact again
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
        UPDATE credit_accounts a SET used = a.used + p_quantity, updated_at = now(), next_expiry_at = next_expiry
         WHERE a.tenant_id = p_tenant AND a.customer_id = p_customer AND a.feature = p_feature
        RETURNING * INTO account;
    END IF;
    before := account.granted - account.used - account.reserved + p_quantity;

    -- draw_credits' first step, written out here: a call costs about as much as the UPDATE (pg_stat_statements)
    UPDATE credit_lots l SET used = l.used + p_quantity
     WHERE l.tenant_id = p_tenant AND l.id = (
            SELECT f.id FROM credit_lots f
             WHERE f.tenant_id = p_tenant AND f.customer_id = p_customer AND f.feature = p_feature
               AND f.closed_at IS NULL AND f.quantity - f.used - f.held - f.written_off > 0
               AND (f.expires_at IS NULL OR f.expires_at > now())
             ORDER BY f.expires_at NULLS LAST, f.id LIMIT 1)
       AND l.closed_at IS NULL AND l.quantity - l.used - l.held - l.written_off >= p_quantity;
    IF FOUND THEN
        drawn := p_quantity;
    ELSE
        SELECT coalesce(sum(d.taken), 0) INTO drawn FROM draw_credits(p_tenant, p_customer, p_feature, p_quantity, false) d;
    END IF;
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
