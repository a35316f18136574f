"""The tenants' webhook endpoints (where paywarden sends their apps' events): list, add and rotate (the
secret shown once), enable, disable, remove; an endpoint's deliveries with every attempt; send an event
again. What `paywarden endpoints …` does."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import Response

from server import operator_actions, tenants, webhook_endpoints
from server.errors import WebhookEndpointNotFound
from server.operators import SignedIn
from server.outbox import EVENT_TYPES
from server.services import Services
from server.webhook_endpoints import EndpointWithSecret
from webapp.console import rendering
from webapp.console.routing import console_router
from webapp.console.session import ActingDep, OperatorDep
from webapp.dependencies import ServicesDep

router = console_router()
Field = Annotated[str, Form()]
Checked = Annotated[list[str] | None, Form()]


@router.get("/endpoints")
async def endpoints(request: Request, services: ServicesDep, operator: OperatorDep) -> Response:
    return await _endpoints_page(request, services, operator)


async def _endpoints_page(
    request: Request, services: Services, operator: SignedIn, shown: EndpointWithSecret | None = None, said: str = ""
) -> Response:
    listed = await webhook_endpoints.listing(services, operator.scope)
    choices = [operator.tenant_id] if operator.tenant_id else [tenant.id for tenant in await tenants.listing(services)]
    return await rendering.page(
        request, services, "endpoints.html", endpoints=listed, shown=shown, said=said, event_types=EVENT_TYPES,
        tenant_ids=choices,
    )  # fmt: skip


@router.post("/endpoints")
async def add(
    request: Request, services: ServicesDep, operator: ActingDep, tenant: Field = "", url: Field = "",
    event_types: Checked = None, back: Field = "",
) -> Response:  # fmt: skip
    """The secret is shown on this answer only (never after a redirect: it is not kept for showing)."""
    added = await operator_actions.add_endpoint(
        services, operator, tenant_id=tenant, url=url, event_types=event_types or []
    )
    return await _endpoints_page(request, services, operator, added, f"Endpoint {added.endpoint_id} added.")


@router.post("/endpoints/redeliver")
async def redeliver(
    request: Request, services: ServicesDep, operator: ActingDep, event_id: Field = "", back: Field = ""
) -> Response:
    done = await operator_actions.redeliver(services, operator, event_id)
    return await rendering.redirect(request, services, rendering.local_path(back, "/console/endpoints"), done.said())


@router.post("/endpoints/{endpoint_id}/rotate")
async def rotate(
    request: Request, services: ServicesDep, operator: ActingDep, endpoint_id: str, back: Field = ""
) -> Response:
    rotated = await operator_actions.rotate_endpoint_secret(services, operator, endpoint_id)
    until = rendering.when(rotated.previous_secret_until)
    said = f"{rotated.endpoint_id} has a new secret; the previous one also signs until {until.striptags()}."
    return await _endpoints_page(request, services, operator, rotated, said)


@router.post("/endpoints/{endpoint_id}/{change}")
async def change(
    request: Request, services: ServicesDep, operator: ActingDep, endpoint_id: str, change: str, back: Field = ""
) -> Response:
    said = await operator_actions.change_endpoint(services, operator, endpoint_id, change)
    return await rendering.redirect(request, services, "/console/endpoints", said)


@router.get("/endpoints/{endpoint_id}")
async def deliveries(
    request: Request, services: ServicesDep, operator: OperatorDep, endpoint_id: str, failed: str = ""
) -> Response:
    found = await webhook_endpoints.deliveries(
        services, endpoint_id, tenant_id=operator.tenant_id, only_failed=bool(failed)
    )
    listed = await webhook_endpoints.listing(services, operator.tenant_id)
    endpoint = next((one for one in listed if one.endpoint_id == endpoint_id), None)
    if endpoint is None:  # removed a moment ago
        raise WebhookEndpointNotFound(f"No webhook endpoint {endpoint_id!r}.")
    return await rendering.page(
        request, services, "endpoint.html", endpoint=endpoint, deliveries=found, failed=bool(failed)
    )
