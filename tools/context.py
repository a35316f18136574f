"""What a tool receives through the SDK's typed lifespan context, and who is calling it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import Context

from server.errors import PaywardenError
from server.services import Services
from server.tenancy import Caller, local_caller


@dataclass(frozen=True)
class ToolState:
    """What the MCP server's lifespan hands every tool."""

    services: Services
    local_tenant: str | None
    """The tenant a caller without an API key acts as (stdio, in-process); None where every call must
    carry a key (HTTP)."""


ToolContext = Context[ToolState, Any]


def services(ctx: ToolContext) -> Services:
    return ctx.request_context.lifespan_context.services


def caller(ctx: ToolContext) -> Caller:
    """The API key's tenant and scopes over HTTP; the configured tenant, with every scope, locally.

    Over HTTP the SDK's auth middleware has already refused a request without a valid key (401), so
    a missing token here means a local transport (stdio, in-process); a server built for HTTP has no
    local tenant and refuses.
    """
    token = get_access_token()
    if token is not None:
        claims = token.claims or {}
        return Caller(
            tenant_id=str(claims["tenant_id"]),
            key_id=token.client_id,
            scopes=frozenset(token.scopes),
            budget_minor=claims.get("budget_minor"),
            budget_currency=claims.get("budget_currency"),
            approval="client" if claims.get("approval") == "client" else "operator",
        )
    local_tenant = ctx.request_context.lifespan_context.local_tenant
    if local_tenant is None:
        raise PaywardenError("This call carries no API key.")
    return local_caller(local_tenant)
