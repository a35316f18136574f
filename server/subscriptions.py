"""Subscriptions: start (limited and approved exactly like a charge: the first invoice is a payment recorded
by server/charges.py), cancel, change plans, look up; and the provider's subscription applied to the ledger
(from its events, from the answer to a start, and by the reconciler) through the subscription machine.

Entitlements follow the provider's periods: each paid invoice grants its period's features and credits
once; `past_due` keeps access through the provider's retries; canceled or unpaid ends it. A card the customer
saves becomes the card their live subscriptions charge, and a past-due invoice is retried with it at once.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Literal

import asyncpg
from pydantic import BaseModel, Field

from db import customers as stored_customers
from db import payments
from db import subscriptions as stored
from db.payments import Payment, PaymentStatus
from db.pool import connection, retry_on_deadlock, transaction
from db.subscriptions import Changes, NewSubscription, Subscription, SubscriptionStatus
from server import charges, customers
from server.catalog import Catalog, Product
from server.charges import ApprovalAnswer, ChargeInput
from server.errors import (
    ChargeInProgress,
    InvalidRequest,
    NotAllowedNow,
    PaywardenError,
    ProviderError,
    ProviderUnavailable,
    SubscriptionExists,
    SubscriptionNotFound,
)
from server.faults import crash_if_asked
from server.ledger import payment_machine, setup_outcomes, subscription_machine
from server.ledger.setup_outcomes import CardOwner
from server.ledger.subscription_machine import Move
from server.payments import PAGE_SHOWN, PageShown, PaymentView, page_left_open
from server.providers import (
    CardChange,
    PlanChange,
    PlanPrice,
    ProviderInvoice,
    ProviderSubscription,
    SubscriptionRequest,
)
from server.services import Services
from server.spend_limits import ApprovalNeed
from server.subscription_views import SubscriptionView
from server.tenancy import Caller

When = Literal["period_end", "now"]
logger = logging.getLogger(__name__)


class StartResult(SubscriptionView):
    replayed: bool = Field(description="True when this idempotency_key was used before: the original subscription.")
    first_payment_status: PaymentStatus
    payment_page: PageShown = Field(default="not_sent", description=PAGE_SHOWN)

    def after_page(self, shown: PageShown) -> StartResult:
        """The result once next_action_url (the first invoice's page) was sent to the person: a page turned down
        leaves the subscription incomplete."""
        left_open = page_left_open(shown, "next_action_url")
        step = f"{left_open} {self.next_step}" if left_open else self.next_step
        return self.model_copy(update={"payment_page": shown, "next_step": step})


class SubscriptionHistoryEntry(BaseModel):
    at: datetime
    actor: str
    from_status: str | None
    to_status: str
    reason: str | None


class SubscriptionDetails(SubscriptionView):
    invoices: list[PaymentView] = Field(description="Its invoices as payments, oldest first.")
    timeline: list[SubscriptionHistoryEntry] = Field(description="Every change, oldest first.")


# --- start -----------------------------------------------------------------------------------------


def charge_input(caller: Caller, customer_id: str, product_id: str, idempotency_key: str, payment_method: str | None):
    """The first invoice, as the charge the limits and the approval see."""
    return ChargeInput(
        customer_id=customer_id,
        idempotency_key=idempotency_key,
        product_id=product_id,
        payment_method=payment_method,
        caller=caller,
        subscribes=True,
    )


async def start(
    services: Services, request: ChargeInput, answer: ApprovalAnswer = "not_asked", approved_for: tuple = ()
) -> StartResult:
    """The subscription for this request (replayed=True when the key was used before); one per key, and one live
    subscription per customer and product."""
    new = charges.price(request, services.catalog, services.provider)

    async def with_subscription(conn: asyncpg.Connection, payment: Payment) -> Payment:
        return await _record(conn, services, request, payment)

    payment, replayed = await charges.record(services, request, new, answer, approved_for, also=with_subscription)
    if replayed:
        payment = await charges.resume(services, payment)
    elif payment.status == PaymentStatus.CREATED:
        payment = await charges.submit(services, payment)
    async with connection(services.pool) as conn:
        sub = await stored.get(conn, payment.subscription_id or "", tenant_id=request.caller.tenant_id)
    if sub is None:  # held or declined before a subscription was written
        raise NotAllowedNow(f"The first payment {payment.id} is {payment.status}: {PaymentView.of(payment).next_step}")
    started = StartResult.of(sub, replayed=replayed, first_payment_status=payment.status)
    if payment.status == PaymentStatus.REQUIRES_APPROVAL:  # the subscription waits on its first payment's approval
        waiting = f"Its first payment {payment.id} waits for approval: {PaymentView.of(payment).next_step}"
        return started.model_copy(update={"next_step": waiting})
    return started


async def _record(conn: asyncpg.Connection, services: Services, request: ChargeInput, payment: Payment) -> Payment:
    """The subscription's row, in the transaction that records its first payment (under the customer's lock);
    the payment, now linked to it."""
    assert request.product_id is not None
    await _end_abandoned(conn, request.caller.tenant_id, request.customer_id, request.product_id)
    new = NewSubscription(
        tenant_id=payment.tenant_id,
        customer_id=payment.customer_id,
        product_id=request.product_id,
        provider=payment.provider,
        provider_customer_id=payment.provider_customer_id,
        payment_method=payment.payment_method,
        first_payment_id=payment.id,
        idempotency_key=request.idempotency_key,
        api_key_id=request.caller.key_id,
    )
    sub, linked = await stored.insert(
        conn, stored.new_subscription_id(), new, lease_seconds=services.settings.submit_lease_seconds
    )
    await stored.update(conn, sub, sub.status, Changes(), actor="agent", reason="start_subscription "
                        f"(idempotency_key {request.idempotency_key!r})", audit=True)  # fmt: skip
    return linked


async def _end_abandoned(conn: asyncpg.Connection, tenant_id: str, customer_id: str, product_id: str) -> None:
    """A live subscription blocks a second one — unless its first payment was refused before the provider
    ever heard of it (rejected by an operator, declined by the person): that one is closed now."""
    live = await stored.live_of(conn, tenant_id, customer_id, product_id)
    if live is None:
        return
    first = await payments.get(conn, live.first_payment_id, tenant_id=tenant_id)
    abandoned = live.provider_subscription_id is None and first is not None and first.status in ("canceled", "failed")
    if not abandoned:
        raise SubscriptionExists(
            f"Customer {customer_id!r} already has subscription {live.id} to {product_id!r} ({live.status}). "
            "Use get_subscription, change_subscription or cancel_subscription on it."
        )
    locked = await stored.lock(conn, live.id, tenant_id=tenant_id)
    assert locked is not None
    reason = f"its first payment {first.id} was {first.status} before the provider was asked"
    await subscription_machine.apply(conn, locked, Move(to_status=SubscriptionStatus.CANCELED, actor="agent",
                                                        reason=reason))  # fmt: skip


async def submit_first(services: Services, payment: Payment) -> Payment:
    """Start the subscription at the provider (its first invoice is this payment) and record the answer.
    Safe to repeat: our subscription id is the provider's idempotency key."""
    async with connection(services.pool) as conn:
        sub = await stored.get(conn, payment.subscription_id or "", tenant_id=payment.tenant_id)
    assert sub is not None  # written with its first payment
    product = services.catalog.get(sub.product_id)
    caller = Caller(tenant_id=sub.tenant_id, key_id=None, scopes=frozenset())
    request = SubscriptionRequest(
        subscription_id=sub.id,
        tenant_id=sub.tenant_id,
        customer_id=sub.customer_id,
        plan=plan_of(product),
        provider_customer_id=payment.provider_customer_id
        or await customers.provider_customer_id(services, caller, sub.customer_id),
        payment_method=payment.payment_method,
        payment_method_saved=payment.off_session,
        trial_days=product.trial_days,
    )
    crash_if_asked("before_provider", services.settings.test_crash_at)
    try:
        answer = await services.provider.create_subscription(request)
    except ProviderUnavailable:
        async with transaction(services.pool) as conn:
            await payments.release_lease(conn, payment.id, payment.submit_lease_until)
            await stored.release_lease(conn, sub.id)
        raise
    except ProviderError as refusal:
        await _refused(services, sub.id, payment.id, refusal.message)
    else:
        crash_if_asked("after_provider", services.settings.test_crash_at)
        await _apply_answer(services, sub.id, answer)
    async with connection(services.pool) as conn:
        found = await payments.get(conn, payment.id, tenant_id=payment.tenant_id)
    assert found is not None
    return found


