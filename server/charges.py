"""The life of a charge: price it, guard it, record it, ask the provider, decide approvals.

The MCP tools, the CLI (`approve`, `reject`) and the reconciler all go through here, so every
path applies the same rules in the same transactions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg
from pydantic import Field

from db import api_keys as stored_keys
from db import audit as audit_trail
from db import customers, idempotency, payments, spend
from db.payments import NewPayment, Payment, PaymentStatus
from db.pool import connection, retry_on_deadlock, transaction
from server import api_keys
from server.catalog import Catalog
from server.config import Settings
from server.errors import (
    ChargeInProgress,
    IdempotencyKeyReused,
    InvalidRequest,
    NoSavedPaymentMethod,
    NotAllowedNow,
    PaymentNotFound,
    ProviderError,
    SpendLimitExceeded,
)
from server.faults import crash_if_asked
from server.ledger import payment_machine
from server.ledger.payment_machine import Transition, TransitionResult
from server.money import check_amount, format_amount, normalize_currency
from server.payments import PAGE_SHOWN, PageShown, PaymentView, page_left_open
from server.providers import ChargeRequest, Provider, ProviderPayment, close_at_provider
from server.services import Services
from server.spend_limits import ApprovalNeed, approval_need, check_held_count, check_key_budget, check_limits
from server.tenancy import Caller

RESUBMIT_WITHIN_HOURS = 23
"""Stripe keeps idempotency keys for 24 hours; past that a resubmission could create a second charge."""
SAVED = "saved"
"""The payment_method that charges the customer's default saved card, off-session."""
ApprovalAnswer = Literal["not_asked", "approved", "declined", "unavailable"]
"""What the person said when asked: nothing (nobody asked), yes, no, or they could not be asked."""


@dataclass(frozen=True, kw_only=True)
class ChargeInput:
    customer_id: str
    idempotency_key: str
    product_id: str | None = None
    amount_minor: int | None = None
    currency: str | None = None
    description: str | None = None
    payment_method: str | None = None
    caller: Caller
    """Whose customer this is (the tenant) and which API key asks (its budget, the audit row)."""
    subscribes: bool = False
    """The first invoice of a subscription (start_subscription), not a one-off charge."""

    def __post_init__(self) -> None:
        if self.currency is not None:  # "usd" and "USD" are the same request
            object.__setattr__(self, "currency", self.currency.strip().upper())

    def fingerprint(self) -> dict[str, Any]:
        """What must be identical for a repeat of this key to count as the same request."""
        fingerprint = {
            "product_id": self.product_id,
            "amount_minor": self.amount_minor,
            "currency": self.currency,
            "description": self.description,
            "payment_method": self.payment_method,
        }
        return {**fingerprint, "subscribes": True} if self.subscribes else fingerprint


class ChargeResult(PaymentView):
    replayed: bool = Field(
        description="True when this idempotency_key was used before for the same request: this is the "
        "original payment and nothing was charged again."
    )
    payment_page: PageShown = Field(default="not_sent", description=PAGE_SHOWN)

    def after_page(self, shown: PageShown) -> ChargeResult:
        """The result once next_action_url was sent to the person: a page turned down leaves the payment open."""
        left_open = page_left_open(shown, "next_action_url")
        step = f"{left_open} {self.next_step}" if left_open else self.next_step
        return self.model_copy(update={"payment_page": shown, "next_step": step})


def price(request: ChargeInput, catalog: Catalog, provider: Provider) -> NewPayment:
    """The payment to record: the catalog's price for a product, or the checked ad-hoc amount."""
    new = _price(request, catalog, provider.name)
    provider.check_chargeable(new.amount_minor, new.currency)
    return new


