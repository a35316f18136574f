"""`paywarden up | mcp | migrate`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from server.config import Settings
from server.embedded import resolve_database_url

logger = logging.getLogger("paywarden")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _settings(args)
    return args.command(settings, args)


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

    asyncio.run(migrate_url(settings.database_url or ""))
    build_server(settings).run("stdio")
    return 0


def run_up(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from db.migrate import migrate_url
    from server.app import build_server
    from webapp.app import build_webapp

    asyncio.run(migrate_url(settings.database_url or ""))
    app = build_webapp(settings, mcp=build_server(settings))
    print(banner(settings), file=sys.stderr, flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", lifespan="on")
    return 0


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