async def _refused(services: Services, subscription_id: str, payment_id: str, reason: str) -> None:
    """The provider refused to start it (a declined card, an invalid request): nothing was charged; the first
    payment failed and the subscription never began."""
    async with transaction(services.pool) as conn:
        locked = await stored.lock(conn, subscription_id, tenant_id=None)
        first = await payments.lock(conn, payment_id, tenant_id=None)
        assert locked is not None and first is not None
        failed = payment_machine.Transition(
            to_status=PaymentStatus.FAILED, actor="provider", reason=reason, failure_reason=reason
        )
        await payment_machine.apply(conn, first, failed)
        ended = Move(to_status=SubscriptionStatus.CANCELED, actor="provider", reason=reason)
        await subscription_machine.apply(conn, locked, ended)


@retry_on_deadlock
async def _apply_answer(services: Services, subscription_id: str, answer: ProviderSubscription) -> None:
    async with transaction(services.pool) as conn:
        locked = await stored.lock(conn, subscription_id, tenant_id=None)
        assert locked is not None
        why = "the provider's answer to start_subscription"
        if answer.saved_card is not None:
            owner = CardOwner(tenant_id=locked.tenant_id, provider=locked.provider, customer_id=locked.customer_id)
            await setup_outcomes.save_card(
                conn, owner, answer.saved_card, actor="provider", why=f"subscription {locked.id}"
            )
        await apply_state(conn, services.catalog, locked, answer, None, actor="provider", reason=why)


