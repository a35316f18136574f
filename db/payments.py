"""Payments: the row written before the provider is called, and its status changes."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import asyncpg


class PaymentStatus(StrEnum):
    """Every status a payment can have; the state machine (server/ledger/payment_machine.py) says which
    moves are allowed, and a CHECK constraint keeps the column to these values."""

    CREATED = "created"
    REQUIRES_APPROVAL = "requires_approval"
    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


@dataclass(frozen=True, kw_only=True)
class NewPayment:
    """A payment as priced, before it is recorded."""

    tenant_id: str
    api_key_id: str | None
    """The API key that asked for it (None for a local caller): its 24-hour budget counts this payment."""
    customer_id: str
    product_id: str | None
    amount_minor: int
    currency: str
    description: str | None
    payment_method: str | None
    grants: list[dict[str, Any]]
    provider: str
    provider_customer_id: str | None = None
    off_session: bool = False
    """Charged to the customer's saved `payment_method` while the person is away."""


@dataclass(frozen=True, kw_only=True)
class Payment(NewPayment):
    """A recorded payment: what was priced, and where it stands."""

    id: str
    status: PaymentStatus
    provider_payment_id: str | None
    next_action_url: str | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime
    submit_lease_until: datetime | None
    approval_reason: str | None
    refunded_minor: int
    charged_at: datetime
    verified_at: datetime | None = None
    """When the reconciler confirmed a success with the provider's own record."""
    attention: str | None = None
    """Set when something about the payment needs an operator (e.g. the provider does not show it paid)."""
    provider_checkout_id: str | None = None
    """The provider's payment page (a Checkout Session) the person pays on, when there is one."""
    receipt_number: int | None = None
    """The tenant's receipt number, given as the transaction that moved the payment to succeeded commits (a
    trigger: the tenant's counter is locked only while that commit happens)."""
    receipt_token: str | None = None
    """The unguessable part of the receipt page's address."""
    succeeded_at: datetime | None = None
    subscription_id: str | None = None
    """The subscription whose invoice this payment is."""
    provider_invoice_id: str | None = None

    @classmethod
    def from_row(cls, row: asyncpg.Record | dict[str, Any]) -> Payment:
        fields = dict(row)
        return cls(**{**fields, "status": PaymentStatus(fields["status"])})


@dataclass(frozen=True)
class Moved:
    payment: Payment
    disputed: bool
    """Moved to succeeded, with a dispute recorded before (always False for other moves)."""


def new_payment_id() -> str:
    return "pay_" + secrets.token_hex(12)


