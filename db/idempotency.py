"""Idempotency claims: one per (tenant, customer, key), taken in the same transaction as the payment insert."""

from __future__ import annotations

from typing import Any

import asyncpg


async def claim(
    connection: asyncpg.Connection,
    tenant_id: str,
    customer_id: str,
    idempotency_key: str,
    request: dict[str, Any],
    payment_id: str,
) -> bool:
    """True when this call took the key; False when an earlier request holds it.

    A concurrent claim of the same key waits on the unique index until the first
    transaction ends, then sees the conflict: exactly one caller ever wins.
    """
    won = await connection.fetchval(
        """
        INSERT INTO idempotency_keys (tenant_id, customer_id, idempotency_key, request, payment_id)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (tenant_id, customer_id, idempotency_key) DO NOTHING
        RETURNING true
        """,
        tenant_id,
        customer_id,
        idempotency_key,
        request,
        payment_id,
    )
    return bool(won)


async def get(
    connection: asyncpg.Connection, tenant_id: str, customer_id: str, idempotency_key: str
) -> asyncpg.Record | None:
    return await connection.fetchrow(
        """
        SELECT request, payment_id FROM idempotency_keys
         WHERE tenant_id = $3 AND customer_id = $1 AND idempotency_key = $2
        """,
        customer_id,
        idempotency_key,
        tenant_id,
    )
