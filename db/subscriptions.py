"""Subscriptions: the row written before the provider is asked, its status changes and their audit trail,
and the invoices paid for it (payments linked to it)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import asyncpg

from db import entitlements
from db.entitlements import EntitlementState
from db.payments import NewPayment, Payment
from server.errors import SubscriptionExists


class SubscriptionStatus(StrEnum):
    """Every status a subscription can have; server/ledger/subscription_machine.py says which moves are
    allowed, and the database refuses any other (subscription_status_moves)."""

    INCOMPLETE = "incomplete"
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    CANCELED = "canceled"
    UNPAID = "unpaid"


@dataclass(frozen=True, kw_only=True)
class NewSubscription:
    tenant_id: str
    customer_id: str
    product_id: str
    provider: str
    provider_customer_id: str | None
    payment_method: str | None
    first_payment_id: str
    idempotency_key: str
    api_key_id: str | None


@dataclass(frozen=True, kw_only=True)
class Subscription(NewSubscription):
    id: str
    status: SubscriptionStatus
    cancel_at_period_end: bool
    pending_product_id: str | None
    provider_subscription_id: str | None
    current_period_start: datetime | None
    current_period_end: datetime | None
    trial_end: datetime | None
    canceled_at: datetime | None
    ended_at: datetime | None
    cancel_reason: str | None
    next_action_url: str | None
    submit_lease_until: datetime | None
    created_at: datetime
    updated_at: datetime
    card_to_apply: str | None = None
    """A card the customer saved that the provider does not charge for this subscription yet (pm_…)."""
    card_marked_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Subscription:
        fields = dict(row)
        return cls(**{**fields, "status": SubscriptionStatus(fields["status"])})


def new_subscription_id() -> str:
    return "subs_" + secrets.token_hex(12)


async def insert(
    conn: asyncpg.Connection, subscription_id: str, new: NewSubscription, *, lease_seconds: float | None
) -> tuple[Subscription, Payment]:
    """Insert as `incomplete`, and link its first payment to it; a second live subscription of the customer to
    the product is refused."""
    try:
        row = await conn.fetchrow(
            """
            INSERT INTO subscriptions (tenant_id, id, customer_id, product_id, provider, provider_customer_id,
                                       payment_method, first_payment_id, idempotency_key, api_key_id,
                                       submit_lease_until)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now() + make_interval(secs => $11))
            RETURNING *
            """,
            new.tenant_id,
            subscription_id,
            new.customer_id,
            new.product_id,
            new.provider,
            new.provider_customer_id,
            new.payment_method,
            new.first_payment_id,
            new.idempotency_key,
            new.api_key_id,
            lease_seconds,
        )
    except asyncpg.UniqueViolationError:
        raise SubscriptionExists() from None
    linked = await conn.fetchrow(
        "UPDATE payments SET subscription_id = $3 WHERE tenant_id = $1 AND id = $2 RETURNING *",
        new.tenant_id,
        new.first_payment_id,
        subscription_id,
    )
    return Subscription.from_row(row), Payment.from_row(linked)


async def live_of(conn: asyncpg.Connection, tenant_id: str, customer_id: str, product_id: str) -> Subscription | None:
    """The subscription not canceled (unpaid included: a late payment brings it back), as the unique index
    subscriptions_one_live has it."""
    row = await conn.fetchrow(
        """
        SELECT * FROM subscriptions WHERE tenant_id = $1 AND customer_id = $2 AND product_id = $3
           AND status <> 'canceled'
        """,
        tenant_id,
        customer_id,
        product_id,
    )
    return Subscription.from_row(row) if row else None


async def get(conn: asyncpg.Connection, subscription_id: str, *, tenant_id: str | None) -> Subscription | None:
    """Another tenant's subscription looks exactly like none at all (`tenant_id=None`: paywarden's own paths)."""
    row = await conn.fetchrow(
        "SELECT * FROM subscriptions WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2)", subscription_id, tenant_id
    )
    return Subscription.from_row(row) if row else None


async def lock(conn: asyncpg.Connection, subscription_id: str, *, tenant_id: str | None) -> Subscription | None:
    row = await conn.fetchrow(
        "SELECT * FROM subscriptions WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2) FOR UPDATE",
        subscription_id,
        tenant_id,
    )
    return Subscription.from_row(row) if row else None


async def lock_by_provider_id(
    conn: asyncpg.Connection, provider: str, provider_subscription_id: str, *, tenant_id: str | None
) -> Subscription | None:
    row = await conn.fetchrow(
        """
        SELECT * FROM subscriptions WHERE provider = $1 AND provider_subscription_id = $2
           AND ($3::text IS NULL OR tenant_id = $3) FOR UPDATE
        """,
        provider,
        provider_subscription_id,
        tenant_id,
    )
    return Subscription.from_row(row) if row else None


async def take_lease(conn: asyncpg.Connection, subscription_id: str, lease_seconds: float) -> Subscription | None:
    """The subscription, if the provider never answered for it and nobody holds a live lease; ours now."""
    row = await conn.fetchrow(
        """
        UPDATE subscriptions SET submit_lease_until = now() + make_interval(secs => $2)
         WHERE id = $1 AND provider_subscription_id IS NULL AND status = 'incomplete'
           AND (submit_lease_until IS NULL OR submit_lease_until < now())
        RETURNING *
        """,
        subscription_id,
        lease_seconds,
    )
    return Subscription.from_row(row) if row else None


async def release_lease(conn: asyncpg.Connection, subscription_id: str) -> None:
    await conn.execute("UPDATE subscriptions SET submit_lease_until = NULL WHERE id = $1", subscription_id)


@dataclass(frozen=True, kw_only=True)
class Changes:
    """What the provider says of the subscription besides its status (None: unchanged)."""

    provider_subscription_id: str | None = None
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    trial_end: datetime | None = None
    cancel_at_period_end: bool | None = None
    canceled_at: datetime | None = None
    ended_at: datetime | None = None
    product_id: str | None = None
    pending_product_id: str | None = None
    clear_pending_product: bool = False
    next_action_url: str | None = None
    cancel_reason: str | None = None


async def update(
    conn: asyncpg.Connection,
    locked: Subscription,
    status: SubscriptionStatus,
    changes: Changes,
    *,
    actor: str,
    reason: str | None,
    audit: bool,
) -> Subscription:
    """Write the (locked) subscription's new state, and its audit row when `audit`, in one statement."""
    row = await conn.fetchrow(
        """
        WITH moved AS (
            UPDATE subscriptions
               SET status = $3,
                   provider_subscription_id = coalesce(provider_subscription_id, $4),
                   current_period_start = coalesce($5, current_period_start),
                   current_period_end = coalesce($6, current_period_end),
                   trial_end = coalesce($7, trial_end),
                   cancel_at_period_end = coalesce($8, cancel_at_period_end),
                   canceled_at = coalesce(canceled_at, $9),
                   ended_at = coalesce(ended_at, $10),
                   product_id = coalesce($11, product_id),
                   pending_product_id = CASE WHEN $13 THEN NULL ELSE coalesce($12, pending_product_id) END,
                   next_action_url = CASE WHEN $3 = 'incomplete' THEN coalesce($14, next_action_url) END,
                   cancel_reason = coalesce(cancel_reason, $15),
                   submit_lease_until = CASE WHEN $4::text IS NULL THEN submit_lease_until END,
                   updated_at = now()
             WHERE tenant_id = $1 AND id = $2
            RETURNING *
        ), audited AS (
            INSERT INTO subscription_audit (tenant_id, subscription_id, actor, from_status, to_status, reason)
            SELECT tenant_id, id, $16, $17, status, $18 FROM moved WHERE $19
        )
        SELECT * FROM moved
        """,
        locked.tenant_id,
        locked.id,
        status,
        changes.provider_subscription_id,
        changes.current_period_start,
        changes.current_period_end,
        changes.trial_end,
        changes.cancel_at_period_end,
        changes.canceled_at,
        changes.ended_at,
        changes.product_id,
        changes.pending_product_id,
        changes.clear_pending_product,
        changes.next_action_url,
        changes.cancel_reason,
        actor,
        locked.status,
        reason,
        audit,
    )
    return Subscription.from_row(row)


