"""Entitlements: what a customer may use, granted only by a succeeded payment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from db.payments import Payment


@dataclass(frozen=True)
class EntitlementState:
    """The customer's standing for one feature right now."""

    active_until: datetime | None
    """The end of the current (possibly stacked) entitlement; None when none is active."""
    last_expired_at: datetime | None
    disputed_until: datetime | None = None
    """The end of a period paused because its payment is disputed (None when none is)."""


async def grant_for_payment(connection: asyncpg.Connection, payment: Payment) -> None:
    """Grant every feature the payment bought; a second call for the same payment does nothing.

    A new period starts where the customer's current one ends, so buying twice stacks. The
    transaction-scoped advisory lock serialises grants for one (customer, feature) across processes.
    """
    time_grants = [grant for grant in payment.grants if not grant.get("credits")]
    for grant in sorted(time_grants, key=lambda grant: grant["feature"]):  # one lock order: no deadlock
        if grant.get("period_end"):
            await _lock_feature(connection, payment.tenant_id, payment.customer_id, grant["feature"])
            await _grant_period(connection, payment, grant)
            continue
        # The lock, then the insert stacked after the current end (migration 0115), in one round trip.
        await connection.execute(
            "SELECT grant_stacked_period($1, $2, $3, $4, $5)",
            payment.tenant_id,
            payment.customer_id,
            grant["feature"],
            payment.id,
            int(grant["days"]),
        )


async def _grant_period(connection: asyncpg.Connection, payment: Payment, grant: dict) -> None:
    """A subscription's paid period: exactly the provider's period, neither stacked nor moved."""
    await connection.execute(
        """
        INSERT INTO entitlements (tenant_id, customer_id, feature, payment_id, starts_at, expires_at, fixed_period)
        VALUES ($1, $2, $3, $4, $5::text::timestamptz, $6::text::timestamptz, true)
        ON CONFLICT (tenant_id, payment_id, feature) DO NOTHING
        """,
        payment.tenant_id,
        payment.customer_id,
        grant["feature"],
        payment.id,
        grant["period_start"],
        grant["period_end"],
    )


async def revoke_for_payment(connection: asyncpg.Connection, payment: Payment) -> None:
    """Revoke what the payment granted. Periods stacked after it move up by the time it no longer
    covers, so a customer who bought twice and was refunded once keeps the period still paid for."""
    for grant in sorted(payment.grants, key=lambda grant: grant["feature"]):
        if grant.get("credits"):
            continue
        await _lock_feature(connection, payment.tenant_id, payment.customer_id, grant["feature"])
        await connection.execute(
            """
            WITH revoked AS (
                UPDATE entitlements SET revoked_at = now()
                 WHERE payment_id = $1 AND feature = $2 AND revoked_at IS NULL
                RETURNING tenant_id, customer_id, feature, expires_at,
                          greatest(expires_at - greatest(starts_at, now()), interval '0') AS unused
            )
            UPDATE entitlements later
               SET starts_at = greatest(later.starts_at - revoked.unused, now()),
                   expires_at = later.expires_at - revoked.unused
              FROM revoked
             WHERE later.tenant_id = revoked.tenant_id AND later.customer_id = revoked.customer_id
               AND later.feature = revoked.feature
               AND later.revoked_at IS NULL AND later.starts_at >= revoked.expires_at AND NOT later.fixed_period
            """,
            payment.id,
            grant["feature"],
        )


async def _lock_feature(connection: asyncpg.Connection, tenant_id: str, customer_id: str, feature: str) -> None:
    await connection.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1 || chr(31) || $2 || chr(31) || $3, 0))",
        tenant_id,
        customer_id,
        feature,
    )


_STATE = """
SELECT
    max(expires_at) FILTER (WHERE starts_at <= now() AND expires_at > now() AND suspended_at IS NULL) AS active_now,
    max(expires_at) FILTER (WHERE expires_at > now() AND suspended_at IS NULL) AS latest_end,
    max(expires_at) FILTER (WHERE expires_at <= now()) AS last_expired_at,
    max(expires_at) FILTER (WHERE expires_at > now() AND suspended_at IS NOT NULL) AS disputed_until
  FROM entitlements
 WHERE tenant_id = $3 AND customer_id = $1 AND feature = $2 AND revoked_at IS NULL
"""
STATE_COLUMNS = ("active_now", "latest_end", "last_expired_at", "disputed_until")


