"""The payment state machine: the one place a payment's status changes.

    created → requires_approval → created (approved) | canceled (rejected)
    created → pending | requires_action | processing → succeeded | failed | canceled
    succeeded → partially_refunded → refunded;  succeeded → refunded

Terminal states never move backwards. A change that the machine does not allow (an
out-of-order or stale provider event) is reported, never applied. Every applied change is
audited, the change to `succeeded` grants the payment's entitlements, and the merchant's outbox gets the
events these changes make (payment.*, approval.requested, entitlement.*) — all inside the caller's
transaction, on a payment row the caller has locked. The receipt number of a success is given by the database
as that transaction commits (migration 0114): a payment returned here has none yet.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from db import entitlements, payments
from db.payments import Payment, PaymentStatus
from server import metrics, outbox
from server.ledger import credit_moves, dispute_machine
from server.outbox import EventType

Status = PaymentStatus
SETTLED = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELED})
ALLOWED: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    Status.CREATED: frozenset({Status.REQUIRES_APPROVAL, Status.PENDING, Status.REQUIRES_ACTION, Status.PROCESSING})
    | SETTLED,
    Status.REQUIRES_APPROVAL: frozenset({Status.CREATED, Status.CANCELED}),
    Status.PENDING: frozenset({Status.REQUIRES_ACTION, Status.PROCESSING}) | SETTLED,
    Status.REQUIRES_ACTION: frozenset({Status.PROCESSING}) | SETTLED,
    Status.PROCESSING: SETTLED,
    Status.SUCCEEDED: frozenset({Status.PARTIALLY_REFUNDED, Status.REFUNDED}),
    Status.PARTIALLY_REFUNDED: frozenset({Status.REFUNDED}),
    Status.FAILED: frozenset(),
    Status.CANCELED: frozenset(),
    Status.REFUNDED: frozenset(),
}
OPEN_AT_PROVIDER = frozenset({Status.PENDING, Status.REQUIRES_ACTION, Status.PROCESSING})
"""The provider holds the payment and has not settled it: worth asking again when it stays quiet."""
PAID = frozenset({Status.SUCCEEDED, Status.PARTIALLY_REFUNDED})
"""Money was taken and (some of it) kept: what can be refunded."""
CHARGED = PAID | {Status.REFUNDED}
"""Money was taken, whether given back since or not."""


@dataclass(frozen=True, kw_only=True)
class Transition:
    to_status: PaymentStatus
    actor: str
    """agent, provider, webhook, reconciler, operator or person (see docs/architecture.md)."""
    reason: str | None = None
    provider_payment_id: str | None = None
    provider_checkout_id: str | None = None
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
    if change.provider_checkout_id and not locked.provider_checkout_id:
        await payments.attach_checkout_id(connection, locked.id, change.provider_checkout_id)
    if locked.status == change.to_status:
        if _brings_the_missing_page(locked, change):
            assert change.next_action_url is not None
            found = await payments.set_next_action_url(connection, locked.id, change.next_action_url)
            return TransitionResult(False, found, "payment is already requires_action; its page is now known")
        return TransitionResult(False, locked, f"payment is already {locked.status}")
    if change.to_status not in ALLOWED[locked.status]:
        note = f"out of order: payment is {locked.status} and cannot move to {change.to_status}"
        return TransitionResult(False, locked, note)
    moved = await payments.move(
        connection,
        locked,
        change.to_status,
        provider_payment_id=change.provider_payment_id,
        next_action_url=change.next_action_url if change.to_status == Status.REQUIRES_ACTION else None,
        failure_reason=change.failure_reason if change.to_status in (Status.FAILED, Status.CANCELED) else None,
        actor=change.actor,
        reason=change.reason,
        api_key_id=change.api_key_id,
    )
    updated = moved.payment
    metrics.PAYMENT_TRANSITIONS.labels(change.to_status).inc()
    grants = await _grant_or_revoke(connection, updated)
    if moved.disputed:
        await dispute_machine.after_success(connection, updated)
    await outbox.payment_moved(connection, updated, grants=grants)
    if change.to_status == Status.SUCCEEDED and updated.refunded_minor > 0:
        # A refund the provider reported before its success event: settle it now.
        to = Status.REFUNDED if updated.refunded_minor >= updated.amount_minor else Status.PARTIALLY_REFUNDED
        reason = "refunds recorded before the payment's success"
        return await apply(connection, updated, Transition(to_status=to, actor=change.actor, reason=reason))
    return TransitionResult(True, updated)


def _brings_the_missing_page(locked: Payment, change: Transition) -> bool:
    """A payment may wait for the person before its page is known (a saved card declined off-session for
    want of the person, reported before the provider's answer with the page): the page, when it comes."""
    return locked.status == Status.REQUIRES_ACTION and not locked.next_action_url and bool(change.next_action_url)


async def _grant_or_revoke(connection: asyncpg.Connection, payment: Payment) -> EventType | None:
    """Paid grants what the payment bought; refunded in full takes back what is unspent. What the merchant
    hears of it, if anything."""
    if payment.status == Status.SUCCEEDED:
        await entitlements.grant_for_payment(connection, payment)
        await credit_moves.grant_for_payment(connection, payment)
        return "entitlement.granted"
    if payment.status == Status.REFUNDED:
        await entitlements.revoke_for_payment(connection, payment)
        await credit_moves.revoke_for_payment(connection, payment)
        return "entitlement.revoked"
    return None
