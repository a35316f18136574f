"""setup_payment_method: a page where the person saves a card once, for later charges without them."""

from __future__ import annotations

from mcp.types import InputRequiredResult, ToolAnnotations

from server import setups
from server.setups import SetupResult, SetupStatus
from server.tenancy import Scope
from tools.arguments import CustomerId, IdempotencyKey
from tools.context import ToolContext, caller, services
from tools.elicitation import Conversation

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
) -> SetupResult | InputRequiredResult:
    """Ask the person to save a card, once, so that later charges need no page: create_charge(...,
    payment_method='saved') then charges it while they are away, within every limit.

    Call it when the person agrees to keep a card on file. Returns setup_id, status and setup_url
    (status 'requires_action'): a client that can show pages gets setup_url for the person directly
    (setup_page says what they did with it); share it with them otherwise. Nothing is saved until they
    complete that page, and nothing waits for them to.
    Reuse the idempotency_key when retrying: the same setup comes back (replayed=true). Afterwards
    get_customer shows the saved card (brand, last4, expiry; the number is never stored), and the customer's
    live subscriptions charge it: this is how a past_due subscription is fixed (its open invoice is retried
    with the new card at once).
    """
    person = Conversation(ctx)
    result = await setups.setup_payment_method(services(ctx), caller(ctx), customer_id, idempotency_key)
    first = person.carried.setdefault("setup", {"id": result.setup_id, "replayed": result.replayed})
    if first["id"] == result.setup_id:
        result = result.model_copy(update={"replayed": first["replayed"]})
    if result.status != SetupStatus.REQUIRES_ACTION or not result.setup_url:
        return result
    message = f"To save a card for later payments by customer {customer_id!r}, open this page."
    shown = await person.page(message, result.setup_url, result.setup_id)
    return shown if isinstance(shown, InputRequiredResult) else result.after_page(shown)
