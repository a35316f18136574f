"""Active API keys, cached per process — only while this process hears every revocation.

`keys revoke` announces the key on a PostgreSQL channel (NOTIFY, delivered when it commits). A process that
serves requests listens on a connection of its own and drops the revoked key from its cache as the
notification arrives; if that connection is lost, the cache is emptied and not used again until the
process listens once more, so a revocation can never be missed — at worst every request asks the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg

from db.api_keys import REVOCATIONS, ApiKey

logger = logging.getLogger(__name__)
RECONNECT_SECONDS = 1.0
PING_SECONDS = 5.0
ANNOUNCED_WITHIN_SECONDS = 5.0
LISTEN_CONNECT_SECONDS = 5.0


class KeyCache:
    """Keys by the SHA-256 of their secret. `generation` moves on every revocation, so a key read from the
    database just before a revocation arrived is not cached after it."""

    def __init__(self) -> None:
        self._keys: dict[bytes, ApiKey] = {}
        self.generation = 0
        self.enabled = False

    def get(self, digest: bytes) -> ApiKey | None:
        return self._keys.get(digest) if self.enabled else None

    def put(self, digest: bytes, key: ApiKey, read_at_generation: int) -> None:
        if self.enabled and read_at_generation == self.generation:
            self._keys[digest] = key

    def revoked(self, key_id: str) -> None:
        self.generation += 1
        self._keys = {digest: key for digest, key in self._keys.items() if key.id != key_id}

    def stop(self) -> None:
        """Nobody hears revocations any more: nothing cached may be trusted."""
        self.enabled = False
        self.generation += 1
        self._keys.clear()


@contextlib.asynccontextmanager
async def listening(cache: KeyCache, database_url: str) -> AsyncIterator[None]:
    """While the block runs, keep a connection listening for revocations and the cache on while it lives."""
    task = asyncio.create_task(_listen_forever(cache, database_url), name="api-key-revocations")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        cache.stop()


async def _listen_forever(cache: KeyCache, database_url: str) -> None:
    while True:
        try:
            await _listen_once(cache, database_url)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            logger.warning(
                "not hearing API key revocations (%s); keys are checked in the database", type(error).__name__
            )
        cache.stop()
        await asyncio.sleep(RECONNECT_SECONDS)


async def _listen_once(cache: KeyCache, database_url: str) -> None:
    connection = await asyncpg.connect(database_url)
    lost = asyncio.Event()
    try:
        connection.add_termination_listener(lambda _: lost.set())
        await connection.add_listener(REVOCATIONS, lambda *notice: cache.revoked(str(notice[3])))
        cache.stop()  # anything cached before now might have missed a revocation
        cache.enabled = True
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PING_SECONDS):  # not wait_for: it can swallow a cancellation on 3.11
                    await lost.wait()
            await connection.fetchval("SELECT 1", timeout=PING_SECONDS)  # a silent network would hide a revocation
    finally:
        cache.stop()
        await connection.close()


@contextlib.asynccontextmanager
async def hearing_revocation(database_url: str | None, key_id: str) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """Listen for the key's revocation while the block revokes it; the block awaits what this yields after the
    commit, to wait (at most ANNOUNCED_WITHIN_SECONDS) until the announcement comes back. PostgreSQL signals
    every listening session at once when the revocation commits, so once the revoker hears its own, each serving
    process has been sent it too: a revoke returns when the revocation is announced, not merely committed, and
    the key's next request is refused. Without a listening address (behind a transaction pooler nobody caches
    keys) there is nothing to wait for; nor when the listening address does not answer (the revoke commits all the
    same)."""
    heard = asyncio.Event()

    async def announced() -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ANNOUNCED_WITHIN_SECONDS):
                await heard.wait()

    try:
        connection = await asyncpg.connect(database_url, timeout=LISTEN_CONNECT_SECONDS) if database_url else None
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        # The revocation still commits: only its announcement goes unconfirmed (a process that cannot hear
        # revocations empties its cache and asks the database for every key).
        logger.warning("cannot confirm a revocation's announcement (%s)", type(error).__name__)
        connection = None
    if connection is None:
        heard.set()
        yield announced
        return
    try:
        await connection.add_listener(REVOCATIONS, lambda *notice: heard.set() if notice[3] == key_id else None)
        yield announced
    finally:
        await connection.close()
