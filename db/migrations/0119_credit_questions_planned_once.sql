-- credit_time_to_act and credit_replay (0118), which consume_credits calls, rewritten in PL/pgSQL. As SQL
-- functions they were parsed and planned again on every call before PostgreSQL 18 (which caches SQL
-- functions' plans): on PostgreSQL 15, about a fifth of the database's CPU per consume (perf), while the
-- account row waited. PL/pgSQL keeps each statement's plan for the session. Same questions, same answers.

CREATE OR REPLACE FUNCTION credit_time_to_act(p_tenant text, p_customer text, p_feature text) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM credit_reservations r
                    WHERE r.tenant_id = p_tenant AND r.customer_id = p_customer AND r.feature = p_feature
                      AND r.status = 'held' AND r.expires_at <= now())
        OR EXISTS (SELECT 1 FROM credit_lots l
                    WHERE l.tenant_id = p_tenant AND l.customer_id = p_customer AND l.feature = p_feature
                      AND l.closed_at IS NULL AND l.expires_at <= now());
END;
$$;
CREATE OR REPLACE FUNCTION credit_replay(p_tenant text, p_customer text, p_key text) RETURNS TABLE (
    outcome text, granted bigint, used bigint, reserved bigint,
    earlier_kind text, earlier_request jsonb, earlier_result jsonb
) LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
    SELECT 'replay'::text, e.granted_after, e.used_after, e.reserved_after, o.kind, o.request, o.result
      FROM credit_operations o
      LEFT JOIN credit_ledger e ON e.tenant_id = o.tenant_id AND e.id = o.ledger_id
     WHERE o.tenant_id = p_tenant AND o.customer_id = p_customer AND o.idempotency_key = p_key;
END;
$$;
