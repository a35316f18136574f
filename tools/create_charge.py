"""create_charge: record a payment, then ask the provider for the money — never twice for one key.

The tool only asks the person (approval, then the page to pay on) and passes their answers to
server/charges.py, which decides: whose approval counts, and whether the charge goes ahead.
"""

from __future__ import annotations

from mcp.types import InputRequiredResult, ToolAnnotations

from server import charges
from server.charges import ApprovalAnswer, ChargeInput, ChargeResult
from server.payments import PaymentStatus
from server.tenancy import Scope
from tools.arguments import (
    AmountMinor,
    Currency,
    CustomerId,
    Description,
    IdempotencyKey,
    PaymentMethod,
    ProductId,
)
from tools.context import ToolContext, caller, services
from tools.elicitation import Conversation

SCOPE: Scope = "charge"
ANNOTATIONS = ToolAnnotations(
    title="Charge a customer",
    read_only_hint=False,
    destructive_hint=False,
    idempotent_hint=True,
    open_world_hint=True,
)


async def create_charge(
    ctx: ToolContext,
    customer_id: CustomerId,
    idempotency_key: IdempotencyKey,
    product_id: ProductId | None = None,
    amount_minor: AmountMinor | None = None,
    currency: Currency | None = None,
    description: Description | None = None,
    payment_method: PaymentMethod | None = None,
) -> ChargeResult | InputRequiredResult:
    """Charge a customer, either for a catalog product (product_id) or an ad-hoc amount (amount_minor + currency).

    Call it when the person has agreed to pay. Prefer a catalog product_id: its price comes from the
    catalog and the product's entitlements are granted when the money arrives. Give a fresh
    idempotency_key for each new charge and reuse it when retrying the same charge after a timeout or
    error: you get the original payment back (replayed=true) and nothing is charged twice.

    To charge a card the person saved earlier (setup_payment_method) without them, pass
    payment_method='saved'; without a payment_method the person pays on a page (next_action_url).

    Large charges and repeats of a recent charge need approval: the client asks the person, unless this
    API key's charges (or a charge this large) are approved by an operator only. If nobody can say yes
    now, the payment waits in status 'requires_approval' for an operator; check it later with get_payment.

    When the person must act (pay, or authenticate a saved card), a client that can show pages gets the
    page for them directly (payment_page says what they did with it); share next_action_url otherwise.
    Nothing waits for them to pay.

    Returns the payment. status 'succeeded' means paid; 'requires_action' means a person must open
    next_action_url to pay; 'failed' means nothing was charged (see failure_reason). Access is never
    granted by this call itself: confirm with check_entitlement or get_payment.
    """
    request = ChargeInput(
        customer_id=customer_id,
        idempotency_key=idempotency_key,
        product_id=product_id,
        amount_minor=amount_minor,
        currency=currency,
        description=description,
        payment_method=payment_method,
        caller=caller(ctx),
    )
    person = Conversation(ctx)
    need = await charges.approval_needed(services(ctx), request)
    answer: ApprovalAnswer = "not_asked"
    if need.by_client:
        said = await person.approval(charges.approval_question(services(ctx), request, need.reasons))
        if isinstance(said, InputRequiredResult):
            return said
        answer = {True: "approved", False: "declined", None: "unavailable"}[said]
    result = await charges.charge(services(ctx), request, answer, need.reasons if answer == "approved" else ())
    return await _with_the_page(person, _as_first_made(person, result))


def _as_first_made(person: Conversation, result: ChargeResult) -> ChargeResult:
    """A later round of the same call finds the payment its first round made: not a replay for the agent."""
    first = person.carried.setdefault("payment", {"id": result.payment_id, "replayed": result.replayed})
    return result.model_copy(update={"replayed": first["replayed"]}) if first["id"] == result.payment_id else result


async def _with_the_page(person: Conversation, result: ChargeResult) -> ChargeResult | InputRequiredResult:
    """The page the person must open, sent to them through the client when it can show pages."""
    url = result.next_action_url if result.status == PaymentStatus.REQUIRES_ACTION else None
    message = f"To pay {result.amount_display} ({result.description or 'a charge'}), open this page."
    return await person.with_the_page(result, url, message, result.payment_id)
