"""refund_payment: give back all or part of a paid payment, once per key."""

from __future__ import annotations

from datetime import datetime

from mcp.server.mcpserver import Context
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from db.refunds import Refund
from server import refunds
from server.money import format_amount
from server.refunds import RefundInput
from tools.arguments import AmountMinor, Description, IdempotencyKey, PaymentId
from tools.payment_view import PaymentView
from tools.services import caller, services

ANNOTATIONS = ToolAnnotations(
    title="Refund a payment",
    read_only_hint=False,
    destructive_hint=True,
    idempotent_hint=True,
    open_world_hint=True,
)


class RefundResult(BaseModel):
    refund_id: str = Field(description="paywarden's id for the refund (rf_…).")
    status: str = Field(description="created, pending, succeeded, failed or canceled.")
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
    def of(cls, refund: Refund, payment: PaymentView, replayed: bool) -> RefundResult:
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
            payment=payment,
        )


async def refund_payment(
    ctx: Context,
    payment_id: PaymentId,
    idempotency_key: IdempotencyKey,
    amount_minor: AmountMinor | None = None,
    reason: Description | None = None,
) -> RefundResult:
    """Refund a paid payment: all of what is left (omit amount_minor) or part of it, in minor units.

    Call it only when the person or the operator asked for money back. Use a fresh idempotency_key
    per refund and reuse it when retrying: the same refund comes back (replayed=true) and nothing is
    refunded twice. A full refund revokes what the payment granted; a partial one keeps it.
    Returns the refund and the payment after it (status partially_refunded or refunded once the
    provider confirms).
    """
    request = RefundInput(payment_id, idempotency_key, amount_minor, reason, caller(ctx, "refund"))
    refund, payment, replayed = await refunds.refund(services(ctx), request)
    return RefundResult.of(refund, PaymentView.of(payment), replayed)
