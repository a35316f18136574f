"""consume_credits: use credits in one go."""

from __future__ import annotations

from mcp.server.mcpserver import Context

from server import credits
from tools.arguments import CustomerId, Feature, IdempotencyKey, Quantity
from tools.credit_views import WRITE, ConsumeResult
from tools.services import caller, services

ANNOTATIONS = WRITE.model_copy(update={"title": "Consume credits"})


async def consume_credits(
    ctx: Context, customer_id: CustomerId, feature: Feature, quantity: Quantity, idempotency_key: IdempotencyKey
) -> ConsumeResult:
    """Use `quantity` credits of a metered feature at once, when the amount is known up front.

    Reuse the idempotency_key when retrying: the credits are taken once (replayed=true on a
    repeat). Fails with a clear message when the balance is too low: offer a top-up then.
    """
    who = caller(ctx, "charge")
    result, replayed = await credits.consume(
        services(ctx), who.tenant_id, customer_id, feature, quantity, idempotency_key, api_key_id=who.key_id
    )
    return ConsumeResult(**result, replayed=replayed)
