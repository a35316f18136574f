"""Disputes: the row per provider dispute, its moves and append-only trail, and the credits it holds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


@dataclass(frozen=True, kw_only=True)
class Dispute:
    tenant_id: str
    id: str
    provider: str
    payment_id: str
    customer_id: str
    amount_minor: int
    currency: str
    reason: str
    status: str
    policy: str
    evidence_due_by: datetime | None
    funds_withdrawn_at: datetime | None
    funds_reinstated_at: datetime | None
    evidence: dict[str, Any] | None
    evidence_staged_at: datetime | None
    evidence_submitted_at: datetime | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record | None) -> Dispute | None:
        return cls(**dict(row)) if row else None


@dataclass(frozen=True, kw_only=True)
class NewDispute:
    tenant_id: str
    id: str
    provider: str
    payment_id: str
    customer_id: str
    amount_minor: int
    currency: str
    reason: str
    status: str
    policy: str
    evidence_due_by: datetime | None
    closed: bool


async def lock(connection: asyncpg.Connection, tenant_id: str, dispute_id: str) -> Dispute | None:
    row = await connection.fetchrow(
        "SELECT * FROM disputes WHERE tenant_id = $1 AND id = $2 FOR UPDATE", tenant_id, dispute_id
    )
    return Dispute.from_row(row)


async def get(connection: asyncpg.Connection, dispute_id: str, *, tenant_id: str | None) -> Dispute | None:
    """`tenant_id=None` for paywarden's own paths (operator commands), which see every tenant."""
    row = await connection.fetchrow(
        "SELECT * FROM disputes WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2)", dispute_id, tenant_id
    )
    return Dispute.from_row(row)


async def insert(connection: asyncpg.Connection, new: NewDispute, *, actor: str, reason: str | None) -> Dispute:
    """The dispute as first heard of, and its first audit row, in one statement."""
    row = await connection.fetchrow(
        """
        WITH inserted AS (
            INSERT INTO disputes (tenant_id, id, provider, payment_id, amount_minor, currency, reason, status,
                                  policy, evidence_due_by, closed_at, customer_id)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, CASE WHEN $11 THEN now() END, $14)
            RETURNING *
        ), audited AS (
            INSERT INTO dispute_audit (tenant_id, dispute_id, payment_id, actor, action, to_status, reason)
            SELECT tenant_id, id, payment_id, $12, 'opened', status, $13 FROM inserted
        )
        SELECT * FROM inserted
        """,
        new.tenant_id,
        new.id,
        new.provider,
        new.payment_id,
        new.amount_minor,
        new.currency,
        new.reason,
        new.status,
        new.policy,
        new.evidence_due_by,
        new.closed,
        actor,
        reason,
        new.customer_id,
    )
    return Dispute(**dict(row))


async def move(
    connection: asyncpg.Connection,
    locked: Dispute,
    status: str,
    *,
    closed: bool,
    evidence_due_by: datetime | None,
    actor: str,
    reason: str | None,
) -> Dispute:
    """Move the (locked) dispute to `status` and append its audit row, in one statement."""
    row = await connection.fetchrow(
        """
        WITH moved AS (
            UPDATE disputes
               SET status = $3, updated_at = now(), evidence_due_by = coalesce($5, evidence_due_by),
                   closed_at = CASE WHEN $4 THEN now() END
             WHERE tenant_id = $1 AND id = $2
            RETURNING *
        ), audited AS (
            INSERT INTO dispute_audit (tenant_id, dispute_id, payment_id, actor, action, from_status, to_status, reason)
            SELECT tenant_id, id, payment_id, $6, 'moved', $7, status, $8 FROM moved
        )
        SELECT * FROM moved
        """,
        locked.tenant_id,
        locked.id,
        status,
        closed,
        evidence_due_by,
        actor,
        locked.status,
        reason,
    )
    return Dispute(**dict(row))


async def record_funds(
    connection: asyncpg.Connection, locked: Dispute, *, withdrawn: bool, actor: str, reason: str | None
) -> Dispute | None:
    """Note that the provider took the disputed money (or gave it back); None when that was noted already."""
    column = "funds_withdrawn_at" if withdrawn else "funds_reinstated_at"
    row = await connection.fetchrow(
        f"""
        WITH noted AS (
            UPDATE disputes SET {column} = now(), updated_at = now()
             WHERE tenant_id = $1 AND id = $2 AND {column} IS NULL
            RETURNING *
        ), audited AS (
            INSERT INTO dispute_audit (tenant_id, dispute_id, payment_id, actor, action, from_status, to_status, reason)
            SELECT tenant_id, id, payment_id, $3, $4, status, status, $5 FROM noted
        )
        SELECT * FROM noted
        """,
        locked.tenant_id,
        locked.id,
        actor,
        "funds_withdrawn" if withdrawn else "funds_reinstated",
        reason,
    )
    return Dispute.from_row(row)


