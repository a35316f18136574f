"""settle_reservation: charge what the call used; the rest of the hold goes back."""

from __future__ import annotations

from typing import Annotated

from mcp.types import ToolAnnotations
from pydantic import Field

from server import credits
from server.credits import ReservationResult
from server.tenancy import Scope
from tools.arguments import ReservationId
from tools.context import ToolContext, caller, services

SCOPE: Scope = "charge"
ANNOTATIONS = ToolAnnotations(
    title="Settle a credit reservation",
    read_only_hint=False,
    destructive_hint=False,
    idempotent_hint=True,
    open_world_hint=False,
)


async def settle_reservation(
    ctx: ToolContext,
    reservation_id: ReservationId,
    used_quantity: Annotated[
        int, Field(strict=True, ge=0, le=10**12, description="How many credits the call really used.")
    ],
) -> ReservationResult:
    """Settle a reservation after the expensive call: charge `used_quantity`, return the rest.

    Using more than was reserved is charged only if the balance covers the difference. A
    reservation settles once; repeating the same settle returns the same result (replayed=true).
    """
    return await credits.settle(services(ctx), caller(ctx), reservation_id, used_quantity)