def plan_of(product: Product) -> PlanPrice:
    assert product.interval is not None
    return PlanPrice(
        product_id=product.id,
        name=product.name,
        amount_minor=product.amount_minor,
        currency=product.currency,
        interval=product.interval,
        interval_count=product.interval_count,
    )


async def sync_catalog(services: Services) -> list[tuple[str, str]]:
    """Make the provider bill every recurring catalog product with a Price whose lookup key is the product id
    (`paywarden catalog sync`): (product id, unchanged | created | replaced). Idempotent; a Price is never
    changed — a new price makes a new Price and the old one is deactivated."""
    return [(product.id, await services.provider.sync_price(plan_of(product))) for product in services.catalog
            if product.recurring]  # fmt: skip


# --- the provider's state, applied -----------------------------------------------------------------


async def apply_state(
    conn: asyncpg.Connection,
    catalog: Catalog,
    locked: Subscription,
    truth: ProviderSubscription,
    invoice: ProviderInvoice | None,
    *,
    actor: str,
    reason: str,
) -> subscription_machine.MoveResult:
    """Bring the (locked) subscription to the provider's state: its paid invoices recorded and granted once,
    its first payment following its first invoice, then its status, period and flags."""
    for paid in _paid_invoices(truth, invoice):
        grants = _grants_of(_product(catalog, paid, locked), paid)
        await subscription_machine.record_paid_invoice(conn, locked, paid, grants, actor=actor, reason=reason)
    if _older_than(truth, locked):
        # Fetched before a newer copy was applied (the reconciler and the inbox fetch outside the lock).
        return subscription_machine.MoveResult(False, locked, "an older copy of the provider's subscription")
    await _first_payment_follows(conn, locked, truth, actor, reason)
    latest = truth.latest_invoice
    product = _plan_billed_now(locked, truth)
    period_end = _at(truth.current_period_end)
    changes = Changes(
        provider_subscription_id=truth.provider_subscription_id,
        current_period_start=_at(truth.current_period_start),
        current_period_end=None if _earlier(period_end, locked.current_period_end) else period_end,
        trial_end=_at(truth.trial_end),
        cancel_at_period_end=truth.cancel_at_period_end,
        canceled_at=_at(truth.canceled_at),
        ended_at=_at(truth.ended_at),
        product_id=product,
        clear_pending_product=product is not None and product == locked.pending_product_id,
        next_action_url=latest.hosted_url if latest and latest.status == "open" else None,
    )
    status = subscription_machine.PROVIDER_STATUS.get(truth.status, locked.status)
    result = await subscription_machine.apply(conn, locked, Move(to_status=status, actor=actor, reason=reason,
                                                                 changes=changes))  # fmt: skip
    if result.subscription.status in subscription_machine.ENDED:
        # A paid invoice heard of only after the end (a late or out-of-order event) grants no access now.
        await subscription_machine.end_access(conn, result.subscription)
    return result


