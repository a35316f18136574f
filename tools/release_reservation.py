"""release_reservation: give back a hold whose call never happened."""

from __future__ import annotations

from mcp.types import ToolAnnotations

from server import credits
from server.credits import ReservationResult
from server.tenancy import Scope
from tools.arguments import ReservationId
from tools.context import ToolContext, caller, services

SCOPE: Scope = "charge"
ANNOTATIONS = ToolAnnotations(
    title="Release a credit reservation",
    read_only_hint=False,
    destructive_hint=False,
    idempotent_hint=True,
    open_world_hint=False,
)


async def release_reservation(ctx: ToolContext, reservation_id: ReservationId) -> ReservationResult:
    """Release a reservation whose expensive call did not happen: all its credits go back.

    A reservation resolves once; releasing it again returns the same result (replayed=true).
    """
    return await credits.release(services(ctx), caller(ctx), reservation_id)
