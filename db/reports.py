"""Read-only queries across aggregates for people looking at the ledger (the console, `paywarden approvals`):
payments filtered and paged, their CSV export through a server-side cursor, the overview's aggregates,
customers, the webhook inbox filtered, spend per API key. Nothing here changes a row.

Every query takes `tenant_id`: one tenant's rows, or None for every tenant (platform operators only — the
services decide who may pass None).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg
from asyncpg.cursor import CursorFactory

from db.payments import Payment
from db.spend import COUNTED


@dataclass(frozen=True, kw_only=True)
class PaymentQuery:
    """Filters of the payments list; None means any."""

    tenant_id: str | None = None
    customer_prefix: str | None = None
    status: str | None = None
    product_id: str | None = None
    created_from: datetime | None = None
    created_before: datetime | None = None
    min_amount_minor: int | None = None
    max_amount_minor: int | None = None
    currency: str | None = None
    api_key_id: str | None = None

    def arguments(self) -> list[object]:
        return [
            self.tenant_id,
            self.customer_prefix,
            self.status,
            self.product_id,
            self.created_from,
            self.created_before,
            self.min_amount_minor,
            self.max_amount_minor,
            self.currency,
            self.api_key_id,
        ]


_PAYMENT_FILTER = """
      ($1::text IS NULL OR tenant_id = $1)
  AND ($2::text IS NULL OR starts_with(customer_id, $2))
  AND ($3::text IS NULL OR status = $3)
  AND ($4::text IS NULL OR product_id = $4)
  AND ($5::timestamptz IS NULL OR created_at >= $5)
  AND ($6::timestamptz IS NULL OR created_at < $6)
  AND ($7::bigint IS NULL OR amount_minor >= $7)
  AND ($8::bigint IS NULL OR amount_minor <= $8)
  AND ($9::text IS NULL OR currency = $9)
  AND ($10::text IS NULL OR api_key_id = $10)
