-- A card the customer saves (a card setup succeeds) becomes the card their live subscriptions charge. The
-- setup's own transaction marks each live subscription with the card (card_to_apply, since card_marked_at);
-- once it commits, paywarden makes the card the provider's default for the subscription (retrying a past-due
-- invoice with it) and clears the mark. A mark left behind (the provider did not answer, a crash) is finished by
-- the reconciler, so a saved card is never lost on its way to the provider.
ALTER TABLE subscriptions ADD COLUMN card_to_apply text;
ALTER TABLE subscriptions ADD COLUMN card_marked_at timestamptz;
CREATE INDEX subscriptions_card_to_apply ON subscriptions (card_marked_at) WHERE card_to_apply IS NOT NULL;
