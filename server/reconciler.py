"""Brings payments to the provider's truth when a crash, an outage or a lost webhook left them behind.

It reads the provider's event list from the last event it read, feeding every event through the
webhook inbox (stored once, applied through the same state machine, audited as the reconciler), so
an event the provider never managed to deliver is applied anyway. Then two kinds of payment left
behind are handled one by one:
- `created` with no live lease: recorded, but the provider call never finished. Submitting again
  is safe (our payment id is the provider's idempotency key), within the provider's 24-hour
  idempotency window; older ones are reported for an operator instead.
- open at the provider (`pending`, `requires_action`, `processing`) and quiet for a while: the
  provider's record is fetched and applied through the same state machine as webhooks.
Running it twice changes nothing the second time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncpg

from db import api_keys, event_cursors, payments
from db import refunds as db_refunds
from db.pool import connection, transaction
from server import charges, inbox, metrics, refunds
from server.charges import RESUBMIT_WITHIN_HOURS
from server.errors import PaywardenError, for_operator
from server.services import Services

logger = logging.getLogger(__name__)
BATCH = 100
EVENT_PAGES_PER_PASS = 20


@dataclass
class ReconcileReport:
    resubmitted: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    needs_operator: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    events_retried: int = 0
    events_read: int = 0
    events_applied: int = 0
    expired: list[str] = field(default_factory=list)
    """Charges that waited too long for an approval, canceled now."""

    def summary(self) -> str:
        return (
            f"resubmitted {len(self.resubmitted)}, updated {len(self.updated)}, unchanged {self.unchanged}, "
            f"needing an operator {len(self.needs_operator)}, provider events read {self.events_read} "
            f"(applied {self.events_applied}), failed webhook events retried {self.events_retried}, "
            f"held charges expired {len(self.expired)}, errors {len(self.errors)}"
        )


async def reconcile_once(services: Services) -> ReconcileReport:
    report = ReconcileReport()
    metrics.RECONCILER_RUNS.inc()
    await _read_event_list(services, report)
    await _resubmit_unfinished(services, report)
    await _refresh_open(services, report)
    await _finish_refunds(services, report)
    await _retry_failed_events(services, report)
    report.expired = await charges.expire_held(services)
    async with transaction(services.pool) as conn:
        await api_keys.forget_old_usage(conn)  # the rate limit only ever reads the current minute
    for kind, count in (
        ("resubmitted", len(report.resubmitted)),
        ("updated", len(report.updated)),
        ("events_retried", report.events_retried),
        ("events_applied", report.events_applied),
    ):
        if count:
            metrics.RECONCILER_FIXES.labels(kind).inc(count)
    return report


async def _read_event_list(services: Services, report: ReconcileReport) -> None:
    """Every event since the last one read, through the inbox: what was delivered is a duplicate
    and changes nothing; what was lost is applied now. One process reads at a time."""
    async with connection(services.pool) as conn:
        if not await event_cursors.try_lock_reader(conn):
            return
        try:
            await _read_events_holding_lock(services, conn, report)
        except PaywardenError as error:
            report.errors.append(f"reading the provider's event list: {for_operator(error)}")
        finally:
            await event_cursors.unlock_reader(conn)


async def _read_events_holding_lock(services: Services, conn: asyncpg.Connection, report: ReconcileReport) -> None:
    provider = services.provider
    cursor = await event_cursors.last_event(conn, provider.name)
    since = int(time.time()) - services.settings.reconcile_event_lookback_hours * 3600
    for _ in range(EVENT_PAGES_PER_PASS):
        page = await provider.events_after(cursor, created_since=since, limit=BATCH)
        if page is None:  # the provider forgot our last event: start again from the lookback window
            logger.warning("the provider no longer knows event %s; reading from the lookback window", cursor)
            cursor = None
            await event_cursors.save(conn, provider.name, None)
            continue
        for event in page.events:
            result = await inbox.ingest(services, event, source="event_list")
            report.events_read += 1
            if result.outcome == "applied":
                report.events_applied += 1
                logger.info("applied a missed event %s", event.event_id, extra={"event_id": event.event_id})
            elif result.outcome == "failed":
                report.errors.append(f"event {event.event_id}: {result.note}")
        if page.events:
            cursor = page.events[-1].event_id
            await event_cursors.save(conn, provider.name, cursor)
        if not page.has_more:
            return


async def _retry_failed_events(services: Services, report: ReconcileReport) -> None:
    for result in await inbox.retry_failed(services):
        if result.outcome == "failed":
            report.errors.append(f"webhook event still failing: {result.note}")
        else:
            report.events_retried += 1


async def _finish_refunds(services: Services, report: ReconcileReport) -> None:
    """Refunds hold their amount while open, so one left behind would block every later refund."""
    async with transaction(services.pool) as conn:
        unsubmitted = await db_refunds.unsubmitted(conn, limit=BATCH)
        quiet = await db_refunds.awaiting_provider(
            conn, quiet_for_seconds=services.settings.reconcile_after_seconds, limit=BATCH
        )
    for refund, finish, done in [(r, refunds.resume, report.resubmitted) for r in unsubmitted] + [
        (r, refunds.refresh, report.updated) for r in quiet
    ]:
        try:
            after = await finish(services, refund)
        except PaywardenError as error:
            report.errors.append(f"{refund.id}: {for_operator(error)}")
            continue
        if after.status != refund.status:
            done.append(refund.id)
        else:
            report.unchanged += 1


async def _resubmit_unfinished(services: Services, report: ReconcileReport) -> None:
    async with transaction(services.pool) as conn:
        candidates = await payments.unsubmitted(conn, younger_than_hours=RESUBMIT_WITHIN_HOURS, limit=BATCH)
        report.needs_operator = await payments.too_old_to_resubmit(conn, older_than_hours=RESUBMIT_WITHIN_HOURS)
    for payment in candidates:
        try:
            await charges.resume(services, payment)
            report.resubmitted.append(payment.id)
        except PaywardenError as error:
            report.errors.append(f"{payment.id}: {for_operator(error)}")


async def _refresh_open(services: Services, report: ReconcileReport) -> None:
    async with transaction(services.pool) as conn:
        quiet = services.settings.reconcile_after_seconds
        candidates = await payments.awaiting_provider(conn, quiet_for_seconds=quiet, limit=BATCH)
    for payment in candidates:
        try:
            changed = await _apply_provider_record(services, payment)
        except PaywardenError as error:
            report.errors.append(f"{payment.id}: {for_operator(error)}")
            continue
        if changed:
            report.updated.append(payment.id)
        else:
            report.unchanged += 1


async def _apply_provider_record(services: Services, payment: payments.Payment) -> bool:
    assert payment.provider_payment_id is not None  # only payments the provider answered are open there
    truth = await services.provider.retrieve_payment(payment.provider_payment_id)
    reason = "the provider's record, fetched by the reconciler"
    result = await charges.apply_provider_answer(services, payment.id, truth, actor="reconciler", reason=reason)
    if result.applied:
        logger.info(
            "reconciled %s: %s -> %s", payment.id, payment.status, truth.status, extra={"payment_id": payment.id}
        )
    return result.applied


async def reconcile_forever(services: Services, interval_seconds: float) -> None:
    """`paywarden up`'s background reconciler: a pass every interval, whatever a pass runs into."""
    while True:
        try:
            report = await reconcile_once(services)
            if report.resubmitted or report.updated or report.errors or report.needs_operator:
                logger.info("reconciler: %s", report.summary())
        except Exception as error:  # a dead database or provider must not end the loop
            logger.warning("reconciler pass failed: %s", type(error).__name__)
        await asyncio.sleep(interval_seconds)


@asynccontextmanager
async def running_in_background(services: Services) -> AsyncIterator[None]:
    """While the block runs, a pass every PAYWARDEN_RECONCILE_INTERVAL_SECONDS (none when it is 0)."""
    interval = services.settings.reconcile_interval_seconds
    if not interval:
        yield
        return
    task = asyncio.create_task(reconcile_forever(services, interval), name="reconciler")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
