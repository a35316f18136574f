-- An event whose handling failed stays in the inbox with its error and attempts, to be retried.
ALTER TABLE webhook_events DROP CONSTRAINT webhook_events_outcome_check;
ALTER TABLE webhook_events ADD CONSTRAINT webhook_events_outcome_check CHECK (outcome IN (
    'received', 'applied', 'ignored', 'unhandled', 'unmatched', 'rejected', 'needs_attention', 'failed'));
ALTER TABLE webhook_events ADD COLUMN attempts int NOT NULL DEFAULT 0;
ALTER TABLE webhook_events ADD COLUMN last_error text;
ALTER TABLE webhook_events ADD COLUMN last_attempt_at timestamptz;
CREATE INDEX webhook_events_failed ON webhook_events (provider, id) WHERE outcome = 'failed';
