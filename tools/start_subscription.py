"""start_subscription: a plan that renews by itself — recorded, limited and approved exactly like a charge
(the first invoice is what the limits and the approval see), then started at the provider."""

from __future__ import annotations

from mcp.types import InputRequiredResult, ToolAnnotations

from server import charges, subscriptions
from server.charges import ApprovalAnswer
from server.subscription_views import SubscriptionStatus
from server.subscriptions import StartResult
from server.tenancy import Scope
from tools.arguments import CustomerId, IdempotencyKey, PaymentMethod, ProductId
from tools.context import ToolContext, caller, services
from tools.elicitation import Conversation

SCOPE: Scope = "charge"
ANNOTATIONS = ToolAnnotations(
    title="Start a subscription",
    read_only_hint=False,
    destructive_hint=False,
    idempotent_hint=True,
    open_world_hint=True,
)


async def start_subscription(
    ctx: ToolContext,
    customer_id: CustomerId,
    product_id: ProductId,
    idempotency_key: IdempotencyKey,
    payment_method: PaymentMethod | None = None,
) -> StartResult | InputRequiredResult:
    """Subscribe a customer to a recurring catalog product (one whose offers show an interval): it renews every
    period by itself, charging the same card, and its entitlements (and any monthly credit allowance) follow
    each paid period.

    Call it when the person has agreed to the plan. payment_method: omit it and the person pays the first
    invoice on a page (next_action_url); 'saved' uses the card they saved with setup_payment_method; a
    payment method id (sandbox: pm_card_visa) is saved to the customer and charged now and at every renewal.
    Give a fresh idempotency_key, and reuse it when retrying: the same subscription comes back (replayed=true).
    A customer has at most one live subscription per product; a second start is refused and names the first.

    Returns the subscription: status 'active' (paid), 'trialing' (free trial until trial_end) or 'incomplete'
    (the first invoice is not paid yet): a client that can show pages gets next_action_url for the person
    directly (payment_page says what they did with it); share it with them otherwise. Trust check_entitlement
    for access.
    """
    request = subscriptions.charge_input(caller(ctx), customer_id, product_id, idempotency_key, payment_method)
    person = Conversation(ctx)
    need = await charges.approval_needed(services(ctx), request)
    answer: ApprovalAnswer = "not_asked"
    if need.by_client:
        said = await person.approval(charges.approval_question(services(ctx), request, need.reasons))
        if isinstance(said, InputRequiredResult):
            return said
        answer = {True: "approved", False: "declined", None: "unavailable"}[said]
    approved = tuple(need.reasons) if answer == "approved" else ()
    started = await subscriptions.start(services(ctx), request, answer, approved)
    return await _with_the_page(person, _as_first_made(person, started))


def _as_first_made(person: Conversation, result: StartResult) -> StartResult:
    """A later round of the same call finds the subscription its first round started: not a replay."""
    first = person.carried.setdefault("subscription", {"id": result.subscription_id, "replayed": result.replayed})
    return (
        result.model_copy(update={"replayed": first["replayed"]}) if first["id"] == result.subscription_id else result
    )


async def _with_the_page(person: Conversation, result: StartResult) -> StartResult | InputRequiredResult:
    """The first invoice's page, sent to the person through the client when it can show pages."""
    url = result.next_action_url if result.status == SubscriptionStatus.INCOMPLETE else None
    message = f"To start the {result.product_id} subscription, pay its first invoice on this page."
    return await person.with_the_page(result, url, message, result.subscription_id)
