"""The subscription state machine: the one place a subscription's status changes.

    incomplete → trialing | active | past_due | canceled | unpaid
    trialing → active | past_due | canceled | unpaid
    active → past_due | canceled | unpaid;  past_due → active (recovered) | canceled | unpaid
    unpaid → active (a late payment) | canceled;  canceled is final

`cancel_at_period_end` is a flag beside the status. Every applied change is audited; ending (canceled or
unpaid) ends the access its paid periods gave and expires its open credit allowances, and a paid invoice
becomes a succeeded payment of the subscription that grants its period (and the period's credits) once —
all in the caller's transaction, on a subscription row the caller has locked. The database refuses any
status move not listed here (subscription_status_moves, which a test compares with ALLOWED).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import asyncpg

from db import payments
from db import subscriptions as stored
from db.payments import NewPayment, Payment, PaymentStatus
from db.subscriptions import Changes, Subscription, SubscriptionStatus
from server import outbox
from server.ledger import credit_moves, payment_machine
from server.providers import ProviderInvoice
from server.subscription_views import SubscriptionView

Status = SubscriptionStatus
ENDED = frozenset({Status.CANCELED, Status.UNPAID})
"""Access has ended (a late payment may still bring an unpaid one back)."""
ALLOWED: dict[SubscriptionStatus, frozenset[SubscriptionStatus]] = {
    Status.INCOMPLETE: frozenset({Status.TRIALING, Status.ACTIVE, Status.PAST_DUE, Status.CANCELED, Status.UNPAID}),
    Status.TRIALING: frozenset({Status.ACTIVE, Status.PAST_DUE, Status.CANCELED, Status.UNPAID}),
    Status.ACTIVE: frozenset({Status.PAST_DUE, Status.CANCELED, Status.UNPAID}),
    Status.PAST_DUE: frozenset({Status.ACTIVE, Status.CANCELED, Status.UNPAID}),
    Status.UNPAID: frozenset({Status.ACTIVE, Status.CANCELED}),
    Status.CANCELED: frozenset(),
}
PROVIDER_STATUS = {
    "incomplete": Status.INCOMPLETE,
    "incomplete_expired": Status.CANCELED,
    "trialing": Status.TRIALING,
    "active": Status.ACTIVE,
    "past_due": Status.PAST_DUE,
    "canceled": Status.CANCELED,
    "unpaid": Status.UNPAID,
    "paused": Status.UNPAID,
}
"""The provider's statuses in the machine's words (an expired first invoice ends it; paused gives no access)."""


@dataclass(frozen=True, kw_only=True)
class Move:
    to_status: SubscriptionStatus
    actor: str
    """agent, provider, webhook, reconciler or operator (as for payments)."""
    reason: str | None = None
    changes: Changes = field(default_factory=Changes)


@dataclass(frozen=True)
class MoveResult:
    applied: bool
    subscription: Subscription
    note: str | None = None


async def apply(conn: asyncpg.Connection, locked: Subscription, move: Move) -> MoveResult:
    moving = move.to_status != locked.status
    if moving and move.to_status not in ALLOWED[locked.status]:
        note = f"out of order: subscription is {locked.status} and cannot move to {move.to_status}"
        return MoveResult(False, locked, note)
    if not moving and not _changes_anything(locked, move.changes):
        return MoveResult(False, locked, f"subscription is already {locked.status}")
    updated = await stored.update(
        conn, locked, move.to_status, move.changes, actor=move.actor, reason=move.reason, audit=True
    )
    if moving and updated.status in ENDED:
        await end_access(conn, updated)
    ended = moving and updated.status == Status.CANCELED
    event_type = "subscription.canceled" if ended else "subscription.updated"
    await outbox.record(conn, updated.tenant_id, event_type, SubscriptionView.of(updated))
    return MoveResult(True, updated)


async def end_access(conn: asyncpg.Connection, ended: Subscription) -> None:
    """Ended: its periods not yet over end now and its credit allowances expire, ledgered like any expiry."""
    await stored.end_access(conn, ended.tenant_id, ended.id)
    await credit_moves.end_subscription_lots(conn, ended.tenant_id, ended.id)


SET_ONCE = frozenset({"provider_subscription_id", "canceled_at", "ended_at", "cancel_reason"})
"""Fields the first value of which is kept (db/subscriptions.update)."""


def _changes_anything(locked: Subscription, changes: Changes) -> bool:
    for change in fields(changes):
        value = getattr(changes, change.name)
        if change.name == "clear_pending_product":
            if value and locked.pending_product_id is not None:
                return True
            continue
        current = getattr(locked, change.name, None)
        if change.name in SET_ONCE and current is not None:
            continue
        if change.name == "next_action_url" and locked.status != Status.INCOMPLETE:
            continue
        if value is not None and current != value:
            return True
    return False


async def record_paid_invoice(
    conn: asyncpg.Connection,
    locked: Subscription,
    invoice: ProviderInvoice,
    grants: list[dict[str, Any]],
    *,
    actor: str,
    reason: str,
) -> Payment | None:
    """The paid invoice as a succeeded payment of the subscription (the first invoice is the payment that
    start_subscription recorded), granting `grants` for the invoice's period once. A zero renewal (paid
    from the customer's credit at the provider) is a zero payment that grants its period; other zero
    invoices (a trial's, a proration that cost nothing) are not payments. An invoice paid after the
    subscription was canceled (final) is recorded — the money was taken — but grants nothing and is flagged
    for an operator to refund or decide."""
    after_the_end = locked.status == Status.CANCELED
    if not _is_a_payment(invoice, after_the_end) or invoice.period_start is None or invoice.period_end is None:
        return None
    period = {"period_start": _iso(invoice.period_start), "period_end": _iso(invoice.period_end)}
    for_period = [] if after_the_end else [{**grant, **period} for grant in grants]
    payment = await _payment_of(conn, locked, invoice, for_period)
    if payment.status in payment_machine.CHARGED:
        return payment
    change = payment_machine.Transition(
        to_status=PaymentStatus.SUCCEEDED, actor=actor, reason=reason, provider_payment_id=invoice.provider_payment_id
    )
    paid = (await payment_machine.apply(conn, payment, change)).payment
    if not after_the_end:
        # What ended by the latest period heard of expires, this invoice's own allowance too when a later period
        # was paid first (the provider's events may come out of order, e.g. after a long outage).
        await credit_moves.expire_subscription_lots(
            conn, locked.tenant_id, locked.id, ended_by=_iso(_latest_start(locked, invoice.period_start))
        )
    if after_the_end:
        note = f"invoice {invoice.provider_invoice_id} was paid after subscription {locked.id} ended: it grants "
        note += "nothing; refund it or start a new subscription"
        await payments.flag_attention(conn, paid.id, note)
    return paid


async def _payment_of(
    conn: asyncpg.Connection, locked: Subscription, invoice: ProviderInvoice, grants: list[dict[str, Any]]
) -> Payment:
    found = await stored.lock_invoice_payment(
        conn, locked.provider, invoice.provider_invoice_id, tenant_id=locked.tenant_id
    )
    if found is not None:
        return found
    first = await payments.lock(conn, locked.first_payment_id, tenant_id=locked.tenant_id)
    assert first is not None  # a foreign key keeps it
    if _is_the_first_invoice(first, invoice):
        return await stored.attach_invoice(conn, first, invoice.provider_invoice_id, grants)
    new = NewPayment(
        tenant_id=locked.tenant_id,
        api_key_id=None,
        customer_id=locked.customer_id,
        product_id=invoice.product_id or locked.product_id,
        amount_minor=invoice.amount_minor,
        currency=invoice.currency,
        description=_description(invoice.product_id or locked.product_id, invoice),
        payment_method=None,
        grants=grants,
        provider=locked.provider,
        provider_customer_id=locked.provider_customer_id,
    )
    return await stored.insert_invoice_payment(
        conn, payments.new_payment_id(), new, locked.id, invoice.provider_invoice_id
    )


def _is_a_payment(invoice: ProviderInvoice, after_the_end: bool) -> bool:
    if invoice.amount_minor > 0:
        return True
    return invoice.amount_minor == 0 and invoice.billing_reason == "subscription_cycle" and not after_the_end


def _is_the_first_invoice(first: Payment, invoice: ProviderInvoice) -> bool:
    """The first paid invoice of the subscription is the payment start_subscription recorded (limits and
    approval saw its amount), unless that payment is already closed."""
    still_open = first.status not in payment_machine.CHARGED | {PaymentStatus.FAILED, PaymentStatus.CANCELED}
    same_money = (first.amount_minor, first.currency) == (invoice.amount_minor, invoice.currency)
    return first.provider_invoice_id is None and still_open and same_money


INVOICE_KINDS = {"subscription_cycle": "renewal", "subscription_update": "plan change"}
"""What a provider's billing_reason means to a person reading a payment."""


def _description(product_id: str, invoice: ProviderInvoice) -> str:
    kind = INVOICE_KINDS.get(invoice.billing_reason or "", "invoice")
    return f"{product_id}: {kind} (invoice {invoice.provider_invoice_id})"


def _latest_start(locked: Subscription, period_start: int) -> int:
    """The start of the latest period known: this invoice's, or the subscription's current one if later."""
    current = locked.current_period_start
    return max(period_start, int(current.timestamp())) if current is not None else period_start


def _iso(unix_seconds: int) -> str:
    return datetime.fromtimestamp(unix_seconds, UTC).isoformat()
