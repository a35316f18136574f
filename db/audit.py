"""The append-only audit trail of payment status changes (the database refuses UPDATE and DELETE)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from server.errors import PaymentNotFound


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    from_status: str | None
    to_status: str
    reason: str | None
    api_key_id: str | None = None


async def append(
    connection: asyncpg.Connection,
    payment_id: str,
    *,
    actor: str,
    from_status: str | None,
    to_status: str,
    reason: str | None,
    api_key_id: str | None = None,
) -> None:
    """`api_key_id`: the key an agent acted with; None for paywarden itself, the provider, an operator."""
    inserted = await connection.execute(
        """
        INSERT INTO payment_audit (payment_id, actor, from_status, to_status, reason, tenant_id, api_key_id)
        SELECT $1, $2, $3, $4, $5, tenant_id, $6 FROM payments WHERE id = $1
        """,
        payment_id,
        actor,
        from_status,
        to_status,
        reason,
        api_key_id,
    )
    if inserted != "INSERT 0 1":
        raise PaymentNotFound(f"No payment with payment_id {payment_id!r} to audit.")


async def timeline(connection: asyncpg.Connection, payment_id: str) -> list[AuditEntry]:
    rows = await connection.fetch(
        """
        SELECT created_at AS at, actor, from_status, to_status, reason, api_key_id
          FROM payment_audit WHERE payment_id = $1 ORDER BY id
        """,
        payment_id,
    )
    return [AuditEntry(**dict(row)) for row in rows]
