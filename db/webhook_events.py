"""The webhook inbox: each provider event stored once per (provider, endpoint it came to, event id)."""

from __future__ import annotations

from typing import Any

import asyncpg

from db.payments import Payment

OUTCOMES = (
    "received",
    "applied",
    "ignored",
    "unhandled",
    "unmatched",
    "rejected",
    "needs_attention",
    "failed",
    "parked",
)
"""What became of a stored event (the outcome column's CHECK lists the same)."""


_STORE = """
    INSERT INTO webhook_events (provider, endpoint, event_id, event_type, payload, outcome, source, tenant_id)
    VALUES ($1, $2, $3, $4, $5, 'received', $6, $7)
    ON CONFLICT (provider, endpoint, event_id) DO NOTHING
    RETURNING id
"""
"""A new event's inbox row ($1–$7: provider, endpoint, event id, type, body, source, tenant), or nothing when
it was stored before."""


async def store(
    connection: asyncpg.Connection,
    *,
    provider: str,
    endpoint: str,
    event_id: str,
    event_type: str,
    payload: dict[str, Any],
    source: str = "webhook",
    tenant_id: str | None = None,
) -> tuple[int, str]:
    """The inbox row's id and outcome, locked: `received` when new, else what became of it before.

    `endpoint` is where it came from (`platform`, `tenant:<id>`, `standard`); `source` how it arrived:
    pushed as a `webhook`, or read from the provider's `event_list`. `tenant_id` is set when it arrived
    at a tenant's own endpoint (otherwise when it matches a payment).
    """
    inserted = await connection.fetchval(
        _STORE,
        provider,
        endpoint,
        event_id,
        event_type,
        payload,
        source,
        tenant_id,
    )
    if inserted is not None:
        return inserted, "received"
    return await _stored_before(connection, provider, endpoint, event_id)


async def _stored_before(
    connection: asyncpg.Connection, provider: str, endpoint: str, event_id: str
) -> tuple[int, str]:
    row = await connection.fetchrow(
        "SELECT id, outcome FROM webhook_events WHERE provider = $1 AND endpoint = $2 AND event_id = $3 FOR UPDATE",
        provider,
        endpoint,
        event_id,
    )
    return row["id"], row["outcome"]


async def store_and_lock_payment(
    connection: asyncpg.Connection,
    *,
    provider: str,
    endpoint: str,
    event_id: str,
    event_type: str,
    payload: dict[str, Any],
    source: str,
    tenant_id: str | None,
    payment_id: str,
) -> tuple[int, str, Payment | None]:
    """`store`, and when the event is new, the payment it names row-locked (as db/payments.lock does) in the
    same statement: the inbox row first, then the payment, as when they are two statements."""
    row = await connection.fetchrow(
        f"""
        WITH stored AS ({_STORE})
        SELECT (SELECT id FROM stored) AS inbox_id, p.*
          FROM (SELECT 1) AS one
          LEFT JOIN LATERAL (
              SELECT * FROM payments
               WHERE id = $8 AND ($7::text IS NULL OR tenant_id = $7) AND EXISTS (SELECT 1 FROM stored)
                 FOR NO KEY UPDATE
          ) AS p ON true
        """,
        provider,
        endpoint,
        event_id,
        event_type,
        payload,
        source,
        tenant_id,
        payment_id,
    )
    fields = dict(row)
    inbox_id = fields.pop("inbox_id")
    if inbox_id is None:
        return (*await _stored_before(connection, provider, endpoint, event_id), None)
    return inbox_id, "received", Payment.from_row(fields) if fields["id"] is not None else None


async def record_failure(
    connection: asyncpg.Connection, inbox_id: int, error: str, *, retry_in_seconds: float, park_after: int
) -> str:
    """Keep the event with its error; it is tried again after `retry_in_seconds`, or parked for an
    operator once it has failed `park_after` times. Returns the outcome: failed or parked."""
    return await connection.fetchval(
        """
        UPDATE webhook_events
           SET outcome = CASE WHEN attempts + 1 >= $4 THEN 'parked' ELSE 'failed' END,
               attempts = attempts + 1, last_error = $2, last_attempt_at = now(),
               next_attempt_at = now() + make_interval(secs => $3)
         WHERE id = $1
        RETURNING outcome
        """,
        inbox_id,
        error,
        retry_in_seconds,
        park_after,
    )


async def copies(connection: asyncpg.Connection, provider: str, event_id: str) -> list[asyncpg.Record]:
    """Every stored copy of an event id (one per endpoint it came to), the platform's first."""
    return await connection.fetch(
        """
        SELECT * FROM webhook_events WHERE provider = $1 AND event_id = $2
         ORDER BY endpoint <> 'platform', endpoint
        """,
        provider,
        event_id,
    )


async def get(connection: asyncpg.Connection, inbox_id: int) -> asyncpg.Record | None:
    return await connection.fetchrow("SELECT * FROM webhook_events WHERE id = $1", inbox_id)


async def due_failures(connection: asyncpg.Connection, provider: str, *, after_id: int, limit: int) -> list[int]:
    """Failed events whose next attempt is due, by inbox id after `after_id` (a page of them)."""
    rows = await connection.fetch(
        """
        SELECT id FROM webhook_events
         WHERE provider = $1 AND outcome = 'failed' AND (next_attempt_at IS NULL OR next_attempt_at <= now())
           AND id > $2
         ORDER BY id LIMIT $3
        """,
        provider,
        after_id,
        limit,
    )
    return [row["id"] for row in rows]


async def listing(connection: asyncpg.Connection, *, outcomes: list[str] | None, limit: int) -> list[asyncpg.Record]:
    """The newest stored events, of these outcomes only (all outcomes when None)."""
    return await connection.fetch(
        """
        SELECT event_id, event_type, outcome, attempts, last_error, note, payment_id, received_at, tenant_id, source,
               endpoint
          FROM webhook_events WHERE $1::text[] IS NULL OR outcome = ANY($1::text[])
         ORDER BY id DESC LIMIT $2
        """,
        outcomes,
        limit,
    )


async def record_outcome(
    connection: asyncpg.Connection,
    inbox_id: int,
    *,
    outcome: str,
    payment_id: str | None,
    note: str | None,
    setup_id: str | None = None,
    tenant_id: str | None = None,
    events: list[dict[str, Any]] | None = None,
    retry_for_seconds: float = 0,
) -> None:
    """What became of the event, and the payment or setup it was about (whose tenant it belongs to, unless
    `tenant_id` says); with `events`, the outbox events applying it made, written in order in the same
    statement (record_outbox_event, as db/outbox.insert_events does; each names its tenant)."""
    await connection.execute(
        """
        WITH outcome AS (
            UPDATE webhook_events
               SET outcome = $2, payment_id = $3, note = $4, setup_id = $5, attempts = attempts + 1,
                   last_error = NULL, last_attempt_at = now(), next_attempt_at = NULL,
                   tenant_id = coalesce(tenant_id, $6, (SELECT tenant_id FROM payments WHERE id = $3),
                                        (SELECT tenant_id FROM payment_setups WHERE id = $5))
             WHERE id = $1
        )
        SELECT record_outbox_event(e ->> 'id', e ->> 'tenant', e ->> 'type', e, $8)
          FROM jsonb_array_elements($7::jsonb) WITH ORDINALITY AS events (e, n) ORDER BY n
        """,
        inbox_id,
        outcome,
        payment_id,
        note,
        setup_id,
        tenant_id,
        events or [],
        retry_for_seconds,
    )
