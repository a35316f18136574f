"""consume_credits: use credits in one go."""

from __future__ import annotations

from mcp.types import ToolAnnotations

from server import credits
from server.credits import ConsumeResult
from server.tenancy import Scope
from tools.arguments import CustomerId, Feature, IdempotencyKey, Quantity
from tools.context import ToolContext, caller, services

SCOPE: Scope = "charge"
ANNOTATIONS = ToolAnnotations(
    title="Consume credits", read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)


async def consume_credits(
    ctx: ToolContext, customer_id: CustomerId, feature: Feature, quantity: Quantity, idempotency_key: IdempotencyKey
) -> ConsumeResult:
    """Use `quantity` credits of a metered feature at once, when the amount is known up front.

    Reuse the idempotency_key when retrying: the credits are taken once (replayed=true on a
    repeat). Fails with a clear message when the balance is too low: offer a top-up then.
    """
    return await credits.consume(services(ctx), caller(ctx), customer_id, feature, quantity, idempotency_key)
