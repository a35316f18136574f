"""change_subscription: switch a subscription to another recurring product."""

from __future__ import annotations

from mcp.types import InputRequiredResult, ToolAnnotations

from server import subscriptions
from server.charges import ApprovalAnswer
from server.subscriptions import SubscriptionView
from server.tenancy import Scope
from tools.arguments import IdempotencyKey, ProductId, SubscriptionId, When
from tools.context import ToolContext, caller, services
from tools.elicitation import Conversation

SCOPE: Scope = "charge"
ANNOTATIONS = ToolAnnotations(
    title="Change a subscription's plan",
    read_only_hint=False,
    destructive_hint=False,
    idempotent_hint=True,
    open_world_hint=True,
)


async def change_subscription(
    ctx: ToolContext,
    subscription_id: SubscriptionId,
    product_id: ProductId,
    idempotency_key: IdempotencyKey,
    when: When = "period_end",
) -> SubscriptionView | InputRequiredResult:
    """Move a subscription to another recurring product (same currency) when the person asks for it.

    when='period_end' (default): the new plan is billed and granted from the next renewal
    (pending_product_id shows it meanwhile). when='now': it starts now; the unused part of the current period
    is credited and the new plan's price for it charged at once (the difference, in the customer's favour).
    Reuse the idempotency_key when retrying.
    """
    need, question = await subscriptions.change_approval(
        services(ctx), caller(ctx), subscription_id, product_id, idempotency_key
    )
    answer: ApprovalAnswer = "not_asked"
    if need.by_client:
        said = await Conversation(ctx).approval(question)
        if isinstance(said, InputRequiredResult):
            return said
        answer = {True: "approved", False: "declined", None: "unavailable"}[said]
    approved = tuple(need.reasons) if answer == "approved" else ()
    return await subscriptions.change(
        services(ctx), caller(ctx), subscription_id, product_id, idempotency_key, when, answer, approved
    )
