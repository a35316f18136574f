"""The webhook inbox: each provider event stored once, unique on (provider, event_id)."""

from __future__ import annotations

from typing import Any

import asyncpg


async def insert(
    connection: asyncpg.Connection,
    *,
    provider: str,
    event_id: str,
    event_type: str,
    payload: dict[str, Any],
) -> int | None:
    """The new inbox row's id, or None when this event was stored before (a duplicate)."""
    return await connection.fetchval(
        """
        INSERT INTO webhook_events (provider, event_id, event_type, payload, outcome)
        VALUES ($1, $2, $3, $4, 'unhandled')
        ON CONFLICT (provider, event_id) DO NOTHING
        RETURNING id
        """,
        provider,
        event_id,
        event_type,
        payload,
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
        "UPDATE webhook_events SET outcome = $2, payment_id = $3, note = $4 WHERE id = $1",
        inbox_id,
        outcome,
        payment_id,
        note,
    )
