"""release_reservation: give back a hold whose call never happened."""

from __future__ import annotations

from mcp.server.mcpserver import Context

from server import credits
from tools.arguments import ReservationId
from tools.credit_views import WRITE, ReservationResult
from tools.services import caller, services

ANNOTATIONS = WRITE.model_copy(update={"title": "Release a credit reservation"})


async def release_reservation(ctx: Context, reservation_id: ReservationId) -> ReservationResult:
    """Release a reservation whose expensive call did not happen: all its credits go back.

    A reservation resolves once; releasing it again returns the same result (replayed=true).
    """
    who = caller(ctx, "charge")
    result, replayed = await credits.release(services(ctx), who.tenant_id, reservation_id, api_key_id=who.key_id)
    return ReservationResult(**result, replayed=replayed)
