-- Where an event came from scopes its identity: the platform endpoint (and the provider's event list,
-- which is the same account), each tenant's own endpoint, or the Standard Webhooks endpoint. An id
-- posted to one of them can no longer make the same id at another a "duplicate". Events stored before
-- this migration count as the platform's.
ALTER TABLE webhook_events ADD COLUMN endpoint text NOT NULL DEFAULT 'platform';
ALTER TABLE webhook_events ALTER COLUMN endpoint DROP DEFAULT;
ALTER TABLE webhook_events DROP CONSTRAINT webhook_events_provider_event_id_key;
ALTER TABLE webhook_events ADD CONSTRAINT webhook_events_identity UNIQUE (provider, endpoint, event_id);
CREATE INDEX webhook_events_event_id ON webhook_events (event_id);

-- A failed event is retried with backoff, and parked for an operator after too many attempts.
ALTER TABLE webhook_events ADD COLUMN next_attempt_at timestamptz;
ALTER TABLE webhook_events DROP CONSTRAINT webhook_events_outcome_check;
ALTER TABLE webhook_events ADD CONSTRAINT webhook_events_outcome_check CHECK (outcome IN (
    'received', 'applied', 'ignored', 'unhandled', 'unmatched', 'rejected', 'needs_attention', 'failed', 'parked'));
DROP INDEX webhook_events_failed;
CREATE INDEX webhook_events_due ON webhook_events (provider, next_attempt_at, id) WHERE outcome = 'failed';

-- A success the provider does not confirm when the reconciler checks again: both sides, for an operator.
ALTER TABLE payments ADD COLUMN verified_at timestamptz;
ALTER TABLE payments ADD COLUMN attention text;
CREATE INDEX payments_to_verify ON payments (updated_at) WHERE status = 'succeeded' AND verified_at IS NULL;
CREATE INDEX payments_attention ON payments (updated_at) WHERE attention IS NOT NULL;

-- One reader of a provider's event list at a time, by a lease on its cursor row rather than a session
-- lock (which a transaction-pooling PgBouncer cannot keep): a reader that dies lets the lease run out.
ALTER TABLE provider_event_cursors ALTER COLUMN last_event_id DROP NOT NULL;
ALTER TABLE provider_event_cursors ADD COLUMN reader_lease_until timestamptz;
