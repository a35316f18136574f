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
Subscriptions are compared with the provider likewise, and a card the customer saved that the provider was
not told of (it did not answer) becomes the card their subscriptions charge.
Running it twice changes nothing the second time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from db import api_keys, event_cursors, payments, reconciler_runs
from db import refunds as db_refunds
from db.pool import connection, transaction
from db.reconciler_runs import ReconcilerRun
from server import charges, inbox, metrics, operator_sessions, refunds, subscriptions
from server.charges import RESUBMIT_WITHIN_HOURS
from server.errors import PaywardenError, for_operator
from server.providers import UnreadableEvent, WebhookEvent
from server.services import Services

logger = logging.getLogger(__name__)
BATCH = 100
EVENT_PAGES_PER_PASS = 20
READER_LEASE_SECONDS = 300.0
"""Longer than a pass's reading of the event list takes; a reader that dies lets it run out."""
VERIFY_WITHIN_HOURS = 24
KEEP_RUNS_DAYS = 7


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
    events_unreadable: int = 0
    expired: list[str] = field(default_factory=list)
    """Charges that waited too long for an approval, canceled now."""
    verified: int = 0
    attention: list[str] = field(default_factory=list)
    """Successes the provider does not show as paid: flagged for an operator, with both sides."""
    steps: dict[str, str] = field(default_factory=dict)
    """Each step's name and how it went (`ok`, or what stopped it); the other steps ran regardless."""

    def summary(self) -> str:
        return (
            f"resubmitted {len(self.resubmitted)}, updated {len(self.updated)}, unchanged {self.unchanged}, "
            f"needing an operator {len(self.needs_operator)}, provider events read {self.events_read} "
            f"(applied {self.events_applied}, unreadable {self.events_unreadable}), failed webhook events "
            f"retried {self.events_retried}, successes checked {self.verified} (flagged {len(self.attention)}), "
            f"held charges expired {len(self.expired)}, errors {len(self.errors)}"
        )


async def reconcile_once(services: Services) -> ReconcileReport:
    """One pass: every step runs on its own, so one that fails (a provider that does not answer, an event
    nobody can read) stops neither the others nor the next pass."""
    report = ReconcileReport()
    started_at = datetime.now(UTC)
    metrics.RECONCILER_RUNS.inc()
    for name, step in STEPS:
        try:
            await step(services, report)
            report.steps[name] = "ok"
        except Exception as error:  # one broken step must not keep the others from running
            said = for_operator(error) if isinstance(error, PaywardenError) else type(error).__name__
            report.steps[name] = f"failed: {said}"
            report.errors.append(f"{name}: {said}")
            logger.warning("reconciler step %r failed: %s", name, said, exc_info=not isinstance(error, PaywardenError))
    _count_fixes(report)
    await _record(services, report, started_at)
    return report


async def _record(services: Services, report: ReconcileReport, started_at: datetime) -> None:
    """Keep what the pass did for the console (the last run, and the last one that fixed something)."""
    try:
        async with transaction(services.pool) as conn:
            await reconciler_runs.record(conn, _run(report, started_at))
            await reconciler_runs.forget_old(conn, KEEP_RUNS_DAYS)
    except PaywardenError as error:  # the database went away meanwhile: the pass itself is done
        logger.warning("could not record the reconciler's pass: %s", for_operator(error))


def _count_fixes(report: ReconcileReport) -> None:
    for kind, count in (
        ("resubmitted", len(report.resubmitted)),
        ("updated", len(report.updated)),
        ("events_retried", report.events_retried),
        ("events_applied", report.events_applied),
        ("expired", len(report.expired)),
    ):
        if count:
            metrics.RECONCILER_FIXES.labels(kind).inc(count)


def _run(report: ReconcileReport, started_at: datetime) -> ReconcilerRun:
    return ReconcilerRun(
        started_at=started_at,
        finished_at=datetime.now(UTC),
        resubmitted=report.resubmitted,
        updated=report.updated,
        unchanged=report.unchanged,
        needs_operator=report.needs_operator,
        errors=report.errors,
        events_read=report.events_read,
        events_applied=report.events_applied,
        events_retried=report.events_retried,
        expired=report.expired,
        attention=report.attention,
    )


async def last_runs(services: Services) -> tuple[ReconcilerRun | None, ReconcilerRun | None]:
    """The reconciler's last pass, and the last one that fixed something (the same one, or an earlier one)."""
    async with connection(services.pool) as conn:
        return await reconciler_runs.last(conn), await reconciler_runs.last_with_fixes(conn)


async def _read_event_list(services: Services, report: ReconcileReport) -> None:
    """Every event since the last one read, through the inbox: what was delivered is a duplicate
    and changes nothing; what was lost is applied now. One process reads at a time (a lease)."""
    provider = services.provider.name
    async with transaction(services.pool) as conn:
        if not await event_cursors.take_reader_lease(conn, provider, READER_LEASE_SECONDS):
            report.steps["provider event list"] = "skipped: another process is reading it"
            return
    try:
        await _read_events_holding_lease(services, report)
    finally:
        async with transaction(services.pool) as conn:
            await event_cursors.release_reader_lease(conn, provider)


