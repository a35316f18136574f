"""The reconciler's place in each provider's event list (the last event it has read), and the lease that
lets one process at a time read it."""

from __future__ import annotations

import asyncpg


async def take_reader_lease(connection: asyncpg.Connection, provider: str, seconds: float) -> bool:
    """True when this process may read the list for the next `seconds` (nobody else holds the lease)."""
    await connection.execute(
        "INSERT INTO provider_event_cursors (provider) VALUES ($1) ON CONFLICT (provider) DO NOTHING", provider
    )
    taken = await connection.fetchval(
        """
        UPDATE provider_event_cursors SET reader_lease_until = now() + make_interval(secs => $2)
         WHERE provider = $1 AND (reader_lease_until IS NULL OR reader_lease_until < now())
        RETURNING true
        """,
        provider,
        seconds,
    )
    return bool(taken)


async def release_reader_lease(connection: asyncpg.Connection, provider: str) -> None:
    await connection.execute(
        "UPDATE provider_event_cursors SET reader_lease_until = NULL WHERE provider = $1", provider
    )


async def last_event(connection: asyncpg.Connection, provider: str) -> str | None:
    return await connection.fetchval("SELECT last_event_id FROM provider_event_cursors WHERE provider = $1", provider)


async def save(connection: asyncpg.Connection, provider: str, event_id: str | None) -> None:
    await connection.execute(
        """
        INSERT INTO provider_event_cursors (provider, last_event_id) VALUES ($1, $2)
        ON CONFLICT (provider) DO UPDATE SET last_event_id = excluded.last_event_id, updated_at = now()
        """,
        provider,
        event_id,
    )
