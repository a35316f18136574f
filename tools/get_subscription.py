"""get_subscription: one subscription, its invoices (as payments) and its history."""

from __future__ import annotations

from mcp.types import ToolAnnotations

from server import subscriptions
from server.subscriptions import SubscriptionDetails
from server.tenancy import Scope
from tools.arguments import SubscriptionId
from tools.context import ToolContext, caller, services

SCOPE: Scope = "read"
ANNOTATIONS = ToolAnnotations(
    title="Look up a subscription",
    read_only_hint=True,
    destructive_hint=False,
    idempotent_hint=True,
    open_world_hint=False,
)


async def get_subscription(ctx: ToolContext, subscription_id: SubscriptionId) -> SubscriptionDetails:
    """Look up a subscription: its status, current period, every invoice paid for it (each a payment) and
    every change so far. Call it to follow a start (after the person paid its first invoice) or to explain
    a renewal or a cancellation."""
    return await subscriptions.details(services(ctx), caller(ctx), subscription_id)
