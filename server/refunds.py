"""Refunds: recorded before the provider is asked, never more than what was paid, idempotent per key.

A refund holds its amount from the moment it is recorded (so two concurrent refunds cannot
together exceed the payment); what the provider then says is applied by db/refund_transitions.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from db import audit, payments, refund_transitions, refunds
from db.payments import Payment
from db.pool import retry_on_deadlock, transaction
from db.refunds import Refund
from server.errors import ChargeInProgress, IdempotencyKeyReused, NotAllowedNow, PaymentNotFound, ProviderError
from server.money import format_amount
from server.providers import RefundRequest
from server.services import Services
from server.tenancy import Caller

REFUNDABLE = ("succeeded", "partially_refunded")


@dataclass(frozen=True)
class RefundInput:
    payment_id: str
    idempotency_key: str
    amount_minor: int | None
    reason: str | None
    caller: Caller
    """Only payments of the caller's tenant can be refunded; the audit row records its API key."""

    def fingerprint(self) -> dict[str, Any]:
        return {"payment_id": self.payment_id, "amount_minor": self.amount_minor, "reason": self.reason}


async def refund(services: Services, request: RefundInput) -> tuple[Refund, Payment, bool]:
    """The refund for this request, its payment, and whether it is a replay."""
    recorded, replayed = await record(services, request)
    if recorded.status == "created":
        recorded = await _resume_or_submit(services, recorded, replayed)
    async with transaction(services.pool) as conn:
        payment = await payments.get(conn, recorded.payment_id, tenant_id=None)
    assert payment is not None
    return recorded, payment, replayed


async def record(services: Services, request: RefundInput) -> tuple[Refund, bool]:
    try:
        return await _record(services, request)
    except asyncpg.UniqueViolationError:  # the same key, at the same moment, on another of the customer's payments
        raise ChargeInProgress("Another refund with this idempotency_key is being recorded; retry shortly.") from None


async def _record(services: Services, request: RefundInput) -> tuple[Refund, bool]:
    async with transaction(services.pool) as conn:
        payment = await payments.lock(conn, request.payment_id, tenant_id=request.caller.tenant_id)
        if payment is None:
            raise PaymentNotFound(f"No payment with payment_id {request.payment_id!r}.")
        earlier = await refunds.by_key(conn, payment.tenant_id, payment.customer_id, request.idempotency_key)
        if earlier is not None:
            _require_same_request(request, earlier)
            return earlier, True
        amount = await _amount_to_refund(conn, payment, request.amount_minor)
        services.provider.check_chargeable(amount, payment.currency)
        recorded = await refunds.insert(
            conn,
            refund_id=refunds.new_refund_id(),
            payment_id=payment.id,
            customer_id=payment.customer_id,
            idempotency_key=request.idempotency_key,
            request=request.fingerprint(),
            amount_minor=amount,
            currency=payment.currency,
            reason=request.reason,
            lease_seconds=services.settings.submit_lease_seconds,
        )
        why = f"refund {recorded.id} of {format_amount(amount, payment.currency)} requested" + (
            f": {request.reason}" if request.reason else ""
        )
        await audit.append(
            conn,
            payment.id,
            actor="agent",
            from_status=payment.status,
            to_status=payment.status,
            reason=why,
            api_key_id=request.caller.key_id,
        )
        return recorded, False


async def submit(services: Services, recorded: Refund) -> Refund:
    async with transaction(services.pool) as conn:
        payment = await payments.get(conn, recorded.payment_id, tenant_id=None)
    assert payment is not None and payment.provider_payment_id is not None
    request = RefundRequest(
        recorded.id, payment.id, payment.provider_payment_id, recorded.amount_minor, recorded.currency, recorded.reason
    )
    try:
        answer = await services.provider.create_refund(request)
    except ProviderError:
        async with transaction(services.pool) as conn:
            await refunds.release_lease(conn, recorded.id, recorded.submit_lease_until)
        raise
    return await _apply_answer(services, recorded.id, answer.status, "provider", answer)


@retry_on_deadlock
async def _apply_answer(services: Services, refund_id: str, status: str, actor: str, answer: Any) -> Refund:
    async with transaction(services.pool) as conn:
        return await refund_transitions.apply(
            conn,
            refund_id,
            status,
            actor=actor,
            provider_refund_id=answer.provider_refund_id,
            failure_reason=answer.failure_reason,
        )


async def _amount_to_refund(conn: asyncpg.Connection, payment: Payment, asked: int | None) -> int:
    if payment.status not in REFUNDABLE:
        raise NotAllowedNow(f"Payment {payment.id} is {payment.status}; only a paid payment can be refunded.")
    refundable = payment.amount_minor - payment.refunded_minor - await refunds.in_flight_total(conn, payment.id)
    if refundable <= 0:
        raise NotAllowedNow(f"Payment {payment.id} has nothing left to refund (refunds in progress included).")
    if asked is not None and asked > refundable:
        raise NotAllowedNow(
            f"At most {format_amount(refundable, payment.currency)} of payment {payment.id} can still be "
            f"refunded; {format_amount(asked, payment.currency)} was asked."
        )
    return refundable if asked is None else asked


async def resume(services: Services, recorded: Refund) -> Refund:
    """Finish a refund a crash or an outage left `created` (the provider's idempotency key is our id)."""
    return await _resume_or_submit(services, recorded, replayed=True)


async def refresh(services: Services, recorded: Refund) -> Refund:
    """Apply the provider's current record of a pending refund."""
    assert recorded.provider_refund_id is not None
    truth = await services.provider.retrieve_refund(recorded.provider_refund_id)
    return await _apply_answer(services, recorded.id, truth.status, "reconciler", truth)


async def _resume_or_submit(services: Services, recorded: Refund, replayed: bool) -> Refund:
    if not replayed:
        return await submit(services, recorded)
    async with transaction(services.pool) as conn:
        leased = await refunds.take_lease(conn, recorded.id, services.settings.submit_lease_seconds)
    if leased is None:
        raise ChargeInProgress(
            "The first refund request with this idempotency_key is still in progress; retry shortly."
        )
    return await submit(services, leased)


def _require_same_request(request: RefundInput, earlier: Refund) -> None:
    now = request.fingerprint()
    differing = [name for name, value in now.items() if earlier.request.get(name) != value]
    if differing:
        raise IdempotencyKeyReused(
            f"idempotency_key {request.idempotency_key!r} was already used for a different refund "
            f"({', '.join(differing)} differ). Use a new idempotency_key for a new refund."
        )