def _price(request: ChargeInput, catalog: Catalog, provider: str) -> NewPayment:
    has_amount = request.amount_minor is not None or request.currency is not None
    if request.product_id and has_amount:
        raise InvalidRequest(
            "Give either product_id (the catalog sets the price) or amount_minor + currency, not both."
        )
    who = {"tenant_id": request.caller.tenant_id, "api_key_id": request.caller.key_id}
    common = {**who, "customer_id": request.customer_id, "payment_method": request.payment_method}
    if request.product_id:
        product = catalog.get(request.product_id)
        if product.recurring != request.subscribes:
            raise InvalidRequest(_wrong_tool(product.id, product.recurring), param="product_id")
        return NewPayment(
            **common,
            product_id=product.id,
            amount_minor=product.amount_minor,
            currency=product.currency,
            description=request.description or product.name,
            grants=[grant.model_dump() for grant in product.grants],
            provider=provider,
        )
    if request.amount_minor is None or request.currency is None:
        raise InvalidRequest("Give a catalog product_id, or both amount_minor and currency for an ad-hoc charge.")
    return NewPayment(
        **common,
        product_id=None,
        amount_minor=check_amount(request.amount_minor),
        currency=normalize_currency(request.currency),
        description=request.description,
        grants=[],
        provider=provider,
    )


def _wrong_tool(product_id: str, recurring: bool) -> str:
    if recurring:
        return f"Product {product_id!r} renews every period: start it with start_subscription, not create_charge."
    return f"Product {product_id!r} is sold once: charge it with create_charge, not start_subscription."


async def charge(
    services: Services, request: ChargeInput, answer: ApprovalAnswer = "not_asked", approved_for: Sequence[str] = ()
) -> ChargeResult:
    """The payment for this request (replayed=True when the key was used before); never a second provider
    charge per key.

    `approved_for` lists the reasons the person was shown when they said yes; a reason found under
    the lock that they were not shown holds the payment for approval instead.
    """
    new = price(request, services.catalog, services.provider)
    payment, replayed = await record(services, request, new, answer, approved_for)
    if replayed:
        payment = await resume(services, payment)
    elif payment.status == PaymentStatus.CREATED:
        payment = await submit(services, payment)
    return ChargeResult.of(payment, replayed=replayed)


async def approval_needed(services: Services, request: ChargeInput) -> ApprovalNeed:
    """Whether this request would need an approval, and whose (read-only; `record` decides again under
    the lock). Nothing is needed for a replay, nor for a charge the limits refuse anyway."""
    new = price(request, services.catalog, services.provider)
    async with transaction(services.pool) as conn:
        if await idempotency.get(conn, new.tenant_id, request.customer_id, request.idempotency_key):
            return ApprovalNeed([])  # a replay: what the key holds was decided when it was first used
        try:
            await _check_limits(conn, services.settings, new, request.caller)
        except SpendLimitExceeded:
            return ApprovalNeed([])  # refused anyway: asking the person first would be asking for nothing
        earlier = await _earlier_same_charge(conn, new, services.settings)
    return approval_need(new, services.settings, earlier, request.caller)


async def guard_plan_change(
    services: Services, request: ChargeInput, answer: ApprovalAnswer = "not_asked", approved_for: Sequence[str] = ()
) -> None:
    """A plan change bills the new plan's price from now on: it meets the customer's limits, the key's budget
    and the approval a start of that plan would (no payment waits for an operator: a change that needs one
    goes ahead only with the person's yes through the MCP client, otherwise it is refused)."""
    new = price(request, services.catalog, services.provider)
    async with transaction(services.pool) as conn:
        await api_keys.require_active(conn, request.caller)
        await spend.lock_customer(conn, new.tenant_id, request.customer_id)
        await _check_limits(conn, services.settings, new, request.caller)
    need = approval_need(new, services.settings, None, request.caller)
    if not need.reasons or (need.by_client and answer == "approved" and set(need.reasons) <= set(approved_for)):
        return
    who = need.operator_only or "the person did not approve it through the MCP client"
    raise NotAllowedNow(
        f"Changing to {request.product_id!r} at {format_amount(new.amount_minor, new.currency)} per period needs "
        f"approval because {' and '.join(need.reasons)}, and {who}. Ask the person to approve it, or an operator "
        "to raise the limit; the plan is unchanged."
    )


def plan_change_approval(services: Services, request: ChargeInput) -> tuple[ApprovalNeed, str]:
    """Whether a plan change to request.product_id would need the person's approval, and the question."""
    new = price(request, services.catalog, services.provider)
    need = approval_need(new, services.settings, None, request.caller)
    question = (
        f"Approve moving customer {new.customer_id!r} to {new.description or request.product_id!r} at "
        f"{format_amount(new.amount_minor, new.currency)} per period? Approval is needed because "
        f"{' and '.join(need.reasons)}."
    )
    return need, question


