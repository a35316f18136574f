-- The sandbox's disputes and balance transactions (tables of their own, so the objects table's type list
-- stays as it is): every money movement at the sandbox, with Stripe's fee model, for reconciliation.

CREATE TABLE sandbox.disputes (
    id             text PRIMARY KEY,
    payment_intent text NOT NULL,
    object         jsonb NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sandbox_disputes_by_intent ON sandbox.disputes (payment_intent);

CREATE TABLE sandbox.balance_transactions (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         text NOT NULL UNIQUE,
    source     text NOT NULL,
    created    bigint NOT NULL,
    object     jsonb NOT NULL,
    private    jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX sandbox_balance_transactions_created ON sandbox.balance_transactions (created, seq);
CREATE UNIQUE INDEX sandbox_balance_transactions_once ON sandbox.balance_transactions (source, (object->>'type'));
