"""Requests per API key per minute, counted in PostgreSQL so the limit holds across processes — but not one
write per request: each process counts locally and adds its count to the shared one every FLUSH_EVERY
requests (or FLUSH_SECONDS), deciding on the shared total it last read plus what it has not added yet.

Tolerance: a key may get up to (FLUSH_EVERY - 1) requests more per minute for every other process serving
it (what those processes have counted but not added yet), and a process learns of other processes' calls
at most FLUSH_SECONDS late.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass

import asyncpg

from db import api_keys as stored_keys
from db.api_keys import ApiKey
from db.pool import connection
from server.errors import RateLimited, TooManyWrongKeys

FLUSH_EVERY = 10
FLUSH_SECONDS = 1.0


@dataclass
class _Minute:
    minute: int
    """Unix minutes."""
    shared: int = 0
    """The key's count for this minute across processes, as of the last flush."""
    unflushed: int = 0
    flushed_at: float = -math.inf


class RequestCounter:
    """One per process (Services holds it)."""

    def __init__(self) -> None:
        self._minutes: dict[str, _Minute] = {}

    async def admit(self, pool: asyncpg.Pool, key: ApiKey) -> None:
        """Count one request; RateLimited (with when to retry) once the minute's allowance is used up."""
        now = time.time()
        window = self._window(key.id, int(now // 60))
        window.unflushed += 1
        if window.unflushed >= FLUSH_EVERY or time.monotonic() - window.flushed_at >= FLUSH_SECONDS:
            await self._flush(pool, key.id, window)
        if window.shared + window.unflushed > key.rate_per_minute:
            raise RateLimited(max(1, math.ceil(60 - now % 60)))

    def _window(self, key_id: str, minute: int) -> _Minute:
        window = self._minutes.get(key_id)
        if window is None or window.minute != minute:
            window = self._minutes[key_id] = _Minute(minute)
        return window

    async def _flush(self, pool: asyncpg.Pool, key_id: str, window: _Minute) -> None:
        calls, window.unflushed, window.flushed_at = window.unflushed, 0, time.monotonic()
        try:
            async with connection(pool) as conn:
                shared = await stored_keys.add_calls(conn, key_id, window.minute, calls)
        except BaseException:
            window.unflushed += calls  # not added: counted again with the next flush
            raise
        window.shared = max(window.shared, shared)


WRONG_KEYS_PER_MINUTE = 10
MAX_ADDRESSES_REMEMBERED = 10_000


class WrongKeys:
    """Addresses that sent wrong API keys lately, in memory (per process: cheap — a guessing address never
    reaches the database more than WRONG_KEYS_PER_MINUTE times a minute), for /mcp and /v1 alike."""

    def __init__(self) -> None:
        self._seen: dict[str, deque[float]] = {}

    def note(self, address: str) -> None:
        times = self._seen.setdefault(address, deque(maxlen=WRONG_KEYS_PER_MINUTE))
        times.append(time.monotonic())
        if len(self._seen) > MAX_ADDRESSES_REMEMBERED:
            self._seen.pop(next(iter(self._seen)))

    def refuse_if_paused(self, address: str) -> None:
        times = self._seen.get(address)
        if times is not None and len(times) == WRONG_KEYS_PER_MINUTE and time.monotonic() - times[0] < 60:
            raise TooManyWrongKeys()