def approval_question(services: Services, request: ChargeInput, reasons: Sequence[str]) -> str:
    """The same words every time for the same charge: who is charged, how much, for what, and why we ask."""
    new = price(request, services.catalog, services.provider)
    what = new.description or "an ad-hoc charge"
    return (
        f"Approve charging customer {new.customer_id!r} {format_amount(new.amount_minor, new.currency)} "
        f"for {what!r}? Approval is needed because {' and '.join(reasons)}."
    )


async def record(
    services: Services,
    request: ChargeInput,
    new: NewPayment,
    answer: ApprovalAnswer,
    approved_for: Sequence[str] = (),
    also: Callable[[asyncpg.Connection, Payment], Awaitable[Payment]] | None = None,
) -> tuple[Payment, bool]:
    """In one transaction, under the customer's lock: claim the key, check the limits, insert the payment
    (and `also` write what goes with it: a subscription's row for its first invoice)."""
    payment_id = payments.new_payment_id()
    async with transaction(services.pool) as conn:
        await api_keys.require_active(conn, request.caller)
        await spend.lock_customer(conn, new.tenant_id, request.customer_id)
        if not await idempotency.claim(
            conn, new.tenant_id, request.customer_id, request.idempotency_key, request.fingerprint(), payment_id
        ):
            return await _earlier_payment(conn, request), True
        new = await _with_saved_card(conn, new)
        await _check_limits(conn, services.settings, new, request.caller)
        earlier = await _earlier_same_charge(conn, new, services.settings)
        need = approval_need(new, services.settings, earlier, request.caller)
        approved = need.by_client and answer == "approved" and set(need.reasons) <= set(approved_for)
        go_ahead = not need.reasons or approved
        if not go_ahead and answer != "declined":
            check_held_count(
                new, services.settings, await spend.held_for_customer(conn, new.tenant_id, new.customer_id)
            )
        lease = services.settings.submit_lease_seconds if go_ahead and answer != "declined" else None
        payment = await payments.insert(conn, payment_id, new, lease_seconds=lease)
        why = f"create_charge (idempotency_key {request.idempotency_key!r})"
        if approved:
            why += "; approved by the person through the MCP client (client approval): " + "; ".join(need.reasons)
        await audit_trail.append(
            conn,
            payment_id,
            actor="agent",
            from_status=None,
            to_status=PaymentStatus.CREATED,
            reason=why,
            api_key_id=request.caller.key_id,
        )
        if also is not None and answer != "declined":
            payment = await also(conn, payment)
        key = request.caller.key_id
        if answer == "declined":
            declined = "the person declined the charge when asked"
            return await _move(conn, payment, PaymentStatus.CANCELED, "person", declined, key=key), False
        if not go_ahead:
            return await _hold_for_approval(conn, payment, need, answer, key), False
        return payment, False


async def resume(services: Services, payment: Payment) -> Payment:
    """A replay finds the payment as it is; a `created` one left by a crash or an outage is finished now."""
    if payment.status != PaymentStatus.CREATED:
        return payment
    if payment.charged_at < datetime.now(UTC) - timedelta(hours=RESUBMIT_WITHIN_HOURS):
        raise NotAllowedNow(
            f"Payment {payment.id} was recorded over {RESUBMIT_WITHIN_HOURS:g} hours ago and never confirmed by "
            "the provider; resubmitting could charge twice, so an operator must check it at the provider."
        )
    async with transaction(services.pool) as conn:
        leased = await payments.take_lease(conn, payment.id, services.settings.submit_lease_seconds)
    if leased is None:
        raise ChargeInProgress()
    return await submit(services, leased)


async def submit(services: Services, payment: Payment) -> Payment:
    """Ask the provider for the money and record its answer. Safe to repeat: our payment id is its idempotency key.
    A subscription's first invoice is asked for by starting the subscription at the provider."""
    if payment.subscription_id:
        from server import subscriptions  # subscriptions builds on this module

        return await subscriptions.submit_first(services, payment)
    crash_if_asked("before_provider", services.settings.test_crash_at)
    try:
        answer = await services.provider.create_payment(_charge_request(payment, services.settings))

    except ProviderError:
        async with transaction(services.pool) as conn:
            await payments.release_lease(conn, payment.id, payment.submit_lease_until)  # a retry may go at once
        raise
    crash_if_asked("after_provider", services.settings.test_crash_at)
    reason = "the provider's answer to create_charge"
    return (await apply_provider_answer(services, payment.id, answer, actor="provider", reason=reason)).payment


