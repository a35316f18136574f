"""reserve_credits: hold credits before an expensive call."""

from __future__ import annotations

from typing import Annotated

from mcp.types import ToolAnnotations
from pydantic import Field

from server import credits
from server.credits import ReservationResult
from server.tenancy import Scope
from tools.arguments import CustomerId, Feature, IdempotencyKey, Quantity
from tools.context import ToolContext, caller, services

SCOPE: Scope = "charge"
ANNOTATIONS = ToolAnnotations(
    title="Reserve credits", read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)


async def reserve_credits(
    ctx: ToolContext,
    customer_id: CustomerId,
    feature: Feature,
    quantity: Quantity,
    idempotency_key: IdempotencyKey,
    ttl_seconds: Annotated[
        int, Field(strict=True, ge=1, le=86_400, description="How long the hold lasts if never settled.")
    ] = 300,
) -> ReservationResult:
    """Hold `quantity` credits of a metered feature (e.g. llm_tokens) before an expensive call.

    Call it right before the model call, with your best estimate. Then call settle_reservation with
    what was really used (the rest goes back), or release_reservation if the call did not happen. A
    hold not settled within ttl_seconds releases itself. Fails with a clear message when the balance
    is too low: offer a top-up then.
    """
    return await credits.reserve(
        services(ctx), caller(ctx), customer_id, feature, quantity, idempotency_key, ttl_seconds
    )