"""

EXPORT_COLUMNS = (
    "payment_id",
    "tenant_id",
    "customer_id",
    "status",
    "amount_minor",
    "currency",
    "refunded_minor",
    "product_id",
    "description",
    "api_key_id",
    "provider",
    "provider_payment_id",
    "created_at",
    "updated_at",
    "approval_reason",
    "failure_reason",
)


async def payments_page(
    connection: asyncpg.Connection, query: PaymentQuery, limit: int, after: tuple[datetime, str] | None
) -> list[Payment]:
    """Newest first, keyset-paginated on (created_at, id)."""
    rows = await connection.fetch(
        f"""
        SELECT * FROM payments WHERE {_PAYMENT_FILTER}
           AND ($11::timestamptz IS NULL OR (created_at, id) < ($11, $12))
         ORDER BY created_at DESC, id DESC LIMIT $13
        """,
        *query.arguments(),
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [Payment.from_row(row) for row in rows]


def payments_export(connection: asyncpg.Connection, query: PaymentQuery) -> CursorFactory:
    """Every matching payment, newest first, as EXPORT_COLUMNS, read through a server-side cursor
    (iterate it inside a transaction): a large export never sits in memory."""
    return connection.cursor(
        f"""
        SELECT id AS payment_id, tenant_id, customer_id, status, amount_minor, currency, refunded_minor, product_id,
               description, api_key_id, provider, provider_payment_id, created_at, updated_at, approval_reason,
               failure_reason
          FROM payments WHERE {_PAYMENT_FILTER}
         ORDER BY created_at DESC, id DESC
        """,
        *query.arguments(),
        prefetch=500,
    )


@dataclass(frozen=True)
class HeldPayment:
    payment: Payment
    hold_note: str | None
    """The audit reason of the move to requires_approval (why it waits, and who may approve it)."""
    key_name: str | None


async def waiting_for_approval(connection: asyncpg.Connection, tenant_id: str | None, limit: int) -> list[HeldPayment]:
    """Payments held for an operator, oldest first, with the note of their hold and the name of the key."""
    rows = await connection.fetch(
        """
        SELECT p.*, hold.reason AS hold_note, k.name AS key_name
          FROM payments p
          LEFT JOIN api_keys k ON k.id = p.api_key_id
          LEFT JOIN LATERAL (SELECT reason FROM payment_audit a
                              WHERE a.payment_id = p.id AND a.to_status = 'requires_approval'
                              ORDER BY a.id DESC LIMIT 1) hold ON true
         WHERE p.status = 'requires_approval' AND ($1::text IS NULL OR p.tenant_id = $1)
         ORDER BY p.created_at, p.id LIMIT $2
        """,
        tenant_id,
        limit,
    )
    return [
        HeldPayment(
            Payment.from_row({k: v for k, v in row.items() if k not in ("hold_note", "key_name")}),
            row["hold_note"],
            row["key_name"],
        )
        for row in rows
    ]


# --- The overview ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayTotal:
    day: date
    currency: str | None
    """None on days with no payment at all (so every day of the range has a row)."""
    payments: int
    succeeded: int
    paid_minor: int
    """Money taken on payments created that day (succeeded, partially or fully refunded since)."""


async def daily_totals(
    connection: asyncpg.Connection, tenant_id: str | None, days: int, charged: list[str]
) -> list[DayTotal]:
    """Per UTC day of the last `days` days (today included) and currency: payments made, how many took money
    (their status is one of `charged`), what they took."""
    rows = await connection.fetch(
        """
        WITH days AS (
            SELECT generate_series((now() AT TIME ZONE 'UTC')::date - ($2::int - 1),
                                   (now() AT TIME ZONE 'UTC')::date, interval '1 day')::date AS day
        ), made AS (
            SELECT (created_at AT TIME ZONE 'UTC')::date AS day, currency, count(*) AS payments,
                   count(*) FILTER (WHERE status = ANY($3::text[])) AS succeeded,
                   coalesce(sum(amount_minor) FILTER (WHERE status = ANY($3::text[])), 0) AS paid_minor
              FROM payments
             WHERE ($1::text IS NULL OR tenant_id = $1)
               AND created_at >= ((now() AT TIME ZONE 'UTC')::date - ($2::int - 1)) AT TIME ZONE 'UTC'
             GROUP BY 1, 2
        )
        SELECT days.day, made.currency, coalesce(made.payments, 0)::int AS payments,
               coalesce(made.succeeded, 0)::int AS succeeded, coalesce(made.paid_minor, 0)::bigint AS paid_minor
          FROM days LEFT JOIN made USING (day)
         ORDER BY days.day, made.currency
        """,
        tenant_id,
        days,
        charged,
    )
    return [DayTotal(**dict(row)) for row in rows]


@dataclass(frozen=True)
class StatusCount:
    status: str
    currency: str
    payments: int
    amount_minor: int
    refunded_minor: int


async def status_totals(connection: asyncpg.Connection, tenant_id: str | None, days: int) -> list[StatusCount]:
    rows = await connection.fetch(
        """
        SELECT status, currency, count(*)::int AS payments, sum(amount_minor)::bigint AS amount_minor,
               sum(refunded_minor)::bigint AS refunded_minor
          FROM payments
         WHERE ($1::text IS NULL OR tenant_id = $1)
           AND created_at >= ((now() AT TIME ZONE 'UTC')::date - ($2::int - 1)) AT TIME ZONE 'UTC'
         GROUP BY status, currency ORDER BY status, currency
        """,
        tenant_id,
        days,
    )
    return [StatusCount(**dict(row)) for row in rows]


async def approvals_waiting(connection: asyncpg.Connection, tenant_id: str | None) -> tuple[int, datetime | None]:
    """How many payments wait for an operator, and since when the oldest has."""
    row = await connection.fetchrow(
        """
        SELECT count(*)::int AS waiting, min(created_at) AS oldest FROM payments
         WHERE status = 'requires_approval' AND ($1::text IS NULL OR tenant_id = $1)
        """,
        tenant_id,
    )
    return row["waiting"], row["oldest"]


async def inbox_outcomes(connection: asyncpg.Connection, tenant_id: str | None, outcomes: list[str]) -> dict[str, int]:
    """Stored events per outcome (of these outcomes), at any time."""
    rows = await connection.fetch(
        """
        SELECT outcome, count(*)::int AS events FROM webhook_events
         WHERE outcome = ANY($2::text[]) AND ($1::text IS NULL OR tenant_id = $1)
         GROUP BY outcome
        """,
        tenant_id,
        outcomes,
    )
    return {row["outcome"]: row["events"] for row in rows}


# --- Customers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerRow:
    tenant_id: str
    customer_id: str
    payments: int
    last_payment_at: datetime | None
    """None for a customer known only at the provider (a saved card, a link), without a payment yet."""


async def customers(connection: asyncpg.Connection, tenant_id: str | None, search: str | None, limit: int):
    """Customers (those with a payment or a provider customer), the most recently active first; `search`
    matches part of the id."""
    rows = await connection.fetch(
        """
        SELECT tenant_id, customer_id, sum(payments)::int AS payments, max(last_payment_at) AS last_payment_at
          FROM (SELECT tenant_id, customer_id, count(*) AS payments, max(created_at) AS last_payment_at,
                       max(created_at) AS active_at
                  FROM payments
                 WHERE ($1::text IS NULL OR tenant_id = $1)
                   AND ($2::text IS NULL OR strpos(lower(customer_id), lower($2)) > 0)
                 GROUP BY tenant_id, customer_id
                 UNION ALL
                SELECT tenant_id, customer_id, 0, NULL, updated_at
                  FROM customers
                 WHERE ($1::text IS NULL OR tenant_id = $1)
                   AND ($2::text IS NULL OR strpos(lower(customer_id), lower($2)) > 0)) known
         GROUP BY tenant_id, customer_id ORDER BY max(active_at) DESC, tenant_id, customer_id LIMIT $3
        """,
        tenant_id,
        search,
        limit,
    )
    return [CustomerRow(**dict(row)) for row in rows]


# --- The webhook inbox ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class InboxQuery:
    tenant_id: str | None = None
    outcomes: list[str] | None = None
    event_type: str | None = None
    received_from: datetime | None = None
    received_before: datetime | None = None
    problems: list[str] | None = None
    """Outcomes listed first (newest first among them), before every other event."""


async def inbox(connection: asyncpg.Connection, query: InboxQuery, limit: int) -> list[asyncpg.Record]:
    return await connection.fetch(
        """
        SELECT event_id, event_type, outcome, attempts, last_error, note, payment_id, received_at, tenant_id, source,
               endpoint, id AS inbox_id
          FROM webhook_events
         WHERE ($1::text IS NULL OR tenant_id = $1)
           AND ($2::text[] IS NULL OR outcome = ANY($2::text[]))
           AND ($3::text IS NULL OR event_type = $3)
           AND ($4::timestamptz IS NULL OR received_at >= $4)
           AND ($5::timestamptz IS NULL OR received_at < $5)
         ORDER BY outcome = ANY(coalesce($6::text[], '{}')) DESC, received_at DESC, id DESC
         LIMIT $7
        """,
        query.tenant_id,
        query.outcomes,
        query.event_type,
        query.received_from,
        query.received_before,
        query.problems,
        limit,
    )


async def inbox_event(connection: asyncpg.Connection, inbox_id: int, tenant_id: str | None) -> asyncpg.Record | None:
    return await connection.fetchrow(
        """
        SELECT event_id, event_type, outcome, attempts, last_error, last_attempt_at, note, payment_id, received_at,
               tenant_id, source, endpoint, id AS inbox_id, provider, payload
          FROM webhook_events WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2)
        """,
        inbox_id,
        tenant_id,
    )


async def inbox_events_of_payment(connection: asyncpg.Connection, payment_id: str) -> list[asyncpg.Record]:
    return await connection.fetch(
        """
        SELECT event_id, event_type, outcome, attempts, last_error, note, payment_id, received_at, tenant_id, source,
               endpoint, id AS inbox_id
          FROM webhook_events WHERE payment_id = $1 ORDER BY id
        """,
        payment_id,
    )


async def event_types(connection: asyncpg.Connection, tenant_id: str | None) -> list[str]:
    rows = await connection.fetch(
        "SELECT DISTINCT event_type FROM webhook_events WHERE $1::text IS NULL OR tenant_id = $1 ORDER BY 1",
        tenant_id,
    )
    return [row["event_type"] for row in rows]


# --- API keys -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeySpend:
    api_key_id: str
    currency: str
    charged_minor: int


async def key_spend_last_day(connection: asyncpg.Connection, tenant_id: str | None) -> list[KeySpend]:
    """What each key charged in the last 24 hours, as its budget counts it (refunds given back subtracted,
    failed and canceled payments left out, held ones counted)."""
    rows = await connection.fetch(
        f"""
        SELECT api_key_id, currency, sum(amount_minor - refunded_minor)::bigint AS charged_minor FROM payments
         WHERE api_key_id IS NOT NULL AND ($1::text IS NULL OR tenant_id = $1)
           AND charged_at > now() - interval '24 hours' AND {COUNTED}
         GROUP BY api_key_id, currency ORDER BY api_key_id, currency
        """,
        tenant_id,
    )
    return [KeySpend(**dict(row)) for row in rows]


async def credit_use_since(
    connection: asyncpg.Connection, tenant_id: str, customer_id: str, features: list[str], since: datetime
) -> list[dict[str, Any]]:
    """What the customer used of each of these metered features from `since` on, from the credit ledger."""
    rows = await connection.fetch(
        """
        SELECT feature, sum(used_delta)::bigint AS used, count(*) AS entries,
               min(created_at) AS first_at, max(created_at) AS last_at
          FROM credit_ledger
         WHERE tenant_id = $1 AND customer_id = $2 AND feature = ANY($4::text[]) AND created_at >= $3
           AND used_delta > 0
         GROUP BY feature ORDER BY feature
        """,
        tenant_id,
        customer_id,
        since,
        features,
    )
    return [
        {**dict(row), "first_at": row["first_at"].isoformat(), "last_at": row["last_at"].isoformat()} for row in rows
    ]