def _charge_request(payment: Payment, settings: Settings) -> ChargeRequest:
    """What the provider is asked, the same on every attempt (the provider compares repeated requests)."""
    page_closes = payment.charged_at + timedelta(hours=settings.payment_page_hours)
    return ChargeRequest(
        payment_id=payment.id,
        customer_id=payment.customer_id,
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        description=payment.description,
        payment_method=payment.payment_method,
        product_id=payment.product_id,
        provider_customer_id=payment.provider_customer_id,
        off_session=payment.off_session,
        page_expires_at=int(page_closes.timestamp()) if payment.payment_method is None else None,
    )


async def _with_saved_card(conn: asyncpg.Connection, new: NewPayment) -> NewPayment:
    """payment_method='saved': the customer's default saved card, charged off-session (the caller holds the
    customer's lock, so the card is the one at the moment the payment is recorded)."""
    if new.payment_method != SAVED:
        return new
    card = await customers.card_to_charge(conn, new.tenant_id, new.provider, new.customer_id)
    if card is None:
        raise NoSavedPaymentMethod(
            f"Customer {new.customer_id!r} has no saved payment method. Call setup_payment_method("
            f"customer_id={new.customer_id!r}, idempotency_key=…) and have the person save a card on its "
            "setup_url; then charge again with payment_method='saved'. Nothing was charged."
        )
    return replace(
        new,
        payment_method=card.provider_payment_method_id,
        provider_customer_id=card.provider_customer_id,
        off_session=True,
    )


async def apply_provider_answer(
    services: Services, payment_id: str, answer: ProviderPayment, *, actor: str, reason: str
) -> TransitionResult:
    """Move the payment to what the provider says (if the state machine allows it); a failed payment is
    also closed at the provider, so nobody can pay it later (a payment page closes by itself)."""
    result = await _apply_answer(services, payment_id, answer, actor, reason)
    closes = (
        result.applied and result.payment.status == PaymentStatus.FAILED and not result.payment.provider_checkout_id
    )
    if closes and answer.provider_payment_id:
        await close_at_provider(services.provider, answer.provider_payment_id)
    return result


@retry_on_deadlock
async def _apply_answer(
    services: Services, payment_id: str, answer: ProviderPayment, actor: str, reason: str
) -> TransitionResult:
    change = Transition(
        to_status=PaymentStatus(answer.status),
        actor=actor,
        reason=reason,
        provider_payment_id=answer.provider_payment_id,
        provider_checkout_id=answer.checkout_id,
        next_action_url=answer.next_action_url,
        failure_reason=answer.failure_reason,
    )
    async with transaction(services.pool) as conn:
        result = await payment_machine.apply(conn, await _locked(conn, payment_id), change)
    return await _as_committed(services, result)


async def _as_committed(services: Services, result: TransitionResult) -> TransitionResult:
    """A success gets its receipt number as its transaction commits: the payment read again, number included."""
    payment = result.payment
    if not (result.applied and payment.status in payment_machine.CHARGED and payment.receipt_number is None):
        return result
    async with connection(services.pool) as conn:
        committed = await payments.get(conn, payment.id, tenant_id=None)
    return replace(result, payment=committed or payment)


async def verify_success(services: Services, payment: Payment) -> str | None:
    """Check a recorded success against the provider's own record; a success the provider does not show
    as paid (a forged or mistaken event) is flagged for an operator, with both sides. The note, if any."""
    truth = await provider_record(services, payment)
    paid = truth.status == PaymentStatus.SUCCEEDED and (truth.amount_minor, truth.currency) == (
        payment.amount_minor,
        payment.currency,
    )
    async with transaction(services.pool) as conn:
        if paid:
            await payments.mark_verified(conn, payment.id)
            return None
        note = (
            f"paywarden recorded {format_amount(payment.amount_minor, payment.currency)} as succeeded; the "
            f"provider shows {truth.status} ({_amount_shown(truth)}) for "
            f"{payment.provider_checkout_id or payment.provider_payment_id}: check it there"
        )
        await payments.flag_attention(conn, payment.id, note)
        await audit_trail.append(
            conn, payment.id, actor="reconciler", from_status=payment.status, to_status=payment.status, reason=note
        )
        return note


