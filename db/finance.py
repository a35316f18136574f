"""The ledger's side of money movements, for reconciliation against the provider's balance: charges (by when
they succeeded), refunds that went through, disputes' withdrawals and reinstatements."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True, kw_only=True)
class LedgerMovement:
    kind: str
    """charge, refund, dispute or dispute_reversal."""
    ledger_id: str
    """The payment (pay_…), refund (rf_…) or dispute (du_…) id."""
    payment_id: str
    tenant_id: str
    provider_id: str | None
    """The provider's id to match on: the payment intent, the refund, the dispute."""
    amount_minor: int
    """Signed, as the provider's balance shows it: a charge in, a refund or a withdrawal out."""
    currency: str
    status: str
    at: datetime


_MOVEMENTS = """
SELECT 'charge' AS kind, p.id AS ledger_id, p.id AS payment_id, p.tenant_id, p.provider_payment_id AS provider_id,
       p.amount_minor, p.currency::text, p.status, p.succeeded_at AS at
  FROM payments p
 WHERE {charges}
UNION ALL
SELECT 'refund', r.id, r.payment_id, r.tenant_id, r.provider_refund_id, -r.amount_minor, r.currency::text, r.status,
       r.updated_at
  FROM refunds r
 WHERE {refunds}
UNION ALL
SELECT 'dispute', d.id, d.payment_id, d.tenant_id, d.id, -d.amount_minor, d.currency::text, d.status,
       d.funds_withdrawn_at
  FROM disputes d
 WHERE {withdrawn}
UNION ALL
SELECT 'dispute_reversal', d.id, d.payment_id, d.tenant_id, d.id, d.amount_minor, d.currency::text, d.status,
       d.funds_reinstated_at
  FROM disputes d
 WHERE {reinstated}
"""


async def movements_between(
    connection: asyncpg.Connection, provider: str, since: datetime, until: datetime, tenant_id: str | None
) -> list[LedgerMovement]:
    """What the ledger says moved money at the provider in [since, until)."""
    tenant = "($4::text IS NULL OR {alias}.tenant_id = $4)"
    query = _MOVEMENTS.format(
        charges="p.succeeded_at >= $2 AND p.succeeded_at < $3 AND p.provider = $1 AND " + tenant.format(alias="p"),
        refunds="r.status = 'succeeded' AND r.updated_at >= $2 AND r.updated_at < $3 AND "
        + tenant.format(alias="r")
        + " AND EXISTS (SELECT 1 FROM payments p WHERE p.tenant_id = r.tenant_id AND p.id = r.payment_id"
        " AND p.provider = $1)",
        withdrawn="d.funds_withdrawn_at >= $2 AND d.funds_withdrawn_at < $3 AND d.provider = $1 AND "
        + tenant.format(alias="d"),
        reinstated="d.funds_reinstated_at >= $2 AND d.funds_reinstated_at < $3 AND d.provider = $1 AND "
        + tenant.format(alias="d"),
    )
    rows = await connection.fetch(query + " ORDER BY at, ledger_id", provider, since, until, tenant_id)
    return [LedgerMovement(**dict(row)) for row in rows]


async def movements_by_provider_ids(
    connection: asyncpg.Connection, provider: str, kind_and_ids: list[tuple[str, str]]
) -> list[LedgerMovement]:
    """What the ledger holds for these provider ids (`(kind, provider_id)`: charge → payment intent, refund →
    refund, dispute and dispute_reversal → dispute), whatever its status or time: money the provider moved in
    the period that the ledger dates otherwise, or another tenant's."""
    wanted = {kind: [pid for k, pid in kind_and_ids if k == kind] for kind in KINDS}
    rows = await connection.fetch(
        """
        SELECT 'charge' AS kind, id AS ledger_id, id AS payment_id, tenant_id, provider_payment_id AS provider_id,
               amount_minor, currency::text, status, coalesce(succeeded_at, updated_at) AS at
          FROM payments WHERE provider = $1 AND provider_payment_id = ANY($2::text[])
        UNION ALL
        SELECT 'refund', r.id, r.payment_id, r.tenant_id, r.provider_refund_id, -r.amount_minor, r.currency::text,
               r.status, r.updated_at
          FROM refunds r WHERE r.provider_refund_id = ANY($3::text[])
        UNION ALL
        SELECT 'dispute', d.id, d.payment_id, d.tenant_id, d.id, -d.amount_minor, d.currency::text, d.status,
               coalesce(d.funds_withdrawn_at, d.updated_at)
          FROM disputes d WHERE d.provider = $1 AND d.id = ANY($4::text[])
        UNION ALL
        SELECT 'dispute_reversal', d.id, d.payment_id, d.tenant_id, d.id, d.amount_minor, d.currency::text, d.status,
               coalesce(d.funds_reinstated_at, d.updated_at)
          FROM disputes d WHERE d.provider = $1 AND d.id = ANY($5::text[])
        """,
        provider,
        wanted["charge"],
        wanted["refund"],
        wanted["dispute"],
        wanted["dispute_reversal"],
    )
    return [LedgerMovement(**dict(row)) for row in rows]


KINDS = ("charge", "refund", "dispute", "dispute_reversal")
