"""cancel_subscription: end a subscription at its period's end (the default) or now."""

from __future__ import annotations

from mcp.types import ToolAnnotations

from server import subscriptions
from server.subscriptions import SubscriptionView
from server.tenancy import Scope
from tools.arguments import Description, SubscriptionId
from tools.context import ToolContext, caller, services

SCOPE: Scope = "charge"
ANNOTATIONS = ToolAnnotations(
    title="Cancel a subscription",
    read_only_hint=False,
    destructive_hint=True,
    idempotent_hint=True,
    open_world_hint=True,
)


async def cancel_subscription(
    ctx: ToolContext, subscription_id: SubscriptionId, at_period_end: bool = True, reason: Description | None = None
) -> SubscriptionView:
    """Cancel a subscription when the person asks to stop it.

    By default it ends at current_period_end: the customer keeps access until then and is not charged again
    (cancel_at_period_end=true). at_period_end=false ends it and its access now, without a refund (use
    refund_payment on its last invoice for that). Calling it again changes nothing.
    """
    return await subscriptions.cancel(services(ctx), caller(ctx), subscription_id, at_period_end, reason)
