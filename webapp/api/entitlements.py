"""GET /v1/customers/{customer_id}/entitlements/{feature}: check_entitlement, the backend's hot path."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from server import entitlements
from server.entitlements import EntitlementAnswer
from server.fields import MAX_QUANTITY, CustomerId, Feature
from webapp.api.problems import problems
from webapp.api.security import ReadCaller, resource_router
from webapp.dependencies import ServicesDep

router = resource_router("entitlements")


@router.get(
    "/customers/{customer_id}/entitlements/{feature}",
    summary="Check an entitlement",
    operation_id="check_entitlement",
    responses=problems(401, 403, 422, 429, 500, 503),
)
async def check_entitlement(
    services: ServicesDep,
    caller: ReadCaller,
    customer_id: Annotated[CustomerId, Path()],
    feature: Annotated[Feature, Path()],
    quantity: Annotated[
        int, Query(ge=1, le=MAX_QUANTITY, description="For metered features: how many credits are needed.")
    ] = 1,
) -> EntitlementAnswer:
    """May this customer use this feature now? Answered from payments the provider confirmed, never from a
    charge in progress; for a metered feature, `allowed` means at least `quantity` credits remain. When
    `allowed` is false, `offers` lists the products that would grant it. Fails closed: if this call
    fails (503), treat the customer as not entitled. Scope `read`."""
    return await entitlements.check(services, caller, customer_id, feature, quantity)
