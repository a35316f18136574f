"""What every tool stands on: the pool, the provider and the catalog, owned by the server's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from mcp.server.mcpserver import Context

from server.catalog import Catalog
from server.providers import Provider


@dataclass(frozen=True)
class Services:
    pool: asyncpg.Pool
    provider: Provider
    catalog: Catalog


def services(ctx: Context) -> Services:
    return ctx.request_context.lifespan_context
