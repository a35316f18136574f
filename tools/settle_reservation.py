"""settle_reservation: charge what the call used; the rest of the hold goes back."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context
from pydantic import Field

from server import credits
from tools.arguments import ReservationId
from tools.credit_views import WRITE, ReservationResult
from tools.services import caller, services

ANNOTATIONS = WRITE.model_copy(update={"title": "Settle a credit reservation"})


async def settle_reservation(
    ctx: Context,
    reservation_id: ReservationId,
    used_quantity: Annotated[
        int, Field(strict=True, ge=0, le=10**12, description="How many credits the call really used.")
    ],
) -> ReservationResult:
    """Settle a reservation after the expensive call: charge `used_quantity`, return the rest.

    Using more than was reserved is charged only if the balance covers the difference. A
    reservation settles once; repeating the same settle returns the same result (replayed=true).
    """
    who = caller(ctx, "charge")
    result, replayed = await credits.settle(
        services(ctx), who.tenant_id, reservation_id, used_quantity, api_key_id=who.key_id
    )
    return ReservationResult(**result, replayed=replayed)
