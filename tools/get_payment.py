"""get_payment: one payment and its full audit timeline."""

from __future__ import annotations

from datetime import datetime

from mcp.server.mcpserver import Context
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from db import audit, payments
from db.pool import connection
from server.errors import PaymentNotFound
from server.services import Services
from tools.arguments import PaymentId
from tools.payment_view import PaymentView
from tools.services import caller, services

ANNOTATIONS = ToolAnnotations(
    title="Look up a payment",
    read_only_hint=True,
    destructive_hint=False,
    idempotent_hint=True,
    open_world_hint=False,
)


class TimelineEntry(BaseModel):
    at: datetime
    actor: str = Field(description="Who made the change: agent, provider, webhook, reconciler or operator.")
    from_status: str | None
    to_status: str
    reason: str | None
    api_key_id: str | None = Field(default=None, description="The API key the agent acted with, if any.")


class PaymentDetails(PaymentView):
    timeline: list[TimelineEntry] = Field(description="Every status change, oldest first.")


async def get_payment(ctx: Context, payment_id: PaymentId) -> PaymentDetails:
    """Look up a payment by payment_id: its current status and every status change so far.

    Call it to follow a charge after create_charge (for example after a person was sent to
    next_action_url) or to explain a charge to someone. status 'succeeded' is the only paid state.
    """
    who = caller(ctx, "read")
    return await details(services(ctx), who.tenant_id, payment_id)


async def details(services: Services, tenant_id: str, payment_id: str) -> PaymentDetails:
    """Another tenant's payment is answered exactly like one that does not exist."""
    async with connection(services.pool) as conn:
        payment = await payments.get(conn, payment_id, tenant_id=tenant_id)
        if payment is None:
            raise PaymentNotFound(
                f"No payment with payment_id {payment_id!r}. Use the payment_id create_charge returned."
            )
        entries = await audit.timeline(conn, payment_id)
    timeline = [TimelineEntry(**vars(entry)) for entry in entries]
    return PaymentDetails.of(payment, timeline=timeline)