def _older_than(truth: ProviderSubscription, locked: Subscription) -> bool:
    """A copy of the provider's subscription from before the period the (locked) row already has."""
    return _earlier(_at(truth.current_period_start), locked.current_period_start)


def _earlier(at: datetime | None, than: datetime | None) -> bool:
    return at is not None and than is not None and at < than


def _plan_billed_now(locked: Subscription, truth: ProviderSubscription) -> str | None:
    """The plan of the current period: the provider's subscription item — unless the item is the plan a change
    at period end scheduled (the provider bills it from the next renewal), until an invoice of it is paid."""
    item = truth.product_id
    if item is None or item != locked.pending_product_id:
        return item
    latest = truth.latest_invoice
    billed = latest is not None and latest.status == "paid" and latest.product_id == item
    return item if billed else None


def _paid_invoices(truth: ProviderSubscription, invoice: ProviderInvoice | None) -> list[ProviderInvoice]:
    found = {i.provider_invoice_id: i for i in (invoice, truth.latest_invoice) if i is not None and i.status == "paid"}
    return sorted(found.values(), key=lambda paid: paid.period_start or 0)


def _grants_of(product: Product, invoice: ProviderInvoice) -> list[dict]:
    """What a paid invoice grants for its period. A proration (a plan changed now) pays the new plan's features
    for the rest of the period, not its credit allowance: that starts at the next renewal, whole."""
    grants = [grant.model_dump(exclude_none=True) for grant in product.grants]
    if invoice.billing_reason == "subscription_update":
        return [grant for grant in grants if not grant.get("credits")]
    return grants


def _product(catalog: Catalog, invoice: ProviderInvoice, locked: Subscription) -> Product:
    try:
        return catalog.get(invoice.product_id or locked.product_id)
    except InvalidRequest:
        return catalog.get(locked.product_id)


async def _first_payment_follows(
    conn: asyncpg.Connection, locked: Subscription, truth: ProviderSubscription, actor: str, reason: str
) -> None:
    """Until its invoice is paid, the first payment shows where the start stands: waiting for the person on the
    invoice's page, pending through a trial, canceled when the subscription ended unpaid."""
    first = await payments.lock(conn, locked.first_payment_id, tenant_id=locked.tenant_id)
    assert first is not None
    decided = payment_machine.SETTLED | payment_machine.CHARGED | {PaymentStatus.REQUIRES_APPROVAL}
    if first.provider_invoice_id is not None or first.status in decided:
        return
    latest = truth.latest_invoice
    target, url = None, None
    if truth.status == "trialing":
        target = PaymentStatus.PENDING
    elif truth.status in ("canceled", "incomplete_expired"):
        target = PaymentStatus.CANCELED
    elif latest is not None and latest.status == "open" and latest.amount_minor:
        target, url = PaymentStatus.REQUIRES_ACTION, latest.hosted_url
    if target is None or (target == first.status and not url):
        return
    change = payment_machine.Transition(
        to_status=target, actor=actor, reason=reason, next_action_url=url,
        failure_reason="the subscription ended before its first invoice was paid",
    )  # fmt: skip
    await payment_machine.apply(conn, first, change)


