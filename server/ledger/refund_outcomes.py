"""A refund's outcome, applied once: a success moves the payment to partially_refunded or refunded.

Called with the provider's synchronous answer and with its refund webhooks, in the caller's
transaction; whichever comes second finds the refund settled and changes nothing. A full refund
revokes the payment's entitlements (through the payment state machine), in the same transaction.
"""

from __future__ import annotations

import asyncpg

from db import audit, payments, refunds
from db.payments import Payment, PaymentStatus
from db.refunds import Refund, RefundStatus
from server import outbox
from server.errors import PaymentNotFound
from server.ledger import credit_moves, payment_machine
from server.money import format_amount


async def apply(
    conn: asyncpg.Connection,
    refund_id: str,
    status: RefundStatus,
    *,
    actor: str,
    provider_refund_id: str | None,
    failure_reason: str | None,
) -> Refund:
    unlocked = await refunds.get(conn, refund_id, tenant_id=None)
    if unlocked is None:
        raise PaymentNotFound(f"No refund {refund_id!r}.")
    payment = await payments.lock(conn, unlocked.payment_id, tenant_id=None)  # payment before refund, as everywhere
    current = await refunds.lock(conn, refund_id)
    assert payment is not None and current is not None  # foreign keys keep both
    if current.status not in refunds.OPEN or status in (RefundStatus.CREATED, current.status):
        return current
    updated = await refunds.set_status(
        conn, current.id, status, provider_refund_id=provider_refund_id, failure_reason=failure_reason
    )
    if status == RefundStatus.SUCCEEDED:
        await _count_refunded(conn, payment, current, actor)
    return updated


async def _count_refunded(conn: asyncpg.Connection, payment: Payment, refunded: Refund, actor: str) -> None:
    after = await payments.add_refunded(conn, payment.id, refunded.amount_minor)
    if after.refunded_minor < after.amount_minor:
        await credit_moves.revoke_share(conn, after, refunded.amount_minor)
    in_full = after.refunded_minor == after.amount_minor
    to_status = PaymentStatus.REFUNDED if in_full else PaymentStatus.PARTIALLY_REFUNDED
    why = f"refund {refunded.id} of {format_amount(refunded.amount_minor, refunded.currency)} succeeded"
    change = payment_machine.Transition(to_status=to_status, actor=actor, reason=why)
    result = await payment_machine.apply(conn, after, change)
    if not result.applied:  # partially refunded again: no status change, but the trail shows the money
        await audit.append(conn, payment.id, actor=actor, from_status=after.status, to_status=after.status, reason=why)
        if after.status in payment_machine.PAID:  # else its success, when it comes, reports the refund
            await outbox.payment_refunded(conn, after)
