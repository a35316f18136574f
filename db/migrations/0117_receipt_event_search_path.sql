-- The function that writes a success's receipt number into its outbox events runs as the table's owner
-- (SECURITY DEFINER, 0114). Its search_path put `public` before the system catalog, so where others may
-- create objects in `public` (the default before PostgreSQL 15) a function of theirs named like one it calls
-- (to_jsonb, jsonb_set) would run with the owner's rights. The catalog first, the tables named in full.
CREATE OR REPLACE FUNCTION outbox_event_with_receipt() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE public.outbox_events e
       SET payload = jsonb_set(e.payload, '{data,receipt_number}', to_jsonb(p.receipt_number))
      FROM public.payments p
     WHERE e.id = NEW.id AND p.tenant_id = NEW.tenant_id AND p.id = NEW.payload -> 'data' ->> 'payment_id'
       AND p.receipt_number IS NOT NULL;
    RETURN NULL;
END;
$$;
