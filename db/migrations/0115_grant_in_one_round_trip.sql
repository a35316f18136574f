-- A paid period in one round trip: the (customer, feature) advisory lock and the stacked insert in one
-- function call (db/entitlements.py grant_for_payment). The insert is a statement of its own inside the
-- function, so in READ COMMITTED it reads the customer's current end after the lock is held (a volatile
-- function takes a fresh snapshot for each statement): two grants for one feature still stack.
CREATE FUNCTION grant_stacked_period(
    p_tenant text, p_customer text, p_feature text, p_payment text, p_days integer
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_tenant || chr(31) || p_customer || chr(31) || p_feature, 0));
    WITH current_end AS (
        SELECT max(expires_at) AS ends FROM entitlements
         WHERE tenant_id = p_tenant AND customer_id = p_customer AND feature = p_feature AND revoked_at IS NULL
           AND suspended_at IS NULL  -- a disputed period gives no access now: a new one starts now
    ), start AS (
        SELECT greatest(now(), coalesce((SELECT ends FROM current_end), now())) AS at
    )
    INSERT INTO entitlements (tenant_id, customer_id, feature, payment_id, starts_at, expires_at)
    SELECT p_tenant, p_customer, p_feature, p_payment, start.at, start.at + make_interval(days => p_days) FROM start
    ON CONFLICT (tenant_id, payment_id, feature) DO NOTHING;
END;
$$;

-- The same index as the unique constraint outbox_events_seq_key (tenant_id, seq) of 0090: one less to write
-- for every event.
DROP INDEX outbox_events_tenant;
