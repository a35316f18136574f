"""How /mcp is guarded beyond the API key itself: allowed Host/Origin values and a per-key rate limit."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from mcp.server.transport_security import TransportSecuritySettings
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from db import api_keys
from db.pool import connection
from server.api_keys import find_active
from server.config import Settings
from server.errors import DatabaseUnavailable, RateLimited

LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """DNS rebinding protection: Host must be localhost, the public URL's host, or one of
    PAYWARDEN_ALLOWED_HOSTS (421 otherwise); a browser's Origin must be one of those too (403)."""
    hosts = [*LOCAL_HOSTS, *(f"{host}:*" for host in LOCAL_HOSTS)]
    if settings.public_url:
        hosts.append(urlsplit(settings.public_url).netloc)
    hosts += [host.strip() for host in settings.allowed_hosts.split(",") if host.strip()]
    origins = [f"{scheme}://{host}" for host in hosts for scheme in ("http", "https")]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


class PerKeyRateLimit:
    """ASGI middleware in front of /mcp: each API key gets its rate_per_minute HTTP requests per minute,
    counted in the database (so it holds across processes); the next one gets 429 with Retry-After.
    Requests without a known key pass through to the endpoint, which answers them 401."""

    def __init__(self, app: ASGIApp, pool: Callable[[], asyncpg.Pool]) -> None:
        self._app = app
        self._pool = pool

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _route_path(scope).rstrip("/") == "/mcp":
            refusal = await self._refusal(_bearer(scope))
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self._app(scope, receive, send)

    async def _refusal(self, secret: str | None) -> JSONResponse | None:
        if not secret:
            return None
        try:
            key = await find_active(self._pool(), secret)
            if key is None:
                return None
            async with connection(self._pool()) as conn:
                calls, seconds_left = await api_keys.count_call(conn, key.id)
        except DatabaseUnavailable as error:
            return JSONResponse({"error": error.message}, status_code=503, headers={"Retry-After": "5"})
        if calls <= key.rate_per_minute:
            return None
        limited = RateLimited(max(1, math.ceil(seconds_left)))
        return JSONResponse(
            {"error": limited.message, "retry_after_seconds": limited.retry_after_seconds},
            status_code=429,
            headers={"Retry-After": str(limited.retry_after_seconds)},
        )


def _route_path(scope: dict[str, Any]) -> str:
    """The path as routing sees it: behind a proxy that sets root_path, without that prefix."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _bearer(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, secret = value.decode("latin-1").partition(" ")
            return secret.strip() if scheme.lower() == "bearer" else None
    return None
