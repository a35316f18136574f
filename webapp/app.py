"""The HTTP side: webhook sidecar, health, the sandbox provider and (when given) the MCP endpoint at /mcp."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import asyncpg
from fastapi import FastAPI
from mcp.server import MCPServer
from starlette.routing import Mount

from db.pool import create_pool
from server.config import Settings
from server.providers import open_provider, resolve_webhook_secret
from server.providers.sandbox.api import SandboxState, mount_sandbox
from server.providers.sandbox.delivery import WebhookDeliverer
from server.providers.standard_webhooks import StandardWebhookVerifier
from webapp import health, webhooks
from webapp.errors import install_error_handlers
from webapp.mcp_endpoint import PerKeyRateLimit, transport_security


def build_webapp(settings: Settings, mcp: MCPServer | None = None) -> FastAPI:
    """One ASGI app for `paywarden up`. The MCP server, if given, is served over streamable HTTP at /mcp;
    it must be built with `serve_http=True`, so that every request needs an API key."""
    if mcp is not None and mcp.settings.auth is None:
        raise ValueError("/mcp needs an MCP server that requires API keys: build_server(..., serve_http=True)")
    mcp_http = (
        mcp.streamable_http_app(stateless_http=True, transport_security=transport_security(settings)) if mcp else None
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            pool = await create_pool(settings.database_url or "", min_size=1)
            stack.push_async_callback(pool.close)
            secret = await resolve_webhook_secret(settings, pool)
            app.state.pool = pool
            app.state.provider = open_provider(settings, secret)
            standard = settings.standard_webhook_secret
            app.state.standard_webhooks = StandardWebhookVerifier(standard.get_secret_value()) if standard else None
            stack.push_async_callback(app.state.provider.close)
            if settings.provider == "sandbox":
                await _run_sandbox(app, stack, pool, settings, secret)
            if mcp is not None:
                await stack.enter_async_context(mcp.session_manager.run())
            yield

    app = FastAPI(title="paywarden", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(webhooks.router)
    if settings.provider == "sandbox":
        mount_sandbox(app)
    if mcp_http is not None:
        app.router.routes.append(Mount("/", app=PerKeyRateLimit(mcp_http, lambda: app.state.pool)))
    return app


async def _run_sandbox(
    app: FastAPI, stack: AsyncExitStack, pool: asyncpg.Pool, settings: Settings, secret: str
) -> None:
    """Serve the sandbox and deliver its webhooks to this app's own endpoint until shutdown."""
    signing_secret = secret.split(",")[0].strip()  # several may be accepted (rotation); one signs
    deliver_to = settings.sandbox_webhook_url or f"{settings.base_url}/webhooks/stripe"
    deliverer = WebhookDeliverer(pool, deliver_to, signing_secret, settings.sandbox_delivery_interval_seconds)
    app.state.sandbox = SandboxState(pool=pool, base_url=f"{settings.base_url}/sandbox", wake_deliverer=deliverer.wake)
    if not settings.sandbox_deliver_webhooks:
        return
    task = asyncio.create_task(deliverer.run_forever(), name="sandbox-webhook-delivery")

    async def stop() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    stack.push_async_callback(stop)