LIVE_FOR_CARDS = ("trialing", "active", "past_due")
"""The subscriptions a newly saved card is for: those the provider charges, or will."""


async def mark_card_to_apply(
    conn: asyncpg.Connection, tenant_id: str, provider: str, customer_id: str, card: str, *, actor: str, reason: str
) -> list[str]:
    """Mark the customer's live subscriptions (started at the provider) with the card their renewals should charge,
    each audited; their ids."""
    rows = await conn.fetch(
        """
        WITH marked AS (
            UPDATE subscriptions SET card_to_apply = $4, card_marked_at = now()
             WHERE tenant_id = $1 AND provider = $2 AND customer_id = $3 AND status = ANY($5::text[])
               AND provider_subscription_id IS NOT NULL
            RETURNING tenant_id, id, status
        ), audited AS (
            INSERT INTO subscription_audit (tenant_id, subscription_id, actor, from_status, to_status, reason)
            SELECT tenant_id, id, $6, status, status, $7 FROM marked
        )
        SELECT id FROM marked ORDER BY id
        """,
        tenant_id,
        provider,
        customer_id,
        card,
        list(LIVE_FOR_CARDS),
        actor,
        reason,
    )
    return [row["id"] for row in rows]


async def cards_to_apply(conn: asyncpg.Connection, *, marked_seconds_ago: float, limit: int) -> list[str]:
    """Subscriptions whose saved card is still to be applied at the provider, marked at least that long ago."""
    rows = await conn.fetch(
        """
        SELECT id FROM subscriptions
         WHERE card_to_apply IS NOT NULL AND card_marked_at <= now() - make_interval(secs => $1)
         ORDER BY card_marked_at LIMIT $2
        """,
        marked_seconds_ago,
        limit,
    )
    return [row["id"] for row in rows]


