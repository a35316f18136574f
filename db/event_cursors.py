"""The reconciler's place in each provider's event list: the last event it has read."""

from __future__ import annotations

import asyncpg

READER_LOCK_KEY = 7_461_226_502  # one event-list reader at a time across every paywarden process


async def try_lock_reader(connection: asyncpg.Connection) -> bool:
    """A session lock, released by unlock_reader: another process reading the list skips its turn."""
    return await connection.fetchval("SELECT pg_try_advisory_lock($1)", READER_LOCK_KEY)


async def unlock_reader(connection: asyncpg.Connection) -> None:
    await connection.execute("SELECT pg_advisory_unlock($1)", READER_LOCK_KEY)


async def last_event(connection: asyncpg.Connection, provider: str) -> str | None:
    return await connection.fetchval("SELECT last_event_id FROM provider_event_cursors WHERE provider = $1", provider)


async def save(connection: asyncpg.Connection, provider: str, event_id: str | None) -> None:
    if event_id is None:
        await connection.execute("DELETE FROM provider_event_cursors WHERE provider = $1", provider)
        return
    await connection.execute(
        """
        INSERT INTO provider_event_cursors (provider, last_event_id) VALUES ($1, $2)
        ON CONFLICT (provider) DO UPDATE SET last_event_id = excluded.last_event_id, updated_at = now()
        """,
        provider,
        event_id,
    )
