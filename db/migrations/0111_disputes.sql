-- Disputes (chargebacks): one row per provider dispute, linked to its payment, moved only as
-- dispute_status_moves allows (server/ledger/dispute_machine.py lists the same moves), audited in an
-- append-only trail; what a dispute suspended (entitlements paused, unspent credits held) is recorded so
-- that a won dispute gives back exactly that.

CREATE TABLE disputes (
    tenant_id           text NOT NULL REFERENCES tenants (id),
    id                  text NOT NULL,  -- the provider's dispute id (Stripe's du_… or dp_…)
    provider            text NOT NULL,
    payment_id          text NOT NULL,
    customer_id         text NOT NULL,  -- the payment's, so a customer's disputes are one index range
    amount_minor        bigint NOT NULL CHECK (amount_minor > 0),
    currency            char(3) NOT NULL CHECK (currency = upper(currency)),
    reason              text NOT NULL,
    status              text NOT NULL CHECK (status IN (
                            'warning_needs_response', 'warning_under_review', 'warning_closed',
                            'needs_response', 'under_review', 'won', 'lost', 'prevented')),
    policy              text NOT NULL CHECK (policy IN ('suspend', 'keep')),
    evidence_due_by     timestamptz,
    funds_withdrawn_at  timestamptz,
    funds_reinstated_at timestamptz,
    evidence            jsonb,
    evidence_staged_at  timestamptz,
    evidence_submitted_at timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    closed_at           timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, payment_id) REFERENCES payments (tenant_id, id)
);
-- A provider's event names the dispute by its id alone.
CREATE INDEX disputes_by_id ON disputes (id);
CREATE INDEX disputes_of_payment ON disputes (tenant_id, payment_id);
CREATE INDEX disputes_of_customer ON disputes (tenant_id, customer_id, created_at);
CREATE INDEX disputes_created ON disputes (created_at);

CREATE TABLE dispute_status_moves (
    from_status text NOT NULL,
    to_status   text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);
INSERT INTO dispute_status_moves (from_status, to_status)
SELECT f, t FROM unnest(ARRAY['warning_needs_response', 'warning_under_review', 'needs_response', 'under_review']) f,
                 unnest(ARRAY['warning_under_review', 'warning_closed', 'needs_response', 'under_review',
                              'won', 'lost', 'prevented']) t
 WHERE f <> t
   AND NOT (f IN ('needs_response', 'under_review') AND t LIKE 'warning\_%')
   AND (f, t) NOT IN (('under_review', 'needs_response'), ('warning_under_review', 'warning_needs_response'));

CREATE FUNCTION refuse_unlisted_dispute_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status AND NOT EXISTS (
        SELECT 1 FROM dispute_status_moves WHERE from_status = OLD.status AND to_status = NEW.status
    ) THEN
        RAISE EXCEPTION 'dispute % cannot move from % to %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER disputes_status_moves
    BEFORE UPDATE OF status ON disputes
    FOR EACH ROW EXECUTE FUNCTION refuse_unlisted_dispute_move();

-- Append-only: every change of a dispute (and evidence staged or submitted), who made it and why.
CREATE TABLE dispute_audit (
    tenant_id   text NOT NULL,
    id          bigint GENERATED ALWAYS AS IDENTITY,
    dispute_id  text NOT NULL,
    payment_id  text NOT NULL,
    actor       text NOT NULL,
    action      text NOT NULL,
    from_status text,
    to_status   text,
    reason      text,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, dispute_id) REFERENCES disputes (tenant_id, id)
);
CREATE INDEX dispute_audit_of_dispute ON dispute_audit (tenant_id, dispute_id, id);
CREATE INDEX dispute_audit_created ON dispute_audit (created_at);
REVOKE UPDATE, DELETE, TRUNCATE ON dispute_audit FROM paywarden_app;
CREATE TRIGGER dispute_audit_no_update_delete
    BEFORE UPDATE OR DELETE ON dispute_audit
    FOR EACH ROW EXECUTE FUNCTION refuse_audit_change();
CREATE TRIGGER dispute_audit_no_truncate
    BEFORE TRUNCATE ON dispute_audit
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit_change();

-- The unspent credits an open dispute holds, lot by lot, until it closes.
CREATE TABLE dispute_credit_holds (
    tenant_id   text NOT NULL,
    dispute_id  text NOT NULL,
    lot_id      bigint NOT NULL,
    quantity    bigint NOT NULL CHECK (quantity > 0),
    resolved_at timestamptz,
    PRIMARY KEY (tenant_id, dispute_id, lot_id),
    FOREIGN KEY (tenant_id, dispute_id) REFERENCES disputes (tenant_id, id),
    FOREIGN KEY (tenant_id, lot_id) REFERENCES credit_lots (tenant_id, id)
);

-- A period paused while its payment is disputed: not active, not revoked.
ALTER TABLE entitlements ADD COLUMN suspended_at timestamptz;
