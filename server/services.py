"""What the running server stands on: the pool, the provider, the catalog and the settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg

from db.pool import create_pool
from server.catalog import Catalog, load_catalog
from server.config import Settings
from server.providers import Provider, open_provider


@dataclass(frozen=True)
class Services:
    pool: asyncpg.Pool
    provider: Provider
    catalog: Catalog
    settings: Settings
    local_tenant: str | None = None
    """The tenant a caller without an API key acts as (stdio, in-process); None where every call
    must carry a key (HTTP)."""


@asynccontextmanager
async def open_services(settings: Settings, *, local: bool = True) -> AsyncIterator[Services]:
    if settings.database_url is None:
        raise RuntimeError("open_services needs settings.database_url (the CLI resolves it)")
    catalog = load_catalog(settings.catalog_path)
    # min_size=0: the server starts, and answers "database unavailable", even while PostgreSQL is down.
    pool = await create_pool(settings.database_url, min_size=0)
    try:
        provider = open_provider(settings)
        try:
            local_tenant = settings.stdio_tenant if local else None
            yield Services(pool=pool, provider=provider, catalog=catalog, settings=settings, local_tenant=local_tenant)
        finally:
            await provider.close()
    finally:
        await pool.close()
