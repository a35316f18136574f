"""How credit operations look to an agent (shared by the four credit tools)."""

from __future__ import annotations

from datetime import datetime

from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from tools.check_entitlement import CreditBalance

WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False)


class ReservationResult(BaseModel):
    reservation_id: str = Field(description="Pass to settle_reservation or release_reservation (rsv_…).")
    customer_id: str
    feature: str
    status: str = Field(description="held, settled, released or expired.")
    quantity: int = Field(description="How many credits are (or were) held.")
    used_quantity: int | None = Field(description="What settle_reservation charged.")
    expires_at: datetime = Field(description="A held reservation not settled by then releases itself.")
    balance: CreditBalance
    replayed: bool = Field(description="True when this repeats an earlier identical request; nothing changed.")
    note: str | None = Field(default=None, description="Set when a settle came after the reservation expired.")


class ConsumeResult(BaseModel):
    customer_id: str
    feature: str
    consumed: int
    balance: CreditBalance
    replayed: bool = Field(description="True when this key was used before for the same request; nothing changed.")
