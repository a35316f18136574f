"""What a customer has been charged: the reads behind spend limits and the duplicate-charge guard.

Callers hold `lock_customer` for the rest of their transaction, so two charges for one customer
are checked and inserted one after the other, in any number of processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

COUNTED = "status NOT IN ('failed', 'canceled')"


@dataclass(frozen=True)
class WindowCharge:
    charged_at: datetime
    amount_minor: int


@dataclass(frozen=True)
class EarlierCharge:
    payment_id: str
    status: str
    created_at: datetime


async def lock_customer(connection: asyncpg.Connection, tenant_id: str, customer_id: str) -> None:
    await connection.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('charge:' || $1 || ':' || $2, 0))", tenant_id, customer_id
    )


async def lock_key(connection: asyncpg.Connection, api_key_id: str) -> None:
    """Taken after lock_customer (always in that order): one key's charges are checked one at a time."""
    await connection.execute("SELECT pg_advisory_xact_lock(hashtextextended('key:' || $1, 0))", api_key_id)


async def charges_in_last_day(
    connection: asyncpg.Connection,
    tenant_id: str,
    customer_id: str,
    currency: str,
    *,
    leaving_out: str | None = None,
) -> list[WindowCharge]:
    """Charges of the last 24 hours that hold money (refunds given back subtracted), oldest first.

    Held charges (requires_approval) count: approving them must not overshoot a limit.
    """
    rows = await connection.fetch(
        f"""
        SELECT charged_at, amount_minor - refunded_minor AS amount_minor FROM payments
         WHERE tenant_id = $4 AND customer_id = $1 AND currency = $2 AND charged_at > now() - interval '24 hours'
           AND {COUNTED} AND id IS DISTINCT FROM $3
         ORDER BY charged_at
        """,
        customer_id,
        currency,
        leaving_out,
        tenant_id,
    )
    return [WindowCharge(row["charged_at"], row["amount_minor"]) for row in rows]


async def key_charges_in_last_day(
    connection: asyncpg.Connection, api_key_id: str, currency: str, *, leaving_out: str | None = None
) -> list[WindowCharge]:
    """Like charges_in_last_day, for everything one API key charged (its budget)."""
    rows = await connection.fetch(
        f"""
        SELECT charged_at, amount_minor - refunded_minor AS amount_minor FROM payments
         WHERE api_key_id = $1 AND currency = $2 AND charged_at > now() - interval '24 hours' AND {COUNTED}
           AND id IS DISTINCT FROM $3
         ORDER BY charged_at
        """,
        api_key_id,
        currency,
        leaving_out,
    )
    return [WindowCharge(row["charged_at"], row["amount_minor"]) for row in rows]


async def earlier_same_charge(
    connection: asyncpg.Connection,
    *,
    tenant_id: str,
    customer_id: str,
    product_id: str | None,
    amount_minor: int,
    currency: str,
    description: str | None,
    within_seconds: int,
) -> EarlierCharge | None:
    """The newest live charge for the same product (or same amount and description) in the window."""
    row = await connection.fetchrow(
        f"""
        SELECT id, status, created_at FROM payments
         WHERE tenant_id = $7 AND customer_id = $1 AND {COUNTED}
           AND charged_at > now() - make_interval(secs => $6)
           AND CASE WHEN $2::text IS NOT NULL THEN product_id = $2
                    ELSE product_id IS NULL AND amount_minor = $3 AND currency = $4
                         AND description IS NOT DISTINCT FROM $5 END
         ORDER BY created_at DESC LIMIT 1
        """,
        customer_id,
        product_id,
        amount_minor,
        currency,
        description,
        float(within_seconds),
        tenant_id,
    )
    return EarlierCharge(row["id"], row["status"], row["created_at"]) if row else None


async def held_for_customer(connection: asyncpg.Connection, tenant_id: str, customer_id: str) -> int:
    """How many of the customer's charges wait for approval now."""
    return await connection.fetchval(
        "SELECT count(*) FROM payments WHERE tenant_id = $1 AND customer_id = $2 AND status = 'requires_approval'",
        tenant_id,
        customer_id,
    )
