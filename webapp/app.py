"""The HTTP side of `paywarden up`: the merchant's API at /v1 (OpenAPI at /openapi.json, docs at /docs),
webhooks in, health and metrics, the sandbox provider's pages and API (when this process serves it)
and, when given, the MCP server at /mcp — all over one set of services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from mcp.server import MCPServer
from starlette.routing import Mount

from server.services import Services
from webapp import api, health, receipts, webhooks
from webapp.console import install_console
from webapp.errors import install_error_handlers
from webapp.mcp_endpoint import McpGuard, transport_security
from webapp.routing import add_routes


def build_webapp(services: Services, mcp: MCPServer | None = None) -> FastAPI:
    """One ASGI app. The MCP server, if given, is served over streamable HTTP at /mcp; it must require
    API keys (tools.server.build_server without a local tenant)."""
    if mcp is not None and mcp.settings.auth is None:
        raise ValueError("/mcp needs an MCP server that requires API keys: build_server(services) with no local_tenant")
    # Stateless, so any replica answers any request; JSON answers, because over stateless HTTP a tool call
    # has nothing to stream (no request can reach the client mid-call: tools/elicitation.py) and one JSON
    # body costs half of what an event stream does.
    mcp_http = (
        mcp.streamable_http_app(
            stateless_http=True, json_response=True, transport_security=transport_security(services.settings)
        )
        if mcp
        else None
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if mcp is None:
            yield
            return
        async with mcp.session_manager.run():
            yield

    # Swagger UI served from the package, not a CDN: /docs works offline.
    app = FastAPIOffline(
        title="paywarden",
        version="1",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        static_url="/docs/static",
    )
    app.state.services = services
    install_error_handlers(app)
    api.install(app)
    add_routes(app, health.router, webhooks.router, receipts.router)
    install_console(app)
    if services.sandbox is not None:
        app.mount("/sandbox", services.sandbox.app)
    if mcp_http is not None:
        app.router.routes.append(Mount("/", app=McpGuard(mcp_http, services)))
    return app
