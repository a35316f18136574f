"""GET/POST /v1/webhook_endpoints and DELETE /v1/webhook_endpoints/{endpoint_id}: where the tenant's
events are sent (scope `webhooks`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

from server import webhook_endpoints
from server.outbox import EventType
from server.webhook_endpoints import EndpointWithSecret, WebhookEndpointView
from webapp.api.problems import problems
from webapp.api.security import WebhooksCaller, resource_router
from webapp.dependencies import ServicesDep

router = resource_router("webhook endpoints")
EndpointId = Annotated[str, Path(min_length=4, max_length=64, pattern=r"^we_[A-Za-z0-9]+$")]


class EndpointBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1, max_length=2048, description="An https URL on a public address.")
    event_types: list[EventType] = Field(default_factory=list, description="The events to send; empty for all.")


class EndpointList(BaseModel):
    endpoints: list[WebhookEndpointView]


@router.get(
    "/webhook_endpoints",
    summary="List webhook endpoints",
    operation_id="list_webhook_endpoints",
    responses=problems(401, 403, 422, 429, 500, 503),
)
async def list_webhook_endpoints(services: ServicesDep, caller: WebhooksCaller) -> EndpointList:
    """The tenant's endpoints, without their secrets. Scope `webhooks`."""
    return EndpointList(endpoints=await webhook_endpoints.listing(services, caller.tenant_id))


@router.post(
    "/webhook_endpoints",
    summary="Add a webhook endpoint",
    operation_id="create_webhook_endpoint",
    status_code=201,
    responses=problems(400, 401, 403, 413, 415, 422, 429, 500, 503),
)
async def create_webhook_endpoint(
    services: ServicesDep, caller: WebhooksCaller, body: EndpointBody
) -> EndpointWithSecret:
    """Send the tenant's events (all, or `event_types`) to `url`, signed with Standard Webhooks. The answer
    holds the endpoint's `whsec_` secret, shown only this once. URLs that resolve to loopback, private,
    link-local or metadata addresses are refused (400 unsafe_webhook_url). Scope `webhooks`."""
    return await webhook_endpoints.add(
        services, tenant_id=caller.tenant_id, url=body.url, event_types=list(body.event_types)
    )


@router.delete(
    "/webhook_endpoints/{endpoint_id}",
    summary="Remove a webhook endpoint",
    operation_id="delete_webhook_endpoint",
    responses=problems(401, 403, 404, 413, 415, 422, 429, 500, 503),
)
async def delete_webhook_endpoint(
    services: ServicesDep, caller: WebhooksCaller, endpoint_id: EndpointId
) -> WebhookEndpointView:
    """Nothing more is sent to it. Another tenant's endpoint is answered 404. Scope `webhooks`."""
    return await webhook_endpoints.remove(services, endpoint_id, tenant_id=caller.tenant_id)
