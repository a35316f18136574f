"""The merchant backend's HTTP API at /v1: one module per resource, each route an adapter over one
service call (the same calls as the MCP tools), with the same keys, scopes, tenants, limits and audit.

Errors are RFC 9457 problem+json (problems.py); OpenAPI 3.1 at /openapi.json (and /docs) describes
every route, parameter, body, response and error, and documents the webhooks paywarden sends.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from server.errors import MethodNotAllowed, NotFound
from server.webhook_endpoints import OutboundEvent
from webapp.api import charges, credits, customers, entitlements, subscriptions, webhook_endpoints
from webapp.api.body_guard import BodyGuard
from webapp.api.problems import Problem
from webapp.api.security import PREFIX
from webapp.routing import add_routes

RESOURCES = (entitlements, customers, charges, subscriptions, credits, webhook_endpoints)
DESCRIPTION = """\
The HTTP API for your own backend, beside the MCP server agents use: the same API keys
(`Authorization: Bearer pwk_…`), scopes, tenants, limits, budgets, rate limit and audit, over the
same services. Money-moving POSTs take an `Idempotency-Key` header. Errors are
`application/problem+json` (RFC 9457) with a stable `code`. The webhooks paywarden sends to your
endpoints are described under `webhooks`.
"""


def install(app: FastAPI) -> None:
    """Add /v1 to the app: its routes, its body guard, and its OpenAPI document."""
    add_routes(app, *(resource.router for resource in RESOURCES), UNKNOWN_PATHS)
    app.add_middleware(BodyGuard)
    app.webhooks.post("paywarden-event", summary="An event about your tenant")(_webhook_doc)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]


async def _webhook_doc(event: OutboundEvent) -> None:
    """Sent to each of your webhook endpoints that wants its type, as JSON, signed with Standard Webhooks
    (`webhook-id` = the event id, the same on every retry: deduplicate on it; `webhook-timestamp`;
    `webhook-signature`, with two signatures during a secret rotation). Answer 2xx within 10 seconds;
    anything else is retried with backoff for up to three days."""


UNKNOWN_PATHS = APIRouter(include_in_schema=False)
"""After every resource: any other path under /v1."""


@UNKNOWN_PATHS.api_route(PREFIX + "/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
async def unknown(request: Request) -> None:
    """A problem+json 404, or 405 when the path exists with other methods."""
    allowed = sorted(set(_methods_of(request)))
    if allowed:
        raise MethodNotAllowed(f"{request.url.path} takes {', '.join(allowed)}, not {request.method}.")
    raise NotFound(f"No such operation: {request.method} {request.url.path}; see /openapi.json or /docs.")


def _methods_of(request: Request) -> list[str]:
    """The methods the API takes at this request's path, read from its own OpenAPI document."""
    path = request.url.path
    return [
        method.upper()
        for template, operations in request.app.openapi()["paths"].items()
        if re.fullmatch(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)), path)
        for method in operations
    ]


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(
            title="paywarden",
            version=app.version,
            openapi_version="3.1.0",
            description=DESCRIPTION,
            routes=app.routes,
            webhooks=app.webhooks.routes,
        )
        _, definitions = models_json_schema([(Problem, "serialization")], ref_template="#/components/schemas/{model}")
        schema.setdefault("components", {}).setdefault("schemas", {}).update(definitions["$defs"])
        app.openapi_schema = schema
    return app.openapi_schema
