"""The append-only audit trail of payment status changes (the database refuses UPDATE and DELETE)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    from_status: str | None
    to_status: str
    reason: str | None


async def append(
    connection: asyncpg.Connection,
    payment_id: str,
    *,
    actor: str,
    from_status: str | None,
    to_status: str,
    reason: str | None,
) -> None:
    await connection.execute(
        """
        INSERT INTO payment_audit (payment_id, actor, from_status, to_status, reason)
        VALUES ($1, $2, $3, $4, $5)
        """,
        payment_id,
        actor,
        from_status,
        to_status,
        reason,
    )


async def timeline(connection: asyncpg.Connection, payment_id: str) -> list[AuditEntry]:
    rows = await connection.fetch(
        """
        SELECT created_at AS at, actor, from_status, to_status, reason
          FROM payment_audit WHERE payment_id = $1 ORDER BY id
        """,
        payment_id,
    )
    return [AuditEntry(**dict(row)) for row in rows]