async def state(connection: asyncpg.Connection, tenant_id: str, customer_id: str, feature: str) -> EntitlementState:
    return state_of(await connection.fetchrow(_STATE, customer_id, feature, tenant_id))


def state_of(row: Mapping[str, Any]) -> EntitlementState:
    """The standing from a row holding the state query's columns (alone, or beside other columns)."""
    active_until = row["latest_end"] if row["active_now"] is not None else None
    return EntitlementState(
        active_until=active_until, last_expired_at=row["last_expired_at"], disputed_until=row["disputed_until"]
    )


def state_query() -> str:
    """The state query, $1 customer, $2 feature, $3 tenant, for a caller that joins more to it."""
    return _STATE


@dataclass(frozen=True)
class Entitlement:
    feature: str
    starts_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


async def of_payment(connection: asyncpg.Connection, payment_id: str) -> list[Entitlement]:
    """The time-boxed entitlements a payment granted, as they stand."""
    rows = await connection.fetch(
        "SELECT feature, starts_at, expires_at, revoked_at FROM entitlements WHERE payment_id = $1 ORDER BY feature",
        payment_id,
    )
    return [Entitlement(**dict(row)) for row in rows]


@dataclass(frozen=True)
class EntitlementRow:
    feature: str
    payment_id: str
    starts_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    customer_id: str


async def for_customer(connection: asyncpg.Connection, tenant_id: str, customer_id: str) -> list[EntitlementRow]:
    """Every period the customer was granted, the latest ending first."""
    rows = await connection.fetch(
        """
        SELECT feature, payment_id, starts_at, expires_at, revoked_at, customer_id FROM entitlements
         WHERE tenant_id = $1 AND customer_id = $2 ORDER BY expires_at DESC, feature
        """,
        tenant_id,
        customer_id,
    )
    return [EntitlementRow(**dict(row)) for row in rows]


@dataclass(frozen=True)
class Granted:
    """One period of a feature, and the payment (and product) that bought it."""

    feature: str
    starts_at: datetime
    expires_at: datetime
    payment_id: str
    product_id: str | None


async def current_for_customer(connection: asyncpg.Connection, tenant_id: str, customer_id: str) -> list[Granted]:
    """Every period not yet over (running now or stacked after), by feature then start."""
    rows = await connection.fetch(
        """
        SELECT e.feature, e.starts_at, e.expires_at, e.payment_id, p.product_id
          FROM entitlements e JOIN payments p ON p.id = e.payment_id
         WHERE e.tenant_id = $1 AND e.customer_id = $2 AND e.revoked_at IS NULL AND e.expires_at > now()
         ORDER BY e.feature, e.starts_at
        """,
        tenant_id,
        customer_id,
    )
    return [Granted(**dict(row)) for row in rows]


@dataclass(frozen=True)
class PaymentGrant:
    """What a payment granted of one feature: a period, or a lot of credits (`credits` set)."""

    feature: str
    starts_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None
    credits: int | None


async def grants_of_payment(connection: asyncpg.Connection, tenant_id: str, payment_id: str) -> list[PaymentGrant]:
    """Its periods and its credit lots, as they stand, by feature."""
    rows = await connection.fetch(
        """
        SELECT feature, starts_at, expires_at, revoked_at, NULL::bigint AS credits
          FROM entitlements WHERE tenant_id = $1 AND payment_id = $2
        UNION ALL
        SELECT feature, NULL, expires_at, revoked_at, quantity
          FROM credit_lots WHERE tenant_id = $1 AND payment_id = $2
         ORDER BY feature
        """,
        tenant_id,
        payment_id,
    )
    return [PaymentGrant(**dict(row)) for row in rows]