async def provider_record(services: Services, payment: Payment) -> ProviderPayment:
    """The provider's own record of the payment: its payment page's when it was paid on one (a declined card
    there fails one attempt, not the payment), else its payment intent's."""
    if payment.provider_checkout_id:
        return await services.provider.retrieve_payment_page(payment.provider_checkout_id)
    assert payment.provider_payment_id is not None  # only payments the provider answered are asked about
    return await services.provider.retrieve_payment(payment.provider_payment_id)


def _amount_shown(truth: ProviderPayment) -> str:
    if truth.amount_minor is None or truth.currency is None:
        return "no amount"
    return format_amount(truth.amount_minor, truth.currency)


async def approve(services: Services, payment_id: str, operator: str) -> Payment:
    """An operator's yes to a payment waiting in requires_approval: it goes to the provider now,
    if the limits still allow it now (the window has moved since the payment was held) — the
    customer's limits and the budget of the key that asked for it.

    Approving again a payment whose provider call did not finish (it is `created`) finishes it."""
    async with transaction(services.pool) as conn:
        held = await payments.get(conn, payment_id, tenant_id=None)  # unlocked: customer lock first, as in record()
        if held is None:
            raise PaymentNotFound(f"No payment with payment_id {payment_id!r}.")
        if held.status == PaymentStatus.CREATED:
            return await resume(services, held)
        await spend.lock_customer(conn, held.tenant_id, held.customer_id)
        locked = await _waiting_for_approval(conn, payment_id)
        _refuse_if_expired(locked, services.settings)
        last_day = await spend.charges_in_last_day(
            conn, held.tenant_id, held.customer_id, held.currency, leaving_out=held.id
        )
        check_limits(held, services.settings, last_day)
        await _check_key_budget_again(conn, held)
        await payments.mark_charged_now(conn, payment_id)
        await _move(conn, locked, PaymentStatus.CREATED, "operator", f"approved by operator {operator}")
        leased = await payments.take_lease(conn, payment_id, services.settings.submit_lease_seconds)
    assert leased is not None  # taken in the transaction that made it `created`
    return await submit(services, leased)


async def expire_held(services: Services, limit: int = 100) -> list[str]:
    """Cancel the charges that waited for an approval longer than PAYWARDEN_APPROVAL_EXPIRY_HOURS, so they
    stop counting against limits; the ids of those canceled now."""
    hours = services.settings.approval_expiry_hours
    async with transaction(services.pool) as conn:
        stale = await payments.held_longer_than(conn, hours=hours, limit=limit)
    return [payment_id for payment_id in stale if await _expire(services, payment_id)]


async def _expire(services: Services, payment_id: str) -> bool:
    async with transaction(services.pool) as conn:
        locked = await _locked(conn, payment_id)
        if locked.status != PaymentStatus.REQUIRES_APPROVAL:
            return False  # decided meanwhile
        why = f"waited over {services.settings.approval_expiry_hours:g} hours for an approval: expired"
        await _move(conn, locked, PaymentStatus.CANCELED, "reconciler", why)
        return True


def _refuse_if_expired(held: Payment, settings: Settings) -> None:
    if held.updated_at < datetime.now(UTC) - timedelta(hours=settings.approval_expiry_hours):
        raise NotAllowedNow(
            f"Payment {held.id} waited over {settings.approval_expiry_hours:g} hours for approval and has expired "
            "(the reconciler cancels it); the agent must ask for a new charge."
        )


async def reject(services: Services, payment_id: str, operator: str, reason: str | None) -> Payment:
    async with transaction(services.pool) as conn:
        locked = await _waiting_for_approval(conn, payment_id)
        why = f"rejected by operator {operator}" + (f": {reason}" if reason else "")
        return await _move(conn, locked, PaymentStatus.CANCELED, "operator", why, failure_reason=why)


async def _check_limits(conn: asyncpg.Connection, settings: Settings, new: NewPayment, caller: Caller) -> None:
    """The customer's limits, then the key's budget; the caller holds the customer lock (and takes the key's)."""
    check_limits(new, settings, await spend.charges_in_last_day(conn, new.tenant_id, new.customer_id, new.currency))
    if caller.key_id is not None and caller.budget_minor is not None and caller.budget_currency is not None:
        await spend.lock_key(conn, caller.key_id)
        key_last_day = await spend.key_charges_in_last_day(conn, caller.key_id, caller.budget_currency)
        check_key_budget(new, caller.budget_minor, caller.budget_currency, key_last_day)


