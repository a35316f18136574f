"""Who calls /v1: the same `pwk_` API keys as /mcp (Authorization: Bearer), counted against the same
per-key rate limit, giving the key's tenant and scopes; and the request guards every operation shares
(unknown query parameters are refused)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from server import api_keys
from server.errors import Unauthenticated, UnknownParameter
from server.tenancy import Caller, Scope
from webapp.dependencies import ServicesDep

bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="pwk_…",
    description="An API key from `paywarden keys create` (the same keys as /mcp).",
)
NO_KEY = "This call needs an API key: send `Authorization: Bearer pwk_…` (create one with `paywarden keys create`)."


async def authenticated(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """The key's caller; each request counts against the key's per-minute rate, shared with /mcp (and an
    address that keeps sending wrong keys is paused, as at /mcp)."""
    if credentials is None:
        raise Unauthenticated(NO_KEY)
    address = request.client.host if request.client else ""
    key = await api_keys.authenticate(services, credentials.credentials, address)
    return api_keys.caller_of(key)


def allowed(scope: Scope) -> Callable[..., Awaitable[Caller]]:
    """A dependency: the caller, if its key has `scope` (403 missing_scope otherwise)."""

    async def caller_with_scope(caller: Annotated[Caller, Depends(authenticated)]) -> Caller:
        caller.require(scope)
        return caller

    return caller_with_scope


ReadCaller = Annotated[Caller, Depends(allowed("read"))]
ChargeCaller = Annotated[Caller, Depends(allowed("charge"))]
RefundCaller = Annotated[Caller, Depends(allowed("refund"))]
WebhooksCaller = Annotated[Caller, Depends(allowed("webhooks"))]


async def known_query_parameters(request: Request) -> None:
    """Refuse query parameters the operation does not declare (a misspelt filter must not be ignored)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    declared = _query_names(route.dependant)
    unknown = [name for name in request.query_params if name not in declared]
    if unknown:
        takes = ", ".join(sorted(declared)) or "none"
        raise UnknownParameter(
            f"{unknown[0]}: this operation does not take the query parameter {unknown[0]!r} (it takes: {takes}).",
            param=unknown[0],
        )


def _query_names(dependant: Dependant) -> frozenset[str]:
    own = frozenset(param.alias for param in dependant.query_params)
    return own.union(*(_query_names(sub) for sub in dependant.dependencies))


PREFIX = "/v1"


def resource_router(tag: str) -> APIRouter:
    """The routes of one /v1 resource: under /v1, each behind the API key check and the refusal of unknown query
    parameters, given at creation so the app takes the routes as they are (webapp.routing)."""
    return APIRouter(prefix=PREFIX, tags=[tag], dependencies=[Depends(authenticated), Depends(known_query_parameters)])
