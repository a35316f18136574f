"""setup_payment_method: a page where the person saves a card once, for later charges without them."""

from __future__ import annotations

from mcp.types import ToolAnnotations

from server import setups
from server.setups import SetupResult
from server.tenancy import Scope
from tools.arguments import CustomerId, IdempotencyKey
from tools.context import ToolContext, caller, services

SCOPE: Scope = "charge"
ANNOTATIONS = ToolAnnotations(
    title="Save a customer's card",
    read_only_hint=False,
    destructive_hint=False,
    idempotent_hint=True,
    open_world_hint=True,
)


async def setup_payment_method(
    ctx: ToolContext, customer_id: CustomerId, idempotency_key: IdempotencyKey
) -> SetupResult:
    """Ask the person to save a card, once, so that later charges need no page: create_charge(...,
    payment_method='saved') then charges it while they are away, within every limit.

    Call it when the person agrees to keep a card on file. Returns setup_id, status and setup_url: share
    setup_url with the person (status 'requires_action'); nothing is saved until they complete that page.
    Reuse the idempotency_key when retrying: the same setup comes back (replayed=true). Afterwards
    get_customer shows the saved card (brand, last4, expiry; the number is never stored).
    """
    return await setups.setup_payment_method(services(ctx), caller(ctx), customer_id, idempotency_key)