def _at(unix_seconds: int | None) -> datetime | None:
    return datetime.fromtimestamp(unix_seconds, UTC) if unix_seconds is not None else None


async def apply_event(
    conn: asyncpg.Connection,
    catalog: Catalog,
    provider: str,
    truth: ProviderSubscription,
    invoice: ProviderInvoice | None,
    *,
    actor: str,
    reason: str,
    tenant_id: str | None,
) -> tuple[str, str | None, Subscription | None]:
    """An event about a subscription, applied as the provider's current subscription: (outcome, note, it)."""
    locked = await stored.lock_by_provider_id(conn, provider, truth.provider_subscription_id, tenant_id=tenant_id)
    if locked is None and truth.subscription_id:
        locked = await stored.lock(conn, truth.subscription_id[:64], tenant_id=tenant_id)
        locked = locked if locked is not None and locked.provider == provider else None
    if locked is None:
        return "unmatched", "no subscription of ours matches this event", None
    before = await _paid_count(conn, locked)
    result = await apply_state(conn, catalog, locked, truth, invoice, actor=actor, reason=reason)
    granted = await _paid_count(conn, locked) - before
    if result.applied or granted:
        note = f"subscription {locked.id}: {locked.status} -> {result.subscription.status}"
        return "applied", note, result.subscription
    return "ignored", result.note, result.subscription


async def _paid_count(conn: asyncpg.Connection, sub: Subscription) -> int:
    return sum(1 for p in await stored.payments_of(conn, sub.tenant_id, sub.id) if p.status in payment_machine.CHARGED)


# --- cancel, change, look up -----------------------------------------------------------------------


async def cancel(
    services: Services, caller: Caller, subscription_id: str, at_period_end: bool = True, reason: str | None = None
) -> SubscriptionView:
    """At the period's end (access until then), or now (access ends now; nothing is refunded). Idempotent:
    canceling again answers with the subscription as it stands."""
    sub = await _get(services, caller, subscription_id)
    if sub.status == SubscriptionStatus.CANCELED or (at_period_end and sub.cancel_at_period_end):
        return SubscriptionView.of(sub)
    if sub.provider_subscription_id is None:
        raise NotAllowedNow(f"Subscription {sub.id} was never started at the provider; nothing to cancel.")
    key = f"{sub.id}-cancel-{'period-end' if at_period_end else 'now'}"
    truth = await services.provider.cancel_subscription(
        sub.provider_subscription_id, at_period_end=at_period_end, idempotency_key=key
    )
    why = "cancel_subscription " + ("at period end" if at_period_end else "now") + (f": {reason}" if reason else "")
    return SubscriptionView.of(await _apply_truth(services, sub.id, truth, actor="agent", reason=why, note=reason))


async def change(
    services: Services, caller: Caller, subscription_id: str, product_id: str, idempotency_key: str,
    when: When = "period_end", answer: ApprovalAnswer = "not_asked", approved_for: tuple = (),
) -> SubscriptionView:  # fmt: skip
    """Switch plans at the next renewal, or now with the provider's proration (the difference charged now),
    within the limits and the approval a start of the new plan would meet (charges.guard_plan_change).
    Compared with the provider's subscription item: back to the plan this period was paid for undoes a
    scheduled change without any charge; a plan the item already bills is not changed again."""
    sub = await _get(services, caller, subscription_id)
    product = _changeable_to(services.catalog, sub, product_id)
    current = services.catalog.get(sub.product_id)
    assert sub.provider_subscription_id is not None
    if product_id != sub.product_id:
        request = charge_input(caller, sub.customer_id, product_id, idempotency_key, None)
        await charges.guard_plan_change(services, request, answer, approved_for)
    truth = await services.provider.retrieve_subscription(sub.provider_subscription_id)
    billed = truth.product_id or sub.product_id
    why = f"change_subscription to {product_id!r} ({when}; idempotency_key {idempotency_key!r})"
    key = f"{sub.id}-change-{idempotency_key}"
    if product_id == sub.product_id or when == "period_end":
        if billed != product_id:  # no proration: the item bills the plan from the next renewal
            truth = await _switch(services, sub, product, key, now=False)
        pending = None if product_id == sub.product_id else product_id
        return SubscriptionView.of(await _apply_truth(services, sub.id, truth, actor="agent", reason=why,
                                                      pending=pending, paid_plan=sub.product_id))  # fmt: skip
    if billed != sub.product_id:  # a change scheduled for the renewal: undone first, so the proration is right
        await _switch(services, sub, current, f"{key}-undo-scheduled", now=False)
    truth = await _switch(services, sub, product, key, now=True)
    return SubscriptionView.of(await _apply_truth(services, sub.id, truth, actor="agent", reason=why, pending=None))


