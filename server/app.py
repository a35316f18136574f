"""build_server(settings) → MCPServer: the tools, and a lifespan that owns the pool and the provider."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, ParamSpec, TypeVar

from mcp.server import MCPServer
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import RequestStateSecurity
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import Tool, ToolAnnotations
from pydantic import ValidationError

from server.api_keys import ApiKeyVerifier
from server.argument_errors import describe
from server.config import Settings
from server.errors import PaywardenError
from server.metrics import tool_call
from server.reconciler import reconcile_forever
from server.services import Services, open_services
from server.tenancy import TOOL_SCOPES
from tools import (
    check_entitlement,
    consume_credits,
    create_charge,
    get_payment,
    list_payments,
    refund_payment,
    release_reservation,
    reserve_credits,
    settle_reservation,
)

logger = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

INSTRUCTIONS = """\
paywarden takes payments for this service safely.
- Before paid work, call check_entitlement(customer_id, feature). If not allowed, offer one of its offers.
- To charge, call create_charge with a catalog product_id and a fresh idempotency_key; reuse the key
  when retrying, so nothing is ever charged twice.
- If the payment needs a person, share next_action_url; follow up with get_payment or check_entitlement.
- Access is granted only when the provider confirms the money: trust check_entitlement, not create_charge.
"""

TOOLS: list[tuple[Callable[..., Awaitable[Any]], ToolAnnotations]] = [
    (create_charge.create_charge, create_charge.ANNOTATIONS),
    (check_entitlement.check_entitlement, check_entitlement.ANNOTATIONS),
    (get_payment.get_payment, get_payment.ANNOTATIONS),
    (list_payments.list_payments, list_payments.ANNOTATIONS),
    (refund_payment.refund_payment, refund_payment.ANNOTATIONS),
    (reserve_credits.reserve_credits, reserve_credits.ANNOTATIONS),
    (settle_reservation.settle_reservation, settle_reservation.ANNOTATIONS),
    (release_reservation.release_reservation, release_reservation.ANNOTATIONS),
    (consume_credits.consume_credits, consume_credits.ANNOTATIONS),
]


class PaywardenServer(MCPServer):
    """MCPServer whose argument-validation errors tell the agent how to fix the call, and which lists
    to an API key only the tools its scopes allow."""

    async def list_tools(self) -> list[Tool]:
        tools = await super().list_tools()
        token = get_access_token()
        if token is None:
            return tools  # stdio / in-process: the local caller has every scope
        return [tool for tool in tools if TOOL_SCOPES.get(tool.name) in token.scopes]

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as error:
            if isinstance(error.__cause__, ValidationError):
                raise ToolError(describe(name, error.__cause__)) from None
            raise


def build_server(settings: Settings, *, background_reconciler: bool = False, serve_http: bool = False) -> MCPServer:
    """The MCP server. With `background_reconciler` (what `paywarden up` asks for), its lifespan also
    runs the reconciler every PAYWARDEN_RECONCILE_INTERVAL_SECONDS.

    With `serve_http`, every request must carry an API key (`Authorization: Bearer pwk_…`) and acts
    as the key's tenant; without it (stdio, in-process) callers are trusted and act as
    PAYWARDEN_STDIO_TENANT.
    """
    opened_services: list[Services] = []

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[Services]:
        async with open_services(settings, local=not serve_http) as opened:
            opened_services[:] = [opened]
            if not (background_reconciler and settings.reconcile_interval_seconds):
                yield opened
                return
            task = asyncio.create_task(reconcile_forever(opened, settings.reconcile_interval_seconds))
            try:
                yield opened
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    shared_key = settings.request_state_key
    server = PaywardenServer(
        "paywarden",
        instructions=INSTRUCTIONS,
        version="0.1.0",
        lifespan=lifespan,
        request_state_security=RequestStateSecurity(keys=[shared_key.get_secret_value()]) if shared_key else None,
        token_verifier=ApiKeyVerifier(lambda: opened_services[0].pool) if serve_http else None,
        auth=_api_key_auth(settings) if serve_http else None,
    )
    for tool, tool_annotations in TOOLS:
        server.add_tool(agent_errors(tool), description=inspect.getdoc(tool), annotations=tool_annotations)
    return server


def _api_key_auth(settings: Settings) -> AuthSettings:
    """Bearer API keys checked by ApiKeyVerifier. There is no OAuth authorization server: keys come from
    `paywarden keys create`; the metadata's issuer is paywarden itself."""
    return AuthSettings(
        issuer_url=settings.base_url,
        resource_server_url=f"{settings.base_url}/mcp",
        validate_token_resource=False,  # keys are paywarden's own, for this endpoint only
    )


def agent_errors(tool: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Hand paywarden's errors to the agent as ToolError, so it reads the message and can fix its call."""

    @functools.wraps(tool)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            with tool_call(tool.__name__):
                return await tool(*args, **kwargs)
        except PaywardenError as error:
            logger.info("%s refused: %s", tool.__name__, error.message, extra={"tool": tool.__name__})
            raise ToolError(error.message) from None

    return wrapper