async def card_applied(
    conn: asyncpg.Connection, locked: Subscription, card: str, *, actor: str, reason: str
) -> Subscription | None:
    """The (locked) subscription's mark cleared, audited — if it still names `card` (a newer card saved meanwhile
    keeps its own mark); None otherwise."""
    row = await conn.fetchrow(
        """
        WITH cleared AS (
            UPDATE subscriptions SET card_to_apply = NULL, card_marked_at = NULL
             WHERE tenant_id = $1 AND id = $2 AND card_to_apply = $3
            RETURNING *
        ), audited AS (
            INSERT INTO subscription_audit (tenant_id, subscription_id, actor, from_status, to_status, reason)
            SELECT tenant_id, id, $4, status, status, $5 FROM cleared
        )
        SELECT * FROM cleared
        """,
        locked.tenant_id,
        locked.id,
        card,
        actor,
        reason,
    )
    return Subscription.from_row(row) if row else None


@dataclass(frozen=True)
class SubscriptionAuditEntry:
    at: datetime
    actor: str
    from_status: str | None
    to_status: str
    reason: str | None


async def timeline(conn: asyncpg.Connection, tenant_id: str, subscription_id: str) -> list[SubscriptionAuditEntry]:
    rows = await conn.fetch(
        """
        SELECT created_at AS at, actor, from_status, to_status, reason FROM subscription_audit
         WHERE tenant_id = $1 AND subscription_id = $2 ORDER BY id
        """,
        tenant_id,
        subscription_id,
    )
    return [SubscriptionAuditEntry(**dict(row)) for row in rows]


async def of_customer(conn: asyncpg.Connection, tenant_id: str, customer_id: str) -> list[Subscription]:
    """Newest first."""
    rows = await conn.fetch(
        "SELECT * FROM subscriptions WHERE tenant_id = $1 AND customer_id = $2 ORDER BY created_at DESC LIMIT 50",
        tenant_id,
        customer_id,
    )
    return [Subscription.from_row(row) for row in rows]


_LATEST = """
SELECT s.*, (SELECT max(e.expires_at) FROM payments p
               JOIN entitlements e ON e.tenant_id = p.tenant_id AND e.payment_id = p.id
              WHERE p.tenant_id = s.tenant_id AND p.subscription_id = s.id AND e.feature = $2
                AND e.revoked_at IS NULL AND e.suspended_at IS NULL) AS paid_through
  FROM subscriptions s
 WHERE s.tenant_id = $3 AND s.customer_id = $1 AND s.product_id = ANY($4::text[])
 ORDER BY (s.status NOT IN ('canceled', 'unpaid')) DESC, s.created_at DESC LIMIT 1
"""


async def standing(
    conn: asyncpg.Connection, tenant_id: str, customer_id: str, product_ids: list[str], feature: str
) -> tuple[EntitlementState, tuple[Subscription, datetime | None] | None]:
    """The feature's entitlement state, and the customer's most recent subscription to any of the products (a
    live one before an ended one) with the end of the latest period of `feature` its paid invoices granted
    that nobody took back — in one round trip (the entitlement check of a feature a plan grants)."""
    row = await conn.fetchrow(
        f"SELECT st.*, sub.* FROM ({entitlements.state_query()}) st LEFT JOIN LATERAL ({_LATEST}) sub ON true",
        customer_id,
        feature,
        tenant_id,
        product_ids,
    )
    fields = dict(row)
    state = entitlements.state_of(fields)
    for column in entitlements.STATE_COLUMNS:
        fields.pop(column)
    return state, (_latest_of(fields) if fields["id"] is not None else None)


