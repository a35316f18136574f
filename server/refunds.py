"""Refunds: recorded before the provider is asked, never more than what was paid, idempotent per key.

A refund holds its amount from the moment it is recorded (so two concurrent refunds cannot
together exceed the payment); what the provider then says is applied by server/ledger/refund_outcomes.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel, Field

from db import audit, disputes, payments, refunds
from db.payments import Payment
from db.pool import retry_on_deadlock, transaction
from db.refunds import Refund, RefundStatus
from server import api_keys
from server.disputes import CHARGED_BACK
from server.errors import ChargeInProgress, IdempotencyKeyReused, NotAllowedNow, PaymentNotFound, ProviderError
from server.ledger import refund_outcomes
from server.ledger.payment_machine import PAID
from server.money import format_amount
from server.payments import PaymentView
from server.providers import ProviderRefund, RefundRequest
from server.services import Services
from server.tenancy import Caller


@dataclass(frozen=True, kw_only=True)
class RefundInput:
    payment_id: str
    idempotency_key: str
    amount_minor: int | None = None
    reason: str | None = None
    caller: Caller
    """Only payments of the caller's tenant can be refunded; the audit row records its API key."""

    def fingerprint(self) -> dict[str, Any]:
        return {"payment_id": self.payment_id, "amount_minor": self.amount_minor, "reason": self.reason}


class RefundResult(BaseModel):
    refund_id: str = Field(description="paywarden's id for the refund (rf_…).")
    status: RefundStatus
    amount_minor: int
    currency: str
    amount_display: str
    reason: str | None
    provider_refund_id: str | None
    failure_reason: str | None
    created_at: datetime
    replayed: bool = Field(description="True when this idempotency_key was used before for the same refund.")
    payment: PaymentView = Field(description="The payment after the refund (refunded_minor, status).")

    @classmethod
    def of(cls, refund: Refund, payment: Payment, replayed: bool) -> RefundResult:
        return cls(
            refund_id=refund.id,
            status=refund.status,
            amount_minor=refund.amount_minor,
            currency=refund.currency,
            amount_display=format_amount(refund.amount_minor, refund.currency),
            reason=refund.reason,
            provider_refund_id=refund.provider_refund_id,
            failure_reason=refund.failure_reason,
            created_at=refund.created_at,
            replayed=replayed,
            payment=PaymentView.of(payment),
        )


async def refund(services: Services, request: RefundInput) -> RefundResult:
    """The refund for this request and its payment after it (replayed=True when the key was used before)."""
    recorded, replayed = await record(services, request)
    if recorded.status == RefundStatus.CREATED:
        recorded = await _resume_or_submit(services, recorded, replayed)
    async with transaction(services.pool) as conn:
        payment = await payments.get(conn, recorded.payment_id, tenant_id=None)
    assert payment is not None  # a foreign key keeps it
    return RefundResult.of(recorded, payment, replayed)


async def record(services: Services, request: RefundInput) -> tuple[Refund, bool]:
    async with transaction(services.pool) as conn:
        await api_keys.require_active(conn, request.caller)
        payment = await payments.lock(conn, request.payment_id, tenant_id=request.caller.tenant_id)
        if payment is None:
            raise PaymentNotFound(f"No payment with payment_id {request.payment_id!r}.")
        earlier = await refunds.by_key(conn, payment.tenant_id, payment.customer_id, request.idempotency_key)
        if earlier is not None:
            _require_same_request(request, earlier)
            return earlier, True
        await _require_no_chargeback(conn, payment)
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
        by = f" by operator {request.caller.operator}" if request.caller.operator else ""
        why = f"refund {recorded.id} of {format_amount(amount, payment.currency)} requested{by}" + (
            f": {request.reason}" if request.reason else ""
        )
        await audit.append(
            conn,
            payment.id,
            actor=request.caller.actor,
            from_status=payment.status,
            to_status=payment.status,
            reason=why,
            api_key_id=request.caller.key_id,
        )
        return recorded, False


