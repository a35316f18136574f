-- The sandbox's other Stripe objects (customers, payment methods, setup intents, Checkout Sessions), each
-- kept as Stripe shows it; `private` holds what only the sandbox knows (which test card a saved payment
-- method stands for, what a Checkout Session sells).

CREATE TABLE sandbox.objects (
    id         text PRIMARY KEY,
    type       text NOT NULL CHECK (type IN ('customer', 'payment_method', 'setup_intent', 'checkout.session')),
    object     jsonb NOT NULL,
    private    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sandbox_objects_by_customer ON sandbox.objects (type, (object->>'customer'), created_at);
CREATE INDEX sandbox_open_sessions ON sandbox.objects (((object->>'expires_at')::bigint))
    WHERE type = 'checkout.session' AND object->>'status' = 'open';
CREATE INDEX sandbox_sessions_by_intent ON sandbox.objects ((object->>'payment_intent'))
    WHERE type = 'checkout.session';

-- Every API request the sandbox answered, as a Stripe dashboard's request log shows it: what a client
-- really sent (the tests assert the adapter's exact parameters from here). Kept a day.
CREATE TABLE sandbox.requests (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    method          text NOT NULL,
    path            text NOT NULL,
    params          jsonb NOT NULL,
    idempotency_key text,
    status_code     int NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sandbox_requests_created ON sandbox.requests (created_at);
