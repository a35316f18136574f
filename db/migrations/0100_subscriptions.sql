-- Subscriptions: plans that renew at the provider (Stripe Billing, or the sandbox's billing), kept in the
-- ledger tenant first. Their status changes only through server/ledger/subscription_machine.py, and the
-- database refuses any move that machine does not allow (subscription_status_moves, as for payments).
-- Each paid invoice is a payment linked to its subscription; its grants hold for the invoice's period.

CREATE TABLE subscriptions (
    tenant_id                text NOT NULL REFERENCES tenants (id),
    id                       text NOT NULL CHECK (id LIKE 'subs\_%'),
    customer_id              text NOT NULL,
    product_id               text NOT NULL,
    status                   text NOT NULL DEFAULT 'incomplete' CHECK (status IN (
                                 'incomplete', 'trialing', 'active', 'past_due', 'canceled', 'unpaid')),
    cancel_at_period_end     boolean NOT NULL DEFAULT false,
    pending_product_id       text,            -- a plan change waiting for the next renewal
    provider                 text NOT NULL,
    provider_subscription_id text,
    provider_customer_id     text,
    payment_method           text,
    first_payment_id         text NOT NULL,   -- the first invoice's payment (what limits and approval saw)
    idempotency_key          text NOT NULL,
    current_period_start     timestamptz,
    current_period_end       timestamptz,
    trial_end                timestamptz,
    canceled_at              timestamptz,
    ended_at                 timestamptz,
    cancel_reason            text,
    next_action_url          text,
    api_key_id               text,
    submit_lease_until       timestamptz,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, provider, provider_subscription_id),
    FOREIGN KEY (tenant_id, first_payment_id) REFERENCES payments (tenant_id, id),
    FOREIGN KEY (api_key_id, tenant_id) REFERENCES api_keys (id, tenant_id)
);
-- One live subscription per (customer, product): a second start is refused and names the first.
CREATE UNIQUE INDEX subscriptions_one_live ON subscriptions (tenant_id, customer_id, product_id)
    WHERE status NOT IN ('canceled', 'unpaid');
CREATE INDEX subscriptions_by_provider_id ON subscriptions (provider, provider_subscription_id);
CREATE INDEX subscriptions_by_id ON subscriptions (id);
CREATE INDEX subscriptions_of_customer ON subscriptions (tenant_id, customer_id, created_at DESC);
CREATE INDEX subscriptions_quiet ON subscriptions (updated_at) WHERE status NOT IN ('canceled');

CREATE TABLE subscription_status_moves (
    from_status text NOT NULL,
    to_status   text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);
INSERT INTO subscription_status_moves (from_status, to_status) VALUES
    ('incomplete', 'trialing'),
    ('incomplete', 'active'),
    ('incomplete', 'past_due'),
    ('incomplete', 'canceled'),
    ('incomplete', 'unpaid'),
    ('trialing', 'active'),
    ('trialing', 'past_due'),
    ('trialing', 'canceled'),
    ('trialing', 'unpaid'),
    ('active', 'past_due'),
    ('active', 'canceled'),
    ('active', 'unpaid'),
    ('past_due', 'active'),
    ('past_due', 'canceled'),
    ('past_due', 'unpaid'),
    ('unpaid', 'active'),
    ('unpaid', 'canceled');
REVOKE INSERT, UPDATE, DELETE ON subscription_status_moves FROM paywarden_app;

CREATE FUNCTION refuse_unlisted_subscription_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status AND NOT EXISTS (
        SELECT 1 FROM subscription_status_moves WHERE from_status = OLD.status AND to_status = NEW.status
    ) THEN
        RAISE EXCEPTION 'subscription % cannot move from % to %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER subscriptions_status_moves
    BEFORE UPDATE OF status ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION refuse_unlisted_subscription_move();

-- Append-only: every change of a subscription, who made it and why.
CREATE TABLE subscription_audit (
    tenant_id       text NOT NULL,
    id              bigint GENERATED ALWAYS AS IDENTITY,
    subscription_id text NOT NULL,
    actor           text NOT NULL,
    from_status     text,
    to_status       text NOT NULL,
    reason          text,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, subscription_id) REFERENCES subscriptions (tenant_id, id)
);
CREATE INDEX subscription_audit_of ON subscription_audit (tenant_id, subscription_id, id);
REVOKE UPDATE, DELETE, TRUNCATE ON subscription_audit FROM paywarden_app;
CREATE TRIGGER subscription_audit_no_update_delete
    BEFORE UPDATE OR DELETE ON subscription_audit
    FOR EACH ROW EXECUTE FUNCTION refuse_audit_change();

-- A renewal invoice is a payment of its subscription; its grants hold for the invoice's period.
ALTER TABLE payments ADD COLUMN subscription_id text;
ALTER TABLE payments ADD COLUMN provider_invoice_id text;
ALTER TABLE payments ADD FOREIGN KEY (tenant_id, subscription_id) REFERENCES subscriptions (tenant_id, id);
ALTER TABLE payments ADD CONSTRAINT payments_invoice_once UNIQUE (tenant_id, provider, provider_invoice_id);
CREATE INDEX payments_by_invoice ON payments (provider, provider_invoice_id) WHERE provider_invoice_id IS NOT NULL;
CREATE INDEX payments_of_subscription ON payments (tenant_id, subscription_id, created_at)
    WHERE subscription_id IS NOT NULL;

-- A subscription's period is fixed by the provider: it neither stacks after other periods nor moves up
-- when another payment is refunded.
ALTER TABLE entitlements ADD COLUMN fixed_period boolean NOT NULL DEFAULT false;

-- The sandbox bills subscriptions too: its products, prices, subscriptions and invoices.
ALTER TABLE sandbox.objects DROP CONSTRAINT objects_type_check;
ALTER TABLE sandbox.objects ADD CONSTRAINT objects_type_check CHECK (type IN (
    'customer', 'payment_method', 'setup_intent', 'checkout.session', 'product', 'price', 'subscription', 'invoice'));
CREATE INDEX sandbox_objects_live_subscriptions ON sandbox.objects (id)
    WHERE type = 'subscription' AND object->>'status' IN ('incomplete', 'trialing', 'active', 'past_due');
CREATE INDEX sandbox_objects_price_lookup_key ON sandbox.objects ((object->>'lookup_key')) WHERE type = 'price';
