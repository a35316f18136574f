"""GET /v1/customers/{customer_id} (get_customer), POST /v1/customers/{customer_id}/payment_method_setups
(setup_payment_method)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Response

from server import customers, setups
from server.customers import CustomerView
from server.fields import CustomerId
from server.setups import SetupResult
from webapp.api.body_guard import NoFields
from webapp.api.idempotency import IDEMPOTENCY_RESPONSES, IdempotencyKeyHeader, created_or_replayed
from webapp.api.problems import problems
from webapp.api.security import ChargeCaller, ReadCaller, resource_router
from webapp.dependencies import ServicesDep

router = resource_router("customers")


@router.get(
    "/customers/{customer_id}",
    summary="Look up a customer",
    operation_id="get_customer",
    responses=problems(401, 403, 404, 422, 429, 500, 503),
)
async def get_customer(
    services: ServicesDep, caller: ReadCaller, customer_id: Annotated[CustomerId, Path()]
) -> CustomerView:
    """The customer's saved cards (the default first), the access they paid for, their credit balances and
    latest payments. Another tenant's customer is answered 404, like one paywarden knows nothing of.
    Scope `read`."""
    return await customers.details(services, caller, customer_id)


@router.post(
    "/customers/{customer_id}/payment_method_setups",
    summary="Have the person save a card",
    operation_id="setup_payment_method",
    status_code=201,
    responses={**IDEMPOTENCY_RESPONSES, **problems(400, 401, 403, 409, 413, 415, 422, 429, 500, 502, 503)},
)
async def setup_payment_method(
    services: ServicesDep,
    caller: ChargeCaller,
    idempotency_key: IdempotencyKeyHeader,
    customer_id: Annotated[CustomerId, Path()],
    response: Response,
    body: NoFields | None = None,
) -> SetupResult:
    """A page (`setup_url`, status `requires_action`) where the person saves a card once; afterwards
    charges with `payment_method: "saved"` need no page. Once per Idempotency-Key: a repeat returns the
    same setup with `Idempotent-Replayed: true`. Scope `charge`."""
    result = await setups.setup_payment_method(services, caller, customer_id, idempotency_key)
    created_or_replayed(response, result.replayed)
    return result
