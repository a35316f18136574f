"""Customers at the provider, their saved payment methods, and the append-only trail of changes to them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from server.errors import InvalidRequest


@dataclass(frozen=True, kw_only=True)
class Customer:
    tenant_id: str
    provider: str
    customer_id: str
    provider_customer_id: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, kw_only=True)
class SavedMethod:
    """A saved card as paywarden keeps it: what it looks like, never card data."""

    provider: str
    provider_payment_method_id: str
    tenant_id: str
    customer_id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    is_default: bool
    saved_at: datetime


@dataclass(frozen=True)
class CardToCharge:
    """What charging a customer's default saved card off-session needs."""

    provider_payment_method_id: str
    provider_customer_id: str


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    detail: str | None
    api_key_id: str | None


async def get(connection: asyncpg.Connection, tenant_id: str, provider: str, customer_id: str) -> Customer | None:
    row = await connection.fetchrow(
        "SELECT * FROM customers WHERE tenant_id = $1 AND provider = $2 AND customer_id = $3",
        tenant_id,
        provider,
        customer_id,
    )
    return Customer(**dict(row)) if row else None


async def by_provider_id(connection: asyncpg.Connection, provider: str, provider_customer_id: str) -> Customer | None:
    row = await connection.fetchrow(
        "SELECT * FROM customers WHERE provider = $1 AND provider_customer_id = $2", provider, provider_customer_id
    )
    return Customer(**dict(row)) if row else None


async def insert(
    connection: asyncpg.Connection, tenant_id: str, provider: str, customer_id: str, provider_customer_id: str
) -> tuple[Customer, bool]:
    """The customer's row and whether this call wrote it; if another process inserted one first, theirs
    (the provider id it holds wins)."""
    row = await connection.fetchrow(
        """
        INSERT INTO customers (tenant_id, provider, customer_id, provider_customer_id) VALUES ($1, $2, $3, $4)
        ON CONFLICT (tenant_id, provider, customer_id) DO NOTHING
        RETURNING *
        """,
        tenant_id,
        provider,
        customer_id,
        provider_customer_id,
    )
    if row is not None:
        return Customer(**dict(row)), True
    found = await get(connection, tenant_id, provider, customer_id)
    assert found is not None
    return found, False


async def link(
    connection: asyncpg.Connection, tenant_id: str, provider: str, customer_id: str, provider_customer_id: str
) -> Customer:
    """Point the customer at this provider customer, creating or replacing its row."""
    try:
        row = await connection.fetchrow(
            """
            INSERT INTO customers (tenant_id, provider, customer_id, provider_customer_id) VALUES ($1, $2, $3, $4)
            ON CONFLICT (tenant_id, provider, customer_id)
            DO UPDATE SET provider_customer_id = EXCLUDED.provider_customer_id, updated_at = now()
            RETURNING *
            """,
            tenant_id,
            provider,
            customer_id,
            provider_customer_id,
        )
    except asyncpg.UniqueViolationError:
        raise InvalidRequest(
            f"Provider customer {provider_customer_id} is already linked to another customer."
        ) from None
    return Customer(**dict(row))


async def lock_customer(connection: asyncpg.Connection, tenant_id: str, provider: str, customer_id: str) -> None:
    """Serialise changes to one customer's provider link and saved methods across processes."""
    await connection.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('customer:' || $1 || chr(31) || $2 || chr(31) || $3, 0))",
        tenant_id,
        provider,
        customer_id,
    )


async def listing(connection: asyncpg.Connection, provider: str, tenant_id: str | None) -> list[Customer]:
    rows = await connection.fetch(
        """
        SELECT * FROM customers WHERE provider = $1 AND ($2::text IS NULL OR tenant_id = $2)
         ORDER BY tenant_id, customer_id
        """,
        provider,
        tenant_id,
    )
    return [Customer(**dict(row)) for row in rows]


async def saved_methods(
    connection: asyncpg.Connection, tenant_id: str, provider: str, customer_id: str
) -> list[SavedMethod]:
    """The default first, then newest first."""
    rows = await connection.fetch(
        """
        SELECT * FROM saved_payment_methods WHERE tenant_id = $1 AND provider = $2 AND customer_id = $3
         ORDER BY is_default DESC, saved_at DESC, provider_payment_method_id
        """,
        tenant_id,
        provider,
        customer_id,
    )
    return [SavedMethod(**dict(row)) for row in rows]


async def card_to_charge(
    connection: asyncpg.Connection, tenant_id: str, provider: str, customer_id: str
) -> CardToCharge | None:
    row = await connection.fetchrow(
        """
        SELECT m.provider_payment_method_id, c.provider_customer_id
          FROM saved_payment_methods m
          JOIN customers c USING (tenant_id, provider, customer_id)
         WHERE m.tenant_id = $1 AND m.provider = $2 AND m.customer_id = $3 AND m.is_default
        """,
        tenant_id,
        provider,
        customer_id,
    )
    return CardToCharge(row["provider_payment_method_id"], row["provider_customer_id"]) if row else None


