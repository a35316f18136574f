"""The payment state machine: the one place a payment's status changes.

    created → requires_approval → created (approved) | canceled (rejected)
    created → pending | requires_action | processing → succeeded | failed | canceled
    succeeded → partially_refunded → refunded;  succeeded → refunded

Terminal states never move backwards. A change that the machine does not allow (an
out-of-order or stale provider event) is reported, never applied. Every applied change is
audited, and the change to `succeeded` grants the payment's entitlements — all inside the
caller's transaction, on a payment row the caller has locked.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from db import audit, credit_moves, entitlements, payments
from db.payments import Payment

_SETTLED = frozenset({"succeeded", "failed", "canceled"})
ALLOWED: dict[str, frozenset[str]] = {
    "created": frozenset({"requires_approval", "pending", "requires_action", "processing"}) | _SETTLED,
    "requires_approval": frozenset({"created", "canceled"}),
    "pending": frozenset({"requires_action", "processing"}) | _SETTLED,
    "requires_action": frozenset({"processing"}) | _SETTLED,
    "processing": _SETTLED,
    "succeeded": frozenset({"partially_refunded", "refunded"}),
    "partially_refunded": frozenset({"refunded"}),
    "failed": frozenset(),
    "canceled": frozenset(),
    "refunded": frozenset(),
}
OPEN_STATUSES = frozenset({"created", "pending", "requires_action", "processing"})
PAID_STATUSES = frozenset({"succeeded", "partially_refunded"})


@dataclass(frozen=True)
class Transition:
    to_status: str
    actor: str
    reason: str | None = None
    provider_payment_id: str | None = None
    next_action_url: str | None = None
    failure_reason: str | None = None
    api_key_id: str | None = None
    """The API key the agent acted with, for the audit row."""


@dataclass(frozen=True)
class TransitionResult:
    applied: bool
    payment: Payment
    note: str | None = None


async def apply(connection: asyncpg.Connection, locked: Payment, change: Transition) -> TransitionResult:
    if change.provider_payment_id and not locked.provider_payment_id:
        await payments.attach_provider_id(connection, locked.id, change.provider_payment_id)
    if locked.status == change.to_status:
        return TransitionResult(False, locked, f"payment is already {locked.status}")
    if change.to_status not in ALLOWED[locked.status]:
        note = f"out of order: payment is {locked.status} and cannot move to {change.to_status}"
        return TransitionResult(False, locked, note)
    updated = await payments.update_status(
        connection,
        locked.id,
        change.to_status,
        provider_payment_id=change.provider_payment_id,
        next_action_url=change.next_action_url if change.to_status == "requires_action" else None,
        failure_reason=change.failure_reason if change.to_status in ("failed", "canceled") else None,
    )
    await audit.append(
        connection,
        locked.id,
        actor=change.actor,
        from_status=locked.status,
        to_status=change.to_status,
        reason=change.reason,
        api_key_id=change.api_key_id,
    )
    if change.to_status == "succeeded":
        await entitlements.grant_for_payment(connection, updated)
        await credit_moves.grant_for_payment(connection, updated)
    if change.to_status == "refunded":
        await entitlements.revoke_for_payment(connection, updated)
        await credit_moves.revoke_for_payment(connection, updated)
    if change.to_status == "succeeded" and updated.refunded_minor > 0:
        # A refund the provider reported before its success event: settle it now.
        to = "refunded" if updated.refunded_minor >= updated.amount_minor else "partially_refunded"
        reason = "refunds recorded before the payment's success"
        return await apply(connection, updated, Transition(to_status=to, actor=change.actor, reason=reason))
    return TransitionResult(True, updated)