async def _read_events_holding_lease(services: Services, report: ReconcileReport) -> None:
    provider = services.provider
    async with connection(services.pool) as conn:
        cursor = await event_cursors.last_event(conn, provider.name)
    since = int(time.time()) - services.settings.reconcile_event_lookback_hours * 3600
    for _ in range(EVENT_PAGES_PER_PASS):
        page = await provider.events_after(cursor, created_since=since, limit=BATCH)
        if page is None:  # the provider forgot our last event: start again from the lookback window
            logger.warning("the provider no longer knows event %s; reading from the lookback window", cursor)
            cursor = await _move_cursor(services, None)
            continue
        for event in page.events:
            await _take_listed_event(services, event, report)
        if page.events:
            cursor = await _move_cursor(services, page.events[-1].event_id)
        if not page.has_more:
            return


async def _take_listed_event(
    services: Services, event: WebhookEvent | UnreadableEvent, report: ReconcileReport
) -> None:
    """Through the inbox, like a webhook; one that cannot be read is kept as rejected and passed over."""
    report.events_read += 1
    if isinstance(event, UnreadableEvent):
        report.events_unreadable += 1
        stored_as = await inbox.store_rejected(services, event.raw, event.reason)
        report.errors.append(f"event {event.event_id} cannot be read ({event.reason}); kept as {stored_as}")
        return
    result = await inbox.ingest(services, event, inbox.Arrival(source="event_list"))
    if result.outcome == "applied":
        report.events_applied += 1
        logger.info("applied a missed event %s", event.event_id, extra={"event_id": event.event_id})
    elif result.outcome in ("failed", "parked"):
        report.errors.append(f"event {event.event_id}: {result.note}")


async def _move_cursor(services: Services, event_id: str | None) -> str | None:
    async with transaction(services.pool) as conn:
        await event_cursors.save(conn, services.provider.name, event_id)
    return event_id


async def _retry_failed_events(services: Services, report: ReconcileReport) -> None:
    for result in await inbox.retry_failed(services):
        if result.outcome in ("failed", "parked"):
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


async def _refresh_subscriptions(services: Services, report: ReconcileReport) -> None:
    """Subscriptions nobody heard of for a while, compared with the provider and brought to its state."""
    quiet = services.settings.reconcile_after_seconds
    report.updated += await subscriptions.reconcile_quiet(services, quiet_seconds=quiet, limit=BATCH)


async def _finish_saved_cards(services: Services, report: ReconcileReport) -> None:
    """Cards saved while the provider did not answer: made the card their subscriptions charge now."""
    quiet = services.settings.reconcile_after_seconds
    report.updated += await subscriptions.finish_saved_cards(services, marked_seconds_ago=quiet, limit=BATCH)


async def _apply_provider_record(services: Services, payment: payments.Payment) -> bool:
    truth = await charges.provider_record(services, payment)
    reason = "the provider's record, fetched by the reconciler"
    result = await charges.apply_provider_answer(services, payment.id, truth, actor="reconciler", reason=reason)
    if result.applied:
        logger.info(
            "reconciled %s: %s -> %s", payment.id, payment.status, truth.status, extra={"payment_id": payment.id}
        )
    return result.applied


async def _verify_recent_successes(services: Services, report: ReconcileReport) -> None:
    """A forged or mistaken success does not go unnoticed: each one of the last day is checked once."""
    async with transaction(services.pool) as conn:
        recent = await payments.succeeded_unverified(conn, within_hours=VERIFY_WITHIN_HOURS, limit=BATCH)
    for payment in recent:
        try:
            note = await charges.verify_success(services, payment)
        except PaywardenError as error:
            report.errors.append(f"{payment.id}: {for_operator(error)}")
            continue
        report.verified += 1
        if note:
            logger.error("%s needs an operator: %s", payment.id, note, extra={"payment_id": payment.id})
            report.attention.append(f"{payment.id}: {note}")


async def _expire_held(services: Services, report: ReconcileReport) -> None:
    report.expired = await charges.expire_held(services)


async def _forget_old_usage(services: Services, report: ReconcileReport) -> None:
    async with transaction(services.pool) as conn:
        await api_keys.forget_old_usage(conn)  # the rate limit only ever reads the current minute


async def _forget_ended_sessions(services: Services, report: ReconcileReport) -> None:
    await operator_sessions.forget_expired(services)


STEPS: tuple[tuple[str, Callable[[Services, ReconcileReport], Awaitable[None]]], ...] = (
    ("provider event list", _read_event_list),
    ("unfinished payments", _resubmit_unfinished),
    ("quiet open payments", _refresh_open),
    ("quiet subscriptions", _refresh_subscriptions),
    ("saved cards for subscriptions", _finish_saved_cards),
    ("refunds", _finish_refunds),
    ("failed webhook events", _retry_failed_events),
    ("recent successes", _verify_recent_successes),
    ("held charges", _expire_held),
    ("rate-limit counts", _forget_old_usage),
    ("ended console sessions", _forget_ended_sessions),
)


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
