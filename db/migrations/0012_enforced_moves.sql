-- The database refuses what the code's state machines refuse, so neither a bug nor a hand-written
-- UPDATE can make a refunded payment succeeded, or credits appear.

-- Every move of a payment's status that server/ledger/payment_machine.py allows (a test checks that the
-- two lists are the same); a status change not listed here is refused.
CREATE TABLE payment_status_moves (
    from_status text NOT NULL,
    to_status   text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);
INSERT INTO payment_status_moves (from_status, to_status) VALUES
    ('created', 'canceled'),
    ('created', 'failed'),
    ('created', 'pending'),
    ('created', 'processing'),
    ('created', 'requires_action'),
    ('created', 'requires_approval'),
    ('created', 'succeeded'),
    ('partially_refunded', 'refunded'),
    ('pending', 'canceled'),
    ('pending', 'failed'),
    ('pending', 'processing'),
    ('pending', 'requires_action'),
    ('pending', 'succeeded'),
    ('processing', 'canceled'),
    ('processing', 'failed'),
    ('processing', 'succeeded'),
    ('requires_action', 'canceled'),
    ('requires_action', 'failed'),
    ('requires_action', 'processing'),
    ('requires_action', 'succeeded'),
    ('requires_approval', 'canceled'),
    ('requires_approval', 'created'),
    ('succeeded', 'partially_refunded'),
    ('succeeded', 'refunded');

CREATE FUNCTION refuse_unlisted_payment_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status AND NOT EXISTS (
        SELECT 1 FROM payment_status_moves WHERE from_status = OLD.status AND to_status = NEW.status
    ) THEN
        RAISE EXCEPTION 'payment % cannot move from % to %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER payments_status_moves
    BEFORE UPDATE OF status ON payments
    FOR EACH ROW EXECUTE FUNCTION refuse_unlisted_payment_move();

-- The credit ledger carries each account's running totals: every entry continues the one before it
-- (a trigger computes them), and at commit every account must equal its latest entry — an account
-- changed without its ledger entry in the same transaction is refused.
ALTER TABLE credit_ledger ADD COLUMN granted_after bigint;
ALTER TABLE credit_ledger ADD COLUMN used_after bigint;
ALTER TABLE credit_ledger ADD COLUMN reserved_after bigint;
ALTER TABLE credit_ledger DISABLE TRIGGER USER;  -- the append-only guard, for this one backfill
UPDATE credit_ledger l SET granted_after = t.granted, used_after = t.used, reserved_after = t.reserved
  FROM (
    SELECT id,
           sum(granted_delta) OVER account AS granted,
           sum(used_delta) OVER account AS used,
           sum(reserved_delta) OVER account AS reserved
      FROM credit_ledger
    WINDOW account AS (PARTITION BY tenant_id, customer_id, feature ORDER BY id)
  ) t
 WHERE t.id = l.id;
ALTER TABLE credit_ledger ENABLE TRIGGER USER;
ALTER TABLE credit_ledger ALTER COLUMN granted_after SET NOT NULL;
ALTER TABLE credit_ledger ALTER COLUMN used_after SET NOT NULL;
ALTER TABLE credit_ledger ALTER COLUMN reserved_after SET NOT NULL;

CREATE FUNCTION continue_credit_ledger() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    previous record;
BEGIN
    SELECT granted_after, used_after, reserved_after INTO previous FROM credit_ledger
     WHERE tenant_id = NEW.tenant_id AND customer_id = NEW.customer_id AND feature = NEW.feature
     ORDER BY id DESC LIMIT 1;
    NEW.granted_after := coalesce(previous.granted_after, 0) + NEW.granted_delta;
    NEW.used_after := coalesce(previous.used_after, 0) + NEW.used_delta;
    NEW.reserved_after := coalesce(previous.reserved_after, 0) + NEW.reserved_delta;
    RETURN NEW;
END;
$$;

CREATE TRIGGER credit_ledger_running_totals
    BEFORE INSERT ON credit_ledger
    FOR EACH ROW EXECUTE FUNCTION continue_credit_ledger();

CREATE FUNCTION require_ledger_for_account() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    account record;
    latest record;
BEGIN
    SELECT granted, used, reserved INTO account FROM credit_accounts
     WHERE tenant_id = NEW.tenant_id AND customer_id = NEW.customer_id AND feature = NEW.feature;
    SELECT granted_after, used_after, reserved_after INTO latest FROM credit_ledger
     WHERE tenant_id = NEW.tenant_id AND customer_id = NEW.customer_id AND feature = NEW.feature
     ORDER BY id DESC LIMIT 1;
    IF (account.granted, account.used, account.reserved) IS DISTINCT FROM
       (coalesce(latest.granted_after, 0), coalesce(latest.used_after, 0), coalesce(latest.reserved_after, 0)) THEN
        RAISE EXCEPTION 'credit account (%, %, %) changed without its ledger entry',
            NEW.tenant_id, NEW.customer_id, NEW.feature
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER credit_accounts_match_ledger
    AFTER INSERT OR UPDATE ON credit_accounts
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION require_ledger_for_account();