async def append_audit(
    connection: asyncpg.Connection, dispute: Dispute, *, actor: str, action: str, reason: str | None
) -> None:
    await connection.execute(
        """
        INSERT INTO dispute_audit (tenant_id, dispute_id, payment_id, actor, action, from_status, to_status, reason)
        VALUES ($1, $2, $3, $4, $5, $6, $6, $7)
        """,
        dispute.tenant_id,
        dispute.id,
        dispute.payment_id,
        actor,
        action,
        dispute.status,
        reason,
    )


async def save_evidence(
    connection: asyncpg.Connection, dispute: Dispute, evidence: dict[str, Any], *, submitted: bool
) -> None:
    await connection.execute(
        """
        UPDATE disputes SET evidence = $3, evidence_staged_at = now(), updated_at = now(),
               evidence_submitted_at = CASE WHEN $4 THEN now() ELSE evidence_submitted_at END
         WHERE tenant_id = $1 AND id = $2
        """,
        dispute.tenant_id,
        dispute.id,
        evidence,
        submitted,
    )


async def of_payment(connection: asyncpg.Connection, tenant_id: str, payment_id: str) -> list[Dispute]:
    rows = await connection.fetch(
        "SELECT * FROM disputes WHERE tenant_id = $1 AND payment_id = $2 ORDER BY created_at", tenant_id, payment_id
    )
    return [Dispute(**dict(row)) for row in rows]


async def of_customer(connection: asyncpg.Connection, tenant_id: str, customer_id: str, limit: int) -> list[Dispute]:
    rows = await connection.fetch(
        """
        SELECT * FROM disputes WHERE tenant_id = $1 AND customer_id = $2 ORDER BY created_at DESC LIMIT $3
        """,
        tenant_id,
        customer_id,
        limit,
    )
    return [Dispute(**dict(row)) for row in rows]


async def hold_credits(connection: asyncpg.Connection, dispute: Dispute, lot_id: int, quantity: int) -> None:
    await connection.execute(
        "INSERT INTO dispute_credit_holds (tenant_id, dispute_id, lot_id, quantity) VALUES ($1, $2, $3, $4)",
        dispute.tenant_id,
        dispute.id,
        lot_id,
        quantity,
    )


async def resolve_credit_holds(connection: asyncpg.Connection, dispute: Dispute) -> list[tuple[int, int]]:
    """Close the dispute's credit holds; (lot id, quantity) of each that was open."""
    rows = await connection.fetch(
        """
        UPDATE dispute_credit_holds SET resolved_at = now()
         WHERE tenant_id = $1 AND dispute_id = $2 AND resolved_at IS NULL
        RETURNING lot_id, quantity
        """,
        dispute.tenant_id,
        dispute.id,
    )
    return sorted((row["lot_id"], row["quantity"]) for row in rows)


async def suspend_entitlements(connection: asyncpg.Connection, tenant_id: str, payment_id: str) -> int:
    result = await connection.execute(
        """
        UPDATE entitlements SET suspended_at = now()
         WHERE tenant_id = $1 AND payment_id = $2 AND revoked_at IS NULL AND suspended_at IS NULL
        """,
        tenant_id,
        payment_id,
    )
    return int(result.split()[-1])


async def restore_entitlements(connection: asyncpg.Connection, tenant_id: str, payment_id: str) -> int:
    result = await connection.execute(
        """
        UPDATE entitlements SET suspended_at = NULL
         WHERE tenant_id = $1 AND payment_id = $2 AND suspended_at IS NOT NULL
        """,
        tenant_id,
        payment_id,
    )
    return int(result.split()[-1])


async def credits_held(connection: asyncpg.Connection, tenant_id: str, customer_id: str, feature: str) -> int:
    """Credits of this account held by open disputes."""
    return await connection.fetchval(
        """
        SELECT coalesce(sum(h.quantity), 0)::bigint
          FROM dispute_credit_holds h JOIN credit_lots l ON l.tenant_id = h.tenant_id AND l.id = h.lot_id
         WHERE h.tenant_id = $1 AND l.customer_id = $2 AND l.feature = $3 AND h.resolved_at IS NULL
        """,
        tenant_id,
        customer_id,
        feature,
    )