async def insert(
    connection: asyncpg.Connection, payment_id: str, new: NewPayment, *, lease_seconds: float | None
) -> Payment:
    """Insert as `created`; with `lease_seconds`, this caller holds the right to call the provider."""
    row = await connection.fetchrow(
        """
        INSERT INTO payments (id, customer_id, product_id, amount_minor, currency, description,
                              payment_method, grants, provider, submit_lease_until, tenant_id, api_key_id,
                              provider_customer_id, off_session)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now() + make_interval(secs => $10), $11, $12, $13, $14)
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
        lease_seconds,
        new.tenant_id,
        new.api_key_id,
        new.provider_customer_id,
        new.off_session,
    )
    return Payment.from_row(row)


async def take_lease(connection: asyncpg.Connection, payment_id: str, lease_seconds: float) -> Payment | None:
    """The payment, if it is `created` and nobody holds a live lease on it; the lease is now ours."""
    row = await connection.fetchrow(
        """
        UPDATE payments SET submit_lease_until = now() + make_interval(secs => $2)
         WHERE id = $1 AND status = 'created' AND (submit_lease_until IS NULL OR submit_lease_until < now())
        RETURNING *
        """,
        payment_id,
        lease_seconds,
    )
    return Payment.from_row(row) if row else None


async def set_approval_reason(connection: asyncpg.Connection, payment_id: str, reason: str) -> None:
    await connection.execute("UPDATE payments SET approval_reason = $2 WHERE id = $1", payment_id, reason)


async def release_lease(connection: asyncpg.Connection, payment_id: str, held_until: datetime | None) -> None:
    """Give up our lease; one another process has taken since (ours had run out) stays theirs."""
    await connection.execute(
        "UPDATE payments SET submit_lease_until = NULL WHERE id = $1 AND submit_lease_until = $2",
        payment_id,
        held_until,
    )


async def mark_charged_now(connection: asyncpg.Connection, payment_id: str) -> None:
    await connection.execute("UPDATE payments SET charged_at = now() WHERE id = $1", payment_id)


async def get(connection: asyncpg.Connection, payment_id: str, *, tenant_id: str | None) -> Payment | None:
    """The payment, if it belongs to `tenant_id`: another tenant's looks exactly like none at all.
    `tenant_id=None` is for paywarden's own paths (webhooks, reconciler, operator), which see every tenant."""
    row = await connection.fetchrow(
        "SELECT * FROM payments WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2)", payment_id, tenant_id
    )
    return Payment.from_row(row) if row else None


async def lock(connection: asyncpg.Connection, payment_id: str, *, tenant_id: str | None) -> Payment | None:
    """The payment (of `tenant_id`, as in `get`), row-locked until the transaction ends.

    FOR NO KEY UPDATE, the lock an UPDATE of the row takes: lockers of the payment still wait for each
    other, but a row that merely refers to the payment (a ledger entry, a lot, an audit row: a foreign-key
    check) does not wait for it — that wait closed a cycle with the credit account locks (a refund holds
    the payment and waits for an account whose holder is inserting an entry that refers to the payment)."""
    row = await connection.fetchrow(
        "SELECT * FROM payments WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2) FOR NO KEY UPDATE",
        payment_id,
        tenant_id,
    )
    return Payment.from_row(row) if row else None


async def lock_by_provider_id(
    connection: asyncpg.Connection, provider: str, provider_payment_id: str, *, tenant_id: str | None
) -> Payment | None:
    row = await connection.fetchrow(
        """
        SELECT * FROM payments WHERE provider = $1 AND provider_payment_id = $2
           AND ($3::text IS NULL OR tenant_id = $3)
           FOR NO KEY UPDATE
        """,
        provider,
        provider_payment_id,
        tenant_id,
    )
    return Payment.from_row(row) if row else None


async def lock_by_checkout_id(
    connection: asyncpg.Connection, provider: str, checkout_id: str, *, tenant_id: str | None
) -> Payment | None:
    row = await connection.fetchrow(
        """
        SELECT * FROM payments WHERE provider = $1 AND provider_checkout_id = $2
           AND ($3::text IS NULL OR tenant_id = $3)
           FOR NO KEY UPDATE
        """,
        provider,
        checkout_id,
        tenant_id,
    )
    return Payment.from_row(row) if row else None


async def move(
    connection: asyncpg.Connection,
    locked: Payment,
    status: str,
    *,
    provider_payment_id: str | None,
    next_action_url: str | None,
    failure_reason: str | None,
    actor: str,
    reason: str | None,
    api_key_id: str | None,
) -> Moved:
    """Move the (locked) payment to `status` and append its audit row, in one statement; a move to succeeded
    also says whether a dispute of the payment was heard of before (events come in any order)."""
    row = await connection.fetchrow(
        """
        WITH moved AS (
            UPDATE payments
               SET status = $3,
                   provider_payment_id = coalesce(provider_payment_id, $4),
                   next_action_url = $5,
                   failure_reason = $6,
                   submit_lease_until = CASE WHEN $3 = 'created' THEN submit_lease_until END,
                   succeeded_at = CASE WHEN $3 = 'succeeded' THEN now() ELSE succeeded_at END,
                   updated_at = now()
             WHERE tenant_id = $1 AND id = $2
            RETURNING *
        ), audited AS (
            INSERT INTO payment_audit (tenant_id, payment_id, actor, from_status, to_status, reason, api_key_id)
            SELECT tenant_id, id, $7, $8, status, $9, $10 FROM moved
        )
        SELECT moved.*, $3 = 'succeeded' AND EXISTS (
                   SELECT 1 FROM disputes d WHERE d.tenant_id = moved.tenant_id AND d.payment_id = moved.id
               ) AS disputed
          FROM moved
        """,
        locked.tenant_id,
        locked.id,
        status,
        provider_payment_id,
        next_action_url,
        failure_reason,
        actor,
        locked.status,
        reason,
        api_key_id,
    )
    fields = dict(row)
    disputed = fields.pop("disputed")
    return Moved(Payment.from_row(fields), disputed)


async def attach_provider_id(connection: asyncpg.Connection, payment_id: str, provider_payment_id: str) -> None:
    await connection.execute(
        "UPDATE payments SET provider_payment_id = $2 WHERE id = $1 AND provider_payment_id IS NULL",
        payment_id,
        provider_payment_id,
    )


async def attach_checkout_id(connection: asyncpg.Connection, payment_id: str, checkout_id: str) -> None:
    await connection.execute(
        "UPDATE payments SET provider_checkout_id = $2 WHERE id = $1 AND provider_checkout_id IS NULL",
        payment_id,
        checkout_id,
    )


async def set_next_action_url(connection: asyncpg.Connection, payment_id: str, url: str) -> Payment:
    row = await connection.fetchrow(
        "UPDATE payments SET next_action_url = $2, updated_at = now() WHERE id = $1 RETURNING *", payment_id, url
    )
    return Payment.from_row(row)


async def has_open_payment_for(
    connection: asyncpg.Connection, tenant_id: str, customer_id: str, product_ids: list[str]
) -> str | None:
    """The newest not-yet-settled payment of this customer for any of these products."""
    return await connection.fetchval(
        """
        SELECT id FROM payments
         WHERE tenant_id = $1 AND customer_id = $2 AND product_id = ANY($3::text[])
           AND status IN ('created', 'requires_approval', 'pending', 'requires_action', 'processing')
         ORDER BY created_at DESC LIMIT 1
        """,
        tenant_id,
        customer_id,
        product_ids,
    )


async def unsubmitted(connection: asyncpg.Connection, *, younger_than_hours: float, limit: int) -> list[Payment]:
    """`created` payments nobody is submitting (a crash, an outage), within the provider's idempotency window."""
    rows = await connection.fetch(
        """
        SELECT * FROM payments
         WHERE status = 'created' AND (submit_lease_until IS NULL OR submit_lease_until < now())
           AND charged_at > now() - make_interval(hours => $1)
         ORDER BY charged_at LIMIT $2
        """,
        younger_than_hours,
        limit,
    )
    return [Payment.from_row(row) for row in rows]


async def too_old_to_resubmit(connection: asyncpg.Connection, *, older_than_hours: float) -> list[str]:
    rows = await connection.fetch(
        """
        SELECT id FROM payments
         WHERE status = 'created' AND (submit_lease_until IS NULL OR submit_lease_until < now())
           AND charged_at <= now() - make_interval(hours => $1)
         ORDER BY charged_at
        """,
        older_than_hours,
    )
    return [row["id"] for row in rows]


async def held_longer_than(connection: asyncpg.Connection, *, hours: float, limit: int) -> list[str]:
    """Payments waiting in requires_approval for more than `hours`, oldest first."""
    rows = await connection.fetch(
        """
        SELECT id FROM payments
         WHERE status = 'requires_approval' AND updated_at < now() - make_interval(secs => $1 * 3600)
         ORDER BY updated_at LIMIT $2
        """,
        hours,
        limit,
    )
    return [row["id"] for row in rows]


async def awaiting_provider(connection: asyncpg.Connection, *, quiet_for_seconds: float, limit: int) -> list[Payment]:
    """Payments the provider has but has not settled, untouched for a while: worth asking it again."""
    rows = await connection.fetch(
        """
        SELECT * FROM payments
         WHERE status IN ('pending', 'requires_action', 'processing')
           AND (provider_payment_id IS NOT NULL OR provider_checkout_id IS NOT NULL)
           AND updated_at < now() - make_interval(secs => $1)
         ORDER BY updated_at LIMIT $2
        """,
        quiet_for_seconds,
        limit,
    )
    return [Payment.from_row(row) for row in rows]


async def add_refunded(connection: asyncpg.Connection, payment_id: str, amount_minor: int) -> Payment:
    row = await connection.fetchrow(
        """
        UPDATE payments SET refunded_minor = refunded_minor + $2, updated_at = now()
         WHERE id = $1 RETURNING *
        """,
        payment_id,
        amount_minor,
    )
    return Payment.from_row(row)


async def page_for_customer(
    connection: asyncpg.Connection,
    tenant_id: str,
    customer_id: str,
    status: str | None,
    limit: int,
    after: tuple[datetime, str] | None,
) -> list[Payment]:
    """Newest first, keyset-paginated on (created_at, id): stable however many payments arrive meanwhile, and
    an index range however deep the page (no cursor: before (infinity, ''), which is everything)."""
    rows = await connection.fetch(
        """
        SELECT * FROM payments
         WHERE tenant_id = $6 AND customer_id = $1 AND ($2::text IS NULL OR status = $2)
           AND (created_at, id) < (coalesce($3::timestamptz, 'infinity'), coalesce($4::text, ''))
         ORDER BY created_at DESC, id DESC
         LIMIT $5
        """,
        customer_id,
        status,
        after[0] if after else None,
        after[1] if after else None,
        limit,
        tenant_id,
    )
    return [Payment.from_row(row) for row in rows]


async def succeeded_unverified(connection: asyncpg.Connection, *, within_hours: float, limit: int) -> list[Payment]:
    """Payments that became succeeded in the last `within_hours` and were not checked with the provider since."""
    rows = await connection.fetch(
        """
        SELECT * FROM payments
         WHERE status = 'succeeded' AND verified_at IS NULL
           AND (provider_payment_id IS NOT NULL OR provider_checkout_id IS NOT NULL)
           AND updated_at > now() - make_interval(secs => $1 * 3600)
         ORDER BY updated_at LIMIT $2
        """,
        within_hours,
        limit,
    )
    return [Payment.from_row(row) for row in rows]


async def mark_verified(connection: asyncpg.Connection, payment_id: str) -> None:
    await connection.execute("UPDATE payments SET verified_at = now() WHERE id = $1", payment_id)


async def flag_attention(connection: asyncpg.Connection, payment_id: str, note: str) -> None:
    """Note for an operator that something about the payment needs checking (it stays as it is)."""
    await connection.execute("UPDATE payments SET attention = $2, verified_at = now() WHERE id = $1", payment_id, note)


async def needing_attention(connection: asyncpg.Connection, *, limit: int) -> list[Payment]:
    rows = await connection.fetch(
        "SELECT * FROM payments WHERE attention IS NOT NULL ORDER BY updated_at DESC LIMIT $1", limit
    )
    return [Payment.from_row(row) for row in rows]
