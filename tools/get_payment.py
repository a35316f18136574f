"""get_payment: one payment and its full audit timeline."""

from __future__ import annotations

from mcp.types import ToolAnnotations

from server import payments
from server.payments import PaymentDetails
from server.tenancy import Scope
from tools.arguments import PaymentId
from tools.context import ToolContext, caller, services

SCOPE: Scope = "read"
ANNOTATIONS = ToolAnnotations(
    title="Look up a payment",
    read_only_hint=True,
    destructive_hint=False,
    idempotent_hint=True,
    open_world_hint=False,
)


async def get_payment(ctx: ToolContext, payment_id: PaymentId) -> PaymentDetails:
    """Look up a payment by payment_id: its current status and every status change so far.

    Call it to follow a charge after create_charge (for example after a person was sent to
    next_action_url) or to explain a charge to someone. status 'succeeded' is the only paid state.
    A paid payment has a receipt_number and a receipt_url: give the person that link when they ask
    for a receipt. disputes lists any chargeback the person's bank opened against it.
    """
    return await payments.details(services(ctx), caller(ctx), payment_id)
