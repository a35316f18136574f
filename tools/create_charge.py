"""create_charge: record a payment, then ask the provider for the money — never twice for one key."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Annotated

from mcp.server.mcpserver import AcceptedElicitation, Elicit, ElicitationResult, Resolve
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from server import charges
from server.charges import ApprovalAnswer, ChargeInput, ChargeResult
from server.errors import PaywardenError
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

SCOPE: Scope = "charge"
ANNOTATIONS = ToolAnnotations(
    title="Charge a customer",
    read_only_hint=False,
    destructive_hint=False,
    idempotent_hint=True,
    open_world_hint=True,
)


_reasons_shown: ContextVar[list[str] | None] = ContextVar("reasons_shown", default=None)
"""Why the person was asked, set by the resolver for the tool body of the same call. Unset (for
instance if a future SDK ran resolvers in another task) means "shown nothing": the charge then waits
for an operator rather than going ahead on a yes to something else."""


class ChargeApproval(BaseModel):
    """What the person is asked when a charge needs their approval."""

    approve: bool = Field(description="Approve this charge?")


class NoQuestion(BaseModel):
    """The approval resolver's answer when it asks nobody: none needed, or nobody can be asked."""

    answer: ApprovalAnswer


async def charge_request(
    ctx: ToolContext,
    customer_id: str,
    idempotency_key: str,
    product_id: str | None = None,
    amount_minor: int | None = None,
    currency: str | None = None,
    description: str | None = None,
    payment_method: str | None = None,
) -> ChargeInput:
    """The call's arguments as one charge request, for the approval question and the tool body alike."""
    return ChargeInput(
        customer_id=customer_id,
        idempotency_key=idempotency_key,
        product_id=product_id,
        amount_minor=amount_minor,
        currency=currency,
        description=description,
        payment_method=payment_method,
        caller=caller(ctx),
    )


async def ask_for_approval(
    ctx: ToolContext, request: Annotated[ChargeInput, Resolve(charge_request)]
) -> NoQuestion | Elicit[ChargeApproval]:
    """Ask the person through the client when the charge needs their approval (a large amount, a repeat);
    nobody is asked when only an operator may approve it."""
    try:
        need = await charges.approval_needed(services(ctx), request)
    except PaywardenError:
        return NoQuestion(answer="not_asked")  # the tool body reports the problem
    if not need.by_client:
        return NoQuestion(answer="not_asked")
    if not _can_ask(ctx):
        return NoQuestion(answer="unavailable")
    _reasons_shown.set(need.reasons)
    return Elicit(charges.approval_question(services(ctx), request, need.reasons), ChargeApproval)


async def create_charge(
    ctx: ToolContext,
    customer_id: CustomerId,
    idempotency_key: IdempotencyKey,
    request: Annotated[ChargeInput, Resolve(charge_request)],
    approval: Annotated[ElicitationResult[ChargeApproval], Resolve(ask_for_approval)],
    product_id: ProductId | None = None,
    amount_minor: AmountMinor | None = None,
    currency: Currency | None = None,
    description: Description | None = None,
    payment_method: PaymentMethod | None = None,
) -> ChargeResult:
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

    Returns the payment. status 'succeeded' means paid; 'requires_action' means a person must open
    next_action_url to pay; 'failed' means nothing was charged (see failure_reason). Access is never
    granted by this call itself: confirm with check_entitlement or get_payment.
    """
    return await charges.charge(services(ctx), request, _answer(approval), _reasons_shown.get() or ())


def _answer(approval: ElicitationResult[ChargeApproval]) -> ApprovalAnswer:
    if not isinstance(approval, AcceptedElicitation):
        return "declined"  # declined or cancelled: either way, the person did not say yes
    if isinstance(approval.data, NoQuestion):
        return approval.data.answer
    return "approved" if approval.data.approve else "declined"


def _can_ask(ctx: ToolContext) -> bool:
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)