async def _check_key_budget_again(conn: asyncpg.Connection, held: Payment) -> None:
    """At approval time, as at charge time: the key must still be valid and its budget must still hold."""
    if held.api_key_id is None:
        return
    key = await stored_keys.get(conn, held.api_key_id)
    assert key is not None  # a foreign key keeps it
    if key.revoked_at is not None:
        raise NotAllowedNow(
            f"The API key that asked for payment {held.id} ({key.name}) has been revoked since; reject the payment."
        )
    if key.budget_minor is None or key.budget_currency is None:
        return
    await spend.lock_key(conn, key.id)
    window = await spend.key_charges_in_last_day(conn, key.id, key.budget_currency, leaving_out=held.id)
    check_key_budget(held, key.budget_minor, key.budget_currency, window)


async def _earlier_payment(conn: asyncpg.Connection, request: ChargeInput) -> Payment:
    earlier = await idempotency.get(conn, request.caller.tenant_id, request.customer_id, request.idempotency_key)
    assert earlier is not None  # the claim just lost to it
    _require_same_request(request, earlier["request"])
    return await _locked(conn, earlier["payment_id"])


async def _earlier_same_charge(conn: asyncpg.Connection, new: NewPayment, settings: Settings):
    if settings.duplicate_window_seconds == 0:
        return None
    return await spend.earlier_same_charge(
        conn,
        tenant_id=new.tenant_id,
        customer_id=new.customer_id,
        product_id=new.product_id,
        amount_minor=new.amount_minor,
        currency=new.currency,
        description=new.description,
        within_seconds=settings.duplicate_window_seconds,
    )


async def _hold_for_approval(
    conn: asyncpg.Connection, payment: Payment, need: ApprovalNeed, answer: ApprovalAnswer, key: str | None
) -> Payment:
    why = "needs approval: " + "; ".join(need.reasons)
    await payments.set_approval_reason(conn, payment.id, why)
    if need.operator_only:
        waits = f" (an operator must approve it: {need.operator_only}"
        waits += "; the MCP client's answer does not count)" if answer == "approved" else ")"
    else:
        waits = " (the person could not be asked)"
    return await _move(conn, payment, PaymentStatus.REQUIRES_APPROVAL, "agent", why + waits, key=key)


async def _move(
    conn: asyncpg.Connection,
    payment: Payment,
    to: PaymentStatus,
    actor: str,
    reason: str,
    failure_reason: str | None = None,
    key: str | None = None,
) -> Payment:
    """`key`: the API key the agent acted with, when the agent's call made this change."""
    change = Transition(
        to_status=to, actor=actor, reason=reason, failure_reason=failure_reason or reason, api_key_id=key
    )
    result = await payment_machine.apply(conn, payment, change)
    if not result.applied:
        raise NotAllowedNow(f"Payment {payment.id} is {payment.status}; it cannot become {to}.")
    return result.payment


async def _waiting_for_approval(conn: asyncpg.Connection, payment_id: str) -> Payment:
    locked = await _locked(conn, payment_id)
    if locked.status != PaymentStatus.REQUIRES_APPROVAL:
        raise NotAllowedNow(f"Payment {payment_id} is {locked.status}, not waiting for approval.")
    return locked


async def _locked(conn: asyncpg.Connection, payment_id: str) -> Payment:
    payment = await payments.lock(conn, payment_id, tenant_id=None)
    if payment is None:
        raise PaymentNotFound(f"No payment with payment_id {payment_id!r}.")
    return payment


def _require_same_request(request: ChargeInput, earlier: dict[str, Any]) -> None:
    now = request.fingerprint()
    differing = [
        f"{name} (was {_short(earlier.get(name))}, now {_short(value)})"
        for name, value in now.items()
        if earlier.get(name) != value
    ]
    if differing:
        raise IdempotencyKeyReused(
            f"idempotency_key {request.idempotency_key!r} was already used for a different request: "
            f"{'; '.join(differing)}. Use a new idempotency_key for a new charge, or repeat the original "
            "request exactly to get its result."
        )


def _short(value: object) -> str:
    if value is None:
        return "not given"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…'"