def _latest_of(fields: dict[str, Any]) -> tuple[Subscription, datetime | None]:
    paid_through = fields.pop("paid_through")
    return Subscription.from_row(fields), paid_through


async def quiet(conn: asyncpg.Connection, *, quiet_seconds: float, limit: int) -> list[str]:
    """Subscriptions not ended whose row has not changed for `quiet_seconds`, the quietest first."""
    rows = await conn.fetch(
        """
        SELECT id FROM subscriptions
         WHERE status <> 'canceled' AND updated_at < now() - make_interval(secs => $1)
         ORDER BY updated_at LIMIT $2
        """,
        quiet_seconds,
        limit,
    )
    return [row["id"] for row in rows]


async def touch(conn: asyncpg.Connection, subscription_id: str) -> None:
    """Compared with the provider just now: quiet again from now on."""
    await conn.execute("UPDATE subscriptions SET updated_at = now() WHERE id = $1", subscription_id)


async def lock_invoice_payment(
    conn: asyncpg.Connection, provider: str, provider_invoice_id: str, *, tenant_id: str
) -> Payment | None:
    row = await conn.fetchrow(
        """
        SELECT * FROM payments WHERE provider = $1 AND provider_invoice_id = $2 AND tenant_id = $3 FOR UPDATE
        """,
        provider,
        provider_invoice_id,
        tenant_id,
    )
    return Payment.from_row(row) if row else None


async def attach_invoice(
    conn: asyncpg.Connection, payment: Payment, provider_invoice_id: str, grants: list[dict[str, Any]]
) -> Payment:
    """The invoice this payment is, and the grants of the invoice's period."""
    row = await conn.fetchrow(
        """
        UPDATE payments SET provider_invoice_id = $3, grants = $4
         WHERE tenant_id = $1 AND id = $2 RETURNING *
        """,
        payment.tenant_id,
        payment.id,
        provider_invoice_id,
        grants,
    )
    return Payment.from_row(row)


async def insert_invoice_payment(
    conn: asyncpg.Connection, payment_id: str, new: NewPayment, subscription_id: str, provider_invoice_id: str
) -> Payment:
    """A renewal (or proration) invoice the provider charged: a payment of the subscription, `created`."""
    row = await conn.fetchrow(
        """
        WITH inserted AS (
            INSERT INTO payments (tenant_id, id, customer_id, product_id, amount_minor, currency, description,
                                  payment_method, grants, provider, provider_customer_id, off_session,
                                  subscription_id, provider_invoice_id)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, false, $12, $13)
            RETURNING *
        ), audited AS (
            INSERT INTO payment_audit (tenant_id, payment_id, actor, from_status, to_status, reason)
            SELECT tenant_id, id, 'webhook', NULL, 'created', 'invoice ' || $13 || ' of subscription ' || $12
              FROM inserted
        )
        SELECT * FROM inserted
        """,
        new.tenant_id,
        payment_id,
        new.customer_id,
        new.product_id,
        new.amount_minor,
        new.currency,
        new.description,
        new.payment_method,
        new.grants,
        new.provider,
        new.provider_customer_id,
        subscription_id,
        provider_invoice_id,
    )
    return Payment.from_row(row)


async def payments_of(conn: asyncpg.Connection, tenant_id: str, subscription_id: str) -> list[Payment]:
    rows = await conn.fetch(
        "SELECT * FROM payments WHERE tenant_id = $1 AND subscription_id = $2 ORDER BY created_at",
        tenant_id,
        subscription_id,
    )
    return [Payment.from_row(row) for row in rows]


async def end_access(conn: asyncpg.Connection, tenant_id: str, subscription_id: str) -> int:
    """The subscription's periods not yet over end now (revoked); how many."""
    result = await conn.execute(
        """
        UPDATE entitlements e SET revoked_at = now()
          FROM payments p
         WHERE p.tenant_id = $1 AND p.subscription_id = $2
           AND e.tenant_id = p.tenant_id AND e.payment_id = p.id
           AND e.revoked_at IS NULL AND e.expires_at > now()
        """,
        tenant_id,
        subscription_id,
    )
    return int(result.split()[-1])
