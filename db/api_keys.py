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


REVOCATIONS = "paywarden_api_key_revoked"
"""The NOTIFY channel a revocation is announced on (at commit), so every process drops the key it cached."""


async def revoke(connection: asyncpg.Connection, key_id: str) -> ApiKey | None:
    """Revoke the key and announce it on REVOCATIONS; both take effect when the transaction commits."""
    row = await connection.fetchrow(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING *", key_id
    )
    if row is not None:
        await connection.execute("SELECT pg_notify($1, $2)", REVOCATIONS, key_id)
    return ApiKey.from_row(row) if row else None


async def is_active(connection: asyncpg.Connection, key_id: str) -> bool:
    return await connection.fetchval(
        "SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = $1 AND revoked_at IS NULL)", key_id
    )


async def any_key(connection: asyncpg.Connection) -> bool:
    return await connection.fetchval("SELECT EXISTS (SELECT 1 FROM api_keys)")


async def add_calls(connection: asyncpg.Connection, key_id: str, minute: int, calls: int) -> int:
    """Add `calls` to the key's count for `minute` (Unix minutes) and return the count every process has
    added so far. One upsert: concurrent adders, in any number of processes, never lose a call."""
    return await connection.fetchval(
        """
        INSERT INTO api_key_usage (api_key_id, minute, calls) VALUES ($1, to_timestamp($2 * 60), $3)
        ON CONFLICT (api_key_id, minute) DO UPDATE SET calls = api_key_usage.calls + excluded.calls
        RETURNING calls
        """,
        key_id,
        minute,
        calls,
    )


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