async def _switch(
    services: Services, sub: Subscription, product: Product, key: str, *, now: bool
) -> ProviderSubscription:
    assert sub.provider_subscription_id is not None
    plan_change = PlanChange(
        provider_subscription_id=sub.provider_subscription_id, plan=plan_of(product), now=now, idempotency_key=key[:255]
    )
    return await services.provider.change_subscription(plan_change)


def _changeable_to(catalog: Catalog, sub: Subscription, product_id: str) -> Product:
    """The plan `sub` may change to, or why not (asked before the person is asked to approve anything)."""
    product = catalog.get(product_id)
    if not product.recurring:
        raise InvalidRequest(f"Product {product_id!r} does not renew; pick a recurring product.", param="product_id")
    current = catalog.get(sub.product_id)
    if product.currency != current.currency:
        raise InvalidRequest(f"Product {product_id!r} is priced in {product.currency}, the subscription in "
                             f"{current.currency}; a plan change keeps the currency.", param="product_id")  # fmt: skip
    if sub.status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING, SubscriptionStatus.PAST_DUE):
        raise NotAllowedNow(f"Subscription {sub.id} is {sub.status}; only a live one can change plans.")
    return product


async def change_approval(
    services: Services, caller: Caller, subscription_id: str, product_id: str, idempotency_key: str
) -> tuple[ApprovalNeed, str]:
    """Whether change() to `product_id` needs the person's approval, and the question to ask them; a change
    that cannot be made is refused before anyone is asked."""
    sub = await _get(services, caller, subscription_id)
    _changeable_to(services.catalog, sub, product_id)
    if product_id == sub.product_id:
        return ApprovalNeed([]), ""
    return charges.plan_change_approval(
        services, charge_input(caller, sub.customer_id, product_id, idempotency_key, None)
    )


@retry_on_deadlock
async def _apply_truth(
    services: Services,
    subscription_id: str,
    truth: ProviderSubscription,
    *,
    actor: str,
    reason: str,
    pending: str | Literal["unchanged"] | None = "unchanged",
    paid_plan: str | None = None,
    note: str | None = None,
) -> Subscription:
    """The provider's answer applied; `pending` is the plan a change scheduled for the next renewal (None: no
    change is scheduled any more), `paid_plan` the plan of the current period when a change did not touch it."""
    async with transaction(services.pool) as conn:
        locked = await stored.lock(conn, subscription_id, tenant_id=None)
        assert locked is not None
        if pending != "unchanged" or note is not None:
            extra = Changes(
                pending_product_id=pending if pending != "unchanged" else None,
                clear_pending_product=pending is None,
                product_id=paid_plan,
                cancel_reason=note,
            )
            locked = await stored.update(conn, locked, locked.status, extra, actor=actor, reason=reason, audit=False)
        result = await apply_state(conn, services.catalog, locked, truth, None, actor=actor, reason=reason)
        return result.subscription


