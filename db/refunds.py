"""Refunds: recorded before the provider is asked, one per (customer, idempotency key)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import asyncpg

from server.errors import ChargeInProgress, PaymentNotFound


class RefundStatus(StrEnum):
    CREATED = "created"
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


OPEN = (RefundStatus.CREATED, RefundStatus.PENDING)


@dataclass(frozen=True)
class Refund:
    id: str
    payment_id: str
    tenant_id: str
    customer_id: str
    idempotency_key: str
    request: dict[str, Any]
    amount_minor: int
    currency: str
    reason: str | None
    status: RefundStatus
    provider_refund_id: str | None
    failure_reason: str | None
    submit_lease_until: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Refund:
        fields = dict(row)
        return cls(**{**fields, "status": RefundStatus(fields["status"])})


def new_refund_id() -> str:
    return "rf_" + secrets.token_hex(12)


async def by_key(
    connection: asyncpg.Connection, tenant_id: str, customer_id: str, idempotency_key: str
) -> Refund | None:
    row = await connection.fetchrow(
        "SELECT * FROM refunds WHERE tenant_id = $1 AND customer_id = $2 AND idempotency_key = $3 FOR UPDATE",
        tenant_id,
        customer_id,
        idempotency_key,
    )
    return Refund.from_row(row) if row else None


async def get(connection: asyncpg.Connection, refund_id: str, *, tenant_id: str | None) -> Refund | None:
    """The refund, if it belongs to `tenant_id` (None: any tenant, for paywarden's own paths)."""
    row = await connection.fetchrow(
        "SELECT * FROM refunds WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2)", refund_id, tenant_id
    )
    return Refund.from_row(row) if row else None


async def lock(connection: asyncpg.Connection, refund_id: str) -> Refund | None:
    row = await connection.fetchrow("SELECT * FROM refunds WHERE id = $1 FOR UPDATE", refund_id)
    return Refund.from_row(row) if row else None


async def get_by_provider_id(
    connection: asyncpg.Connection, provider_refund_id: str, *, tenant_id: str | None
) -> Refund | None:
    row = await connection.fetchrow(
        "SELECT * FROM refunds WHERE provider_refund_id = $1 AND ($2::text IS NULL OR tenant_id = $2)",
        provider_refund_id,
        tenant_id,
    )
    return Refund.from_row(row) if row else None


async def in_flight_total(connection: asyncpg.Connection, payment_id: str) -> int:
    """What refunds not yet settled hold back from the payment's refundable amount."""
    return await connection.fetchval(
        "SELECT coalesce(sum(amount_minor), 0)::bigint FROM refunds WHERE payment_id = $1 AND status = ANY($2::text[])",
        payment_id,
        list(OPEN),
    )


async def insert(
    connection: asyncpg.Connection,
    *,
    refund_id: str,
    payment_id: str,
    customer_id: str,
    idempotency_key: str,
    request: dict[str, Any],
    amount_minor: int,
    currency: str,
    reason: str | None,
    lease_seconds: float | None,
    provider_refund_id: str | None = None,
) -> Refund:
    """The new refund (of the payment's tenant). Raises ChargeInProgress when another refund took the
    same key at the same moment (on another of the customer's payments, so no row lock ordered them)."""
    try:
        row = await connection.fetchrow(
            """
            INSERT INTO refunds (id, payment_id, customer_id, idempotency_key, request, amount_minor, currency,
                                 reason, provider_refund_id, submit_lease_until, tenant_id)
            SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, now() + make_interval(secs => $10), tenant_id
              FROM payments WHERE id = $2
            RETURNING *
            """,
            refund_id,
            payment_id,
            customer_id,
            idempotency_key,
            request,
            amount_minor,
            currency,
            reason,
            provider_refund_id,
            lease_seconds,
        )
    except asyncpg.UniqueViolationError:
        raise ChargeInProgress("Another refund with this idempotency_key is being recorded; retry shortly.") from None
    if row is None:
        raise PaymentNotFound(f"No payment with payment_id {payment_id!r} to refund.")
    return Refund.from_row(row)


async def take_lease(connection: asyncpg.Connection, refund_id: str, lease_seconds: float) -> Refund | None:
    row = await connection.fetchrow(
        """
        UPDATE refunds SET submit_lease_until = now() + make_interval(secs => $2)
         WHERE id = $1 AND status = 'created' AND (submit_lease_until IS NULL OR submit_lease_until < now())
        RETURNING *
        """,
        refund_id,
        lease_seconds,
    )
    return Refund.from_row(row) if row else None


async def release_lease(connection: asyncpg.Connection, refund_id: str, held_until: datetime | None) -> None:
    await connection.execute(
        "UPDATE refunds SET submit_lease_until = NULL WHERE id = $1 AND submit_lease_until = $2",
        refund_id,
        held_until,
    )


async def unsubmitted(connection: asyncpg.Connection, *, limit: int) -> list[Refund]:
    rows = await connection.fetch(
        """
        SELECT * FROM refunds
         WHERE status = 'created' AND (submit_lease_until IS NULL OR submit_lease_until < now())
           AND created_at > now() - interval '23 hours'
         ORDER BY created_at LIMIT $1
        """,
        limit,
    )
    return [Refund.from_row(row) for row in rows]


async def awaiting_provider(connection: asyncpg.Connection, *, quiet_for_seconds: float, limit: int) -> list[Refund]:
    rows = await connection.fetch(
        """
        SELECT * FROM refunds
         WHERE status = 'pending' AND provider_refund_id IS NOT NULL
           AND updated_at < now() - make_interval(secs => $1)
         ORDER BY updated_at LIMIT $2
        """,
        quiet_for_seconds,
        limit,
    )
    return [Refund.from_row(row) for row in rows]


async def set_status(
    connection: asyncpg.Connection,
    refund_id: str,
    status: RefundStatus,
    *,
    provider_refund_id: str | None,
    failure_reason: str | None,
) -> Refund:
    row = await connection.fetchrow(
        """
        UPDATE refunds
           SET status = $2, provider_refund_id = coalesce(provider_refund_id, $3), failure_reason = $4,
               submit_lease_until = NULL, updated_at = now()
         WHERE id = $1
        RETURNING *
        """,
        refund_id,
        status,
        provider_refund_id,
        failure_reason,
    )
    return Refund.from_row(row)


async def for_payment(connection: asyncpg.Connection, payment_id: str) -> list[Refund]:
    """Every refund of the payment, oldest first."""
    rows = await connection.fetch("SELECT * FROM refunds WHERE payment_id = $1 ORDER BY created_at, id", payment_id)
    return [Refund.from_row(row) for row in rows]
