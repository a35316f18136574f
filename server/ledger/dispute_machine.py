"""The dispute state machine: the one place a dispute's status changes, and what that does to what its
payment granted.

    warning_needs_response → warning_under_review → warning_closed      (an inquiry; no money moved)
    warning_* → needs_response → under_review → won | lost | prevented  (a chargeback)

Closed statuses never move. The first event heard of a dispute creates it in the status it reports
(events may arrive out of order: a `closed` before its `created`); a later event for a move the machine
does not allow is reported, never applied. Every change is audited in the caller's transaction, on the
payment row the caller has locked; the merchant's outbox gets dispute.opened and dispute.closed (and, for a
lost dispute, entitlement.revoked) in the same transaction.

With the `suspend` policy, a dispute that opens pauses the payment's entitlements and holds its unspent
credits; one that is won (or closed as an inquiry, or prevented) gives them back; one that is lost revokes
them as a full refund would, under either policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from db import credits, disputes, entitlements
from db.disputes import Dispute, NewDispute
from db.payments import Payment
from server import outbox
from server.disputes import DisputeView
from server.ledger import credit_moves
from server.providers import ProviderDispute

OPEN = frozenset({"warning_needs_response", "warning_under_review", "needs_response", "under_review"})
CLOSED = frozenset({"warning_closed", "won", "lost", "prevented"})
GIVEN_BACK = frozenset({"warning_closed", "won", "prevented"})
"""Closed in the merchant's favour: what the dispute suspended comes back."""
BACKWARDS = frozenset({("under_review", "needs_response"), ("warning_under_review", "warning_needs_response")})
"""Reviewed disputes never go back to waiting for a response: such an event is a late copy of an older one."""
ALLOWED: dict[str, frozenset[str]] = {
    status: frozenset(
        target
        for target in ("warning_under_review", "warning_closed", "needs_response", "under_review", *GIVEN_BACK, "lost")
        if target != status
        and not (status in ("needs_response", "under_review") and target.startswith("warning_"))
        and (status, target) not in BACKWARDS
    )
    for status in OPEN
} | {status: frozenset() for status in CLOSED}


@dataclass(frozen=True)
class DisputeChange:
    applied: bool
    dispute: Dispute
    note: str
    opened: bool = False
    """The dispute was first heard of, open, by this change (evidence may be staged for it)."""


async def apply(
    conn: asyncpg.Connection,
    payment: Payment,
    reported: ProviderDispute,
    *,
    provider: str,
    policy: str,
    actor: str,
    reason: str,
    event_type: str,
) -> DisputeChange:
    locked = await disputes.lock(conn, payment.tenant_id, reported.provider_dispute_id)
    if locked is None:
        first = await _first_heard(conn, payment, reported, provider=provider, policy=policy, actor=actor, why=reason)
        if not event_type.endswith(("funds_withdrawn", "funds_reinstated")):
            return first
        locked = first.dispute  # heard of first by the money moving: the move is noted too (Stripe does not order them)
    if event_type.endswith(("funds_withdrawn", "funds_reinstated")):
        noted = await disputes.record_funds(
            conn, locked, withdrawn=event_type.endswith("withdrawn"), actor=actor, reason=reason
        )
        if noted is None:
            return DisputeChange(False, locked, f"dispute {locked.id}: already noted")
        return DisputeChange(True, noted, f"dispute {locked.id}: {event_type.rsplit('.', 1)[1]}")
    if reported.status == locked.status:
        return DisputeChange(False, locked, f"dispute {locked.id} is already {locked.status}")
    if reported.status not in ALLOWED.get(locked.status, frozenset()):
        note = f"out of order: dispute {locked.id} is {locked.status} and cannot move to {reported.status}"
        return DisputeChange(False, locked, note)
    moved = await disputes.move(
        conn,
        locked,
        reported.status,
        closed=reported.status in CLOSED,
        evidence_due_by=_due(reported),
        actor=actor,
        reason=reason,
    )
    await _consequences(conn, payment, moved)
    if moved.status in CLOSED:
        await outbox.dispute_changed(conn, DisputeView.of(moved), moved.tenant_id, opened=False)
    return DisputeChange(True, moved, f"dispute {moved.id}: {locked.status} -> {moved.status}")


