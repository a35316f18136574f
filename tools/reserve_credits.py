"""reserve_credits: hold credits before an expensive call."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import Field

from server import credits
from tools.arguments import CustomerId, Feature, IdempotencyKey, Quantity
from tools.credit_views import WRITE, ReservationResult
from tools.services import caller, services

ANNOTATIONS = WRITE.model_copy(update={"title": "Reserve credits"})


async def reserve_credits(
    ctx: Context,
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
    who = caller(ctx, "charge")
    result, replayed = await credits.reserve(
        services(ctx),
        who.tenant_id,
        customer_id,
        feature,
        quantity,
        idempotency_key,
        ttl_seconds,
        api_key_id=who.key_id,
    )
    return ReservationResult(**result, replayed=replayed)
