-- Money safety: approval, in-flight leases, refunds, and the index the spend limits read.

ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check CHECK (status IN (
    'created', 'requires_approval', 'pending', 'requires_action', 'processing',
    'succeeded', 'failed', 'canceled', 'partially_refunded', 'refunded'));

-- While set and in the future, one process is talking to the provider about this payment.
ALTER TABLE payments ADD COLUMN submit_lease_until timestamptz;
ALTER TABLE payments ADD COLUMN approval_reason text;
ALTER TABLE payments ADD COLUMN refunded_minor bigint NOT NULL DEFAULT 0
    CHECK (refunded_minor >= 0 AND refunded_minor <= amount_minor);

-- When the charge went (or goes) to the provider: the insert, or the approval. Limits window on it.
ALTER TABLE payments ADD COLUMN charged_at timestamptz;
UPDATE payments SET charged_at = created_at;
ALTER TABLE payments ALTER COLUMN charged_at SET NOT NULL, ALTER COLUMN charged_at SET DEFAULT now();

CREATE INDEX payments_customer_currency_charged ON payments (customer_id, currency, charged_at);
CREATE INDEX payments_open ON payments (status, updated_at)
    WHERE status IN ('created', 'pending', 'requires_action', 'processing');

CREATE TABLE refunds (
    id                 text PRIMARY KEY CHECK (id LIKE 'rf\_%'),
    payment_id         text NOT NULL REFERENCES payments (id),
    customer_id        text NOT NULL,
    idempotency_key    text NOT NULL,
    request            jsonb NOT NULL,
    amount_minor       bigint NOT NULL CHECK (amount_minor > 0),
    currency           char(3) NOT NULL,
    reason             text,
    status             text NOT NULL DEFAULT 'created'
                           CHECK (status IN ('created', 'pending', 'succeeded', 'failed', 'canceled')),
    provider_refund_id text UNIQUE,
    failure_reason     text,
    submit_lease_until timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (customer_id, idempotency_key)
);
CREATE INDEX refunds_payment ON refunds (payment_id);

-- The sandbox refunds too.
CREATE TABLE sandbox.refunds (
    id             text PRIMARY KEY,
    payment_intent text NOT NULL REFERENCES sandbox.payment_intents (id),
    object         jsonb NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- A provider event that contradicts a closed payment (money taken after we recorded failure).
ALTER TABLE webhook_events DROP CONSTRAINT webhook_events_outcome_check;
ALTER TABLE webhook_events ADD CONSTRAINT webhook_events_outcome_check CHECK (outcome IN (
    'applied', 'ignored', 'unhandled', 'unmatched', 'rejected', 'needs_attention'));
