"""POST /v1/subscriptions (start_subscription), GET /v1/subscriptions/{subscription_id} (get_subscription),
POST /v1/subscriptions/{subscription_id}/change (change_subscription) and …/cancel (cancel_subscription)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Response
from pydantic import BaseModel, ConfigDict, Field

from server import subscriptions
from server.fields import CustomerId, Description, PaymentMethod, ProductId, SubscriptionId, When
from server.payments import PaymentStatus
from server.subscriptions import StartResult, SubscriptionDetails, SubscriptionView
from webapp.api.idempotency import IDEMPOTENCY_RESPONSES, REPLAYED_HEADER, IdempotencyKeyHeader, created_or_replayed
from webapp.api.problems import problems
from webapp.api.security import ChargeCaller, ReadCaller, resource_router
from webapp.dependencies import ServicesDep

router = resource_router("subscriptions")


class StartBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: CustomerId
    product_id: ProductId
    payment_method: PaymentMethod | None = None


class ChangeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    product_id: ProductId
    when: When = "period_end"


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at_period_end: bool = Field(default=True, description="False ends it, and its access, now (no refund).")
    reason: Description | None = None


@router.post(
    "/subscriptions",
    summary="Start a subscription",
    operation_id="start_subscription",
    status_code=201,
    responses={
        **IDEMPOTENCY_RESPONSES,
        202: {
            "model": StartResult,
            "description": "Its first invoice needs a person's approval: nothing is charged until an operator "
            "approves it.",
            "headers": REPLAYED_HEADER,
        },
        **problems(400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 502, 503),
    },
)
async def start_subscription(
    services: ServicesDep, caller: ChargeCaller, idempotency_key: IdempotencyKeyHeader, body: StartBody,
    response: Response,
) -> StartResult:  # fmt: skip
    """Subscribe a customer to a recurring catalog product, limited and approved as a charge of its first
    invoice; once per Idempotency-Key, and one live subscription per customer and product (409 names the
    first). `active` is paid, `trialing` in its free trial, `incomplete` waits for the person to pay the
    first invoice at `next_action_url`. Scope `charge`."""
    request = subscriptions.charge_input(
        caller, body.customer_id, body.product_id, idempotency_key, body.payment_method
    )
    result = await subscriptions.start(services, request)
    held = result.first_payment_status == PaymentStatus.REQUIRES_APPROVAL
    created_or_replayed(response, result.replayed, accepted=held)
    return result


@router.get(
    "/subscriptions/{subscription_id}",
    summary="Look up a subscription",
    operation_id="get_subscription",
    responses=problems(401, 403, 404, 422, 429, 500, 503),
)
async def get_subscription(
    services: ServicesDep, caller: ReadCaller, subscription_id: Annotated[SubscriptionId, Path()]
) -> SubscriptionDetails:
    """The subscription, its invoices (each a payment) and every change so far. Scope `read`."""
    return await subscriptions.details(services, caller, subscription_id)


@router.post(
    "/subscriptions/{subscription_id}/change",
    summary="Change a subscription's plan",
    operation_id="change_subscription",
    responses=problems(400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 502, 503),
)
async def change_subscription(
    services: ServicesDep, caller: ChargeCaller, idempotency_key: IdempotencyKeyHeader,
    subscription_id: Annotated[SubscriptionId, Path()], body: ChangeBody,
) -> SubscriptionView:  # fmt: skip
    """Switch to another recurring product at the next renewal (`period_end`), or `now` with the prorated
    difference charged at once. The same Idempotency-Key never switches twice. Scope `charge`."""
    return await subscriptions.change(services, caller, subscription_id, body.product_id, idempotency_key, body.when)


@router.post(
    "/subscriptions/{subscription_id}/cancel",
    summary="Cancel a subscription",
    operation_id="cancel_subscription",
    responses=problems(400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 502, 503),
)
async def cancel_subscription(
    services: ServicesDep, caller: ChargeCaller, subscription_id: Annotated[SubscriptionId, Path()],
    body: CancelBody | None = None,
) -> SubscriptionView:  # fmt: skip
    """At the period's end (access until then), or now (`at_period_end: false`; access ends now, nothing is
    refunded). Canceling again changes nothing. Scope `charge`."""
    given = body or CancelBody()
    return await subscriptions.cancel(services, caller, subscription_id, given.at_period_end, given.reason)