async def submit(services: Services, recorded: Refund) -> Refund:
    async with transaction(services.pool) as conn:
        payment = await payments.get(conn, recorded.payment_id, tenant_id=None)
    assert payment is not None and payment.provider_payment_id is not None  # only paid payments get refunds
    request = RefundRequest(
        refund_id=recorded.id,
        payment_id=payment.id,
        provider_payment_id=payment.provider_payment_id,
        amount_minor=recorded.amount_minor,
        currency=recorded.currency,
        reason=recorded.reason,
    )
    try:
        answer = await services.provider.create_refund(request)
    except ProviderError:
        async with transaction(services.pool) as conn:
            await refunds.release_lease(conn, recorded.id, recorded.submit_lease_until)
        raise
    return await _apply_answer(services, recorded.id, answer, "provider")


@retry_on_deadlock
async def _apply_answer(services: Services, refund_id: str, answer: ProviderRefund, actor: str) -> Refund:
    async with transaction(services.pool) as conn:
        return await refund_outcomes.apply(
            conn,
            refund_id,
            RefundStatus(answer.status),
            actor=actor,
            provider_refund_id=answer.provider_refund_id,
            failure_reason=answer.failure_reason,
        )


def refundable(payment: Payment, in_flight_minor: int) -> int:
    """What can still be refunded: what was paid, less what was refunded and what refunds in flight hold."""
    if payment.status not in PAID:
        return 0
    return max(0, payment.amount_minor - payment.refunded_minor - in_flight_minor)


def amount_to_refund(payment: Payment, in_flight_minor: int, asked: int | None) -> int:
    """What a refund of `asked` (None: all that is left) gives back; NotAllowedNow, saying why, when it cannot."""
    if payment.status not in PAID:
        raise NotAllowedNow(f"Payment {payment.id} is {payment.status}; only a paid payment can be refunded.")
    left = refundable(payment, in_flight_minor)
    if left <= 0:
        raise NotAllowedNow(f"Payment {payment.id} has nothing left to refund (refunds in progress included).")
    if asked is not None and asked > left:
        raise NotAllowedNow(
            f"At most {format_amount(left, payment.currency)} of payment {payment.id} can still be "
            f"refunded; {format_amount(asked, payment.currency)} was asked."
        )
    return left if asked is None else asked


async def _require_no_chargeback(conn: asyncpg.Connection, payment: Payment) -> None:
    """NotAllowedNow while the payment is charged back (CHARGED_BACK, server/disputes.py). A dispute is applied on
    the payment's locked row, as this is asked, so a refund recorded before the chargeback was heard of is
    refused by the provider instead (charge_disputed: the refund fails and holds nothing)."""
    for dispute in await disputes.of_payment(conn, payment.tenant_id, payment.id):
        if dispute.status not in CHARGED_BACK:
            continue
        amount = format_amount(dispute.amount_minor, dispute.currency)
        if dispute.status == "lost":
            raise NotAllowedNow(
                f"Payment {payment.id} was charged back: dispute {dispute.id} was lost, and the card's bank gave "
                f"{amount} back to the customer, so a refund would pay them twice. There is nothing left to refund."
            )
        raise NotAllowedNow(
            f"Payment {payment.id} is charged back: dispute {dispute.id} is open ({dispute.status}), and the card's "
            f"bank has taken {amount} back from the merchant, so a refund would pay the customer twice. Answer the "
            "dispute instead (`paywarden disputes evidence`); a refund is possible again if it is won."
        )


async def _amount_to_refund(conn: asyncpg.Connection, payment: Payment, asked: int | None) -> int:
    return amount_to_refund(payment, await refunds.in_flight_total(conn, payment.id), asked)


async def resume(services: Services, recorded: Refund) -> Refund:
    """Finish a refund a crash or an outage left `created` (the provider's idempotency key is our id)."""
    return await _resume_or_submit(services, recorded, replayed=True)


async def refresh(services: Services, recorded: Refund) -> Refund:
    """Apply the provider's current record of a pending refund."""
    assert recorded.provider_refund_id is not None  # only refunds the provider answered are pending
    truth = await services.provider.retrieve_refund(recorded.provider_refund_id)
    return await _apply_answer(services, recorded.id, truth, "reconciler")


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