async def save_method_as_default(connection: asyncpg.Connection, method: SavedMethod) -> bool:
    """Store the card as the customer's default (the previous default stays, as another saved card);
    False when it was already saved as the default."""
    already = await connection.fetchval(
        "SELECT is_default FROM saved_payment_methods WHERE provider = $1 AND provider_payment_method_id = $2",
        method.provider,
        method.provider_payment_method_id,
    )
    if already:
        return False
    await connection.execute(
        """
        UPDATE saved_payment_methods SET is_default = false
         WHERE tenant_id = $1 AND provider = $2 AND customer_id = $3 AND is_default
        """,
        method.tenant_id,
        method.provider,
        method.customer_id,
    )
    await connection.execute(
        """
        INSERT INTO saved_payment_methods (provider, provider_payment_method_id, tenant_id, customer_id, brand,
                                           last4, exp_month, exp_year, is_default)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, true)
        ON CONFLICT (tenant_id, provider, provider_payment_method_id) DO UPDATE SET is_default = true
        """,
        method.provider,
        method.provider_payment_method_id,
        method.tenant_id,
        method.customer_id,
        method.brand,
        method.last4,
        method.exp_month,
        method.exp_year,
    )
    return True


async def save_method(connection: asyncpg.Connection, method: SavedMethod) -> None:
    """Store a card as it is (default or not); nothing if it is already stored."""
    await connection.execute(
        """
        INSERT INTO saved_payment_methods (provider, provider_payment_method_id, tenant_id, customer_id, brand,
                                           last4, exp_month, exp_year, is_default)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        ON CONFLICT (tenant_id, provider, provider_payment_method_id) DO NOTHING
        """,
        method.provider,
        method.provider_payment_method_id,
        method.tenant_id,
        method.customer_id,
        method.brand,
        method.last4,
        method.exp_month,
        method.exp_year,
        method.is_default,
    )


async def lock_method(
    connection: asyncpg.Connection, provider: str, provider_payment_method_id: str, *, tenant_id: str | None
) -> SavedMethod | None:
    row = await connection.fetchrow(
        """
        SELECT * FROM saved_payment_methods WHERE provider = $1 AND provider_payment_method_id = $2
           AND ($3::text IS NULL OR tenant_id = $3)
           FOR UPDATE
        """,
        provider,
        provider_payment_method_id,
        tenant_id,
    )
    return SavedMethod(**dict(row)) if row else None


async def remove_method(connection: asyncpg.Connection, method: SavedMethod) -> None:
    """Forget the card; if it was the default, the newest remaining card becomes the default."""
    await connection.execute(
        "DELETE FROM saved_payment_methods WHERE provider = $1 AND provider_payment_method_id = $2",
        method.provider,
        method.provider_payment_method_id,
    )
    if method.is_default:
        await connection.execute(
            """
            UPDATE saved_payment_methods SET is_default = true
             WHERE (provider, provider_payment_method_id) = (
                   SELECT provider, provider_payment_method_id FROM saved_payment_methods
                    WHERE tenant_id = $1 AND provider = $2 AND customer_id = $3
                    ORDER BY saved_at DESC, provider_payment_method_id LIMIT 1)
            """,
            method.tenant_id,
            method.provider,
            method.customer_id,
        )


async def forget_methods(connection: asyncpg.Connection, tenant_id: str, provider: str, customer_id: str) -> int:
    """Every saved card of the customer (they belonged to the provider customer it no longer uses)."""
    result = await connection.execute(
        "DELETE FROM saved_payment_methods WHERE tenant_id = $1 AND provider = $2 AND customer_id = $3",
        tenant_id,
        provider,
        customer_id,
    )
    return int(result.split()[-1])


async def append_audit(
    connection: asyncpg.Connection,
    tenant_id: str,
    customer_id: str,
    *,
    actor: str,
    action: str,
    detail: str | None,
    api_key_id: str | None = None,
) -> None:
    await connection.execute(
        """
        INSERT INTO customer_audit (tenant_id, customer_id, actor, action, detail, api_key_id)
        VALUES ($1, $2, $3, $4, $5, $6)
        """,
        tenant_id,
        customer_id,
        actor,
        action,
        detail,
        api_key_id,
    )


async def audit_trail(connection: asyncpg.Connection, tenant_id: str, customer_id: str, limit: int) -> list[AuditEntry]:
    """The newest entries, newest first."""
    rows = await connection.fetch(
        """
        SELECT created_at AS at, actor, action, detail, api_key_id FROM customer_audit
         WHERE tenant_id = $1 AND customer_id = $2 ORDER BY id DESC LIMIT $3
        """,
        tenant_id,
        customer_id,
        limit,
    )
    return [AuditEntry(**dict(row)) for row in rows]


async def has_any_record(connection: asyncpg.Connection, tenant_id: str, customer_id: str) -> bool:
    """Does paywarden know this customer at all: a provider link, a payment, credits or an audit entry?"""
    return await connection.fetchval(
        """
        SELECT EXISTS (SELECT 1 FROM customers WHERE tenant_id = $1 AND customer_id = $2)
            -- Not EXISTS: PostgreSQL drops an EXISTS's ORDER BY, and then, for a customer with many payments,
            -- may expect a Seq Scan to meet one early; the newest payment is the customer index's first entry.
            OR (SELECT created_at FROM payments WHERE tenant_id = $1 AND customer_id = $2
                 ORDER BY created_at DESC LIMIT 1) IS NOT NULL
            -- credits that ever moved: a consume refused or a balance read opens an empty account, no record
            OR EXISTS (SELECT 1 FROM credit_ledger WHERE tenant_id = $1 AND customer_id = $2)
            OR EXISTS (SELECT 1 FROM customer_audit WHERE tenant_id = $1 AND customer_id = $2)
        """,
        tenant_id,
        customer_id,
    )
