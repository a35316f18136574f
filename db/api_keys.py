"""Tenants and their API keys (only a SHA-256 of each key is stored), and per-key call counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True)
class ApiKey:
    id: str
    tenant_id: str
    name: str
    shown_prefix: str
    scopes: list[str]
    budget_minor: int | None
    budget_currency: str | None
    rate_per_minute: int
    approval: str
    """Who approves its charges that need approval: `client` (the person, through the MCP client) or `operator`."""
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> ApiKey:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


async def ensure_tenant(connection: asyncpg.Connection, tenant_id: str, name: str) -> bool:
    """True when the tenant was created now."""
    created = await connection.fetchval(
        "INSERT INTO tenants (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING RETURNING true", tenant_id, name
    )
    return bool(created)


async def tenant_exists(connection: asyncpg.Connection, tenant_id: str) -> bool:
    return await connection.fetchval("SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1)", tenant_id)


async def insert(
    connection: asyncpg.Connection,
    *,
    key_id: str,
    tenant_id: str,
    name: str,
    secret_sha256: bytes,
    shown_prefix: str,
    scopes: list[str],
    budget_minor: int | None,
    budget_currency: str | None,
    rate_per_minute: int,
    approval: str,
) -> ApiKey:
    row = await connection.fetchrow(
        """
        INSERT INTO api_keys (id, tenant_id, name, secret_sha256, shown_prefix, scopes, budget_minor, budget_currency,
                              rate_per_minute, approval)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        RETURNING *
        """,
        key_id,
        tenant_id,
        name,
        secret_sha256,
        shown_prefix,
        scopes,
        budget_minor,
        budget_currency,
        rate_per_minute,
        approval,
    )
    return ApiKey.from_row(row)


async def get(connection: asyncpg.Connection, key_id: str) -> ApiKey | None:
    row = await connection.fetchrow("SELECT * FROM api_keys WHERE id = $1", key_id)
    return ApiKey.from_row(row) if row else None


async def active_by_secret(connection: asyncpg.Connection, secret_sha256: bytes) -> ApiKey | None:
    row = await connection.fetchrow(
        "SELECT * FROM api_keys WHERE secret_sha256 = $1 AND revoked_at IS NULL", secret_sha256
    )
    return ApiKey.from_row(row) if row else None


async def listing(connection: asyncpg.Connection, tenant_id: str | None) -> list[ApiKey]:
    rows = await connection.fetch(
        "SELECT * FROM api_keys WHERE $1::text IS NULL OR tenant_id = $1 ORDER BY tenant_id, created_at", tenant_id
    )
    return [ApiKey.from_row(row) for row in rows]


async def revoke(connection: asyncpg.Connection, key_id: str) -> ApiKey | None:
    row = await connection.fetchrow(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING *", key_id
    )
    return ApiKey.from_row(row) if row else None


async def any_key(connection: asyncpg.Connection) -> bool:
    return await connection.fetchval("SELECT EXISTS (SELECT 1 FROM api_keys)")


async def count_call(connection: asyncpg.Connection, key_id: str) -> tuple[int, float]:
    """This call's number within the key's current minute, and the seconds until that minute ends.

    One upsert: concurrent calls, in any number of processes, each get their own number."""
    row = await connection.fetchrow(
        """
        INSERT INTO api_key_usage (api_key_id, minute, calls) VALUES ($1, date_trunc('minute', now()), 1)
        ON CONFLICT (api_key_id, minute) DO UPDATE SET calls = api_key_usage.calls + 1
        RETURNING calls, extract(epoch FROM minute + interval '1 minute' - now())::float8 AS left_seconds
        """,
        key_id,
    )
    return row["calls"], row["left_seconds"]


async def forget_old_usage(connection: asyncpg.Connection) -> None:
    await connection.execute("DELETE FROM api_key_usage WHERE minute < now() - interval '1 hour'")


async def webhook_secret(connection: asyncpg.Connection, tenant_id: str) -> str | None:
    """The tenant's own webhook signing secret(s), comma-separated; None for no tenant endpoint."""
    return await connection.fetchval("SELECT webhook_secret FROM tenants WHERE id = $1", tenant_id)


async def set_webhook_secret(connection: asyncpg.Connection, tenant_id: str, secret: str | None) -> bool:
    updated = await connection.fetchval(
        "UPDATE tenants SET webhook_secret = $2 WHERE id = $1 RETURNING true", tenant_id, secret
    )
    return bool(updated)


async def tenants(connection: asyncpg.Connection) -> list[asyncpg.Record]:
    return await connection.fetch(
        """
        SELECT t.id, t.name, t.created_at, t.webhook_secret IS NOT NULL AS has_webhook_endpoint,
               count(k.id) FILTER (WHERE k.revoked_at IS NULL) AS active_keys
          FROM tenants t LEFT JOIN api_keys k ON k.tenant_id = t.id
         GROUP BY t.id ORDER BY t.id
        """
    )