async def details(services: Services, caller: Caller, subscription_id: str) -> SubscriptionDetails:
    async with connection(services.pool) as conn:
        sub = await stored.get(conn, subscription_id, tenant_id=caller.tenant_id)
        if sub is None:
            raise SubscriptionNotFound(f"No subscription with subscription_id {subscription_id!r}.")
        invoices = await stored.payments_of(conn, sub.tenant_id, sub.id)
        history = await stored.timeline(conn, sub.tenant_id, sub.id)
    return SubscriptionDetails.of(
        sub,
        invoices=[PaymentView.of(payment) for payment in invoices],
        timeline=[SubscriptionHistoryEntry(**vars(entry)) for entry in history],
    )


async def of_customer(services: Services, tenant_id: str, customer_id: str) -> list[SubscriptionView]:
    async with connection(services.pool) as conn:
        return [SubscriptionView.of(sub) for sub in await stored.of_customer(conn, tenant_id, customer_id)]


async def _get(services: Services, caller: Caller, subscription_id: str) -> Subscription:
    async with connection(services.pool) as conn:
        sub = await stored.get(conn, subscription_id, tenant_id=caller.tenant_id)
    if sub is None:
        raise SubscriptionNotFound(f"No subscription with subscription_id {subscription_id!r}.")
    return sub


# --- a card the customer saved -----------------------------------------------------------------------


async def use_saved_cards(
    services: Services, subscription_ids: tuple[str, ...] | list[str], *, actor: str
) -> list[str]:
    """Once the setup that saved a card has committed: each subscription marked with it charges it at the
    provider from now on (use_saved_card); the ones done. One the provider gave no answer for keeps its mark,
    logged, and the reconciler finishes it."""
    done = []
    for subscription_id in subscription_ids:
        try:
            if await use_saved_card(services, subscription_id, actor=actor):
                done.append(subscription_id)
        except PaywardenError as error:
            logger.warning("subscription %s does not charge the saved card yet (%s); the reconciler will retry",
                           subscription_id, error.message)  # fmt: skip
    return done


async def use_saved_card(services: Services, subscription_id: str, *, actor: str) -> bool:
    """Make the card marked on the subscription the one the provider charges for it (the customer's invoice
    default and the subscription's own), and retry a past-due invoice with it now, so access recovers without
    waiting for the provider's next retry; the mark is cleared and audited. Safe to repeat (idempotency keys
    from our ids). False when nothing was marked; ProviderUnavailable leaves the mark for a later try."""
    async with connection(services.pool) as conn:
        sub = await stored.get(conn, subscription_id, tenant_id=None)
        holder = await stored_customers.get(conn, sub.tenant_id, sub.provider, sub.customer_id) if sub else None
    if sub is None or sub.card_to_apply is None or sub.provider_subscription_id is None:
        return False
    card = sub.card_to_apply
    marked = int(sub.card_marked_at.timestamp() * 1000) if sub.card_marked_at else 0
    key = f"{sub.id}-card-{card}-{marked}"  # a card saved again later (A, B, then A) is a new change, not a replay
    change = CardChange(
        provider_customer_id=(holder.provider_customer_id if holder else None) or sub.provider_customer_id or "",
        provider_subscription_id=sub.provider_subscription_id,
        provider_payment_method_id=card,
        idempotency_key=key,
    )
    try:
        truth = await services.provider.use_card(change)
    except ProviderUnavailable:
        raise
    except ProviderError as refusal:
        await _card_settled(services, sub.id, card, None, actor, f"the provider refused card {card}: {refusal.message}")
        return True
    truth, retried = await _retry_open_invoice(services, truth, f"{key}-pay")
    await _card_settled(services, sub.id, card, truth, actor, f"renewals now charge card {card}{retried}")
    return True


async def _retry_open_invoice(
    services: Services, truth: ProviderSubscription, key: str
) -> tuple[ProviderSubscription, str]:
    """A past-due subscription's open invoice charged now with the new card: the subscription as the provider
    has it afterwards, and what became of the invoice (for the audit trail)."""
    latest = truth.latest_invoice
    if latest is None and truth.latest_invoice_id:
        latest = await services.provider.retrieve_invoice(truth.latest_invoice_id)
    if truth.status != "past_due" or latest is None or latest.status != "open":
        return truth, ""
    invoice = latest.provider_invoice_id
    try:
        await services.provider.pay_invoice(invoice, idempotency_key=f"{key}-{invoice}")
    except ProviderUnavailable:
        raise
    except ProviderError as declined:
        outcome = f"; its open invoice {invoice}, retried with it, failed ({declined.message})"
    else:
        outcome = f"; its open invoice {invoice}, retried with it, is paid"
    return await services.provider.retrieve_subscription(truth.provider_subscription_id), outcome


