"""create_charge: record a payment, then ask the provider for the money — never twice for one key."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Annotated

from mcp.server.mcpserver import (
    AcceptedElicitation,
    Context,
    Elicit,
    ElicitationResult,
    Resolve,
)
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from server import charges
from server.charges import ApprovalAnswer, ChargeInput
from server.errors import PaywardenError
from server.money import format_amount
from server.tenancy import Caller
from tools.arguments import (
    AmountMinor,
    Currency,
    CustomerId,
    Description,
    IdempotencyKey,
    PaymentMethod,
    ProductId,
)
from tools.payment_view import PaymentView
from tools.services import caller, services

ANNOTATIONS = ToolAnnotations(
    title="Charge a customer",
    read_only_hint=False,
    destructive_hint=False,
    idempotent_hint=True,
    open_world_hint=True,
)


class ChargeResult(PaymentView):
    replayed: bool = Field(
        description="True when this idempotency_key was used before for the same request: this is the "
        "original payment and nothing was charged again."
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


async def ask_for_approval(
    ctx: Context,
    customer_id: str,
    idempotency_key: str,
    product_id: str | None = None,
    amount_minor: int | None = None,
    currency: str | None = None,
    description: str | None = None,
    payment_method: str | None = None,
) -> NoQuestion | Elicit[ChargeApproval]:
    """Ask the person through the client when the charge needs approval (a large amount, a repeat)."""
    try:
        request = _charge_input(
            caller(ctx, "charge"),
            customer_id,
            idempotency_key,
            product_id,
            amount_minor,
            currency,
            description,
            payment_method,
        )
        reasons = await charges.approval_needed(services(ctx), request)
    except PaywardenError:
        return NoQuestion(answer="not_asked")  # the tool body reports the problem
    if not reasons:
        return NoQuestion(answer="not_asked")
    if not _can_ask(ctx):
        return NoQuestion(answer="unavailable")
    _reasons_shown.set(reasons)
    return Elicit(approval_question(services(ctx), request, reasons), ChargeApproval)


async def create_charge(
    ctx: Context,
    customer_id: CustomerId,
    idempotency_key: IdempotencyKey,
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

    Large charges and repeats of a recent charge need the person's approval: the client asks them.
    If it cannot, the payment waits in status 'requires_approval' for the operator.

    Returns the payment. status 'succeeded' means paid; 'requires_action' means a person must open
    next_action_url to pay; 'failed' means nothing was charged (see failure_reason). Access is never
    granted by this call itself: confirm with check_entitlement or get_payment.
    """
    request = _charge_input(
        caller(ctx, "charge"),
        customer_id,
        idempotency_key,
        product_id,
        amount_minor,
        currency,
        description,
        payment_method,
    )
    payment, replayed = await charges.charge(services(ctx), request, _answer(approval), _reasons_shown.get())
    return ChargeResult.of(payment, replayed=replayed)


def approval_question(services, request: ChargeInput, reasons: list[str]) -> str:
    """The same words every time for the same charge: who is charged, how much, for what, and why we ask."""
    new = charges.price(request, services.catalog, services.provider)
    what = new.description or "an ad-hoc charge"
    return (
        f"Approve charging customer {new.customer_id!r} {format_amount(new.amount_minor, new.currency)} "
        f"for {what!r}? Approval is needed because {' and '.join(reasons)}."
    )


def _answer(approval: ElicitationResult[ChargeApproval]) -> ApprovalAnswer:
    if not isinstance(approval, AcceptedElicitation):
        return "declined"  # declined or cancelled: either way, the person did not say yes
    if isinstance(approval.data, NoQuestion):
        return approval.data.answer
    return "approved" if approval.data.approve else "declined"


def _can_ask(ctx: Context) -> bool:
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def _charge_input(
    who: Caller,
    customer_id: str,
    idempotency_key: str,
    product_id: str | None,
    amount_minor: int | None,
    currency: str | None,
    description: str | None,
    payment_method: str | None,
) -> ChargeInput:
    return ChargeInput(
        customer_id.strip(),
        idempotency_key.strip(),
        product_id.strip() if product_id else None,
        amount_minor,
        currency.strip().upper() if currency else None,
        description,
        payment_method.strip() if payment_method else None,
        who,
    )
