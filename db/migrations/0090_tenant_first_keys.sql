-- Customer data keyed and foreign-keyed by tenant first, so the schema can be distributed by tenant_id
-- (Citus) without changing a query: every table holding a tenant's rows gets a primary key that starts
-- with tenant_id, unique keys that include it, and foreign keys to other such tables that go
-- (tenant_id, …) → (tenant_id, …), so a tenant's related rows always live together. Platform tables
-- (docs/scaling.md: reference and local) keep their keys; a local table no longer points at customer
-- data. tests/test_tenant_keys.py checks the result on the catalog.
--
-- Written over the catalog rather than table by table, so it covers every customer table that exists
-- when it runs. Lookups that do not name the tenant (a payment by its id from a provider's webhook, a
-- lot by id) keep an index on the old key's columns; uniqueness is now per tenant, which is what a
-- distributed database can enforce (ids are random or generated, so they do not repeat anyway).

-- The two child tables that named their tenant only through their parent.
ALTER TABLE credit_holds ADD COLUMN tenant_id text;
UPDATE credit_holds h SET tenant_id = r.tenant_id FROM credit_reservations r WHERE r.id = h.reservation_id;
ALTER TABLE credit_holds ALTER COLUMN tenant_id SET NOT NULL;
ALTER TABLE webhook_delivery_attempts ADD COLUMN tenant_id text;
UPDATE webhook_delivery_attempts a SET tenant_id = d.tenant_id FROM webhook_deliveries d WHERE d.id = a.delivery_id;
ALTER TABLE webhook_delivery_attempts ALTER COLUMN tenant_id SET NOT NULL;

CREATE FUNCTION pg_temp.customer_tables() RETURNS SETOF oid LANGUAGE sql AS $$
    SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public' AND c.relkind = 'r'
       AND c.relname NOT IN (
           -- reference tables: small, platform-wide, copied to every node
           'tenants', 'api_keys', 'payment_status_moves', 'operators', 'server_secrets',
           -- local tables: platform bookkeeping on the coordinator
           'schema_migrations', 'webhook_events', 'provider_event_cursors', 'reconciler_runs', 'api_key_usage',
           'operator_sessions', 'operator_signin_failures', 'operator_audit')
$$;

CREATE FUNCTION pg_temp.column_names(rel oid, nums smallint[]) RETURNS text[] LANGUAGE sql AS $$
    SELECT array_agg(a.attname::text ORDER BY k.ord)
      FROM unnest(nums) WITH ORDINALITY k (num, ord) JOIN pg_attribute a ON a.attrelid = rel AND a.attnum = k.num
$$;

CREATE FUNCTION pg_temp.listed(names text[]) RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(quote_ident(name), ', ' ORDER BY ord) FROM unnest(names) WITH ORDINALITY u (name, ord)
$$;

DO $$
DECLARE
    fk record;
    con record;
    idx record;
    cols text[];
    ref_cols text[];
    tenant_at int;
    tail text;
    signature text;
    seen text[] := '{}';
    recreate text[] := '{}';
    statement text;