@retry_on_deadlock
async def _card_settled(
    services: Services, subscription_id: str, card: str, truth: ProviderSubscription | None, actor: str, reason: str
) -> None:
    """The mark cleared (if no newer card replaced it meanwhile) and audited; the provider's subscription after
    the change applied, so a recovered one is active and its paid invoice granted now."""
    async with transaction(services.pool) as conn:
        locked = await stored.lock(conn, subscription_id, tenant_id=None)
        assert locked is not None
        locked = await stored.card_applied(conn, locked, card, actor=actor, reason=reason) or locked
        if truth is not None:
            why = "the provider's subscription after its card was changed"
            await apply_state(conn, services.catalog, locked, truth, None, actor=actor, reason=why)


async def finish_saved_cards(services: Services, *, marked_seconds_ago: float, limit: int = 100) -> list[str]:
    """The reconciler's part: saved cards the provider was not told of (it did not answer, or a crash came
    between), told now; the subscriptions done."""
    async with connection(services.pool) as conn:
        marked = await stored.cards_to_apply(conn, marked_seconds_ago=marked_seconds_ago, limit=limit)
    return await use_saved_cards(services, marked, actor="reconciler")


# --- the reconciler ---------------------------------------------------------------------------------


async def reconcile_quiet(services: Services, *, quiet_seconds: float, limit: int = 100) -> list[str]:
    """Compare quiet subscriptions with the provider and bring them to its state; those that changed.
    One the provider never answered for (a crash mid-start) is started again under the same key."""
    async with connection(services.pool) as conn:
        quiet = await stored.quiet(conn, quiet_seconds=quiet_seconds, limit=limit)
    changed = []
    for subscription_id in quiet:
        try:
            if await _reconcile_one(services, subscription_id):
                changed.append(subscription_id)
        except (ProviderError, ChargeInProgress, NotAllowedNow) as error:
            logger.warning("subscription %s not reconciled: %s", subscription_id, error.message)
    return changed


async def _close_never_started(services: Services, subscription_id: str, first: Payment) -> bool:
    """Its first payment was rejected or expired before the provider was asked: the subscription never began."""
    async with transaction(services.pool) as conn:
        locked = await stored.lock(conn, subscription_id, tenant_id=None)
        assert locked is not None
        why = f"its first payment {first.id} was {first.status} before the provider was asked"
        move = Move(to_status=SubscriptionStatus.CANCELED, actor="reconciler", reason=why)
        return (await subscription_machine.apply(conn, locked, move)).applied


async def _reconcile_one(services: Services, subscription_id: str) -> bool:
    async with connection(services.pool) as conn:
        sub = await stored.get(conn, subscription_id, tenant_id=None)
        first = await payments.get(conn, sub.first_payment_id, tenant_id=None) if sub else None
    if sub is None or first is None:
        return False
    if sub.provider_subscription_id is None:
        if first.status in (PaymentStatus.CANCELED, PaymentStatus.FAILED):
            return await _close_never_started(services, sub.id, first)
        if first.status != PaymentStatus.CREATED:
            return False
        await charges.resume(services, first)
        return True
    truth = await services.provider.retrieve_subscription(sub.provider_subscription_id)
    why = "the provider's subscription, fetched by the reconciler"
    async with transaction(services.pool) as conn:
        locked = await stored.lock(conn, sub.id, tenant_id=None)
        assert locked is not None
        result = await apply_state(conn, services.catalog, locked, truth, None, actor="reconciler", reason=why)
        await stored.touch(conn, sub.id)
    return result.applied
