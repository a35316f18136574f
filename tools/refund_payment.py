"""refund_payment: give back all or part of a paid payment, once per key."""

from __future__ import annotations

from mcp.types import ToolAnnotations

from server import refunds
from server.refunds import RefundInput, RefundResult
from server.tenancy import Scope
from tools.arguments import AmountMinor, Description, IdempotencyKey, PaymentId
from tools.context import ToolContext, caller, services

SCOPE: Scope = "refund"
ANNOTATIONS = ToolAnnotations(
    title="Refund a payment",
    read_only_hint=False,
    destructive_hint=True,
    idempotent_hint=True,
    open_world_hint=True,
)


async def refund_payment(
    ctx: ToolContext,
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
    request = RefundInput(
        payment_id=payment_id,
        idempotency_key=idempotency_key,
        amount_minor=amount_minor,
        reason=reason,
        caller=caller(ctx),
    )
    return await refunds.refund(services(ctx), request)
