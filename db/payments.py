"""Payments: the row written before the provider is called, and its status changes."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

STATUSES = (
    "created",
    "pending",
    "requires_action",
    "processing",
    "succeeded",
    "failed",
    "canceled",
    "refunded",
)


@dataclass(frozen=True)
class Payment:
    id: str
    customer_id: str
    product_id: str | None
    amount_minor: int
    currency: str
    description: str | None
    payment_method: str | None
    grants: list[dict[str, Any]]
    status: str
    provider: str
    provider_payment_id: str | None
    next_action_url: str | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Payment:
        return cls(**dict(row))


@dataclass(frozen=True)
class NewPayment:
    customer_id: str
    product_id: str | None
    amount_minor: int
    currency: str
    description: str | None
    payment_method: str | None
    grants: list[dict[str, Any]]
    provider: str


def new_payment_id() -> str:
    return "pay_" + secrets.token_hex(12)


async def insert(connection: asyncpg.Connection, payment_id: str, new: NewPayment) -> Payment:
    row = await connection.fetchrow(
        """
        INSERT INTO payments (id, customer_id, product_id, amount_minor, currency, description,
                              payment_method, grants, provider)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        RETURNING *
        """,
        payment_id,
        new.customer_id,
        new.product_id,
        new.amount_minor,
        new.currency,
        new.description,
        new.payment_method,
        new.grants,
        new.provider,
    )
    return Payment.from_row(row)


async def get(connection: asyncpg.Connection, payment_id: str) -> Payment | None:
    row = await connection.fetchrow("SELECT * FROM payments WHERE id = $1", payment_id)
    return Payment.from_row(row) if row else None


async def lock(connection: asyncpg.Connection, payment_id: str) -> Payment | None:
    """The payment, row-locked until the transaction ends."""
    row = await connection.fetchrow("SELECT * FROM payments WHERE id = $1 FOR UPDATE", payment_id)
    return Payment.from_row(row) if row else None


async def lock_by_provider_id(
    connection: asyncpg.Connection, provider: str, provider_payment_id: str
) -> Payment | None:
    row = await connection.fetchrow(
        "SELECT * FROM payments WHERE provider = $1 AND provider_payment_id = $2 FOR UPDATE",
        provider,
        provider_payment_id,
    )
    return Payment.from_row(row) if row else None


async def update_status(
    connection: asyncpg.Connection,
    payment_id: str,
    status: str,
    *,
    provider_payment_id: str | None,
    next_action_url: str | None,
    failure_reason: str | None,
) -> Payment:
    row = await connection.fetchrow(
        """
        UPDATE payments
           SET status = $2,
               provider_payment_id = coalesce(provider_payment_id, $3),
               next_action_url = $4,
               failure_reason = $5,
               updated_at = now()
         WHERE id = $1
        RETURNING *
        """,
        payment_id,
        status,
        provider_payment_id,
        next_action_url,
        failure_reason,
    )
    return Payment.from_row(row)


async def attach_provider_id(connection: asyncpg.Connection, payment_id: str, provider_payment_id: str) -> None:
    await connection.execute(
        "UPDATE payments SET provider_payment_id = $2 WHERE id = $1 AND provider_payment_id IS NULL",
        payment_id,
        provider_payment_id,
    )


async def has_open_payment_for(connection: asyncpg.Connection, customer_id: str, product_ids: list[str]) -> str | None:
    """The newest not-yet-settled payment of this customer for any of these products."""
    return await connection.fetchval(
        """
        SELECT id FROM payments
         WHERE customer_id = $1 AND product_id = ANY($2::text[])
           AND status IN ('created', 'pending', 'requires_action', 'processing')
         ORDER BY created_at DESC LIMIT 1
        """,
        customer_id,
        product_ids,
    )
