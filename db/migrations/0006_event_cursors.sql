-- How far the reconciler has read each provider's event list, and how each stored event arrived.
CREATE TABLE provider_event_cursors (
    provider      text PRIMARY KEY,
    last_event_id text NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE webhook_events ADD COLUMN source text NOT NULL DEFAULT 'webhook'
    CHECK (source IN ('webhook', 'event_list'));