BEGIN
    -- 1. Foreign keys into customer tables: dropped; those between customer tables come back tenant first.
    FOR fk IN
        SELECT k.oid, k.conname, k.conrelid, k.confrelid, k.conkey, k.confkey,
               pg_get_constraintdef(k.oid) AS definition,
               k.conrelid IN (SELECT pg_temp.customer_tables()) AS from_customer_table
          FROM pg_constraint k
         WHERE k.contype = 'f' AND k.confrelid IN (SELECT pg_temp.customer_tables())
         ORDER BY k.conrelid::regclass::text, k.conname
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', fk.conrelid::regclass, fk.conname);
        CONTINUE WHEN NOT fk.from_customer_table;
        cols := pg_temp.column_names(fk.conrelid, fk.conkey);
        ref_cols := pg_temp.column_names(fk.confrelid, fk.confkey);
        tenant_at := array_position(cols, 'tenant_id');
        IF tenant_at IS NULL THEN
            cols := 'tenant_id'::text || cols;
            ref_cols := 'tenant_id'::text || ref_cols;
        ELSE
            cols := 'tenant_id'::text || (cols[:tenant_at - 1] || cols[tenant_at + 1:]);
            ref_cols := ref_cols[tenant_at] || (ref_cols[:tenant_at - 1] || ref_cols[tenant_at + 1:]);
        END IF;
        signature := fk.conrelid::regclass::text || array_to_string(cols, ',') || '>' || fk.confrelid::regclass::text;
        CONTINUE WHEN signature = ANY (seen);  -- a single-column key the composite one already implied
        seen := seen || signature;
        tail := substring(fk.definition FROM 'REFERENCES [^(]+\([^)]*\)(.*)$');
        recreate := recreate || format(
            'ALTER TABLE %s ADD CONSTRAINT %I FOREIGN KEY (%s) REFERENCES %s (%s)%s',
            fk.conrelid::regclass, fk.conname, pg_temp.listed(cols), fk.confrelid::regclass,
            pg_temp.listed(ref_cols), tail);
    END LOOP;

    -- 2. Primary and unique keys of customer tables: tenant first (a key that was (x, tenant_id) and now
    --    repeats the primary key is dropped); the old columns keep an index for lookups without the tenant.
    FOR con IN
        SELECT c.oid, c.conname, c.conrelid, c.contype, c.conkey
          FROM pg_constraint c
         WHERE c.contype IN ('p', 'u') AND c.conrelid IN (SELECT pg_temp.customer_tables())
         ORDER BY c.conrelid::regclass::text, c.contype, c.conname
    LOOP
        cols := pg_temp.column_names(con.conrelid, con.conkey);
        CONTINUE WHEN cols[1] = 'tenant_id';
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', con.conrelid::regclass, con.conname);
        IF NOT 'tenant_id' = ANY (cols) THEN
            EXECUTE format('CREATE INDEX %I ON %s (%s)', con.conname || '_lookup', con.conrelid::regclass,
                           pg_temp.listed(cols));
        END IF;
        cols := 'tenant_id'::text || array_remove(cols, 'tenant_id');
        IF con.contype = 'p' THEN
            EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I PRIMARY KEY (%s)', con.conrelid::regclass,
                           con.conname, pg_temp.listed(cols));
        ELSIF NOT EXISTS (
            SELECT 1 FROM pg_constraint p
             WHERE p.conrelid = con.conrelid AND p.contype IN ('p', 'u')
               AND pg_temp.column_names(p.conrelid, p.conkey) = cols
        ) THEN
            EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I UNIQUE (%s)', con.conrelid::regclass, con.conname,
                           pg_temp.listed(cols));
        END IF;
    END LOOP;

    -- 3. Unique indexes that are not constraints (partial ones): the same, tenant first.
    FOR idx IN
        SELECT i.indexrelid, i.indrelid, pg_get_indexdef(i.indexrelid) AS definition,
               pg_temp.column_names(i.indrelid, i.indkey::smallint[]) AS columns
          FROM pg_index i
         WHERE i.indisunique AND i.indrelid IN (SELECT pg_temp.customer_tables())
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
    LOOP
        CONTINUE WHEN idx.columns[1] = 'tenant_id';
        EXECUTE format('DROP INDEX %s', idx.indexrelid::regclass);
        EXECUTE replace(idx.definition, ' USING btree (', ' USING btree (tenant_id, ');
    END LOOP;

    FOREACH statement IN ARRAY recreate LOOP
        EXECUTE statement;
    END LOOP;
END;
$$;

-- Histories are read by what they belong to (a payment, an account, a delivery), never by their own id
-- alone: no index for that on the tables every money movement appends to.
DROP INDEX credit_ledger_pkey_lookup, payment_audit_pkey_lookup, webhook_delivery_attempts_pkey_lookup,
    entitlements_pkey_lookup;
