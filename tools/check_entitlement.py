"""check_entitlement: may this customer use this feature now? Answered from paid entitlements only."""

from __future__ import annotations

from typing import Annotated

from mcp.types import ToolAnnotations
from pydantic import Field

from server import entitlements
from server.entitlements import EntitlementAnswer
from server.tenancy import Scope
from tools.arguments import CustomerId, Feature
from tools.context import ToolContext, caller, services

SCOPE: Scope = "read"
ANNOTATIONS = ToolAnnotations(
    title="Check an entitlement",
    read_only_hint=True,
    destructive_hint=False,
    idempotent_hint=True,
    open_world_hint=False,
)


async def check_entitlement(
    ctx: ToolContext,
    customer_id: CustomerId,
    feature: Feature,
    quantity: Annotated[
        int, Field(strict=True, ge=1, le=10**12, description="For metered features: how many credits are needed.")
    ] = 1,
) -> EntitlementAnswer:
    """Check whether a customer may use a feature right now (e.g. 'pro', or 'llm_tokens' with a quantity).

    Call it before doing paid work for a customer. It answers from payments the provider has
    confirmed, never from a charge that is still in progress. For a metered feature (credits) it
    also returns the balance, and allowed means at least `quantity` credits remain. When allowed is
    false, reason says why and offers lists the catalog products that would grant the feature:
    offer one and charge it with create_charge (or start_subscription for a plan with an interval) —
    except for reason 'disputed' (the payment is being disputed with the person's bank: access is paused,
    do not charge again). A subscription answers trialing or past_due (a renewal failed and is being
    retried) while still allowed, and canceled once it ended. If this call fails, treat the customer as
    not entitled.
    """
    return await entitlements.check(services(ctx), caller(ctx), customer_id, feature, quantity)
