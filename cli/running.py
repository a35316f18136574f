"""`paywarden up` (everything over HTTP, with the reconciler in the background) and `paywarden mcp` (stdio)."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import sys
import time
from types import FrameType

import uvicorn
import uvicorn.server as uvicorn_server

from server import api_keys, database, operators, tenants, webhook_delivery
from server.config import DEFAULT_MAX_CHARGE_MINOR, Settings
from server.errors import ConfigurationError
from server.money import format_amount
from server.providers import check_provider_config, is_live
from server.reconciler import running_in_background
from server.services import open_services
from server.tenancy import DEFAULT_TENANT
from tools.server import build_server
from webapp.app import build_webapp


def register(commands: argparse._SubParsersAction) -> None:
    up = commands.add_parser("up", help="run everything: MCP over HTTP, webhooks, the sandbox provider")
    up.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    up.add_argument("--port", type=int, help="port to listen on (default 8000)")
    up.set_defaults(command=run_up)
    mcp = commands.add_parser("mcp", help="run the MCP server over stdio (what mcp.json launches)")
    mcp.set_defaults(command=run_mcp)


def run_mcp(settings: Settings, args: argparse.Namespace) -> int:
    check_provider_config(settings, receives_webhooks=False)
    asyncio.run(_serve_stdio(settings))
    return 0


async def _prepared(settings: Settings) -> Settings:
    """The database ready (embedded, migrated) and a server role that owns nothing, or a refusal."""
    settings = await database.prepare(settings)
    await database.refuse_owner_role(settings)
    return settings


async def _serve_stdio(settings: Settings) -> None:
    settings = await _prepared(settings)
    async with open_services(settings) as services:
        if not await tenants.exists(services, settings.stdio_tenant):
            raise ConfigurationError(
                f"PAYWARDEN_STDIO_TENANT is {settings.stdio_tenant!r}, which is not a tenant; create it with "
                f"`paywarden tenants create {settings.stdio_tenant}` or unset it to act as 'default'."
            )
        await build_server(services, local_tenant=settings.stdio_tenant).run_stdio_async()


def run_up(settings: Settings, args: argparse.Namespace) -> int:
    check_provider_config(settings, receives_webhooks=True)
    try:
        sock = _listen(settings.host, settings.port)
    except OSError as error:
        print(
            f"paywarden: cannot listen on {settings.host}:{settings.port}: {error.strerror}. "
            "Stop what uses it or pass --port.",
            file=sys.stderr,
        )
        return 2
    settings = asyncio.run(_prepared(settings))
    # uvicorn handles Ctrl-C and SIGTERM itself (a clean shutdown of the app and its lifespan), then
    # re-raises the signal to whatever handler was there before. A quiet one lets this function return,
    # so the embedded PostgreSQL is stopped at exit instead of the process dying mid-cleanup.
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, _already_stopping)
    asyncio.run(_serve_http(settings, sock))
    return 0


async def _serve_http(settings: Settings, sock: socket.socket) -> None:
    """One set of services for the whole process: the MCP server and the HTTP app are built over it; the
    reconciler and the webhook delivery run beside them."""
    async with open_services(settings, serve_sandbox=True) as services:
        first_key = await api_keys.issue_first_key(services, tenant_id=DEFAULT_TENANT)
        first_admin = await operators.create_first_admin(services)
        app = build_webapp(services, mcp=build_server(services))
        shown = banner(settings, first_key.secret if first_key else None, first_admin.password if first_admin else None)
        print(shown, file=sys.stderr, flush=True)
        server = PatientServer(uvicorn.Config(app, log_level="info", lifespan="on"))
        async with (
            running_in_background(services),
            webhook_delivery.running_in_background(services),
            api_keys.cached_while_listening(services),
        ):
            await server.serve(sockets=[sock])


class PatientServer(uvicorn_server.Server):
    """A terminal's Ctrl-C reaches this process twice (from the terminal, and forwarded by `uv run`).
    Only a Ctrl-C pressed again later forces an immediate exit; one press shuts down cleanly."""

    _first_stop: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if self._first_stop is not None and now - self._first_stop < 1.0:
            return
        self._first_stop = self._first_stop or now
        super().handle_exit(sig, frame)


def _already_stopping(signum: int, frame: object) -> None:
    """After uvicorn's own shutdown: nothing left to do but return."""


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle off only on sockets that say they are TCP, and with Nagle on
    # every response on a kept-alive connection waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def mode(settings: Settings) -> str:
    if settings.provider == "sandbox":
        return "sandbox (local, no real money)"
    return "LIVE — real money moves" if is_live(settings) else "test (Stripe test key)"


def cap_line(settings: Settings) -> str:
    """What one call may move at most: the safe default a fresh install ships, or what the operator set."""
    cap = settings.max_charge_minor
    if cap is None:
        return "Largest single charge: no cap (PAYWARDEN_MAX_CHARGE_MINOR is off; set a number to cap charges)."
    default = " (the default)" if cap == DEFAULT_MAX_CHARGE_MINOR else ""
    return (
        f"Largest single charge: {cap} minor units{default}, e.g. {format_amount(cap, 'USD')} or "
        f"{format_amount(cap, 'JPY')}; PAYWARDEN_MAX_CHARGE_MINOR changes it, 0 or none turns it off."
    )


def banner(settings: Settings, first_key: str | None = None, first_admin_password: str | None = None) -> str:
    base = settings.base_url
    shown = first_key or "<a key from: paywarden keys create --tenant default --name my-agent>"
    entry = {"type": "http", "url": f"{base}/mcp", "headers": {"Authorization": f"Bearer {shown}"}}
    snippet = {"mcpServers": {"paywarden-http": entry}}
    key_lines = (
        [
            "First start: an API key for tenant 'default' (scopes read, charge, refund, webhooks) was created",
            "for local use.",
            "It is shown only now; paywarden keeps a hash. Create more with `paywarden keys create`.",
            "Its charges that need approval are approved by the person through your MCP client (client",
            "approval); keys you create are approved by an operator unless you pass --approval client.",
            f"  {first_key}",
            "",
        ]
        if first_key
        else []
    )
    admin_lines = (
        [
            f"First start: a console operator {operators.FIRST_ADMIN!r} (role admin, every tenant) was created.",
            "Sign in at the console with this one-time password; it then asks for a password of your own:",
            f"  {first_admin_password}",
            "",
        ]
        if first_admin_password
        else []
    )
    return "\n".join(
        [
            "",
            f"paywarden is up — provider: {settings.provider}, mode: {mode(settings)}",
            f"  Operator console:      {base}/console",
            f"  MCP (streamable HTTP): {base}/mcp  (Authorization: Bearer <API key>)",
            f"  Stripe webhooks:       {base}/webhooks/stripe  (a tenant's own: {base}/webhooks/stripe/<tenant>)",
            f"  Standard Webhooks:     {base}/webhooks/standard",
            *([f"  Sandbox provider:      {base}/sandbox"] if settings.provider == "sandbox" else []),
            f"  Health:                {base}/healthz  (ready: {base}/readyz, metrics: {base}/metrics)",
            "",
            cap_line(settings),
            "",
            *key_lines,
            *admin_lines,
            "Connect an MCP client with this mcp.json entry:",
            json.dumps(snippet, indent=2),
            "",
            "Press Ctrl-C to stop.",
            "",
        ]
    )
