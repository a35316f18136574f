"""The asyncpg pool, and the one place where a dead database becomes a domain error."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import ParamSpec, TypeVar

import asyncpg

from server.errors import DatabaseUnavailable

# What asyncpg raises when the server is gone, refuses us, or is shutting down.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.InternalClientError,  # a connection the server closed under us, caught mid-protocol
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InvalidCatalogNameError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
)


async def _init_connection(connection: asyncpg.Connection) -> None:
    await connection.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


class SessionFreeConnection(asyncpg.Connection):
    """A pooled connection that is not reset on release. paywarden never leaves session state on a pooled
    connection (no session advisory locks, SET, LISTEN or cursors outside a transaction: a test checks the
    code for them), so the reset query asyncpg sends on every release (`RESET ALL`, `UNLISTEN *`,
    `pg_advisory_unlock_all()` …) would be a wasted round trip per request. An open transaction is still
    rolled back on release, whatever this says."""

    def get_reset_query(self) -> str:
        return ""


async def create_pool(
    database_url: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    pooler: str = "none",
    setup: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
) -> asyncpg.Pool:
    """`pooler="transaction"`: through a transaction-pooling PgBouncer, where a prepared statement may not
    outlive its transaction (asyncpg's statement cache is off). `setup` runs each time a connection is
    taken from the pool (the query-plan test has PostgreSQL report every plan to it)."""
    return await asyncpg.create_pool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        setup=setup,
        command_timeout=30,
        timeout=10,
        connection_class=SessionFreeConnection,
        statement_cache_size=0 if pooler == "transaction" else 100,
    )


@asynccontextmanager
async def translate_connection_errors() -> AsyncIterator[None]:
    """Turn "the database is not there" into DatabaseUnavailable; everything else passes through."""
    try:
        yield
    except CONNECTION_ERRORS as error:
        raise DatabaseUnavailable() from error


@asynccontextmanager
async def _acquire(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection. Any failure to get one — the server refusing connections for whatever
    reason (shutting down, not accepting, unknown database) — means the database is unavailable."""
    try:
        conn = await pool.acquire()
    except (*CONNECTION_ERRORS, asyncpg.PostgresError) as error:
        raise DatabaseUnavailable() from error
    try:
        yield conn
    finally:
        await pool.release(conn)


@asynccontextmanager
async def transaction(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    async with translate_connection_errors(), _acquire(pool) as connection, connection.transaction():
        yield connection


@asynccontextmanager
async def connection(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    async with translate_connection_errors(), _acquire(pool) as conn:
        yield conn


P = ParamSpec("P")
R = TypeVar("R")
logger = logging.getLogger(__name__)
RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


def retry_on_deadlock(operation: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Run the operation again when PostgreSQL picked its transaction as a deadlock victim.

    Only for operations that are whole transactions and safe to repeat (idempotent by key or by
    state): the victim's transaction was rolled back, so repeating it is the standard remedy.
    """

    @functools.wraps(operation)
    async def again(*args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(4):
            try:
                return await operation(*args, **kwargs)
            except RETRYABLE:
                if attempt == 3:
                    raise
                logger.info("%s was a deadlock victim; retrying", operation.__name__)
                await asyncio.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
        raise AssertionError("unreachable")

    return again
