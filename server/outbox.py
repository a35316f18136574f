"""The transactional outbox: every change a merchant's backend hears about is written as an event in
the same transaction as the change itself, so an event is never lost and never sent for a change that
rolled back. server/webhook_delivery.py sends them.

Each event is `{id, type, created_at, tenant, data}`; `data` has the shape of the HTTP API's resource
(a payment as GET /v1/charges/{id} shows it, without its timeline; a credit balance as the credit
endpoints show it; a dispute as get_payment lists it). server/webhook_endpoints.py describes the whole
event as a model (OutboundEvent).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

import asyncpg
from pydantic import BaseModel, Field

from db import entitlements, outbox
from db.payments import Payment, PaymentStatus
from server.disputes import DisputeView
from server.payments import PaymentView

EventType = Literal[
    "payment.succeeded",
    "payment.failed",
    "payment.requires_action",
    "payment.canceled",
    "payment.refunded",
    "approval.requested",
    "entitlement.granted",
    "entitlement.revoked",
    "credits.low_balance",
    "dispute.opened",
    "dispute.closed",
    "subscription.updated",
    "subscription.canceled",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
RETRY_FOR_SECONDS = 3 * 24 * 3600
"""How long a delivery is retried before it gives up (Stripe's window)."""

PAYMENT_EVENTS: dict[PaymentStatus, EventType] = {
    PaymentStatus.SUCCEEDED: "payment.succeeded",
    PaymentStatus.FAILED: "payment.failed",
    PaymentStatus.REQUIRES_ACTION: "payment.requires_action",
    PaymentStatus.CANCELED: "payment.canceled",
    PaymentStatus.PARTIALLY_REFUNDED: "payment.refunded",
    PaymentStatus.REFUNDED: "payment.refunded",
    PaymentStatus.REQUIRES_APPROVAL: "approval.requested",
}
"""The event a payment's move to each status is reported as."""


@dataclass
class HeldEvents:
    """Events written on `conn` while held (see `held`): the caller writes them itself, in order."""

    conn: asyncpg.Connection
    payloads: list[dict[str, Any]] = dataclass_field(default_factory=list)


_held: ContextVar[HeldEvents | None] = ContextVar("outbox_held", default=None)


@contextmanager
def held(conn: asyncpg.Connection) -> Iterator[HeldEvents]:
    """Inside this, events written on `conn` are kept instead of written, for the caller to write with its
    own last statement of the transaction (the webhook inbox writes them with the event's outcome: one round
    trip fewer). They are still written in the transaction of the change, or not at all."""
    events = HeldEvents(conn)
    token = _held.set(events)
    try:
        yield events
    finally:
        _held.reset(token)


async def _write(conn: asyncpg.Connection, tenant_id: str, payloads: list[dict[str, Any]]) -> None:
    events = _held.get()
    if events is not None and events.conn is conn:
        events.payloads += payloads
        return
    await outbox.insert_events(conn, tenant_id, payloads, retry_for_seconds=RETRY_FOR_SECONDS)


class EntitlementGrant(BaseModel):
    """What one payment granted of one feature: a period of time, or a lot of credits."""

    customer_id: str
    feature: str
    payment_id: str
    product_id: str | None
    starts_at: datetime | None = Field(description="When the period starts (null for credits).")
    expires_at: datetime | None = Field(description="When the period (or the credits) expire.")
    credits: int | None = Field(description="For a metered feature: how many credits the payment granted.")
    revoked_at: datetime | None


def event(tenant_id: str, event_type: EventType, data: BaseModel) -> dict[str, Any]:
    """The event as it is stored and sent: {id, type, created_at, tenant, data}."""
    return {
        "id": "evt_" + secrets.token_hex(12),
        "type": event_type,
        "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),  # as every other time paywarden says
        "tenant": tenant_id,
        "data": data.model_dump(mode="json"),
    }


async def record(conn: asyncpg.Connection, tenant_id: str, event_type: EventType, data: BaseModel) -> str:
    """Write the event, and a delivery for each of the tenant's endpoints that wants it, in `conn`'s
    transaction; its id."""
    payload = event(tenant_id, event_type, data)
    await _write(conn, tenant_id, [payload])
    return payload["id"]


async def payment_moved(conn: asyncpg.Connection, payment: Payment, grants: EventType | None = None) -> None:
    """The payment has just moved to its status: report it, when that status is one merchants hear of, and
    with `grants` (entitlement.granted or entitlement.revoked) one event per feature it granted — all in
    one statement."""
    events: list[tuple[EventType, BaseModel]] = []
    event_type = PAYMENT_EVENTS.get(payment.status)
    if event_type is not None:
        events.append((event_type, PaymentView.of(payment)))
    if grants is not None:
        events += [(grants, grant) for grant in await grants_of(conn, payment)]
    payloads = [event(payment.tenant_id, kind, data) for kind, data in events]
    await _write(conn, payment.tenant_id, payloads)


async def grants_revoked(conn: asyncpg.Connection, payment: Payment) -> None:
    """What the payment granted was taken back without a status change (a lost dispute)."""
    payloads = [event(payment.tenant_id, "entitlement.revoked", grant) for grant in await grants_of(conn, payment)]
    await _write(conn, payment.tenant_id, payloads)


async def dispute_changed(conn: asyncpg.Connection, dispute: DisputeView, tenant_id: str, *, opened: bool) -> None:
    """A dispute was first heard of open (dispute.opened) or has closed (dispute.closed)."""
    await record(conn, tenant_id, "dispute.opened" if opened else "dispute.closed", dispute)


async def payment_refunded(conn: asyncpg.Connection, payment: Payment) -> None:
    """A refund succeeded without moving the payment's status (a second partial refund)."""
    await record(conn, payment.tenant_id, "payment.refunded", PaymentView.of(payment))


async def grants_of(conn: asyncpg.Connection, payment: Payment) -> list[EntitlementGrant]:
    """What the payment granted, feature by feature: its periods and its credit lots, as they stand."""
    common = {"customer_id": payment.customer_id, "payment_id": payment.id, "product_id": payment.product_id}
    return [
        EntitlementGrant(**common, **vars(grant))
        for grant in await entitlements.grants_of_payment(conn, payment.tenant_id, payment.id)
    ]
