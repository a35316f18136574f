"""The webhook inbox: each verified provider event stored once and applied, in one transaction.

Used by the webhook endpoints, by `paywarden webhooks replay` and by the reconciler. If applying an
event fails, the event stays stored with its error and attempt count (outcome `failed`) and is
tried again when the provider redelivers it, when the reconciler runs (with backoff), or on replay —
never dropped; after PAYWARDEN_MAX_EVENT_ATTEMPTS it is parked for an operator.

Events move payments (payment intents, and the payment pages they are paid on), refunds, disputes, and card
setups (a card saved becomes the customer's default, and the card their live subscriptions charge — the
provider is told once the event's transaction commits; a card detached at the provider is forgotten).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import asyncpg

from db import customers, payments, refunds, reports, setups, webhook_events
from db.payments import Payment, PaymentStatus
from db.pool import RETRYABLE, connection, retry_on_deadlock, transaction
from db.refunds import Refund, RefundStatus
from db.reports import InboxQuery
from server import disputes, metrics, outbox, subscriptions
from server.config import Settings
from server.errors import InvalidRequest, NotFound, ProviderError, for_operator
from server.fields import check_listing_limit
from server.filters import day_after, day_start
from server.ledger import dispute_machine, payment_machine, refund_outcomes, setup_outcomes
from server.ledger.setup_outcomes import describe
from server.providers import ProviderPayment, ProviderRefund, ProviderSetup, WebhookEvent, close_at_provider
from server.providers.stripe import event_from_payload
from server.services import Services

logger = logging.getLogger(__name__)


PROBLEMS = ("failed", "parked", "rejected", "needs_attention")
"""Outcomes an operator must look at: handling failed (and, after PAYWARDEN_MAX_EVENT_ATTEMPTS, was parked),
a signed body that was no event (or described another amount), money taken for a payment paywarden had
already closed."""
NO_ACTION = ("unhandled", "ignored", "unmatched")
"""Normal traffic that changed nothing: types paywarden does not act on, events already covered
(duplicates of a state, out of order), events about payments that are not ours."""
RETRYABLE_OUTCOMES = ("received", "failed", "parked")
"""A delivery of an event stored with one of these is tried again (a provider's redelivery, a replay)."""
PLATFORM = "platform"
"""The endpoint of the provider account paywarden itself holds: /webhooks/stripe and the event list."""


@dataclass(frozen=True, kw_only=True)
class Arrival:
    """Where and how an event came in: its identity in the inbox is (provider, endpoint, event id), so an
    id one endpoint received never makes another endpoint's event of that id a duplicate."""

    endpoint: str = PLATFORM
    """platform, tenant:<id> (a tenant's own endpoint) or standard (Standard Webhooks)."""
    source: str = "webhook"
    """webhook (pushed to us) or event_list (read from the provider by the reconciler)."""
    tenant_id: str | None = None
    """Set for a tenant's own endpoint: its events may only touch that tenant's payments and refunds."""

    @classmethod
    def tenant(cls, tenant_id: str) -> Arrival:
        return cls(endpoint=f"tenant:{tenant_id}", tenant_id=tenant_id)


FILTERS: dict[str, list[str] | None] = {
    "": [outcome for outcome in webhook_events.OUTCOMES if outcome not in NO_ACTION],
    "all": None,
    "problems": list(PROBLEMS),
    "no_action": list(NO_ACTION),
}
"""Named choices of outcomes: `""` is what did something, and the problems (the default view)."""


@dataclass(frozen=True)
class InboxEntry:
    event_id: str
    event_type: str
    outcome: str
    attempts: int
    last_error: str | None
    note: str | None
    payment_id: str | None
    received_at: datetime
    tenant_id: str | None
    source: str
    endpoint: str
    inbox_id: int | None = None
    """The inbox row (an event id may be stored once per endpoint)."""

    @property
    def is_problem(self) -> bool:
        return self.outcome in PROBLEMS

    @property
    def needs_no_action(self) -> bool:
        return self.outcome in NO_ACTION


@dataclass(frozen=True)
class Ingested:
    outcome: str
    """applied, ignored, unhandled, unmatched, rejected, needs_attention, failed, parked — or duplicate,
    or not_for_tenant (at a tenant's own endpoint: another tenant's event, not stored)."""
    payment_id: str | None = None
    note: str | None = None
    close_at_provider: str | None = None
    """A provider payment to cancel once this is committed (it failed, so nobody may pay it later)."""
    setup_id: str | None = None
    tenant_id: str | None = None
    """The tenant of what the event touched, when it is neither a payment nor a setup (a saved card)."""
    subscriptions_to_update: tuple[str, ...] = ()
    """Subscriptions to charge the card a setup saved, told to the provider once this is committed."""


async def ingest(services: Services, event: WebhookEvent, arrival: Arrival | None = None) -> Ingested:
    """Store the event (once per endpoint) and apply it; a duplicate of an applied event changes nothing,
    a duplicate of a failed one is the retry. Read from the provider's event list (`source` event_list),
    its changes are audited as the reconciler's. With PAYWARDEN_WEBHOOK_CONFIRM_WITH_PROVIDER, a payment
    event that would grant something is first checked against the provider's own record.

    A card saved at the provider is described by its event only by its id: its look (brand, last4, expiry)
    is fetched from the provider first; if the provider does not answer, the event is kept as failed and
    completed on a retry, as an unconfirmed one is."""
    arrival = arrival or Arrival()
    try:
        event = await _with_saved_card(services, await _confirmed(services, event))
        event = await _with_subscription_truth(services, event)
    except ProviderError as error:
        result = await _store_unconfirmed(services, event, arrival, error)
    else:
        result = await _ingest(services, event, arrival)
    metrics.WEBHOOK_EVENTS.labels(result.outcome).inc()
    if result.close_at_provider:
        await close_at_provider(services.provider, result.close_at_provider)
    if result.subscriptions_to_update:
        actor = "reconciler" if arrival.source == "event_list" else "webhook"
        await subscriptions.use_saved_cards(services, result.subscriptions_to_update, actor=actor)
    return result


async def _confirmed(services: Services, event: WebhookEvent) -> WebhookEvent:
    """The event, its payment replaced by the provider's own record when the operator asked for that and
    the event says the money arrived (Stripe's advice for critical events)."""
    reported = event.payment
    if not (services.settings.webhook_confirm_with_provider and reported and reported.status == "succeeded"):
        return event
    truth = await _providers_record(services, reported)
    return replace(event, payment=replace(truth, payment_id=truth.payment_id or reported.payment_id))


async def _providers_record(services: Services, reported: ProviderPayment) -> ProviderPayment:
    """What the provider shows for the payment the event names: by the event's own ids, else by the ids
    paywarden recorded for that payment; ProviderError when there is nothing to ask by (kept, tried again)."""
    page, intent = (reported.checkout_id if reported.from_payment_page else None), reported.provider_payment_id
    if not (page or intent) and reported.payment_id:
        async with connection(services.pool) as conn:
            recorded = await payments.get(conn, reported.payment_id[:64], tenant_id=None)
        if recorded is not None:
            page, intent = recorded.provider_checkout_id, recorded.provider_payment_id
    if page:
        return await services.provider.retrieve_payment_page(page)
    if intent:
        return await services.provider.retrieve_payment(intent)
    raise ProviderError("The event names no payment the provider could confirm; it is kept and tried again.")


async def _with_subscription_truth(services: Services, event: WebhookEvent) -> WebhookEvent:
    """A subscription's events may arrive twice, late or out of order (an invoice paid before the update that
    announces its period): each is applied as the provider's subscription stands now, fetched first, so they
    all converge. A paid invoice that does not name its payment is fetched with it."""
    named = event.subscription.provider_subscription_id if event.subscription else None
    invoice = event.invoice
    if invoice is not None:
        named = named or invoice.provider_subscription_id
        if invoice.status == "paid" and invoice.amount_minor and not invoice.provider_payment_id:
            invoice = await services.provider.retrieve_invoice(invoice.provider_invoice_id)
    if named is None:
        return event
    truth = await services.provider.retrieve_subscription(named)
    return replace(event, subscription=truth, invoice=invoice)


async def _with_saved_card(services: Services, event: WebhookEvent) -> WebhookEvent:
    if event.setup is None or event.setup.status != "succeeded" or event.setup.card is not None:
        return event
    return replace(event, setup=await services.provider.saved_card(event.setup))


async def store_rejected(services: Services, raw: str, reason: str, endpoint: str = PLATFORM) -> str:
    """Keep a correctly signed body that is not an event we can handle, under an id derived from its bytes."""
    event_id = "malformed_" + hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    metrics.WEBHOOK_EVENTS.labels("rejected").inc()
    async with transaction(services.pool) as conn:
        inbox_id, outcome = await webhook_events.store(
            conn,
            provider=services.provider.name,
            endpoint=endpoint,
            event_id=event_id,
            event_type="malformed",
            payload={"raw": storable_text(raw[:65536])},
        )
        if outcome == "received":
            await webhook_events.record_outcome(conn, inbox_id, outcome="rejected", payment_id=None, note=reason)
    return event_id


def storable_text(text: str) -> str:
    """Text PostgreSQL's jsonb can hold: NUL characters and lone surrogates written out as escapes."""
    return text.replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode("utf-8")


async def listing(services: Services, *, which: str = "default", limit: int = 50) -> list[InboxEntry]:
    """The newest stored events. `which`: `default` (what did something, and problems), `problems`,
    `failed`, or `all` (normal traffic that needed no action too)."""
    check_listing_limit(limit)
    outcomes = {**FILTERS, "default": FILTERS[""], "failed": ["failed", "parked"]}[which]
    async with connection(services.pool) as conn:
        rows = await webhook_events.listing(conn, outcomes=outcomes, limit=limit)
    return [InboxEntry(**dict(row)) for row in rows]


async def replay(services: Services, event_id: str) -> list[Ingested]:
    """Apply every stored copy of an event again (what `paywarden webhooks replay` does); only failed and
    parked ones change."""
    async with connection(services.pool) as conn:
        stored = await webhook_events.copies(conn, services.provider.name, event_id)
    if not stored:
        return [Ingested("unknown", note=f"no stored event {event_id!r}")]
    return [await _again(services, row) for row in stored]


@dataclass(frozen=True, kw_only=True)
class StoredEvent(InboxEntry):
    """One stored event in full: its body as the provider sent it, and when it was last tried."""

    provider: str
    payload: dict[str, Any]
    last_attempt_at: datetime | None


@dataclass(frozen=True, kw_only=True)
class InboxFilters:
    """The inbox as an operator filters it. `outcome`: empty for what did something and the problems (normal
    traffic that needed no action hidden, as `webhooks list` does), `all`, `problems`, `no_action`, or one
    outcome. `event_type`: one type. A date range: UTC days, both included."""

    outcome: str = ""
    event_type: str = ""
    date_from: str = ""
    date_to: str = ""

    def query(self, tenant_id: str | None) -> InboxQuery:
        return InboxQuery(
            tenant_id=tenant_id,
            outcomes=_outcomes(self.outcome.strip()),
            event_type=self.event_type.strip() or None,
            received_from=day_start(self.date_from),
            received_before=day_after(self.date_to),
            problems=list(PROBLEMS),
        )


def _outcomes(outcome: str) -> list[str] | None:
    if outcome in FILTERS:
        return FILTERS[outcome]
    if outcome not in webhook_events.OUTCOMES:
        choices = ", ".join(["all", "problems", "no_action", *webhook_events.OUTCOMES])
        raise InvalidRequest(f"Unknown outcome {outcome!r}; one of {choices}.")
    return [outcome]


async def search(
    services: Services, tenant_id: str | None, filters: InboxFilters, limit: int = 200
) -> list[InboxEntry]:
    """Stored events the filters match, problems first, then newest first: one tenant's (events not matched
    to any tenant are a platform operator's only), or every one (None)."""
    async with connection(services.pool) as conn:
        rows = await reports.inbox(conn, filters.query(tenant_id), limit)
    return [InboxEntry(**dict(row)) for row in rows]


async def event(services: Services, inbox_id: int, tenant_id: str | None) -> StoredEvent:
    """One stored event in full; another tenant's (for a `tenant_id`) is NotFound like one never received."""
    async with connection(services.pool) as conn:
        row = await reports.inbox_event(conn, inbox_id, tenant_id)
    if row is None:
        raise NotFound(f"No stored webhook event {inbox_id}.")
    return StoredEvent(**dict(row))


async def replay_one(services: Services, inbox_id: int) -> Ingested:
    """Apply one stored event again (the console's replay); only a failed or parked one changes."""
    async with connection(services.pool) as conn:
        row = await webhook_events.get(conn, inbox_id)
    if row is None:
        return Ingested("unknown", note=f"no stored event {inbox_id}")
    return await _again(services, row)


async def event_types(services: Services, tenant_id: str | None) -> list[str]:
    async with connection(services.pool) as conn:
        return await reports.event_types(conn, tenant_id)


async def retry_failed(services: Services, page: int = 100) -> list[Ingested]:
    """Retry every failed event whose next attempt is due, page by page (each failure pushes its own next
    attempt back, and parks the event for an operator after PAYWARDEN_MAX_EVENT_ATTEMPTS)."""
    results, after = [], 0
    while True:
        async with connection(services.pool) as conn:
            due = await webhook_events.due_failures(conn, services.provider.name, after_id=after, limit=page)
        for inbox_id in due:
            async with connection(services.pool) as conn:
                row = await webhook_events.get(conn, inbox_id)
            results.append(await _again(services, row))
        if len(due) < page:
            return results
        after = due[-1]


async def _again(services: Services, row: asyncpg.Record) -> Ingested:
    arrival = Arrival(endpoint=row["endpoint"], source=row["source"], tenant_id=row["tenant_id"])
    if row["event_type"] == "malformed":
        return Ingested(row["outcome"], note="a body that was not an event; nothing to apply")
    return await ingest(services, event_from_payload(row["payload"]), arrival)


class _NotThisTenants(Exception):
    """Raised inside the transaction to undo storing an event a tenant's endpoint has no business with."""


async def _ingest(services: Services, event: WebhookEvent, arrival: Arrival) -> Ingested:
    """A tenant's endpoint receives every event of the provider account, other tenants' included (one
    account serves them all): it stores only its own."""
    try:
        return await _store_and_apply(services, event, arrival)
    except _NotThisTenants:
        return Ingested("not_for_tenant", note=f"not an event of tenant {arrival.tenant_id!r}; nothing was stored")


class _ApplyFailed(Exception):
    """Applying the event raised: its transaction is rolled back whole, and the event is stored as failed."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@retry_on_deadlock
async def _store_and_apply(services: Services, event: WebhookEvent, arrival: Arrival) -> Ingested:
    try:
        return await _store_and_apply_once(services, event, arrival)
    except _ApplyFailed as failed:
        return await _store_failed(services, event, arrival, failed.problem)
    except RETRYABLE:
        raise
    except asyncpg.PostgresError as error:
        # Refused after applying, as it was written or at COMMIT (a deferred check: the receipt's numbering
        # waiting too long for its tenant's counter, say): kept as failed like any failure to apply.
        logger.exception("storing event %s failed; kept for retry", event.event_id, extra=_ids(event))
        return await _store_failed(services, event, arrival, f"{type(error).__name__}: {str(error)[:300]}")


async def _store_and_apply_once(services: Services, event: WebhookEvent, arrival: Arrival) -> Ingested:
    """One transaction, no savepoint (two round trips fewer per event): when applying fails, the event is
    stored as failed by a transaction of its own."""
    provider = services.provider.name
    actor = "reconciler" if arrival.source == "event_list" else "webhook"
    async with transaction(services.pool) as conn:
        inbox_id, outcome, locked = await _store_and_lock(conn, provider, event, arrival)
        if outcome not in RETRYABLE_OUTCOMES:
            return Ingested("duplicate", note=f"event already received ({outcome}); nothing changed")
        try:
            with outbox.held(conn) as made:  # written with the outcome, below: one round trip fewer
                if event.dispute is not None:
                    result = await _apply_dispute(conn, provider, event, actor, arrival.tenant_id, services.settings)
                else:
                    result = await _apply(conn, services, event, actor, arrival.tenant_id, locked)
        except RETRYABLE:
            raise  # a deadlock victim: the whole delivery is tried again (retry_on_deadlock)
        except Exception as error:
            logger.exception("applying event %s failed; kept for retry", event.event_id, extra=_ids(event))
            raise _ApplyFailed(f"{type(error).__name__}: {str(error)[:300]}") from error
        if arrival.tenant_id is not None and result.outcome in ("unmatched", "unhandled"):
            raise _NotThisTenants()
        await webhook_events.record_outcome(
            conn,
            inbox_id,
            outcome=result.outcome,
            payment_id=result.payment_id,
            note=result.note,
            setup_id=result.setup_id,
            tenant_id=result.tenant_id,
            events=made.payloads,
            retry_for_seconds=outbox.RETRY_FOR_SECONDS,
        )
        return result


async def _store_unconfirmed(
    services: Services, event: WebhookEvent, arrival: Arrival, error: ProviderError
) -> Ingested:
    """The provider could not confirm the event: kept as failed, to be confirmed and applied on a retry. The
    stored error is read by operators (`webhooks list`, the console), so it is worded for them."""
    return await _store_failed(services, event, arrival, f"could not confirm with the provider: {for_operator(error)}")


async def _store_failed(services: Services, event: WebhookEvent, arrival: Arrival, problem: str) -> Ingested:
    async with transaction(services.pool) as conn:
        inbox_id, outcome = await _store(conn, services.provider.name, event, arrival)
        if outcome not in RETRYABLE_OUTCOMES:
            return Ingested("duplicate", note=f"event already received ({outcome}); nothing changed")
        return await _failed(conn, services, inbox_id, problem)


async def _store(conn: asyncpg.Connection, provider: str, event: WebhookEvent, arrival: Arrival) -> tuple[int, str]:
    return await webhook_events.store(conn, **_inbox_row(provider, event, arrival))


async def _store_and_lock(
    conn: asyncpg.Connection, provider: str, event: WebhookEvent, arrival: Arrival
) -> tuple[int, str, Payment | None]:
    """`_store`; for a new event about a payment named by paywarden's id (what _apply would lock first), that
    payment locked in the same statement (one round trip fewer). None when it was not locked here."""
    payment_id = _payment_named(event)
    if payment_id is None:
        return (*await _store(conn, provider, event, arrival), None)
    return await webhook_events.store_and_lock_payment(
        conn, **_inbox_row(provider, event, arrival), payment_id=payment_id
    )


def _inbox_row(provider: str, event: WebhookEvent, arrival: Arrival) -> dict[str, Any]:
    """What the inbox keeps of an event: its identity (provider, endpoint, id), type, body and arrival."""
    return {
        "provider": provider,
        "endpoint": arrival.endpoint,
        "event_id": event.event_id,
        "event_type": event.event_type,
        "payload": event.payload,
        "source": arrival.source,
        "tenant_id": arrival.tenant_id,
    }


def _payment_named(event: WebhookEvent) -> str | None:
    """The payment id an event about a payment names, when _apply would lock that payment first."""
    others = (event.dispute, event.subscription, event.refund, event.setup, event.detached_payment_method)
    if event.payment is None or any(other is not None for other in others):
        return None
    return event.payment.payment_id[:64] if event.payment.payment_id else None


async def _failed(conn: asyncpg.Connection, services: Services, inbox_id: int, problem: str) -> Ingested:
    attempts_before = (await webhook_events.get(conn, inbox_id))["attempts"]
    outcome = await webhook_events.record_failure(
        conn,
        inbox_id,
        problem,
        retry_in_seconds=retry_backoff_seconds(attempts_before),
        park_after=services.settings.max_event_attempts,
    )
    if outcome == "parked":
        return Ingested("parked", note="applying the event keeps failing; it is parked for an operator")
    return Ingested("failed", note="applying the event failed; it is stored and will be retried")


def retry_backoff_seconds(attempts_so_far: int) -> float:
    """1 minute after the first failure, doubling, at most an hour apart."""
    return float(min(60 * 2 ** min(attempts_so_far, 10), 3600))


def _ids(event: WebhookEvent) -> dict[str, str]:
    return {"event_id": event.event_id}


async def _apply(
    conn: asyncpg.Connection,
    services: Services,
    event: WebhookEvent,
    actor: str,
    tenant_id: str | None,
    locked: Payment | None = None,
) -> Ingested:
    """`locked`: the payment the event names, already locked with the inbox row (see _store_and_lock)."""
    provider = services.provider.name
    why = f"{event.event_type} ({event.event_id})"
    if event.subscription is not None:
        return await _apply_subscription(conn, services, event, actor, tenant_id, why)
    if event.refund is not None:
        return await _apply_refund(conn, provider, event.refund, actor, tenant_id)
    if event.setup is not None:
        return await _apply_setup(conn, provider, event.setup, actor, tenant_id, why)
    if event.detached_payment_method is not None:
        return await _forget_card(conn, provider, event.detached_payment_method, actor, tenant_id, why)
    reported = event.payment
    if reported is None:
        return Ingested("unhandled", note=f"event type {event.event_type} changes no payment")
    payment = locked or await _find_payment(conn, provider, reported, tenant_id)
    if payment is None:
        return Ingested("unmatched", note="no payment of ours matches this event")
    if payment.subscription_id:
        return Ingested("ignored", payment.id, "a subscription's payment moves with its invoice, not its intent")
    mismatch = _mismatch(payment, reported)
    if mismatch:
        return Ingested("rejected", payment.id, mismatch)
    if _the_page_decides(payment, reported):
        note = f"the payment page decides this payment, not its intent's {reported.status} (the person may try again)"
        return Ingested("ignored", payment.id, note)
    change = payment_machine.Transition(
        to_status=PaymentStatus(reported.status),
        actor=actor,
        reason=why,
        provider_payment_id=reported.provider_payment_id,
        provider_checkout_id=reported.checkout_id,
        next_action_url=reported.next_action_url,
        failure_reason=reported.failure_reason,
    )
    result = await payment_machine.apply(conn, payment, change)
    if result.applied:
        # A failed intent is closed so nobody pays it later; a payment page's intent closes with its page.
        closing = reported.status == "failed" and not payment.provider_checkout_id
        return Ingested("applied", payment.id, None, reported.provider_payment_id if closing else None)
    if reported.status == "succeeded" and payment.status in ("failed", "canceled"):
        logger.error("money taken for %s after it was recorded %s: refund it", payment.id, payment.status)
        note = f"the provider took the money after paywarden recorded the payment {payment.status}: refund it"
        return Ingested("needs_attention", payment.id, note)
    return Ingested("ignored", payment.id, result.note)


async def _apply_subscription(
    conn: asyncpg.Connection, services: Services, event: WebhookEvent, actor: str, tenant_id: str | None, why: str
) -> Ingested:
    assert event.subscription is not None
    outcome, note, sub = await subscriptions.apply_event(
        conn,
        services.catalog,
        services.provider.name,
        event.subscription,
        event.invoice,
        actor=actor,
        reason=why,
        tenant_id=tenant_id,
    )
    return Ingested(outcome, note=note, tenant_id=sub.tenant_id if sub else None)


async def _apply_refund(
    conn: asyncpg.Connection, provider: str, reported: ProviderRefund, actor: str, tenant_id: str | None
) -> Ingested:
    refund = await _find_refund(conn, reported, tenant_id)
    if refund is None:
        refund = await _record_outside_refund(conn, provider, reported, tenant_id)
        if refund is None:
            return Ingested("unmatched", note="no refund or payment of ours matches this event")
    if (reported.amount_minor, reported.currency) != (refund.amount_minor, refund.currency):
        return Ingested("rejected", refund.payment_id, "refund amount differs from the one recorded")
    before = refund.status
    if before == "succeeded" and reported.status in ("failed", "canceled"):
        logger.error("refund %s failed after it succeeded: the money did not go back", refund.id)
        note = f"refund {refund.id} was recorded succeeded, the provider now says {reported.status}: check it"
        return Ingested("needs_attention", refund.payment_id, note)
    after = await refund_outcomes.apply(
        conn,
        refund.id,
        RefundStatus(reported.status),
        actor=actor,
        provider_refund_id=reported.provider_refund_id,
        failure_reason=reported.failure_reason,
    )
    if after.status == before:
        return Ingested("ignored", refund.payment_id, f"refund {refund.id} is already {before}")
    return Ingested("applied", refund.payment_id, f"refund {refund.id}: {before} -> {after.status}")


async def _apply_dispute(
    conn: asyncpg.Connection,
    provider: str,
    event: WebhookEvent,
    actor: str,
    tenant_id: str | None,
    settings: Settings,
) -> Ingested:
    reported = event.dispute
    assert reported is not None
    payment = None
    if reported.provider_payment_id:
        payment = await payments.lock_by_provider_id(conn, provider, reported.provider_payment_id, tenant_id=tenant_id)
    if payment is None:
        return Ingested("unmatched", note="no payment of ours matches this dispute")
    if reported.currency not in (None, payment.currency):
        return Ingested("rejected", payment.id, f"dispute currency {reported.currency} is not the payment's")
    change = await dispute_machine.apply(
        conn,
        payment,
        reported,
        provider=provider,
        policy=settings.dispute_policy,
        actor=actor,
        reason=f"{event.event_type} ({event.event_id})",
        event_type=event.event_type,
    )
    if change.opened and settings.dispute_auto_evidence:
        await disputes.stage_evidence(conn, change.dispute, payment, actor=actor)
    return Ingested("applied" if change.applied else "ignored", payment.id, change.note)


def _the_page_decides(payment: Payment, reported: ProviderPayment) -> bool:
    """On a payment page (Checkout) a declined card fails one attempt, not the payment: the person may try
    another card until the page completes or expires, and its intent is canceled only because the page
    expired. So the intent's events count only when money moved; the page's own events decide the rest."""
    paying = ("succeeded", "processing")
    return bool(payment.provider_checkout_id) and not reported.from_payment_page and reported.status not in paying


async def _apply_setup(
    conn: asyncpg.Connection, provider: str, reported: ProviderSetup, actor: str, tenant_id: str | None, why: str
) -> Ingested:
    setup = await _find_setup(conn, provider, reported, tenant_id)
    if setup is None:
        return Ingested("unmatched", note="no card setup of ours matches this event")
    change = await setup_outcomes.apply(conn, setup, reported, actor=actor, reason=why)
    if change.applied:
        note = f"setup {setup.id}: {setup.status} -> {change.setup.status}"
        return Ingested("applied", note=note, setup_id=setup.id, subscriptions_to_update=change.subscriptions_to_update)
    return Ingested("ignored", note=change.note, setup_id=setup.id)


async def _find_setup(
    conn: asyncpg.Connection, provider: str, reported: ProviderSetup, tenant_id: str | None
) -> setups.Setup | None:
    if reported.setup_id:
        found = await setups.lock(conn, reported.setup_id[:64], tenant_id=tenant_id)
        if found is not None and found.provider == provider:
            return found
    if reported.provider_setup_id:
        return await setups.lock_by_provider_id(conn, provider, reported.provider_setup_id, tenant_id=tenant_id)
    return None


async def _forget_card(
    conn: asyncpg.Connection, provider: str, payment_method_id: str, actor: str, tenant_id: str | None, why: str
) -> Ingested:
    """A card detached at the provider can no longer be charged: forgotten (the newest other card, if
    any, becomes the default)."""
    method = await customers.lock_method(conn, provider, payment_method_id, tenant_id=tenant_id)
    if method is None:
        return Ingested("unmatched", note="no saved card of ours matches this event")
    await customers.remove_method(conn, method)
    await customers.append_audit(
        conn,
        method.tenant_id,
        method.customer_id,
        actor=actor,
        action="card_removed",
        detail=f"{describe(method)}: {why}",
    )
    return Ingested(
        "applied", note=f"saved card {payment_method_id} of {method.customer_id} removed", tenant_id=method.tenant_id
    )


async def _find_refund(conn: asyncpg.Connection, reported: ProviderRefund, tenant_id: str | None) -> Refund | None:
    """Found without a lock: refund_outcomes.apply locks the payment, then the refund, like every path."""
    if reported.refund_id:
        found = await refunds.get(conn, reported.refund_id[:64], tenant_id=tenant_id)
        if found is not None:
            return found
    if reported.provider_refund_id:
        return await refunds.get_by_provider_id(conn, reported.provider_refund_id, tenant_id=tenant_id)
    return None


async def _record_outside_refund(
    conn: asyncpg.Connection, provider: str, reported: ProviderRefund, tenant_id: str | None
) -> Refund | None:
    """A refund made at the provider directly (e.g. in its dashboard): recorded so the ledger stays true."""
    if not (reported.provider_payment_id and reported.provider_refund_id and reported.amount_minor):
        return None
    payment = await payments.lock_by_provider_id(conn, provider, reported.provider_payment_id, tenant_id=tenant_id)
    if payment is None or payment.currency != reported.currency:
        return None
    return await refunds.insert(
        conn,
        refund_id=refunds.new_refund_id(),
        payment_id=payment.id,
        customer_id=payment.customer_id,
        idempotency_key=f"provider:{reported.provider_refund_id}",
        request={"made_at_provider": reported.provider_refund_id},
        amount_minor=reported.amount_minor,
        currency=payment.currency,
        reason="refunded at the provider",
        lease_seconds=None,
        provider_refund_id=reported.provider_refund_id,
    )


async def _find_payment(
    conn: asyncpg.Connection, provider: str, reported: ProviderPayment, tenant_id: str | None
) -> Payment | None:
    if reported.payment_id:
        payment = await payments.lock(conn, reported.payment_id[:64], tenant_id=tenant_id)
        if payment is not None:
            return payment
    if reported.provider_payment_id:
        found = await payments.lock_by_provider_id(conn, provider, reported.provider_payment_id, tenant_id=tenant_id)
        if found is not None:
            return found
    if reported.checkout_id:
        return await payments.lock_by_checkout_id(conn, provider, reported.checkout_id, tenant_id=tenant_id)
    return None


def _mismatch(payment: Payment, reported: ProviderPayment) -> str | None:
    """An event must describe the payment we recorded, to the cent; otherwise it grants nothing."""
    if payment.provider_payment_id and reported.provider_payment_id not in (None, payment.provider_payment_id):
        return "provider payment id differs from the one recorded"
    if payment.provider_checkout_id and reported.checkout_id not in (None, payment.provider_checkout_id):
        return "provider payment page differs from the one recorded"
    if (reported.amount_minor, reported.currency) != (payment.amount_minor, payment.currency):
        return (
            f"amount differs: event says {reported.amount_minor} {reported.currency}, "
            f"payment is {payment.amount_minor} {payment.currency}"
        )
    return None
