"""POST /v1/charges (create_charge), GET /v1/charges/{payment_id} (get_payment), GET /v1/charges
(list_payments), POST /v1/charges/{payment_id}/refunds (refund_payment)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from server import charges, payments, refunds
from server.charges import ChargeInput, ChargeResult
from server.fields import (
    MAX_PAGE_SIZE,
    AmountMinor,
    Currency,
    CustomerId,
    Description,
    PaymentId,
    PaymentMethod,
    ProductId,
)
from server.payments import PaymentDetails, PaymentPage, PaymentStatus
from server.refunds import RefundInput, RefundResult
from webapp.api.idempotency import IDEMPOTENCY_RESPONSES, REPLAYED_HEADER, IdempotencyKeyHeader, created_or_replayed
from webapp.api.problems import problems
from webapp.api.security import ChargeCaller, ReadCaller, RefundCaller, resource_router
from webapp.dependencies import ServicesDep

router = resource_router("charges")


class ChargeBody(BaseModel):
    """A catalog product_id (the catalog sets the price), or amount_minor + currency for an ad-hoc charge."""

    model_config = ConfigDict(extra="forbid")
    customer_id: CustomerId
    product_id: ProductId | None = None
    amount_minor: AmountMinor | None = None
    currency: Currency | None = None
    description: Description | None = None
    payment_method: PaymentMethod | None = None


class RefundBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount_minor: AmountMinor | None = Field(default=None, description="Omit to refund all that is left.")
    reason: Description | None = None


@router.post(
    "/charges",
    summary="Charge a customer",
    operation_id="create_charge",
    status_code=201,
    responses={
        **IDEMPOTENCY_RESPONSES,
        202: {
            "model": ChargeResult,
            "description": "The charge needs a person's approval (status requires_approval): nothing is charged "
            "until an operator approves it.",
            "headers": REPLAYED_HEADER,
        },
        **problems(400, 401, 403, 409, 413, 415, 422, 429, 500, 502, 503),
    },
)
async def create_charge(
    services: ServicesDep,
    caller: ChargeCaller,
    idempotency_key: IdempotencyKeyHeader,
    body: ChargeBody,
    response: Response,
) -> ChargeResult:
    """Record the payment, then ask the provider for the money — never twice for one Idempotency-Key.
    201: the payment (`succeeded` is paid; `requires_action`: a person must open `next_action_url`;
    `failed`: nothing was charged). 202: it waits for a person's approval. Repeating the request with
    the same key returns the original payment with `Idempotent-Replayed: true`. Access is granted only
    when the provider confirms the money: check the entitlement. Scope `charge`."""
    request = ChargeInput(**body.model_dump(), idempotency_key=idempotency_key, caller=caller)
    result = await charges.charge(services, request)
    created_or_replayed(response, result.replayed, accepted=result.status == PaymentStatus.REQUIRES_APPROVAL)
    return result


@router.get(
    "/charges/{payment_id}",
    summary="Look up a payment",
    operation_id="get_payment",
    responses=problems(401, 403, 404, 422, 429, 500, 503),
)
async def get_payment(
    services: ServicesDep, caller: ReadCaller, payment_id: Annotated[PaymentId, Path()]
) -> PaymentDetails:
    """The payment and every status change so far (who, when, from what to what, why). Another tenant's
    payment is answered 404, like one that does not exist. Scope `read`."""
    return await payments.details(services, caller, payment_id)


@router.get(
    "/charges",
    summary="List a customer's payments",
    operation_id="list_payments",
    responses=problems(400, 401, 403, 422, 429, 500, 503),
)
async def list_payments(
    services: ServicesDep,
    caller: ReadCaller,
    customer_id: Annotated[CustomerId, Query()],
    status: Annotated[PaymentStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size.")] = 20,
    cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page.")] = None,
) -> PaymentPage:
    """A customer's payments, newest first; pass `next_cursor` as `cursor` for the next page. Scope `read`."""
    return await payments.page(services, caller, customer_id, status=status, limit=limit, cursor=cursor)


@router.post(
    "/charges/{payment_id}/refunds",
    summary="Refund a payment",
    operation_id="refund_payment",
    status_code=201,
    responses={**IDEMPOTENCY_RESPONSES, **problems(400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 502, 503)},
)
async def refund_payment(
    services: ServicesDep,
    caller: RefundCaller,
    idempotency_key: IdempotencyKeyHeader,
    payment_id: Annotated[PaymentId, Path()],
    response: Response,
    body: RefundBody | None = None,
) -> RefundResult:
    """Refund all that is left of a paid payment (no amount_minor) or part of it, once per Idempotency-Key.
    A full refund revokes what the payment granted; a partial one keeps it. Scope `refund`."""
    given = body or RefundBody()
    request = RefundInput(
        payment_id=payment_id,
        idempotency_key=idempotency_key,
        amount_minor=given.amount_minor,
        reason=given.reason,
        caller=caller,
    )
    result = await refunds.refund(services, request)
    created_or_replayed(response, result.replayed)
    return result
