"""The webhook inbox: each provider event stored once, unique on (provider, event_id)."""

from __future__ import annotations

from typing import Any

import asyncpg

OUTCOMES = ("received", "applied", "ignored", "unhandled", "unmatched", "rejected", "needs_attention", "failed")
"""What became of a stored event (the outcome column's CHECK lists the same)."""


async def store(
    connection: asyncpg.Connection,
    *,
    provider: str,
    event_id: str,
    event_type: str,
    payload: dict[str, Any],
    source: str = "webhook",
    tenant_id: str | None = None,
) -> tuple[int, str]:
    """The inbox row's id and outcome, locked: `received` when new, else what became of it before.

    `source` says how it arrived: pushed as a `webhook`, or read from the provider's `event_list`.
    `tenant_id` is set when it arrived at a tenant's own endpoint (otherwise when it matches a payment).
    """
    inserted = await connection.fetchval(
        """
        INSERT INTO webhook_events (provider, event_id, event_type, payload, outcome, source, tenant_id)
        VALUES ($1, $2, $3, $4, 'received', $5, $6)
        ON CONFLICT (provider, event_id) DO NOTHING
        RETURNING id
        """,
        provider,
        event_id,
        event_type,
        payload,
        source,
        tenant_id,
    )
    if inserted is not None:
        return inserted, "received"
    row = await connection.fetchrow(
        "SELECT id, outcome FROM webhook_events WHERE provider = $1 AND event_id = $2 FOR UPDATE",
        provider,
        event_id,
    )
    return row["id"], row["outcome"]


async def record_failure(connection: asyncpg.Connection, inbox_id: int, error: str) -> None:
    await connection.execute(
        """
        UPDATE webhook_events SET outcome = 'failed', attempts = attempts + 1, last_error = $2,
               last_attempt_at = now()
         WHERE id = $1
        """,
        inbox_id,
        error,
    )


async def get(connection: asyncpg.Connection, provider: str, event_id: str) -> asyncpg.Record | None:
    return await connection.fetchrow(
        "SELECT * FROM webhook_events WHERE provider = $1 AND event_id = $2", provider, event_id
    )


async def failed_ids(connection: asyncpg.Connection, provider: str, limit: int) -> list[str]:
    rows = await connection.fetch(
        "SELECT event_id FROM webhook_events WHERE provider = $1 AND outcome = 'failed' ORDER BY id LIMIT $2",
        provider,
        limit,
    )
    return [row["event_id"] for row in rows]


async def listing(connection: asyncpg.Connection, *, outcomes: list[str] | None, limit: int) -> list[asyncpg.Record]:
    """The newest stored events, of these outcomes only (all outcomes when None)."""
    return await connection.fetch(
        """
        SELECT event_id, event_type, outcome, attempts, last_error, note, payment_id, received_at, tenant_id, source
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
) -> None:
    await connection.execute(
        """
        UPDATE webhook_events SET outcome = $2, payment_id = $3, note = $4, attempts = attempts + 1,
               last_error = NULL, last_attempt_at = now(),
               tenant_id = coalesce(tenant_id, (SELECT tenant_id FROM payments WHERE id = $3))
         WHERE id = $1
        """,
        inbox_id,
        outcome,
        payment_id,
        note,
    )
