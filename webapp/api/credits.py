"""Credits of metered features: POST /v1/credits/reservations (reserve_credits), …/{id}/settle
(settle_reservation), …/{id}/release (release_reservation), POST /v1/credits/consumptions (consume_credits)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Response
from pydantic import BaseModel, ConfigDict, Field

from server import credits
from server.credits import ConsumeResult, ReservationResult
from server.fields import MAX_QUANTITY, MAX_TTL_SECONDS, CustomerId, Feature, Quantity, ReservationId
from webapp.api.body_guard import NoFields
from webapp.api.idempotency import IDEMPOTENCY_RESPONSES, IdempotencyKeyHeader, created_or_replayed
from webapp.api.problems import problems
from webapp.api.security import ChargeCaller, resource_router
from webapp.dependencies import ServicesDep

router = resource_router("credits")
ONCE = {200: {"description": "Resolved (or, with Idempotent-Replayed, resolved before by the same request)."}}


class ReserveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: CustomerId
    feature: Feature
    quantity: Quantity
    ttl_seconds: int = Field(
        default=300, strict=True, ge=1, le=MAX_TTL_SECONDS, description="How long the hold lasts if never settled."
    )


class SettleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    used_quantity: int = Field(strict=True, ge=0, le=MAX_QUANTITY, description="How many credits the call used.")


class ConsumeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: CustomerId
    feature: Feature
    quantity: Quantity


@router.post(
    "/credits/reservations",
    summary="Reserve credits",
    operation_id="reserve_credits",
    status_code=201,
    responses={**IDEMPOTENCY_RESPONSES, **problems(400, 401, 402, 403, 409, 413, 415, 422, 429, 500, 503)},
)
async def reserve_credits(
    services: ServicesDep,
    caller: ChargeCaller,
    idempotency_key: IdempotencyKeyHeader,
    body: ReserveBody,
    response: Response,
) -> ReservationResult:
    """Hold credits of a metered feature before an expensive call; then settle what was used, or release.
    A hold not settled within ttl_seconds releases itself. 402 when the balance is too low. Scope `charge`."""
    result = await credits.reserve(
        services, caller, body.customer_id, body.feature, body.quantity, idempotency_key, body.ttl_seconds
    )
    created_or_replayed(response, result.replayed)
    return result


@router.post(
    "/credits/reservations/{reservation_id}/settle",
    summary="Settle a credit reservation",
    operation_id="settle_reservation",
    responses={**ONCE, **problems(401, 402, 403, 404, 409, 413, 415, 422, 429, 500, 503)},
)
async def settle_reservation(
    services: ServicesDep,
    caller: ChargeCaller,
    reservation_id: Annotated[ReservationId, Path()],
    body: SettleBody,
    response: Response,
) -> ReservationResult:
    """Charge `used_quantity`, give the rest of the hold back. A reservation resolves once: the same settle
    again is a replay (no Idempotency-Key needed: the reservation is the key), anything else a 409.
    Scope `charge`."""
    result = await credits.settle(services, caller, reservation_id, body.used_quantity)
    _say_if_replayed(response, result.replayed)
    return result


@router.post(
    "/credits/reservations/{reservation_id}/release",
    summary="Release a credit reservation",
    operation_id="release_reservation",
    responses={**ONCE, **problems(401, 403, 404, 409, 413, 415, 422, 429, 500, 503)},
)
async def release_reservation(
    services: ServicesDep,
    caller: ChargeCaller,
    reservation_id: Annotated[ReservationId, Path()],
    response: Response,
    body: NoFields | None = None,
) -> ReservationResult:
    """Give the whole hold back (the expensive call did not happen). Resolves once, like settle.
    Scope `charge`."""
    result = await credits.release(services, caller, reservation_id)
    _say_if_replayed(response, result.replayed)
    return result


@router.post(
    "/credits/consumptions",
    summary="Consume credits",
    operation_id="consume_credits",
    status_code=201,
    responses={**IDEMPOTENCY_RESPONSES, **problems(400, 401, 402, 403, 409, 413, 415, 422, 429, 500, 503)},
)
async def consume_credits(
    services: ServicesDep,
    caller: ChargeCaller,
    idempotency_key: IdempotencyKeyHeader,
    body: ConsumeBody,
    response: Response,
) -> ConsumeResult:
    """Use credits in one go, once per Idempotency-Key. 402 when the balance is too low. Scope `charge`."""
    result = await credits.consume(services, caller, body.customer_id, body.feature, body.quantity, idempotency_key)
    created_or_replayed(response, result.replayed)
    return result


def _say_if_replayed(response: Response, replayed: bool) -> None:
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
