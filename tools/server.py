"""build_server(services) → the MCP server: every tool, each guarded by the scope its module declares.

Each tool module holds one tool function (its docstring is what the agent reads), its ANNOTATIONS and
the SCOPE an API key needs to call it; the scope table below is derived from them.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any

from mcp.server import MCPServer
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import RequestStateSecurity
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.types import Tool as ListedTool
from pydantic import ValidationError

from server.errors import PaywardenError
from server.metrics import tool_call
from server.services import Services
from server.tenancy import Scope
from tools import (
    cancel_subscription,
    change_subscription,
    check_entitlement,
    consume_credits,
    create_charge,
    get_customer,
    get_payment,
    get_subscription,
    list_payments,
    refund_payment,
    release_reservation,
    reserve_credits,
    settle_reservation,
    setup_payment_method,
    start_subscription,
)
from tools.arguments import describe_argument_errors
from tools.auth import ApiKeyVerifier, api_key_auth
from tools.context import ToolState, caller

logger = logging.getLogger(__name__)

INSTRUCTIONS = """\
paywarden takes payments for this service safely.
- Before paid work, call check_entitlement(customer_id, feature). If not allowed, offer one of its offers.
- To charge, call create_charge with a catalog product_id and a fresh idempotency_key; reuse the key
  when retrying, so nothing is ever charged twice.
- If the payment needs a person, share next_action_url; follow up with get_payment or check_entitlement.
- For repeat charges without a page each time: setup_payment_method once (the person saves a card at
  setup_url), then create_charge(..., payment_method="saved"); get_customer shows the saved card.
- For a plan that renews (an offer with an interval), call start_subscription; cancel_subscription,
  change_subscription and get_subscription manage it afterwards.
- Access is granted only when the provider confirms the money: trust check_entitlement, not create_charge.
"""

TOOL_MODULES: tuple[ModuleType, ...] = (
    create_charge,
    check_entitlement,
    get_payment,
    list_payments,
    get_customer,
    setup_payment_method,
    refund_payment,
    reserve_credits,
    settle_reservation,
    release_reservation,
    consume_credits,
    start_subscription,
    get_subscription,
    change_subscription,
    cancel_subscription,
)
TOOL_SCOPES: dict[str, Scope] = {module.__name__.rsplit(".", 1)[1]: module.SCOPE for module in TOOL_MODULES}
"""The scope each tool needs; a key is shown, and may call, only the tools its scopes allow."""


class PaywardenServer(MCPServer[ToolState]):
    """An MCPServer that checks each call's scope, counts it, and tells the agent what was wrong in
    paywarden's own words (the message of the PaywardenError, or the arguments to fix)."""

    async def list_tools(self) -> list[ListedTool]:
        tools = await super().list_tools()
        token = get_access_token()
        if token is None:
            return tools  # stdio / in-process: the local caller has every scope
        return [tool for tool in tools if TOOL_SCOPES.get(tool.name) in token.scopes]

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        with tool_call(name):
            try:
                if context is not None and name in TOOL_SCOPES:
                    caller(context).require(TOOL_SCOPES[name])
                _refuse_unknown_arguments(name, arguments)
                return await super().call_tool(name, arguments, context)
            except PaywardenError as error:
                raise _for_the_agent(name, error) from None
            except ToolError as error:
                cause = error.__cause__
                if isinstance(cause, PaywardenError):
                    raise _for_the_agent(name, cause) from None
                if isinstance(cause, ValidationError):
                    raise ToolError(describe_argument_errors(name, cause)) from None
                raise


def _refuse_unknown_arguments(tool: str, arguments: dict[str, Any]) -> None:
    """An argument the tool does not take would be dropped silently by the SDK; an agent that writes
    amount_minor=5 beside a product_id must learn it was not used."""
    accepted = ACCEPTED_ARGUMENTS.get(tool)
    unknown = sorted(set(arguments) - set(accepted)) if accepted is not None else []
    if unknown:
        raise ToolError(
            f"Unknown argument{'s' if len(unknown) > 1 else ''} for {tool}: {', '.join(unknown)}. "
            f"Accepted arguments: {', '.join(accepted) or '(none)'}. Nothing was done."
        )


def _for_the_agent(tool: str, error: PaywardenError) -> ToolError:
    logger.info("%s refused: %s", tool, error.message, extra={"tool": tool})
    return ToolError(error.message)


def build_server(services: Services, *, local_tenant: str | None = None) -> PaywardenServer:
    """The MCP server over already opened services.

    With `local_tenant` (stdio, in-process) callers are trusted and act as that tenant with every scope;
    without it (HTTP) every request must carry an API key (`Authorization: Bearer pwk_…`) and acts as
    the key's tenant, with the key's scopes.
    """

    @asynccontextmanager
    async def lifespan(_: MCPServer[ToolState]) -> AsyncIterator[ToolState]:
        yield ToolState(services=services, local_tenant=local_tenant)

    shared_key = services.settings.request_state_key
    needs_keys = local_tenant is None
    server = PaywardenServer(
        "paywarden",
        instructions=INSTRUCTIONS,
        version="0.1.0",
        lifespan=lifespan,
        request_state_security=RequestStateSecurity(keys=[shared_key.get_secret_value()]) if shared_key else None,
        token_verifier=ApiKeyVerifier(services) if needs_keys else None,
        auth=api_key_auth(services) if needs_keys else None,
        tools=list(_tools()),
    )
    return server


@functools.cache
def _tools() -> tuple[Tool, ...]:
    """Each tool's schemas, built once per process (every server over any services shares them)."""
    return tuple(_tool(module) for module in TOOL_MODULES)


def _tool(module: ModuleType) -> Tool:
    """The tool, its input schema closed to arguments it does not declare (`additionalProperties: false`)."""
    function = getattr(module, module.__name__.rsplit(".", 1)[1])
    tool = Tool.from_function(function, description=inspect.getdoc(function), annotations=module.ANNOTATIONS)
    tool.parameters["additionalProperties"] = False
    return tool


ACCEPTED_ARGUMENTS: dict[str, list[str]] = {tool.name: list(tool.parameters.get("properties", {})) for tool in _tools()}
"""The arguments each tool takes, as its input schema names them."""