async def _first_heard(
    conn: asyncpg.Connection,
    payment: Payment,
    reported: ProviderDispute,
    *,
    provider: str,
    policy: str,
    actor: str,
    why: str,
) -> DisputeChange:
    new = NewDispute(
        tenant_id=payment.tenant_id,
        id=reported.provider_dispute_id,
        provider=provider,
        payment_id=payment.id,
        customer_id=payment.customer_id,
        amount_minor=reported.amount_minor or payment.amount_minor,
        currency=reported.currency or payment.currency,
        reason=reported.reason,
        status=reported.status if reported.status in ALLOWED else "needs_response",
        policy=policy,
        evidence_due_by=_due(reported),
        closed=reported.status in CLOSED,
    )
    dispute = await disputes.insert(conn, new, actor=actor, reason=why)
    if dispute.status in OPEN and dispute.policy == "suspend":
        await suspend(conn, payment, dispute)
    elif dispute.status == "lost":
        await revoke(conn, payment, dispute)
    opened = dispute.status in OPEN
    await outbox.dispute_changed(conn, DisputeView.of(dispute), dispute.tenant_id, opened=opened)
    return DisputeChange(True, dispute, f"dispute {dispute.id} recorded ({dispute.status})", opened=opened)


async def after_success(conn: asyncpg.Connection, payment: Payment) -> None:
    """The payment has just succeeded and granted what it bought: a dispute heard of before (the provider's
    events come in any order) now does to those grants what it would have done had they existed."""
    for dispute in await disputes.of_payment(conn, payment.tenant_id, payment.id):
        if dispute.status == "lost":
            await revoke(conn, payment, dispute)
        elif dispute.status in OPEN and dispute.policy == "suspend":
            await suspend(conn, payment, dispute)


async def _consequences(conn: asyncpg.Connection, payment: Payment, dispute: Dispute) -> None:
    if dispute.status == "lost":
        await revoke(conn, payment, dispute)
    elif dispute.status in GIVEN_BACK and dispute.policy == "suspend":
        await restore(conn, payment, dispute)


async def suspend(conn: asyncpg.Connection, payment: Payment, dispute: Dispute) -> None:
    """Pause the payment's periods; hold each lot's unspent credits (written off, to be given back)."""
    await disputes.suspend_entitlements(conn, payment.tenant_id, payment.id)
    for lot in await credits.lots_of_payment(conn, payment.id):
        account = await credits.lock_account(conn, lot.tenant_id, lot.customer_id, lot.feature)
        lot = await credits.get_lot(conn, lot.id)
        if lot.closed_at is not None or lot.free == 0:
            continue
        await credits.change_lot(conn, lot.id, written_off=lot.free)
        note = f"dispute {dispute.id} opened: unspent credits held until it closes"
        await credits.post(conn, account, "revoke", granted=-lot.free, lot_id=lot.id, payment_id=payment.id, note=note)
        await disputes.hold_credits(conn, dispute, lot.id, lot.free)


async def restore(conn: asyncpg.Connection, payment: Payment, dispute: Dispute) -> None:
    """Give back what the dispute suspended: periods resume; held credits return to lots still open."""
    await disputes.restore_entitlements(conn, payment.tenant_id, payment.id)
    for lot_id, quantity in await disputes.resolve_credit_holds(conn, dispute):
        lot = await credits.get_lot(conn, lot_id)
        account = await credits.lock_account(conn, lot.tenant_id, lot.customer_id, lot.feature)
        lot = await credits.get_lot(conn, lot_id)
        if lot.closed_at is not None:
            continue  # expired (or revoked) meanwhile: what it held is gone with it
        await credits.change_lot(conn, lot_id, written_off=-quantity)
        note = f"dispute {dispute.id} {dispute.status}: held credits given back"
        await credits.post(conn, account, "grant", granted=quantity, lot_id=lot_id, payment_id=payment.id, note=note)


async def revoke(conn: asyncpg.Connection, payment: Payment, dispute: Dispute) -> None:
    """A lost dispute takes back what the payment granted, as a full refund does (held credits stay gone)."""
    await disputes.resolve_credit_holds(conn, dispute)
    await entitlements.revoke_for_payment(conn, payment)
    await credit_moves.revoke_for_payment(conn, payment)
    await outbox.grants_revoked(conn, payment)


def _due(reported: ProviderDispute) -> datetime | None:
    return datetime.fromtimestamp(reported.evidence_due_by, UTC) if reported.evidence_due_by else None
