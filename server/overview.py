"""The console's first page, in numbers: payments per day (how many, how many succeeded, what they took, per
currency) over 7, 30 or 90 days; totals by status and by currency; what waits for an operator; the webhook
inbox's problems; the reconciler's last pass and what it last fixed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from db import reconciler_runs, reports
from db.pool import connection
from db.reconciler_runs import ReconcilerRun
from db.reports import StatusCount
from server.errors import InvalidRequest
from server.inbox import PROBLEMS
from server.ledger.payment_machine import CHARGED
from server.services import Services

RANGES = (7, 30, 90)


@dataclass(frozen=True)
class Day:
    day: date
    payments: int
    succeeded: int


@dataclass(frozen=True)
class CurrencyTotal:
    currency: str
    payments: int
    paid_minor: int
    """Taken by payments that succeeded (whether refunded since or not)."""
    refunded_minor: int


@dataclass(frozen=True, kw_only=True)
class Overview:
    days: int
    per_day: list[Day]
    paid_per_day: dict[str, list[int]]
    """Per currency, what was taken each day of `per_day` (same order)."""
    by_status: dict[str, int]
    by_currency: list[CurrencyTotal]
    approvals_waiting: int
    oldest_waiting_since: datetime | None
    inbox_problems: dict[str, int]
    """Events per problem outcome (failed, rejected, needs_attention), zeros included."""
    last_run: ReconcilerRun | None
    last_fix: ReconcilerRun | None


def check_range(days: int) -> int:
    if days not in RANGES:
        raise InvalidRequest(f"The overview covers {', '.join(map(str, RANGES))} days; got {days}.")
    return days


async def overview(services: Services, tenant_id: str | None, days: int = 7) -> Overview:
    """One tenant's numbers, or every tenant's (None)."""
    check_range(days)
    async with connection(services.pool) as conn:
        daily = await reports.daily_totals(conn, tenant_id, days, list(CHARGED))
        statuses = await reports.status_totals(conn, tenant_id, days)
        waiting, oldest = await reports.approvals_waiting(conn, tenant_id)
        problems = await reports.inbox_outcomes(conn, tenant_id, list(PROBLEMS))
        last_run, last_fix = await reconciler_runs.last(conn), await reconciler_runs.last_with_fixes(conn)
    per_day = _per_day(daily)
    return Overview(
        days=days,
        per_day=per_day,
        paid_per_day=_paid_per_day(daily, [day.day for day in per_day]),
        by_status=_by_status(statuses),
        by_currency=_by_currency(statuses),
        approvals_waiting=waiting,
        oldest_waiting_since=oldest,
        inbox_problems={outcome: problems.get(outcome, 0) for outcome in PROBLEMS},
        last_run=last_run,
        last_fix=last_fix,
    )


def _per_day(daily: list[reports.DayTotal]) -> list[Day]:
    days: dict[date, Day] = {}
    for row in daily:
        seen = days.get(row.day, Day(row.day, 0, 0))
        days[row.day] = Day(row.day, seen.payments + row.payments, seen.succeeded + row.succeeded)
    return list(days.values())


def _paid_per_day(daily: list[reports.DayTotal], days: list[date]) -> dict[str, list[int]]:
    currencies = sorted({row.currency for row in daily if row.currency and row.paid_minor})
    paid = {(row.day, row.currency): row.paid_minor for row in daily}
    return {currency: [paid.get((day, currency), 0) for day in days] for currency in currencies}


def _by_status(statuses: list[StatusCount]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in statuses:
        counts[row.status] = counts.get(row.status, 0) + row.payments
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def _by_currency(statuses: list[StatusCount]) -> list[CurrencyTotal]:
    totals: dict[str, CurrencyTotal] = {}
    for row in statuses:
        seen = totals.get(row.currency, CurrencyTotal(row.currency, 0, 0, 0))
        paid = row.amount_minor if row.status in CHARGED else 0
        totals[row.currency] = CurrencyTotal(
            row.currency, seen.payments + row.payments, seen.paid_minor + paid, seen.refunded_minor + row.refunded_minor
        )
    return sorted(totals.values(), key=lambda total: total.currency)
