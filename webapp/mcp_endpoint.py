"""How /mcp is guarded beyond the SDK's own key check: allowed Host/Origin values (exact, port included),
no standalone GET stream, a clear 401 for a wrong or revoked key (and a pause for an address that keeps
sending wrong keys), and a per-key rate limit."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from mcp.server.transport_security import TransportSecuritySettings
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from server import api_keys
from server.config import Settings
from server.errors import DatabaseUnavailable, InvalidKey, PaywardenError, RateLimited, TooManyWrongKeys
from server.services import Services

LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """DNS rebinding protection: Host must be a local name with this server's port, the public URL's
    host, or one of PAYWARDEN_ALLOWED_HOSTS (421 otherwise); a browser's Origin must be one of those
    too (403). Every value is compared whole: no wildcard ports (another local web app is another
    origin), and nothing can be smuggled after a port (`127.0.0.1:8000@evil.com`, `127.0.0.1:8000.evil.com`)."""
    hosts = [f"{host}:{settings.port}" for host in LOCAL_HOSTS]
    if settings.port == 80:
        hosts += list(LOCAL_HOSTS)
    if settings.public_url:
        hosts.append(urlsplit(settings.public_url).netloc)
    hosts += [host.strip() for host in settings.allowed_hosts.split(",") if host.strip()]
    origins = [f"{scheme}://{host}" for host in hosts for scheme in ("http", "https")]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


class McpGuard:
    """ASGI middleware in front of /mcp. A request with a key that is not an active key gets a 401 that
    says so (and an address that keeps sending them a 429 for a minute); each active key gets its
    rate_per_minute requests per minute (429 with Retry-After after that). Requests without a key pass
    through to the SDK, which answers them 401."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self._app = app
        self._services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _route_path(scope).rstrip("/") == "/mcp":
            refusal = await self._refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self._app(scope, receive, send)

    async def _refusal(self, scope: Scope) -> JSONResponse | None:
        if scope["method"] == "GET":
            return NO_GET_STREAM
        secret = _bearer(scope)
        address = (scope.get("client") or ("",))[0]
        if secret is None:
            return None
        try:
            await api_keys.authenticate(self._services, secret, address)
        except InvalidKey as invalid:
            return self._invalid_key(invalid.message)
        except (DatabaseUnavailable, RateLimited, TooManyWrongKeys) as refused:
            return _refused(refused)
        return None

    def _invalid_key(self, message: str) -> JSONResponse:
        metadata = f"{self._services.settings.base_url}/.well-known/oauth-protected-resource/mcp"
        challenge = f'Bearer error="invalid_token", error_description="{message}", resource_metadata="{metadata}"'
        body = {"error": "invalid_token", "error_description": message}
        return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": challenge})


def _refused(error: PaywardenError) -> JSONResponse:
    retry_after = getattr(error, "retry_after_seconds", 5 if error.status == 503 else 60)
    return JSONResponse(
        {"error": error.message, "retry_after_seconds": retry_after},
        status_code=error.status,
        headers={"Retry-After": str(retry_after)},
    )


NO_GET_STREAM = JSONResponse(
    {"error": "This MCP endpoint is stateless: it offers no standalone GET stream. POST requests to /mcp."},
    status_code=405,
    headers={"Allow": "POST, DELETE"},
)
"""The streamable HTTP spec lets a server answer GET with 405. Stateless, nothing could ever be sent on such
a stream; refusing it means no key can hold connections open."""


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
