"""How a tool reaches the services its server's lifespan opened, and who is calling it."""

from __future__ import annotations

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import Context

from server.errors import PaywardenError
from server.services import Services
from server.tenancy import Caller, local_caller


def services(ctx: Context) -> Services:
    return ctx.request_context.lifespan_context


def caller(ctx: Context, scope: str) -> Caller:
    """The caller, if it may use `scope`: the API key's tenant over HTTP, the configured tenant locally.

    Over HTTP the SDK's auth middleware has already refused a request without a valid key (401), so
    a missing token here means a local transport (stdio, in-process); a server built for HTTP has no
    local tenant and refuses.
    """
    token = get_access_token()
    if token is not None:
        who = Caller(
            tenant_id=str((token.claims or {})["tenant_id"]),
            key_id=token.client_id,
            scopes=frozenset(token.scopes),
            budget_minor=(token.claims or {}).get("budget_minor"),
            budget_currency=(token.claims or {}).get("budget_currency"),
        )
    else:
        local_tenant = services(ctx).local_tenant
        if local_tenant is None:
            raise PaywardenError("This call carries no API key.")
        who = local_caller(local_tenant)
    who.require(scope)
    return who
